"""The project's environment: a venv keyed by its requirements, the python and the set-up commands.

The key is computed the same way on this machine (``environment: {venv: true}`` in
tracker.yaml, built here under ``.tracker/envs/<key>``) and on SSH hosts
(:mod:`tracker.remote.workspace`, under ``<workdir>/<project>/envs/<key>``): the sha256 of
the interpreter's ``sys.version``, the files that define the environment and the set-up
commands. A venv is built once, under a lock so concurrent runs never build it twice, and
is ready only when its marker file is written last; a build that was interrupted is
removed and redone by the next run, never used. With ``environment: {shared: true}`` the venv
is kept by its key in the user's cache (:func:`shared_envs`), so projects with the same
requirements (two made from one template) build it once; a venv that holds something of its
project's own (``pip install -e .``, set-up commands, a requirement by local path) stays in
the project, and the build says why. Reusing a built venv costs reading a few small files::

    env = ensure(Project.find())           # builds on first need, then returns at once
    env.python, env.variables()            # its interpreter; VIRTUAL_ENV and PATH for a trial
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tracker.errors import ConfigError, ExecutionError
from tracker.yamlio import atomic_write, display_path, line_of

if TYPE_CHECKING:
    from tracker.execution.base import Reporter
    from tracker.project import Project

ENV_FILES = ("requirements.txt", "requirements.lock", "pyproject.toml", "setup.py", "setup.cfg")
READY = ".tracker-ready"
# lines of pip's output worth showing while it works (the rest goes to the build log only)
_STEPS = ("Collecting", "Processing", "Obtaining", "Downloading", "Building wheel", "Installing collected",
          "Successfully installed")
_INCLUDE = re.compile(r"^\s*(?:-r|-c|--requirement|--constraint)(?:\s*=\s*|\s*)(\S+)")
# a requirement by local path (./lib, -e ., file:...): a venv with one belongs to its project
_LOCAL_REQUIREMENT = re.compile(r"^\s*(?:(?:-e|--editable)\s+)?(?:\.{1,2}(?:/|\s*$)|/|file:|~)")


@dataclass(frozen=True)
class EnvSpec:
    """What a project's environment is made of, wherever it is built.

    ``files`` (relative to the project) are hashed into the key: every file of
    :data:`ENV_FILES` present, or the configured requirements, with the files they
    include (``-r`` / ``-c``). ``requirements`` are installed with ``pip install -r``;
    ``project`` installs the project itself (a pyproject.toml or setup.py and no
    requirements file); ``setup`` commands run in the new venv afterwards.
    """

    files: tuple[str, ...]
    requirements: tuple[str, ...]
    project: bool
    setup: tuple[str, ...] = ()

    @classmethod
    def of(cls, root: Path, setup: Sequence[str] = (), requirements: Sequence[str] | None = None) -> EnvSpec:
        """The spec of the project in ``root``: ``requirements`` when given, else what :data:`ENV_FILES` holds."""
        if requirements is not None:
            files = list(dict.fromkeys(requirements))
            return cls(tuple(_with_includes(root, files)), tuple(files), False, tuple(setup))
        present = [name for name in ENV_FILES if (root / name).is_file()]
        chosen = next((n for n in ("requirements.lock", "requirements.txt") if n in present), None)
        project = chosen is None and ("pyproject.toml" in present or "setup.py" in present)
        files = _with_includes(root, present) if chosen else present
        return cls(tuple(files), (chosen,) if chosen else (), project, tuple(setup))

    @property
    def needs_pip(self) -> bool:
        return bool(self.requirements or self.project or self.setup)

    def key(self, root: Path, python_version: str) -> str:
        """16 hex digits naming the venv: the interpreter's ``sys.version`` output, the files, the set-up."""
        digest = hashlib.sha256(python_version.encode())
        for name in self.files:
            digest.update(name.encode() + b"\0" + (root / name).read_bytes())
        for command in self.setup:
            digest.update(b"setup\0" + command.encode())
        return digest.hexdigest()[:16]


def _with_includes(root: Path, names: list[str]) -> list[str]:
    """``names`` followed by the local files their requirements lines include (``-r``, ``-c``), recursively."""
    out = list(names)
    for name in out:  # grows while it is read
        if not name.endswith((".txt", ".lock", ".in")) or not (root / name).is_file():
            continue
        for line in (root / name).read_text(errors="replace").splitlines():
            match = _INCLUDE.match(line)
            if match and "://" not in match.group(1):
                target = os.path.normpath(os.path.join(os.path.dirname(name), match.group(1)))
                if target not in out and (root / target).is_file():
                    out.append(target)
    return out


@dataclass(frozen=True)
class ProjectEnv:
    """A ready venv on this machine: its key, directory and the files it was built from."""

    key: str
    path: Path
    files: tuple[str, ...]
    built: bool = False  # False: an existing venv was reused

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def variables(self) -> dict[str, str]:
        """What a trial's process gets so that ``python`` (and any script's) is this venv's."""
        return {"VIRTUAL_ENV": str(self.path),
                "PATH": f"{self.path / 'bin'}{os.pathsep}{os.environ.get('PATH', os.defpath)}"}

    def describe(self) -> dict[str, Any]:
        """What a trial's environment record says about the venv."""
        return {"key": self.key, "files": list(self.files)}


def prepare(project: Project, reporter: Reporter | None = None) -> ProjectEnv | None:
    """The project's venv when tracker.yaml switches it on (built on first need), else None."""
    return ensure(project, reporter) if project.config.environment.venv else None


def ensure(project: Project, reporter: Reporter | None = None) -> ProjectEnv:
    """The venv for the project's current requirements, python and set-up: reused, or built once now."""
    settings = project.config.environment
    root = project.root
    for i, name in enumerate(settings.requirements or []):
        if not (root / name).is_file():
            raise ConfigError(f"environment.requirements: {name} does not exist in {root}",
                              path=display_path(project.paths.config),
                              line=line_of(project.lines, ("environment", "requirements", i)),
                              hint="create it or fix the name")
    spec = EnvSpec.of(root, settings.setup, settings.requirements)
    python, version = _base_python(project)
    key = spec.key(root, version)
    unshared = _unshareable(root, spec) if settings.shared else None
    home = shared_envs() if settings.shared and unshared is None else project.paths.envs
    env = ProjectEnv(key, home / key, spec.files)
    if _ready(env.path):
        _link_helpers(env.path)
        return env
    env.path.parent.mkdir(parents=True, exist_ok=True)
    with _lock(env.path.parent / f"{key}.lock", key, reporter):
        if _ready(env.path):  # another tracker built it while this one waited
            return env
        if unshared and reporter:
            reporter.message(f"environment.shared: this venv stays in .tracker/envs ({unshared})")
        _build(root, spec, python, version, env, reporter)
    return ProjectEnv(env.key, env.path, env.files, built=True)


def shared_envs() -> Path:
    """Where ``environment: {shared: true}`` keeps venvs by key: ``$TRACKER_ENV_CACHE``, else
    ``$XDG_CACHE_HOME/tracker/envs`` (``~/.cache/tracker/envs``)."""
    if os.environ.get("TRACKER_ENV_CACHE"):
        return Path(os.environ["TRACKER_ENV_CACHE"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "tracker" / "envs"


def _unshareable(root: Path, spec: EnvSpec) -> str | None:
    """Why a venv cannot be shared with other projects (it holds something of this project's own), or None."""
    if spec.project:
        return "it installs the project itself (pip install -e .)"
    if spec.setup:
        return "its set-up commands run in this project"
    for name in spec.files:
        if name.endswith((".txt", ".lock", ".in")):
            for line in (root / name).read_text(errors="replace").splitlines():
                if _LOCAL_REQUIREMENT.match(line):
                    return f"{name} installs from a path in the project: {line.strip()}"
    return None


def _base_python(project: Project) -> tuple[str, str]:
    """The interpreter venvs are made from and its ``sys.version`` output (as remotes report it)."""
    wanted = project.config.environment.python
    if wanted is None:
        return sys.executable, sys.version + "\n"
    # a path (not a bare command name) is relative to the project, wherever tracker runs from
    wanted = os.path.expanduser(wanted)
    found = shutil.which(str(project.root / wanted) if os.sep in wanted else wanted)
    where = {"path": display_path(project.paths.config), "line": line_of(project.lines, ("environment", "python"))}
    if found is None:
        raise ConfigError(f"environment.python: {wanted!r} is not a command on this machine",
                          hint="install it or name another interpreter", **where)
    try:
        proc = subprocess.run([found, "-c", "import sys; print(sys.version)"], capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"environment.python: {wanted!r} does not run: {exc}", **where) from exc
    if proc.returncode != 0:
        said = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[0]
        raise ConfigError(f"environment.python: {wanted!r} does not run: {said}", hint=_shim_hint(found, proc.stderr),
                          **where)
    return found, proc.stdout


def _shim_hint(found: str, stderr: str) -> str | None:
    """For a pyenv shim whose version is not active here: how to fix it (pyenv's own message is many lines)."""
    if not stderr.startswith("pyenv:") and f"{os.sep}shims{os.sep}" not in found:
        return None
    versions = re.findall(r"^\s+(\S+)\s*$", stderr.split("exists in these Python versions:", 1)[-1], re.M)
    name = os.path.basename(found)
    if versions:
        root = os.path.dirname(os.path.dirname(found))
        return (f"it is a pyenv shim and no active pyenv version has {name}: name the interpreter itself "
                f"(python: {os.path.join(root, 'versions', versions[0], 'bin', name)}) or run "
                f"'pyenv local {versions[0]}' in the project")
    return f"it is a pyenv shim and no installed pyenv version has {name}: 'pyenv install' one, or name another python"


def _ready(path: Path) -> bool:
    """Whether ``path`` holds a venv built to the end, for this very path (a moved project rebuilds)."""
    try:
        return json.loads((path / READY).read_text()).get("path") == str(path)
    except (OSError, ValueError, AttributeError):
        return False


@contextlib.contextmanager
def _lock(path: Path, key: str, reporter: Reporter | None) -> Iterator[None]:
    """An exclusive lock on ``path`` (released by the kernel if this process dies)."""
    import fcntl

    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if reporter:
                reporter.message(f"waiting for another tracker to finish building the environment {key}")
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _build(root: Path, spec: EnvSpec, python: str, version: str, env: ProjectEnv,
           reporter: Reporter | None) -> None:
    """Make the venv in place (venvs cannot move); on any failure remove it, so nothing half-built stays."""
    started = time.monotonic()
    what = ", ".join(spec.files) or "no requirements"
    label = f"environment {env.key}"
    if reporter:
        reporter.message(f"building the project's environment {env.key} from {what} "
                         "(once; reused until they or the python change)")
    log_path = env.path.parent / f"{env.key}.log"
    shutil.rmtree(env.path, ignore_errors=True)  # what an interrupted build left
    # pip from this interpreter installs into a venv made without pip (much faster to create),
    # unless set-up commands may call the venv's own pip
    outer_pip = spec.needs_pip and not spec.setup and _has_pip()
    try:
        with open(log_path, "w") as log:
            steps: list[tuple[list[str] | str, str]] = [
                ([python, "-m", "venv", *([] if spec.needs_pip and not outer_pip else ["--without-pip"]),
                  str(env.path)], "creating the venv")]
            pip = ([sys.executable, "-m", "pip", "--python", str(env.python)] if outer_pip
                   else [str(env.python), "-m", "pip"])
            install = [*pip, "install", "--progress-bar", "off", "--disable-pip-version-check"]
            if spec.requirements:
                steps.append(([*install, *[a for r in spec.requirements for a in ("-r", str(root / r))]],
                              "pip install " + " ".join(f"-r {r}" for r in spec.requirements)))
            elif spec.project:
                steps.append(([*install, "-e", str(root)], "pip install -e ."))
            steps += [(command, command) for command in spec.setup]
            for command, title in steps:
                _step(command, title, root, env, log, log_path, label, reporter)
        _link_helpers(env.path)
        atomic_write(env.path / READY, json.dumps({
            "path": str(env.path), "key": env.key, "python": version.strip(), "files": list(spec.files),
            "setup": list(spec.setup), "seconds": round(time.monotonic() - started, 1)}))
    except BaseException:
        shutil.rmtree(env.path, ignore_errors=True)
        raise
    finally:
        if reporter:
            reporter.status(label, None)
    if reporter:
        reporter.message(f"built the environment {env.key} in {time.monotonic() - started:.1f}s")


def _step(command: list[str] | str, title: str, root: Path, env: ProjectEnv, log: IO[str], log_path: Path,
          label: str, reporter: Reporter | None) -> None:
    """Run one build step with its output in the log, its notable lines as status; fail in one line."""
    log.write(f"$ {command if isinstance(command, str) else ' '.join(command)}\n")
    log.flush()
    if reporter:
        reporter.status(label, title)
    try:
        proc = subprocess.Popen(command, shell=isinstance(command, str), cwd=root,
                                env={**os.environ, **env.variables(), "PYTHONUNBUFFERED": "1"},
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace")
    except OSError as exc:
        raise ExecutionError(f"building the environment {env.key} failed at `{title}`: {exc}") from exc
    first_error = ""
    assert proc.stdout is not None
    with proc:
        for line in proc.stdout:
            log.write(line)
            text = line.strip()
            if text.startswith("ERROR:") and not first_error:
                first_error = text.removeprefix("ERROR:").strip()
            if reporter and text.startswith(_STEPS):
                reporter.status(label, text.split(" (from ")[0])
    log.flush()
    if proc.returncode != 0:
        cause = first_error or _last_line(log_path)
        raise ExecutionError(f"building the environment {env.key} failed at `{title}` "
                             f"(exit {proc.returncode}){': ' + cause if cause else ''}",
                             hint=f"fix it and run again; the full output is in {display_path(log_path)}")


def _last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][-300:] if lines and not lines[-1].startswith("$ ") else ""


def _has_pip() -> bool:
    """Whether this interpreter has a pip that can install into another one (``--python``, pip 22.3)."""
    from importlib import metadata

    try:
        parts = re.findall(r"\d+", metadata.version("pip"))[:2]
    except metadata.PackageNotFoundError:
        return False
    return tuple(int(p) for p in parts) >= (22, 3)


def _link_helpers(venv: Path) -> None:
    """Make ``import tracker`` (the helper API, stdlib only) work in the venv, after anything it installs.

    A link to this tracker's package, on a path a ``.pth`` file appends to the venv's
    ``sys.path``; re-pointed when tracker itself has moved (one ``readlink`` otherwise).
    """
    helpers = venv / "tracker-helpers"
    link, target = helpers / "tracker", str(Path(__file__).resolve().parent)
    with contextlib.suppress(OSError):
        if os.readlink(link) == target:
            return
    helpers.mkdir(exist_ok=True)
    tmp = helpers / f".tracker.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target, target_is_directory=True)
    os.replace(tmp, link)
    for site in venv.glob("lib/python*/site-packages"):
        (site / "_tracker_helpers.pth").write_text(f"{helpers}\n")
