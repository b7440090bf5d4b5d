"""``tracker create``: a project from any cookiecutter template.

The template may be a local directory, a git URL (with ``checkout``), a
``gh:``/``gl:``/``bb:`` abbreviation, a zip file, a ``directory`` inside a
repository, or ``default`` (the bundled template). Cookiecutter does the
fetching, rendering, hooks and ``_copy_without_render``; tracker decides which
values to ask for, then makes the result a git repository with tracker.yaml.

Example::

    >>> result = create_project(Path("conf.yaml"), interactive=False)  # doctest: +SKIP
    >>> result.path, result.commit  # doctest: +SKIP
    (PosixPath('/home/me/digits-demo'), '3f2c...')
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tracker.config import CreateConfig, load_model
from tracker.errors import ConfigError, TemplateError, UsageError
from tracker.gitinfo import committer_args, git, repo_root
from tracker.paths import PROJECT_FILE, STATE_DIR
from tracker.project import PROJECT_HEADER
from tracker.yamlio import display_path

DEFAULT_TEMPLATE = "default"
HOOKS = ("pre_gen_project", "post_gen_project")


@dataclass(frozen=True)
class CreateResult:
    """What ``tracker create`` made.

    ``commit`` is the initial commit, or None when the project was made inside
    an existing git repository (then ``initialized_git`` is False too).
    """

    path: Path
    commit: str | None
    initialized_git: bool
    template: str

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


def default_template() -> Path:
    """The bundled template: inside the installed package, or templates/ in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_templates" / DEFAULT_TEMPLATE, here.parent / "templates" / DEFAULT_TEMPLATE):
        if (candidate / "cookiecutter.json").is_file():
            return candidate
    raise TemplateError("the bundled default template is missing from this installation",
                        hint="reinstall tracker")


def _resolve_source(template: str, base: Path) -> str:
    """The template argument for cookiecutter; local paths (dirs, zips) are relative to ``base``."""
    if template == DEFAULT_TEMPLATE:
        return str(default_template())
    from cookiecutter.config import BUILTIN_ABBREVIATIONS
    from cookiecutter.repository import expand_abbreviations, is_repo_url

    if is_repo_url(expand_abbreviations(template, BUILTIN_ABBREVIATIONS)):
        return template
    return str((base / Path(template).expanduser()).resolve())


def _is_computed(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _needs_value(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _check_choice(key: str, value: Any, choices: list[Any], conf: str) -> None:
    wanted = value if isinstance(value, list) else [value]
    bad = [v for v in wanted if v not in choices]
    if bad:
        raise ConfigError(f"context value {bad[0]!r} for {key!r} is not one of the template's choices",
                          path=conf, hint=f"use one of: {', '.join(map(str, choices))}")


def _prompt(key: str, default: Any, prompts: dict[str, Any]) -> Any:
    """Ask for one value on the terminal the way cookiecutter does, showing the default."""
    from cookiecutter import prompt

    if isinstance(default, list):
        return prompt.read_user_choice(key, default, prompts)
    if isinstance(default, bool):
        return prompt.read_user_yes_no(key, default, prompts)
    if isinstance(default, dict):
        return prompt.read_user_dict(key, default, prompts)
    return prompt.read_user_variable(key, "" if default is None else default, prompts)


def resolve_context(variables: dict[str, Any], given: dict[str, Any], *, conf: str,
                    interactive: bool) -> dict[str, Any]:
    """The values to render with: ``given`` plus, for what it lacks, prompts or defaults.

    Private (``_``) and computed (``{{ ... }}``) variables are left to cookiecutter.
    Without a terminal, a variable whose default is empty must be in ``given``.

    Example::

        >>> resolve_context({"name": "x", "owner": "", "slug": "{{ cookiecutter.name }}"},
        ...                 {"owner": "Ada"}, conf="conf.yaml", interactive=False)
        {'owner': 'Ada'}
    """
    public = {k: v for k, v in variables.items() if not k.startswith("_")}
    unknown = sorted(set(given) - set(public))
    if unknown:
        raise ConfigError(f"context key {unknown[0]!r} is not a variable of the template", path=conf,
                          hint=f"the template's variables are: {', '.join(public) or 'none'}")
    for key, value in given.items():
        if isinstance(public[key], list):
            _check_choice(key, value, public[key], conf)
    context = dict(given)
    prompts = variables.get("__prompts__") or {}
    for key, default in public.items():
        if key in context or _is_computed(default):
            continue
        if interactive:
            context[key] = _prompt(key, default, prompts)
        elif _needs_value(default):
            raise ConfigError(f"the template needs a value for {key!r} and context has none", path=conf,
                              hint=f"add it: context: {{{key}: ...}}")
    return context


class _LogMessages(logging.Handler):
    """Keeps cookiecutter's log messages (and their tracebacks) away from the user's terminal."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _captured(output: list[str], log: _LogMessages) -> Iterator[None]:
    """Send file descriptors 1 and 2 (hook scripts, git) to ``output``, cookiecutter's log to ``log``."""
    logger = logging.getLogger("cookiecutter")
    propagate = logger.propagate
    logger.addHandler(log)
    logger.propagate = False
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    with tempfile.TemporaryFile() as buffer:
        os.dup2(buffer.fileno(), 1)
        os.dup2(buffer.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, old in ((1, saved[0]), (2, saved[1])):
                os.dup2(old, fd)
                os.close(old)
            logger.removeHandler(log)
            logger.propagate = propagate
            buffer.seek(0)
            output.append(buffer.read().decode(errors="replace"))


def _hook_error(exc: Exception, lines: list[str], log: _LogMessages) -> TemplateError:
    """A hook failure as one line: which hook, and the last line it printed."""
    said = lines[-1].strip() if lines else _first_line(exc)
    hook = next((h for h in HOOKS if any(h in m for m in log.messages)),
                "pre_prompt" if "Pre-Prompt" in str(exc) else None)
    return TemplateError(f"the template's {hook + ' ' if hook else ''}hook failed: {said}",
                         hint="nothing was created; fix the hook or the context values it checks")


def _generate(repo_dir: str, context: dict[str, Any], output_dir: Path, *, overwrite: bool,
              scratch: Path) -> Path:
    """Render ``repo_dir`` with cookiecutter; what hooks print goes to stderr, a failed hook raises."""
    from cookiecutter.exceptions import FailedHookException
    from cookiecutter.main import cookiecutter

    config = scratch / "cookiecutterrc.yaml"  # the user's ~/.cookiecutterrc plays no part,
    config.write_text(f"replay_dir: {json.dumps(str(scratch / 'replay'))}\n")  # and no replay file lands in ~
    output: list[str] = []
    log = _LogMessages()
    created = _first_missing(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        with _captured(output, log):
            made = cookiecutter(repo_dir, no_input=True, extra_context=context, output_dir=str(output_dir),
                                overwrite_if_exists=overwrite, config_file=str(config))
    except BaseException as exc:
        if created is not None and not any(p.is_file() for p in created.rglob("*")):
            shutil.rmtree(created)
        lines = [line for line in "".join(output).splitlines() if line.strip()]
        if isinstance(exc, FailedHookException):
            _echo(lines[:-1])
            raise _hook_error(exc, lines, log) from exc
        _echo(lines)
        raise
    _echo("".join(output).splitlines())
    return Path(made)


def _first_missing(path: Path) -> Path | None:
    """The outermost directory of ``path`` that does not exist yet (removed again on failure)."""
    missing = None
    while not path.exists():
        missing, path = path, path.parent
    return missing


def _echo(lines: list[str]) -> None:
    """Pass on what the template's hooks printed, on stderr (stdout is for --json)."""
    if lines:
        sys.stderr.write("\n".join(lines) + "\n")


def create_project(conf: Path, *, interactive: bool = False) -> CreateResult:
    """Create a project as ``conf`` (a conf.yaml) describes; return where and how.

    Args:
        conf: the conf.yaml (template, checkout, directory, output_dir, context, overwrite).
        interactive: prompt on the terminal for variables conf.yaml does not give.

    Raises:
        ConfigError: bad conf.yaml, unknown or missing context values.
        UsageError: the project directory exists and ``overwrite`` is false.
        TemplateError: the template cannot be fetched or rendered, or a hook failed.
    """
    config = load_model(conf, CreateConfig)
    shown = display_path(conf)
    base = conf.resolve().parent
    output_dir = (base / Path(config.output_dir).expanduser()).resolve()
    source = _resolve_source(config.template, base)
    from cookiecutter import exceptions as cc_errors

    with tempfile.TemporaryDirectory(prefix="tracker-template-") as scratch:
        try:
            from cookiecutter.config import BUILTIN_ABBREVIATIONS
            from cookiecutter.generate import generate_context
            from cookiecutter.repository import determine_repo_dir

            repo_dir, _ = determine_repo_dir(
                template=source, abbreviations=BUILTIN_ABBREVIATIONS, clone_to_dir=scratch,
                checkout=config.checkout, no_input=True, directory=config.directory)
            variables = generate_context(str(Path(repo_dir) / "cookiecutter.json"))["cookiecutter"]
            context = resolve_context(dict(variables), config.context, conf=shown, interactive=interactive)
            made = _generate(repo_dir, context, output_dir, overwrite=config.overwrite, scratch=Path(scratch))
        except cc_errors.OutputDirExistsException as exc:
            raise UsageError(f"cannot create the project: {str(exc).removeprefix('Error: ')}",
                             hint=f"choose another name, or set 'overwrite: true' in {shown}") from exc
        except cc_errors.RepositoryNotFound as exc:
            looked = "; ".join(dict.fromkeys(line.strip() for line in str(exc).splitlines()[1:] if line.strip()))
            raise TemplateError(f"template {config.template!r} not found (looked for cookiecutter.json in "
                                f"{looked or source})",
                                hint=f"check 'template' and 'directory' in {shown}") from exc
        except cc_errors.RepositoryCloneFailed as exc:
            raise TemplateError(f"cannot fetch template {config.template!r}: {_first_line(exc)}",
                                hint=f"check the URL and 'checkout' in {shown}") from exc
        except cc_errors.CookiecutterException as exc:
            raise TemplateError(f"template {config.template!r} could not be rendered: {_first_line(exc)}") from exc
        except (OSError, ValueError) as exc:
            if isinstance(exc, FileNotFoundError) and "cookiecutter.json" in str(exc):
                raise TemplateError(f"{config.template!r} is not a cookiecutter template (no cookiecutter.json)",
                                    hint="point 'template'/'directory' at the folder holding it") from exc
            raise TemplateError(f"template {config.template!r} failed: {_first_line(exc)}") from exc
    return _finish(made, config.template)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _finish(path: Path, template: str) -> CreateResult:
    """Add tracker's files to a generated project and give it an initial commit."""
    config = path / PROJECT_FILE
    if not config.exists():
        config.write_text(PROJECT_HEADER + f"name: {path.name}\n")
    from tracker.experiments import write_seeds
    from tracker.project import Project
    from tracker.seeds import DEFAULT_COUNT

    project = Project.load(path)
    if not project.config.seeds:  # committed with the project, so the first run starts from a clean tree
        write_seeds(project, DEFAULT_COUNT, None)
    experiments = path / "experiments"
    experiments.mkdir(exist_ok=True)
    if not any(experiments.iterdir()):
        (experiments / ".gitkeep").touch()
    ignore = path / ".gitignore"
    lines = ignore.read_text().splitlines() if ignore.exists() else []
    if not any(line.strip().rstrip("/") in (STATE_DIR, "/" + STATE_DIR) for line in lines):
        with open(ignore, "a", encoding="utf-8") as fh:
            if lines and lines[-1].strip():
                fh.write("\n")
            fh.write(f"# tracker's state: trial store and trial directories\n{STATE_DIR}/\n")
    if repo_root(path) is not None:
        return CreateResult(path=path, commit=None, initialized_git=False, template=template)
    if shutil.which("git") is None:
        raise TemplateError(f"created {path}, but git is not installed to make it a repository",
                            hint="install git, then run 'git init' there")
    git(path, "init", "-q")
    git(path, "add", "-A")
    git(path, *committer_args(path), "commit", "-q", "-m", f"Create project from template {template}")
    return CreateResult(path=path, commit=git(path, "rev-parse", "HEAD").strip(), initialized_git=True,
                        template=template)
