"""A project's directories on a remote, the runner script there, and the remote venv.

Layout under the remote's ``workdir``::

    .tracker/runner-<hash>.py          the stdlib-only runner (copied once per version)
    <project>/code/<commit-or-snapshot> synced code, one directory per code state
    <project>/envs/<hash>               venv keyed by requirements/pyproject + python + setup
    <project>/trials/<trial id>         the trial's directory (TRACKER_TRIAL_DIR)
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import shlex
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from tracker.errors import RemoteError
from tracker.remote.connection import Connection
from tracker.remote.hosts import RemoteHost
from tracker.venvs import READY, EnvSpec

RUNNER_SOURCE = Path(__file__).parent.parent / "execution" / "runner.py"


@dataclass(frozen=True)
class RemoteEnv:
    """A ready remote environment."""

    path: str
    python: str
    key: str
    built: bool  # False when an existing venv was reused


class Workspace:
    """One project's place on one remote."""

    def __init__(self, conn: Connection, host: RemoteHost, project_name: str) -> None:
        self.conn = conn
        self.host = host
        self.project_name = project_name

    @cached_property
    def root(self) -> str:
        return self.conn.expand(self.host.config.workdir)

    @cached_property
    def base(self) -> str:
        return posixpath.join(self.root, self.project_name)

    def code_dir(self, code_id: str) -> str:
        return posixpath.join(self.base, "code", code_id)

    def trial_dir(self, trial_id: str) -> str:
        return posixpath.join(self.base, "trials", trial_id)

    @cached_property
    def runner(self) -> str:
        """Path of the runner on the remote, copied there if this version is missing."""
        source = RUNNER_SOURCE.read_bytes()
        path = posixpath.join(self.root, ".tracker", f"runner-{hashlib.sha256(source).hexdigest()[:12]}.py")
        probe = self.conn.run(f"test -f {shlex.quote(path)} && echo yes || echo no").out.strip()
        if probe != "yes":
            self.conn.run(["mkdir", "-p", posixpath.dirname(path)])
            tmp = f"{path}.tmp"
            self.conn.run(f"cat > {shlex.quote(tmp)} && mv {shlex.quote(tmp)} {shlex.quote(path)}",
                          stdin=source)
        return path

    def call(self, *args: str, stdin: bytes | None = None, timeout: float | None = 120) -> Any:
        """Run a runner subcommand; return its JSON answer."""
        result = self.conn.run([self.host.config.python, self.runner, *args], stdin=stdin, timeout=timeout)
        try:
            return json.loads(result.out.strip().splitlines()[-1])
        except (ValueError, IndexError) as exc:
            raise RemoteError(f"unexpected answer from the runner on {self.host.name}: {result.out[-200:]!r}") from exc

    def ensure_env(self, project_root: Path, code_dir: str, log: Any = None) -> RemoteEnv:
        """The venv for this project's requirements, built on first need and then reused."""
        python = self.host.config.python
        version = self.conn.run([python, "-c", "import sys; print(sys.version)"], check=False)
        if version.code != 0:
            raise RemoteError(f"{python!r} does not run on {self.host.name}: "
                              f"{(version.err or version.out).strip()[-200:]}",
                              hint=f"install Python 3 there or set 'python:' for remote {self.host.name}")
        spec = EnvSpec.of(project_root, self.host.config.setup)  # keyed as the local venv is
        key = spec.key(project_root, version.out)
        env_dir = posixpath.join(self.base, "envs", key)
        env_python = posixpath.join(env_dir, "bin", "python")
        if self.conn.run(["test", "-f", posixpath.join(env_dir, READY)], check=False).code == 0:
            return RemoteEnv(env_dir, env_python, key, built=False)
        if log:
            log(f"{self.host.name}: building the environment {key} (once; reused until requirements change)")
        q = shlex.quote
        steps = [f"rm -rf {q(env_dir)}",
                 f"{q(python)} -m venv {'' if spec.needs_pip else '--without-pip '}{q(env_dir)}"]
        activate = f"export VIRTUAL_ENV={q(env_dir)} PATH={q(env_dir + '/bin')}:$PATH"
        if spec.requirements:
            steps.append(f"{q(env_python)} -m pip install -q "
                         + " ".join(f"-r {q(posixpath.join(code_dir, r))}" for r in spec.requirements))
        elif spec.project:
            steps.append(f"{q(env_python)} -m pip install -q {q(code_dir)}")
        steps += [f"cd {q(code_dir)} && {activate} && {command}" for command in self.host.config.setup]
        for step in steps:
            result = self.conn.run(step, check=False, timeout=3600)
            if result.code != 0:
                output = (result.err.strip() or result.out.strip())[-800:]
                raise RemoteError(f"setting up the environment on {self.host.name} failed at `{step}` "
                                  f"(exit {result.code}): {output}",
                                  hint="fix the requirements or the remote's setup: commands and run again")
        self.conn.run(["touch", posixpath.join(env_dir, READY)])
        return RemoteEnv(env_dir, env_python, key, built=True)
