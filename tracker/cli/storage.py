"""``tracker storage``: backup targets in tracker.yaml."""

from __future__ import annotations

import typer

from tracker.cli._common import COMMIT_OPTION, JSON_OPTION, emit_json, emit_table, info, project, tracked_edit

app = typer.Typer(help="Backup targets: S3, Azure Blob, Google Cloud Storage, Backblaze B2, SSH, local.",
                  no_args_is_help=True)


@app.command("add")
def add(
    name: str = typer.Argument(..., help="Name to use with --to / --from, e.g. s3."),
    type_: str = typer.Option(..., "--type", "-t", help="local, ssh, s3, azure, gcs, b2 (or a plug-in type)."),
    bucket: str = typer.Option(None, "--bucket", help="Bucket (s3, gcs, b2)."),
    container: str = typer.Option(None, "--container", help="Container (azure)."),
    prefix: str = typer.Option(None, "--prefix", help="Key prefix inside the bucket (default: tracker)."),
    region: str = typer.Option(None, "--region", help="Region (s3)."),
    endpoint_url: str = typer.Option(None, "--endpoint-url", help="S3-compatible endpoint (MinIO, Ceph, ...)."),
    account_url: str = typer.Option(None, "--account-url", help="Storage account URL (azure)."),
    connection_string_env: str = typer.Option(None, "--connection-string-env",
                                              help="Env var holding the connection string (azure)."),
    gcp_project: str = typer.Option(None, "--project", help="Google Cloud project (gcs)."),
    remote: str = typer.Option(None, "--remote", help="Named remote (ssh)."),
    path: str = typer.Option(None, "--path", help="Directory (local, ssh)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing target of that name."),
    commit: bool = COMMIT_OPTION,
) -> None:
    """Add a backup target to tracker.yaml. Keep credentials out of it: they come from the
    cloud's standard chain or environment variables, and any option may say ${VAR} to read
    (part of) its value from the environment, e.g. --endpoint-url 'https://minio:${MINIO_PASSWORD}@host'.

    Example: tracker storage add s3 --type s3 --bucket my-models --region eu-west-1
    """
    from tracker.storage.manage import add_target

    options = {"bucket": bucket, "container": container, "prefix": prefix, "region": region,
               "endpoint_url": endpoint_url, "account_url": account_url,
               "connection_string_env": connection_string_env, "project": gcp_project, "remote": remote,
               "path": path}
    proj = project()
    with tracked_edit(proj, f"tracker: add storage target {name}", commit=commit) as written:
        add_target(proj, name, type_, options, force=force)
        written.append(proj.paths.config)
        info(f"added storage target {name}; next: 'tracker storage check {name}'")


@app.command("list")
def list_(as_json: bool = JSON_OPTION) -> None:
    """List the backup targets in tracker.yaml (credentials masked as ***)."""
    from tracker import secrets

    targets = project().config.storage
    secrets.warn_literal(targets)
    shown = {name: secrets.display(t.options()) for name, t in targets.items()}
    if as_json:
        emit_json({name: {"type": t.type, **shown[name]} for name, t in targets.items()})
        return
    emit_table([(name, t.type, " ".join(f"{k}={v}" for k, v in shown[name].items())) for name, t in targets.items()],
               ["name", "type", "options"])


@app.command("remove")
def remove(name: str = typer.Argument(..., help="Target name.")) -> None:
    """Remove a target from tracker.yaml (nothing stored there is deleted)."""
    project().set_section("storage", name, None)
    info(f"removed storage target {name}")


@app.command("check")
def check(name: str = typer.Argument(..., help="Target name."), as_json: bool = JSON_OPTION) -> None:
    """List, write, read back and delete a probe object; say what is missing if anything fails."""
    from tracker.secrets import redact
    from tracker.storage.registry import open_target

    target = open_target(project(), name)
    try:
        steps = [(step, ok, redact(detail)) for step, ok, detail in target.probe()]
    finally:
        target.close()
    if as_json:
        emit_json([{"step": s, "ok": ok, "detail": d} for s, ok, d in steps])
    else:
        info(target.describe())
        emit_table([(s, "ok" if ok else "FAILED", d) for s, ok, d in steps], ["step", "result", "detail"])
    if not all(ok for _, ok, _ in steps):
        raise typer.Exit(1)
