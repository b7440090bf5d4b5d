"""Fixtures for remote tests: a project whose remotes gpu1/gpu2 are the test sshd hosts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_project
from tracker.project import Project
from tracker.remote import connection


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME, so the user's ~/.ssh/config and known_hosts stay out of the tests."""
    path = tmp_path / "home"
    (path / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(path))
    return path


@pytest.fixture
def remote_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ssh_hosts: dict[str, str],
                   home: Path, request: pytest.FixtureRequest) -> Iterator[Project]:
    """A committed project with remotes gpu1 and gpu2 (their own workdir per test)."""
    root = make_project(tmp_path / "proj", experiment=(
        "command: [python3, train.py]\nparams: {epochs: 3}\ngrid: {lr: [0.1, 0.5]}\nseeds: 2\n"
        "deliverables:\n  - {path: model.json, check: contains_keys, keys: [lr, seed]}\n"))
    monkeypatch.chdir(root)
    yield from with_test_remotes(root, ssh_hosts, request.node.name[:40])


def with_test_remotes(root: Path, ssh_hosts: dict[str, str], workdir: str) -> Iterator[Project]:
    """Register the test hosts as remotes gpu1 and gpu2 (workdir ``workdir`` on each), commit, yield
    the project; close their pooled connections afterwards."""
    from tests.conftest import git

    project = Project.load(root)
    for i in (1, 2):
        project.set_section("remotes", f"gpu{i}", {
            "host": ssh_hosts[f"SSH_GPU{i}_ADDR"], "port": int(ssh_hosts["SSH_PORT"]),
            "user": ssh_hosts["SSH_USER"], "key": ssh_hosts["SSH_KEY"],
            "workdir": str(Path(ssh_hosts[f"SSH_GPU{i}_BASE"]) / workdir),
            "known_hosts": ssh_hosts["SSH_KNOWN_HOSTS"]})
    git(root, "add", "-A")
    git(root, "commit", "-qm", "remotes")
    yield Project.load(root)
    for name in ("gpu1", "gpu2"):
        conn = connection._pool.pop(name, None)
        if conn is not None:
            conn.close()


def sshd_pids(ssh_hosts: dict[str, str], name: str) -> list[int]:
    """Every sshd process serving host ``name`` (the listener and its sessions)."""
    config = f"{ssh_hosts['SSHD_DIR']}/sshd/{name}/sshd_config"
    main = int(Path(f"{ssh_hosts['SSHD_DIR']}/sshd/{name}/sshd.pid").read_text())
    pids = [main]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat[1]) == main or config.encode() in cmd:
                pids.append(int(proc.name))
    return sorted(set(pids))


def restart_hosts(ssh_hosts: dict[str, str]) -> None:
    import subprocess

    from tests.conftest import INFRA

    subprocess.run([str(INFRA / "sshd-hosts.sh"), "start", ssh_hosts["SSHD_DIR"], "2"], check=True,
                   capture_output=True, env={**os.environ, "SSHD_HOSTS_PORT": ssh_hosts["SSH_PORT"]}, timeout=120)
