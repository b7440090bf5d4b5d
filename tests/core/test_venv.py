"""The project's environment (``environment: {venv: true}``): real venvs, real pip, no network.

pip finds its packages only in a directory of wheels made here (``PIP_NO_INDEX``,
``PIP_FIND_LINKS``), or on a stalling HTTP server on loopback.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import git, make_project
from tracker.cli import app
from tracker.config import ProjectConfig, parse_model
from tracker.errors import ConfigError, ExecutionError
from tracker.execution.base import Reporter
from tracker.project import Project
from tracker.runs import RunOptions, rerun_queued, run_experiment
from tracker.trials import reset
from tracker.venvs import READY, EnvSpec, ensure

SHOW = textwrap.dedent('''
    """Says where it runs and logs one metric through the helper API."""
    import sys
    import tinypkg
    import tracker
    print("prefix:", sys.prefix)
    print("tinypkg:", tinypkg.VERSION)
    tracker.log(**{"val/acc": 0.5})
''')


def make_wheel(directory: Path, version: str) -> None:
    """A pure-Python wheel of ``tinypkg`` written by hand (nothing to build, nothing to download)."""
    files = {"tinypkg/__init__.py": f"VERSION = {version!r}\n".encode(),
             f"tinypkg-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: tinypkg\nVersion: {version}\n"
                                                       .encode(),
             f"tinypkg-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                   b"Tag: py3-none-any\n"}

    def digest(data: bytes) -> str:
        return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

    record = "".join(f"{n},{digest(d)},{len(d)}\n" for n, d in files.items())
    with zipfile.ZipFile(directory / f"tinypkg-{version}-py3-none-any.whl", "w") as whl:
        for name, data in files.items():
            whl.writestr(name, data)
        whl.writestr(f"tinypkg-{version}.dist-info/RECORD", record + f"tinypkg-{version}.dist-info/RECORD,,\n")


@pytest.fixture
def wheels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tinypkg 1.0 and 2.0, the only packages pip can see."""
    directory = tmp_path / "wheels"
    directory.mkdir()
    make_wheel(directory, "1.0")
    make_wheel(directory, "2.0")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(directory))
    return directory


@pytest.fixture
def venv_project(project_dir: Path, wheels: Path) -> Path:
    """The test project with its venv switched on, needing tinypkg==1.0, running `python show.py`."""
    (project_dir / "tracker.yaml").write_text("name: demo\nseeds: [11, 22, 33]\nenvironment:\n  venv: true\n")
    (project_dir / "requirements.txt").write_text("tinypkg==1.0\n")
    (project_dir / "show.py").write_text(SHOW)
    (project_dir / "experiments" / "show.yaml").write_text("command: python show.py\nseeds: 2\n")
    commit(project_dir)
    return project_dir


def commit(root: Path) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-qm", "change")


class Recorder(Reporter):
    def __init__(self) -> None:
        self.messages: list[str] = []
        self.statuses: list[tuple[str, str | None]] = []

    def message(self, text: str) -> None:
        self.messages.append(text)

    def status(self, label: str, text: str | None) -> None:
        self.statuses.append((label, text))


def printed(root: Path, trial_id: str) -> dict[str, str]:
    lines = (root / ".tracker" / "trials" / trial_id / "stdout.log").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines)


def test_trials_run_in_the_venv_built_once_and_reused(venv_project: Path) -> None:
    project = Project.find()
    reporter = Recorder()
    first = run_experiment(project, "show", RunOptions(), reporter)
    assert [t.status for t in first.trials] == ["completed", "completed"]
    [env_dir] = [p for p in (venv_project / ".tracker" / "envs").iterdir() if p.is_dir()]
    for trial in first.trials:
        out = printed(venv_project, trial.id)
        assert Path(out["prefix"]) == env_dir and out["tinypkg"] == "1.0"  # the script's `python` is the venv's
        assert trial.metrics["val/acc"] == 0.5  # `import tracker` works in the venv
        record = project.store.environment(trial.env_id)
        assert record["venv"] == {"key": env_dir.name, "files": ["requirements.txt"]}
        assert record["packages"] == {"tinypkg": "1.0"} and record["executable"] == str(env_dir / "bin" / "python")
    assert sum("building the project's environment" in m for m in reporter.messages) == 1
    assert ("environment " + env_dir.name, "Successfully installed tinypkg-1.0") in reporter.statuses
    marker = (env_dir / READY).stat()

    again = Recorder()
    second = run_experiment(Project.find(), "show", RunOptions(rerun=True), again)
    assert {t.status for t in second.trials} == {"completed"}
    assert again.messages == [] and again.statuses == []  # nothing built
    now = (env_dir / READY).stat()
    assert (now.st_ino, now.st_mtime_ns) == (marker.st_ino, marker.st_mtime_ns)
    assert {t.env_id for t in second.trials} == {first.trials[0].env_id}


def test_a_run_in_the_venv_builds_its_executor_once(venv_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tracker.execution.local import LocalExecutor

    made: list[object] = []
    original = LocalExecutor.__init__

    def counted(self: LocalExecutor, *args: object, **kwargs: object) -> None:
        made.append(kwargs.get("venv"))
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(LocalExecutor, "__init__", counted)
    result = run_experiment(Project.find(), "show", RunOptions())
    assert {t.status for t in result.trials} == {"completed"}
    assert len(made) == 1 and made[0] is not None  # built once, after the venv was known


def test_changed_requirements_give_a_new_venv(venv_project: Path) -> None:
    first = run_experiment(Project.find(), "show", RunOptions(seeds=[11]))
    (venv_project / "requirements.txt").write_text("tinypkg==2.0\n")
    commit(venv_project)
    second = run_experiment(Project.find(), "show", RunOptions(seeds=[11]))
    old, new = (printed(venv_project, r.trials[0].id) for r in (first, second))
    assert (old["tinypkg"], new["tinypkg"]) == ("1.0", "2.0")
    assert old["prefix"] != new["prefix"] and Path(old["prefix"]).is_dir()  # the old one stays for going back
    store = Project.find().store
    keys = [store.environment(r.trials[0].env_id)["venv"]["key"] for r in (first, second)]
    assert keys == [Path(old["prefix"]).name, Path(new["prefix"]).name]


def test_included_requirement_files_are_part_of_the_key(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("-r base/common.txt\n--constraint=pins.txt\nnumpy\n")
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "common.txt").write_text("scipy\n-c ../pins.txt\n")
    (tmp_path / "pins.txt").write_text("scipy==1.0\n")
    spec = EnvSpec.of(tmp_path)
    assert spec.files == ("requirements.txt", "base/common.txt", "pins.txt") and spec.requirements == (
        "requirements.txt",)
    key = spec.key(tmp_path, "3.11.7\n")
    (tmp_path / "pins.txt").write_text("scipy==1.1\n")
    assert EnvSpec.of(tmp_path).key(tmp_path, "3.11.7\n") != key
    assert EnvSpec.of(tmp_path).key(tmp_path, "3.12.1\n") != EnvSpec.of(tmp_path).key(tmp_path, "3.11.7\n")


def test_remote_keys_are_unchanged_by_the_shared_computation(tmp_path: Path) -> None:
    """Existing venvs on SSH hosts are found again: the key is computed as remotes always did."""
    (tmp_path / "requirements.txt").write_text("numpy\n")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    setup = ["echo hi"]
    digest = hashlib.sha256(b"3.11.7 (main)\n")
    for name in ("requirements.txt", "pyproject.toml"):
        digest.update(name.encode() + b"\0" + (tmp_path / name).read_bytes())
    digest.update(b"setup\0echo hi")
    spec = EnvSpec.of(tmp_path, setup)
    assert spec.key(tmp_path, "3.11.7 (main)\n") == digest.hexdigest()[:16]
    assert (spec.requirements, spec.project) == (("requirements.txt",), False)
    (tmp_path / "requirements.txt").unlink()
    assert EnvSpec.of(tmp_path).project  # a pyproject.toml alone: the project itself is installed


def test_broken_requirement_is_one_line_and_leaves_no_trial_and_no_venv(venv_project: Path) -> None:
    (venv_project / "requirements.txt").write_text("tinypkg==9.9\n")
    commit(venv_project)
    result = CliRunner().invoke(app, ["run", "show"])
    assert result.exit_code == 1
    err = result.stderr
    assert err.count("\n") == err.count("environment") and "Traceback" not in err  # progress, then the error
    line = err.splitlines()[-1]
    assert line.startswith("error: building the environment ")
    assert "failed at `pip install -r requirements.txt` (exit 1): " in line and "tinypkg==9.9" in line
    log = venv_project / line.rsplit("the full output is in ", 1)[1].rstrip(")")
    assert "No matching distribution found for tinypkg==9.9" in log.read_text()
    assert Project.find().store.list_trials() == []
    assert not [p for p in (venv_project / ".tracker" / "envs").iterdir() if p.is_dir()]


def test_reset_run_uses_the_venv_and_records_it(project_dir: Path, wheels: Path) -> None:
    (project_dir / "show.py").write_text(SHOW)
    (project_dir / "requirements.txt").write_text("tinypkg==9.9\n")
    (project_dir / "experiments" / "show.yaml").write_text("command: python show.py\nseeds: 1\n")
    commit(project_dir)
    project = Project.find()
    [trial] = run_experiment(project, "show", RunOptions()).trials  # the current python has no tinypkg
    assert trial.status == "failed" and "venv" not in project.store.environment(trial.env_id)

    (project_dir / "tracker.yaml").write_text("name: demo\nseeds: [11, 22, 33]\nenvironment: {venv: true}\n")
    project = Project.find()
    reset(project, [trial.id])
    with pytest.raises(ExecutionError, match=r"tinypkg==9\.9"):  # a venv that cannot be built
        rerun_queued(project, [trial.id])
    again = project.store.get(trial.id)
    assert again.status == "cancelled" and again.error.startswith("not started: building the environment")

    (project_dir / "requirements.txt").write_text("tinypkg==1.0\n")
    reset(project, [trial.id])
    [done] = rerun_queued(project, [trial.id]).trials
    assert done.status == "completed"
    assert Path(printed(project_dir, done.id)["prefix"]).parent == project_dir / ".tracker" / "envs"
    record = project.store.environment(done.env_id)
    assert record["packages"] == {"tinypkg": "1.0"} and record["venv"]["files"] == ["requirements.txt"]


def test_concurrent_runs_build_once(venv_project: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-m", "tracker", "run", "show", "--seed", str(seed)],
                              cwd=venv_project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed in (11, 22)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    errs = "".join(err for _, err in outputs)
    assert errs.count("built the environment") == 1
    trials = Project.find().store.list_trials()
    assert len(trials) == 2 and len({printed(venv_project, t.id)["prefix"] for t in trials}) == 1


class _Stall(http.server.BaseHTTPRequestHandler):
    asked = threading.Event()

    def do_GET(self) -> None:
        type(self).asked.set()
        time.sleep(60)

    def log_message(self, *args: object) -> None:
        pass


def test_interrupted_build_is_redone_not_reused(venv_project: Path, wheels: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stall)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {**os.environ, "PIP_FIND_LINKS": f"http://127.0.0.1:{server.server_port}/"}
        proc = subprocess.Popen([sys.executable, "-m", "tracker", "run", "show"], cwd=venv_project, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        assert _Stall.asked.wait(60), "pip never asked for its packages"
        os.killpg(proc.pid, signal.SIGKILL)  # tracker and pip, mid-build
        proc.wait()
    finally:
        server.shutdown()
        server.server_close()
    [half] = [p for p in (venv_project / ".tracker" / "envs").iterdir() if p.is_dir()]
    assert (half / "bin" / "python").exists() and not (half / READY).exists()
    reporter = Recorder()
    env = ensure(Project.find(), reporter)
    assert env.built and env.path == half and (half / READY).is_file()
    result = run_experiment(Project.find(), "show", RunOptions(seeds=[11]))
    assert printed(venv_project, result.trials[0].id)["tinypkg"] == "1.0"


@pytest.mark.parametrize(("text", "line", "words"), [
    ("environment:\n  requirements: r.txt\n", 2, ["'requirements' applies to the project's venv", "venv: true"]),
    ("environment:\n  venv: true\n  pyton: python3\n", 3, ["unknown key 'pyton'", "venv, python, requirements, setup"]),
    ("environment:\n  venv: maybe\n", 2, ["environment.venv"]),
    ("environment:\n  venv: true\n  setup: pip install x\n", 3, ["environment.setup"]),
])
def test_bad_environment_settings_name_the_line(text: str, line: int, words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_model(text, ProjectConfig, "tracker.yaml")
    assert str(info.value).startswith(f"tracker.yaml:{line}: ")
    for word in words:
        assert word in str(info.value)


def test_missing_requirements_file_and_interpreter_are_config_errors(venv_project: Path) -> None:
    (venv_project / "tracker.yaml").write_text("name: demo\nenvironment:\n  venv: true\n  requirements:\n"
                                               "    - requirements.txt\n    - extra.txt\n")
    with pytest.raises(ConfigError, match=r"^tracker.yaml:6: environment.requirements: extra.txt does not exist"):
        ensure(Project.find())
    (venv_project / "tracker.yaml").write_text("name: demo\nenvironment:\n  venv: true\n  python: python3.0\n")
    with pytest.raises(ConfigError, match=r"^tracker.yaml:4: environment.python: 'python3.0' is not a command"):
        ensure(Project.find())


PYENV_SHIM = """#!/bin/sh
echo "pyenv: python3.9: command not found" >&2
echo >&2
echo "The \\`python3.9' command exists in these Python versions:" >&2
echo "  3.9.18" >&2
echo >&2
echo "Note: See 'pyenv help global' for tips on allowing both" >&2
echo "      python2 and python3 to be found." >&2
exit 127
"""


def test_a_pyenv_shim_of_an_inactive_version_is_one_line_and_a_fix(venv_project: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    shims = tmp_path / ".pyenv" / "shims"
    shims.mkdir(parents=True)
    (shims / "python3.9").write_text(PYENV_SHIM)
    (shims / "python3.9").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
    (venv_project / "tracker.yaml").write_text("name: demo\nenvironment:\n  venv: true\n  python: python3.9\n")
    with pytest.raises(ConfigError) as info:
        ensure(Project.find())
    assert info.value.message == ("tracker.yaml:4: environment.python: 'python3.9' does not run: "
                                  "pyenv: python3.9: command not found")
    assert info.value.hint == (f"it is a pyenv shim and no active pyenv version has python3.9: name the interpreter "
                               f"itself (python: {tmp_path}/.pyenv/versions/3.9.18/bin/python3.9) or run "
                               "'pyenv local 3.9.18' in the project")


def test_named_python_is_found_from_the_project_root(venv_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``python: tools/py`` is relative to the project; the same interpreter gives the same venv."""
    (venv_project / "tools").mkdir()
    (venv_project / "tools" / "py").symlink_to(os.path.realpath(sys.executable))
    (venv_project / "tracker.yaml").write_text("name: demo\nenvironment:\n  venv: true\n  python: tools/py\n")
    (venv_project / "sub").mkdir()
    monkeypatch.chdir(venv_project / "sub")
    env = ensure(Project.find())
    assert env.built and env.python.exists()
    out = subprocess.run([env.python, "-c", "import sys, tinypkg; print(sys.version)"], capture_output=True,
                         text=True, check=True).stdout
    assert out == sys.version + "\n"
    (venv_project / "tracker.yaml").write_text("name: demo\nenvironment:\n  venv: true\n")
    again = ensure(Project.find())  # the interpreter running tracker: the very same one
    assert again.path == env.path and not again.built


@pytest.mark.slow  # a venv with pip of its own (ensurepip): several seconds
def test_setup_commands_run_in_the_new_venv_with_its_own_pip(venv_project: Path) -> None:
    (venv_project / "tracker.yaml").write_text(textwrap.dedent("""\
        name: demo
        environment:
          venv: true
          setup:
            - python -c "import sys, tinypkg; open('setup.out', 'w').write(sys.prefix)"
            - pip --version > pip.out
        """))
    env = ensure(Project.find())
    assert (venv_project / "setup.out").read_text() == str(env.path)  # in the project root, venv active
    assert str(env.path) in (venv_project / "pip.out").read_text()  # `pip` is the venv's, never another's


def test_shared_venvs_are_built_once_for_projects_with_the_same_requirements(
        venv_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two projects made from one template share one venv by key; one that installs a local path says why not."""
    monkeypatch.setenv("TRACKER_ENV_CACHE", str(tmp_path / "cache"))
    settings = "name: demo\nenvironment:\n  venv: true\n  shared: true\n"
    (venv_project / "tracker.yaml").write_text(settings)
    first = ensure(Project.find())
    assert first.built and first.path.parent == tmp_path / "cache"
    twin = make_project(tmp_path / "twin")
    (twin / "tracker.yaml").write_text(settings)
    (twin / "requirements.txt").write_text("tinypkg==1.0\n")
    monkeypatch.chdir(twin)
    second = ensure(Project.find())
    assert (second.built, second.path) == (False, first.path)
    assert not (twin / ".tracker" / "envs").exists()
    (twin / "requirements.txt").write_text("tinypkg==1.0\n-e ./vendor\n")
    (twin / "vendor").mkdir()
    (twin / "vendor" / "setup.py").write_text("from setuptools import setup\nsetup(name='vendored')\n")
    reporter = Recorder()
    with contextlib.suppress(ExecutionError):  # no setuptools offline: what matters is where it builds
        ensure(Project.find(), reporter)
    assert reporter.messages[0] == ("environment.shared: this venv stays in .tracker/envs (requirements.txt "
                                    "installs from a path in the project: -e ./vendor)")
    assert (twin / ".tracker" / "envs").is_dir()
