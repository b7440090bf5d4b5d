"""Shared fixtures: isolated git identity, real git projects, real services.

Service fixtures start the scripts in tests/infra/. Without CI a service that
cannot start skips its tests; with CI=true it is a failure, never a silent skip.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracker.testing.executor import TRAIN

INFRA = Path(__file__).resolve().parent / "infra"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def free_port(*hosts: str) -> int:
    """A TCP port free on every one of ``hosts`` (so a leftover daemon never blocks a run)."""
    import socket

    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((hosts[0] if hosts else "127.0.0.1", 0))
            port = probe.getsockname()[1]
        try:
            for host in hosts[1:]:
                with socket.socket() as other:
                    other.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


def svc(script: str, *args: object, env: dict[str, str] | None = None) -> dict[str, str]:
    """Run tests/infra/SCRIPT with args; return the KEY=VALUE lines it printed."""
    proc = subprocess.run([str(INFRA / script), *map(str, args)], capture_output=True,
                          text=True, timeout=900, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise RuntimeError(f"{script} {' '.join(map(str, args[:1]))} failed (exit {proc.returncode}): "
                           + " | ".join(proc.stderr.strip().splitlines()[-8:]))
    return dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)


def start_service(script: str, *args: object, env: dict[str, str] | None = None) -> dict[str, str]:
    """Start a service; skip (laptop) or fail (CI) when it cannot start.

    One retry after a pause: a daemon stopped just before may hold its port until
    PID 1 reaps it (about 2 s here, see tests/infra/README.md).
    """
    import time

    error: Exception | None = None
    for attempt in range(2):
        try:
            return svc(script, "start", *args, env=env)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            error = exc
            if attempt == 0:
                time.sleep(3)
    if IN_CI:
        pytest.fail(f"service {script} did not start under CI: {error}")
    pytest.skip(f"service {script} unavailable: {error}")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A fixed git identity and no user-level git config leaking into tests."""
    home = tmp_path_factory.getbasetemp() / "gitconfig"
    home.mkdir(exist_ok=True)
    cfg = home / ".gitconfig"
    if not cfg.exists():
        cfg.write_text("[user]\n\tname = Test User\n\temail = test@example.invalid\n"
                       "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(cfg))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("TRACKER_HOME", raising=False)
    monkeypatch.delenv("TRACKER_STORE", raising=False)  # also undoes what a 'tracker --store' in a test set
    monkeypatch.delenv("TRACKER_TRIAL_ID", raising=False)
    monkeypatch.delenv("TRACKER_TRIAL_DIR", raising=False)
    monkeypatch.delenv("TRACKER_PARAMS", raising=False)


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


TRAIN_SCRIPT = textwrap.dedent(
    '\n    """A tiny training script: prints metrics, honours flags, writes a model."""' + TRAIN
)


def make_project(root: Path, *, experiment: str | None = None) -> Path:
    """A committed git repo that is a tracker project with a 'base' experiment."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.py").write_text(TRAIN_SCRIPT)
    (root / "tracker.yaml").write_text("name: demo\nseeds: [11, 22, 33, 44, 55]\nmaster_seed: 1\n")
    (root / ".gitignore").write_text(".tracker/\noutputs/\n")
    (root / "experiments").mkdir(exist_ok=True)
    (root / "experiments" / "base.yaml").write_text(experiment or textwrap.dedent(
        f"""\
        command: [{sys.executable!r}, train.py]
        params: {{epochs: 3}}
        grid: {{lr: [0.1, 0.5]}}
        seeds: 2
        deliverables:
          - {{path: model.json, check: contains_keys, keys: [lr, seed]}}
        """))
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    return root


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh committed project; the current directory is its root."""
    root = make_project(tmp_path / "proj")
    monkeypatch.chdir(root)
    return root


@pytest.fixture(scope="session")
def ssh_hosts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two real sshd hosts, gpu1 (127.0.0.2) and gpu2 (127.0.0.3), key-only, with known_hosts.

    The port comes from SSHD_HOSTS_PORT, else a free one. Returns the script's
    KEY=VALUE facts: SSH_CONFIG, SSH_KNOWN_HOSTS, SSH_KEY, SSH_USER, SSH_PORT,
    SSH_GPU1_ADDR, SSH_GPU1_BASE, ...
    """
    d = tmp_path_factory.mktemp("sshd")
    port = os.environ.get("SSHD_HOSTS_PORT") or str(free_port("127.0.0.2", "127.0.0.3"))
    env = start_service("sshd-hosts.sh", d, 2, env={"SSHD_HOSTS_PORT": port})
    env["SSHD_DIR"] = str(d)
    yield env
    svc("sshd-hosts.sh", "stop", d)


CHROMIUM = "/usr/bin/chromium"  # Debian's package; Playwright's own browser download needs the internet


def unavailable(what: str) -> None:
    """A service or tool the test needs is missing: a failure under CI, a skip with the reason elsewhere."""
    if IN_CI:
        pytest.fail(f"{what} (under CI this is a failure, not a skip)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def browser() -> object:
    """Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, one per test module.

    Without Chromium or the playwright package the test skips on a laptop and fails under CI
    (.ci/run installs chromium; see tests/infra/README.md).
    """
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"no browser at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        try:
            chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        except Error as exc:
            unavailable(f"{CHROMIUM} did not start: {str(exc).splitlines()[0]}")
        yield chromium
        chromium.close()


def cli(*args: str) -> tuple[int, str, str]:
    """Run the CLI in this process: (exit code, stdout, stderr); an unexpected exception is raised."""
    from typer.testing import CliRunner

    from tracker.cli import app

    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server for the session (tests/infra/postgres.sh on a free port, trust auth), with a
    database ``tracker_template`` migrated to today's schema; yields the URL of its ``postgres`` database."""
    import shutil
    import tempfile

    state = Path(tempfile.mkdtemp(prefix="tracker-pg-"))
    state.chmod(0o755)  # the server runs as user postgres when the tests run as root
    env = {"PG_PORT": str(free_port("127.0.0.1")), "PG_STATE_DIR": str(state)}
    try:
        info = start_service("postgres.sh", state, env=env)
        admin = f"postgresql://postgres@127.0.0.1:{info['PGPORT']}/postgres"
        _pg_admin(admin, "CREATE DATABASE tracker_template")
        from tracker.store import open_store

        open_store(admin.rsplit("/", 1)[0] + "/tracker_template").close()
        yield admin
    finally:
        with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
            svc("postgres.sh", "stop", state, env=env)
        shutil.rmtree(state, ignore_errors=True)


def _pg_admin(admin_url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def _fresh_database(admin_url: str, prefix: str, template: str | None = None) -> Iterator[str]:
    """A new database (a copy of ``template``) for one test: its URL, then it is dropped."""
    import uuid

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _pg_admin(admin_url, f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    yield admin_url.rsplit("/", 1)[0] + "/" + name
    _pg_admin(admin_url, f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """The URL of a fresh PostgreSQL database with tracker's schema (dropped after the test)."""
    yield from _fresh_database(pg_server, "t", "tracker_template")


@pytest.fixture
def pg_empty_url(pg_server: str) -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database (no tables: what a new team server gives)."""
    yield from _fresh_database(pg_server, "e")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """The store the test's project and workers use: the project's SQLite file, or a fresh PostgreSQL
    database (through TRACKER_STORE, as a team would point every machine at it)."""
    if request.param == "sqlite":
        return None
    url = request.getfixturevalue("pg_url")
    monkeypatch.setenv("TRACKER_STORE", url)
    return url
