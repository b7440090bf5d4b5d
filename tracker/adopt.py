"""``tracker init``: make an existing directory of code a tracker project, in place.

It writes tracker.yaml (with comments and the preset seeds), makes ``.tracker/`` git-ignored, switches the
project's venv on when a requirements.txt or pyproject.toml names its packages, and
suggests one experiment from the scripts it finds: a ``train.py`` (or the like) whose
argparse flags become the experiment's params. Nothing of the user's code is touched;
an existing tracker.yaml is never overwritten. A directory that is not yet a git
repository becomes one (``git init``; nothing is committed unless asked).

Example::

    >>> result = init_project(Path("."))  # doctest: +SKIP
    >>> result.experiment, result.params  # doctest: +SKIP
    ('train', {'lr': 0.01, 'epochs': 10})
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracker.errors import UsageError
from tracker.paths import PROJECT_FILE, STATE_DIR
from tracker.yamlio import atomic_write, display_path

_SCRIPT_NAMES = re.compile(r"(train|fit|main|run|experiment)", re.IGNORECASE)
_NOT_SCRIPTS = {"setup.py", "conftest.py", "__init__.py", "__main__.py", "noxfile.py", "tasks.py"}
_NOT_DIRS = {"tests", "test", "docs", "doc", "build", "dist", "node_modules", "site-packages", STATE_DIR}


@dataclass(frozen=True)
class InitResult:
    """What ``tracker init`` did."""

    root: Path
    written: list[Path]  # tracker.yaml, the experiment file, .gitignore when changed
    initialized_git: bool  # the directory was not a git repository: tracker ran ``git init``
    ignored_state: bool  # .gitignore gained ".tracker/"
    venv_from: str | None  # requirements.txt / pyproject.toml the project's venv is built from
    experiment: str | None  # the suggested experiment (None: no script found, or its file exists)
    script: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)  # flags not made params (switches, no default)
    commit: str | None = None  # with ``commit``: the commit holding exactly the files written


@dataclass(frozen=True)
class ScriptInfo:
    """What a script's argparse calls say: params with their defaults, the seed flag, the rest."""

    path: str
    params: dict[str, Any]
    seed_flag: str | None
    left_out: list[str]


def init_project(root: Path, *, commit: bool = False) -> InitResult:
    """Make ``root`` a tracker project: see the module docstring. Refuses a directory with tracker.yaml."""
    from tracker import gitinfo

    root = root.resolve()
    config = root / PROJECT_FILE
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory", hint="name a directory of existing code")
    if config.exists():
        raise UsageError(f"{display_path(config)} already exists: this already is a tracker project",
                         hint="edit tracker.yaml, or run 'tracker experiments create NAME' to add an experiment")
    initialized = gitinfo.repo_root(root) is None
    if initialized:
        gitinfo.git(root, "init", "-q")
    ignored = _ignore_state(root)
    venv_from = _requirements(root)
    script = find_script(root)
    written = [config]
    atomic_write(config, project_text(root.name, venv_from))
    name = None
    if script is not None and not (root / "experiments" / f"{_experiment_name(script.path)}.yaml").exists():
        name = _experiment_name(script.path)
        written.append(write_experiment(root, name, script))
    if ignored:
        written.append(root / ".gitignore")
    made = gitinfo.after_edit(root, written, "tracker: init", commit=True).commit if commit else None
    return InitResult(root, written, initialized, ignored, venv_from, name, script.path if script else None,
                      script.params if script else {}, script.left_out if script else [], made)


def _ignore_state(root: Path) -> bool:
    """Add ".tracker/" to .gitignore unless git ignores it already; True when the file changed."""
    from tracker import gitinfo

    if gitinfo.git(root, "check-ignore", "--no-index", f"{STATE_DIR}/state", check=False).strip():
        return False
    path = root / ".gitignore"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if text and not text.endswith("\n"):
        text += "\n"
    path.write_text(f"{text}# tracker's state: the store, trial directories, venvs\n{STATE_DIR}/\n", encoding="utf-8")
    return True


def _requirements(root: Path) -> str | None:
    """The file the project's venv would be built from, as :class:`tracker.venvs.EnvSpec` finds it."""
    from tracker.venvs import EnvSpec

    spec = EnvSpec.of(root)
    if spec.requirements:
        return spec.requirements[0]
    if spec.project:
        return "pyproject.toml" if (root / "pyproject.toml").is_file() else "setup.py"
    return None


def project_text(name: str, venv_from: str | None) -> str:
    """tracker.yaml for an adopted project: every section it sets, explained."""
    from tracker.project import PROJECT_HEADER
    from tracker.seeds import generate

    master, seeds = generate()

    lines = [PROJECT_HEADER.rstrip("\n"),
             "#   code:                what counts as a trial's code (docs/configuration.md)",
             "", f"name: {_scalar(name)}", "",
             "# The preset seeds every experiment draws from, in order (paired comparisons by seed).",
             "# Made now, so the first run does not edit this file: 'tracker seeds generate' remakes them.",
             f"seeds: [{', '.join(map(str, seeds))}]", f"master_seed: {master}", "",
             "# A trial's code is what git tracks plus the untracked source files: text files of at",
             "# most max_file_size. Checkpoints, data and outputs left in the project are not code.",
             "# include: untracked files to take as code anyway; exclude: ones never to take.",
             "code:", "  include: []", "  exclude: []", "  max_file_size: 1MiB", ""]
    if venv_from:
        lines += [f"# Local trials run in the project's own venv, built from {venv_from} on the first",
                  "# run and reused until it changes (venv: false runs them with the python on PATH).",
                  "environment:", "  venv: true"]
        if venv_from not in ("pyproject.toml", "setup.py"):
            lines.append(f"  requirements: [{venv_from}]")
    else:
        lines += ["# environment: {venv: true} runs local trials in the project's own venv, built from",
                  "# requirements.txt (or pyproject.toml) on the first run."]
    text = "\n".join(lines) + "\n"
    from tracker.config import ProjectConfig, parse_model

    parse_model(text, ProjectConfig, PROJECT_FILE)  # never write a file tracker cannot read
    return text


def _scalar(text: str) -> str:
    """``text`` as a YAML string scalar: plain when it reads back as itself, else quoted."""
    import json

    import yaml

    try:
        plain = yaml.safe_load(text) == text
    except yaml.YAMLError:
        plain = False
    return text if plain else json.dumps(text)


def find_script(root: Path) -> ScriptInfo | None:
    """The script to suggest an experiment for: the best-named one among those that parse flags or run as
    ``__main__`` (train.py before main.py before the rest; shallower first), or None."""
    best: tuple[tuple[int, int, str], ScriptInfo] | None = None
    for path in _python_files(root):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        info = read_flags(tree, path.relative_to(root).as_posix())
        runs = _runs_as_main(tree)
        if not info.params and not info.seed_flag and not info.left_out and not runs:
            continue
        match = _SCRIPT_NAMES.search(path.stem)
        rank = (0 if match and match.group(1).lower() in ("train", "fit") else 1 if match else 2,
                len(path.relative_to(root).parts), info.path)
        if best is None or rank < best[0]:
            best = (rank, info)
    return best[1] if best else None


def _python_files(root: Path) -> list[Path]:
    """The project's .py files (git's view when possible: no ignored files), three levels deep at most."""
    from tracker import codeset, gitinfo

    top = gitinfo.repo_root(root)
    files: list[Path] = []
    if top is not None:
        out = gitinfo.git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "*.py")
        files = [root / p for p in out.split("\0") if p]
    else:
        files = list(root.rglob("*.py"))
    keep = []
    for path in files:
        rel = path.relative_to(root)
        dirs = rel.parts[:-1]
        if len(dirs) > 2 or rel.name in _NOT_SCRIPTS or rel.name.startswith("test_"):
            continue
        if any(d in _NOT_DIRS or d.startswith(".") or d in codeset.SKIP_DIRS for d in dirs):
            continue
        keep.append(path)
    return sorted(keep)


def _runs_as_main(tree: ast.Module) -> bool:
    return any(isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) for node in tree.body)


def read_flags(tree: ast.Module, path: str) -> ScriptInfo:
    """Params from a script's ``add_argument("--name", default=...)`` calls.

    A flag with a literal default becomes a param with that default; ``--seed`` becomes the
    seed flag; switches (``store_true``/``store_false``), flags without a default and
    positional arguments are left out (named in ``left_out``).
    """
    params: dict[str, Any] = {}
    left_out: list[str] = []
    seed_flag = None
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add_argument" and node.args):
            continue
        names = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        long = next((n for n in names if n.startswith("--")), None)
        if long is None:
            left_out.extend(n for n in names[:1] if not n.startswith("-"))
            continue
        flag = long[2:]
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        if flag == "seed":
            seed_flag = "seed"
            continue
        action = keywords.get("action")
        if isinstance(action, ast.Constant) and action.value in ("store_true", "store_false", "count"):
            left_out.append(long)
            continue
        try:
            default = ast.literal_eval(keywords["default"]) if "default" in keywords else None
        except ValueError:
            default = None
        if default is None or not isinstance(default, (int, float, str, bool)):
            left_out.append(long)
            continue
        params[flag] = default
    return ScriptInfo(path, params, seed_flag, left_out)


def _experiment_name(script: str) -> str:
    from tracker.names import valid_name

    name = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(script).stem).strip("-_") or "main"
    return name if valid_name(name) else "main"


def write_experiment(root: Path, name: str, script: ScriptInfo) -> Path:
    """experiments/NAME.yaml running ``script`` with its flags as params (commented, validated)."""
    from tracker.config import ExperimentConfig, parse_model
    from tracker.experiments import render

    path = root / "experiments" / f"{name}.yaml"
    data: dict[str, Any] = {"description": f"{script.path} as found by tracker init",
                            "command": f"python {script.path}", "params": script.params,
                            "seed_flag": script.seed_flag}
    text = render(name, data)
    parse_model(text, ExperimentConfig, display_path(path))
    path.parent.mkdir(exist_ok=True)
    atomic_write(path, text)
    return path
