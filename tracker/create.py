"""``tracker create``: a project from any cookiecutter template.

The template may be a local directory, a git URL (with ``checkout``), a
``gh:``/``gl:``/``bb:`` abbreviation, a zip file, a ``directory`` inside a
repository, or ``default`` (the bundled template). Cookiecutter does the
fetching, rendering, hooks and ``_copy_without_render``; tracker decides which
values to ask for, and renders into a staging directory: every path the
template will write is rendered and checked to stay inside the project before
anything is written, and the result is checked again (symlinks) before it is
moved into place. The project then becomes a git repository of its own, with
tracker.yaml, in one initial commit.

Example::

    >>> result = create_project(Path("conf.yaml"), interactive=False)  # doctest: +SKIP
    >>> result.path, result.commit  # doctest: +SKIP
    (PosixPath('/home/me/digits-demo'), '3f2c...')
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from jinja2.ext import Extension

from tracker import template_paths
from tracker.config import CreateConfig, load_model
from tracker.errors import ConfigError, TemplateError, UsageError
from tracker.gitinfo import committer_args, git, repo_root
from tracker.paths import PROJECT_FILE, STATE_DIR
from tracker.project import PROJECT_HEADER
from tracker.yamlio import display_path

DEFAULT_TEMPLATE = "default"
HOOKS = ("pre_gen_project", "post_gen_project")
STAGING_PREFIX = ".tracker-create-"


@dataclass(frozen=True)
class CreateResult:
    """What ``tracker create`` made.

    The project is a git repository of its own: ``initialized_git`` when tracker ran
    ``git init``, ``commit`` the initial commit (None when the directory already was a
    repository with commits, as with ``overwrite``). ``parent_repo`` is the repository
    the project sits inside, if any, and ``ignored_by_parent`` whether that one ignores it.
    """

    path: Path
    commit: str | None
    initialized_git: bool
    template: str
    parent_repo: Path | None = None
    ignored_by_parent: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "commit": self.commit, "initialized_git": self.initialized_git,
                "template": self.template, "parent_repo": str(self.parent_repo) if self.parent_repo else None,
                "ignored_by_parent": self.ignored_by_parent}


def default_template() -> Path:
    """The bundled template: inside the installed package, or templates/ in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_templates" / DEFAULT_TEMPLATE, here.parent / "templates" / DEFAULT_TEMPLATE):
        if (candidate / "cookiecutter.json").is_file():
            return candidate
    raise TemplateError("the bundled default template is missing from this installation",
                        hint="reinstall tracker")


def git_user_name() -> str:
    """Your ``git config user.name``; without one, your login name; else ``"unknown"``."""
    if shutil.which("git"):
        proc = subprocess.run(["git", "config", "--get", "user.name"], capture_output=True, text=True)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name: no USER/LOGNAME and no passwd entry (some containers)
        return "unknown"


class TemplateGlobals(Extension):
    """Jinja globals for templates: ``{{ git_user_name }}`` (see :func:`git_user_name`).

    A template turns it on with ``"_extensions": ["tracker.create.TemplateGlobals"]`` in
    its cookiecutter.json, as the bundled template does for its ``author`` default.
    """

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        environment.globals["git_user_name"] = git_user_name()


def _resolve_source(template: str, base: Path) -> str:
    """The template argument for cookiecutter; local paths (dirs, zips) are relative to ``base``."""
    if template == DEFAULT_TEMPLATE:
        return str(default_template())
    from cookiecutter.config import BUILTIN_ABBREVIATIONS
    from cookiecutter.repository import expand_abbreviations, is_repo_url

    if template.startswith("file:"):
        return _file_url(template)
    if is_repo_url(expand_abbreviations(template, BUILTIN_ABBREVIATIONS)):
        return template
    return str((base / Path(template).expanduser()).resolve())


def _file_url(url: str) -> str:
    """A ``file://`` template for cookiecutter: a zip is read in place, anything else is cloned as git.

    Cookiecutter guesses the kind of repository from its name (``.git``, ``git``), so a
    repository at ``file:///srv/templates`` would be an "unknown repository type".
    """
    path = Path(unquote(urlparse(url).path))
    if path.is_file() and path.suffix.lower() == ".zip":
        return str(path)
    if path.is_dir() and not ((path / ".git").exists() or
                              ((path / "HEAD").is_file() and (path / "objects").is_dir())):
        raise TemplateError(f"{url} is a folder, not a git repository",
                            hint=f"for a local folder write its path: 'template: {path}'")
    return "git+" + url


def _local_checkout(path: Path, template: str, conf: str) -> str:
    """A local template with ``checkout:``: its git repository, cloned at that revision (cookiecutter
    would silently use the folder as it is); a folder or zip that is no repository is refused."""
    if path.is_dir() and ((path / ".git").exists() or ((path / "HEAD").is_file() and (path / "objects").is_dir())):
        return "git+" + path.as_uri()
    raise ConfigError(f"'checkout' applies to a git repository, and template {template!r} is a "
                      f"{'folder that is not one' if path.is_dir() else 'file'}", path=conf,
                      hint="remove 'checkout' to use it as it is, or point 'template' at the repository's top folder")


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


def _prompt(key: str, default: Any, prompts: dict[str, Any], conf: str) -> Any:
    """Ask for one value on the terminal the way cookiecutter does, showing the default.

    Input that ends (Ctrl-D) before the answer is a usage error naming the value, not a crash."""
    from cookiecutter import prompt

    try:
        if isinstance(default, list):
            return prompt.read_user_choice(key, default, prompts)
        if isinstance(default, bool):
            return prompt.read_user_yes_no(key, default, prompts)
        if isinstance(default, dict):
            return prompt.read_user_dict(key, default, prompts)
        return prompt.read_user_variable(key, "" if default is None else default, prompts)
    except EOFError:
        raise UsageError(f"the input ended before a value for {key!r} was given",
                         hint=f"answer the prompt, give it in {conf} (context: {{{key}: ...}}), or pass "
                              "--no-input to take the template's defaults") from None


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
            context[key] = _prompt(key, default, prompts, conf)
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
def _quiet(log: _LogMessages) -> Iterator[None]:
    """Send cookiecutter's log to ``log`` instead of stderr."""
    logger = logging.getLogger("cookiecutter")
    propagate = logger.propagate
    logger.addHandler(log)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(log)
        logger.propagate = propagate


@contextmanager
def _captured(output: list[str], log: _LogMessages) -> Iterator[None]:
    """Send file descriptors 1 and 2 (hook scripts, git) to ``output``, cookiecutter's log to ``log``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    with tempfile.TemporaryFile() as buffer, _quiet(log):
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
            buffer.seek(0)
            output.append(buffer.read().decode(errors="replace"))


@contextmanager
def _importable(repo_dir: str) -> Iterator[None]:
    """The template's own Jinja extensions (``_extensions``) importable, as cookiecutter makes them."""
    saved = list(sys.path)
    sys.path.append(repo_dir)
    try:
        yield
    finally:
        sys.path[:] = saved


def _fetch(source: str, checkout: str | None, directory: str | None, scratch: Path) -> str:
    """The template's local directory: a clone or unpacked zip in ``scratch`` when it is remote."""
    from cookiecutter.config import BUILTIN_ABBREVIATIONS
    from cookiecutter.repository import determine_repo_dir

    with _quiet(_LogMessages()):  # a failed clone is reported once, by create_project
        repo_dir, _ = determine_repo_dir(template=source, abbreviations=BUILTIN_ABBREVIATIONS,
                                         clone_to_dir=str(scratch), checkout=checkout, no_input=True,
                                         directory=directory)
    return str(repo_dir)


def _variables(repo_dir: str) -> dict[str, Any]:
    from cookiecutter.generate import generate_context

    return dict(generate_context(str(Path(repo_dir) / "cookiecutter.json"))["cookiecutter"])


def _full_context(repo_dir: str, context: dict[str, Any], staging: Path) -> dict[str, Any]:
    """Every value the template renders with (computed ones included), as cookiecutter builds it."""
    from cookiecutter.generate import generate_context
    from cookiecutter.prompt import prompt_for_config

    full = generate_context(str(Path(repo_dir) / "cookiecutter.json"), extra_context=context)
    full["_cookiecutter"] = {k: v for k, v in full["cookiecutter"].items() if not k.startswith("_")}
    full["cookiecutter"].update(prompt_for_config(full, no_input=True))
    full["cookiecutter"].update(_template=repo_dir, _output_dir=str(staging), _repo_dir=repo_dir, _checkout=None)
    return full


def _hook_error(exc: Exception, lines: list[str], log: _LogMessages, existed: bool) -> TemplateError:
    """A hook failure as one line: which hook, and the last line it printed."""
    said = lines[-1].strip() if lines else _first_line(exc)
    hook = next((h for h in HOOKS if any(h in m for m in log.messages)),
                "pre_prompt" if "Pre-Prompt" in str(exc) else None)
    kept = "the existing project was left as it was" if existed else "nothing was created"
    return TemplateError(f"the template's {hook + ' ' if hook else ''}hook failed: {said}",
                         hint=f"{kept}; fix the hook or the context values it checks")


def _generate(repo_dir: str, context: dict[str, Any], output_dir: Path, *, overwrite: bool,
              scratch: Path, conf: str) -> Path:
    """Render ``repo_dir`` into a staging directory, check it, move it into place; return the project.

    With ``overwrite``, the template's files replace their namesakes in an existing project. What
    hooks print goes to stderr; a failed hook raises, and nothing outside the staging
    directory has changed then.
    """
    from cookiecutter.exceptions import FailedHookException
    from cookiecutter.main import cookiecutter

    config = scratch / "cookiecutterrc.yaml"  # the user's ~/.cookiecutterrc plays no part,
    config.write_text(f"replay_dir: {json.dumps(str(scratch / 'replay'))}\n")  # and no replay file lands in ~
    created = _first_missing(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=output_dir))  # same file system: moves are renames
    output: list[str] = []
    log = _LogMessages()
    try:
        with _importable(repo_dir):
            full = _full_context(repo_dir, context, staging)
            name = template_paths.project_name(repo_dir, full, staging)
        target = output_dir / name
        existed = os.path.lexists(target)
        if existed and not overwrite:
            raise UsageError(f'cannot create the project: "{target}" directory already exists',
                             hint=f"choose another name, or set 'overwrite: true' in {conf}")
        if existed and not target.is_dir():
            raise UsageError(f"cannot create the project: {target} exists and is not a directory",
                             hint="move it away or choose another name")
        # the values as rendered above (computed ones too), so cookiecutter writes exactly the checked paths
        values = {k: v for k, v in full["cookiecutter"].items() if not k.startswith("_")}
        try:
            with _captured(output, log):
                made = Path(cookiecutter(repo_dir, no_input=True, extra_context=values, output_dir=str(staging),
                                         config_file=str(config)))
        except FailedHookException as exc:
            lines = [line for line in "".join(output).splitlines() if line.strip()]
            _echo(lines[:-1])
            raise _hook_error(exc, lines, log, existed) from exc
        except BaseException:
            _echo([line for line in "".join(output).splitlines() if line.strip()])
            raise
        _echo("".join(output).splitlines())
        template_paths.check_rendered(made)
        if existed:
            target = target.resolve()  # a project folder that is a symlink is updated where it lives
            template_paths.merge(made, target, staging / "replaced")
        else:
            made.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created is not None and not any(p.is_file() for p in created.rglob("*")):
            shutil.rmtree(created, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return target


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
        TemplateError: the template cannot be fetched or rendered, a rendered path would leave
            the project directory, or a hook failed.
    """
    config = load_model(conf, CreateConfig)
    shown = display_path(conf)
    base = conf.resolve().parent
    output_dir = (base / Path(config.output_dir).expanduser()).resolve()
    source = _resolve_source(config.template, base)
    if config.checkout and Path(source).exists():
        source = _local_checkout(Path(source), config.template, shown)
    from cookiecutter import exceptions as cc_errors

    with tempfile.TemporaryDirectory(prefix="tracker-template-") as scratch:
        try:
            repo_dir = _fetch(source, config.checkout, config.directory, Path(scratch))
            variables = _variables(repo_dir)
            if {"template", "templates"} & set(variables):  # a choice of templates: pick one as cookiecutter does
                from cookiecutter.prompt import choose_nested_template

                repo_dir = choose_nested_template({"cookiecutter": variables}, repo_dir, no_input=not interactive)
                variables = _variables(repo_dir)
            context = resolve_context(variables, config.context, conf=shown, interactive=interactive)
            made = _generate(repo_dir, context, output_dir, overwrite=config.overwrite, scratch=Path(scratch),
                             conf=shown)
        except EOFError:  # the input ended at cookiecutter's own prompt (the choice among templates)
            raise UsageError("the input ended before the template was chosen",
                             hint="answer the prompt, or pass --no-input to take the first template") from None
        except cc_errors.RepositoryNotFound as exc:
            looked = "; ".join(dict.fromkeys(line.strip() for line in str(exc).splitlines()[1:] if line.strip()))
            raise TemplateError(f"template {config.template!r} not found (looked for cookiecutter.json in "
                                f"{looked or source})",
                                hint=f"check 'template' and 'directory' in {shown}") from exc
        except cc_errors.RepositoryCloneFailed as exc:
            raise TemplateError(f"cannot fetch template {config.template!r}: {_first_line(exc)}",
                                hint=f"check the URL and 'checkout' in {shown}") from exc
        except cc_errors.UnknownRepoType as exc:
            raise TemplateError(f"cannot tell which kind of repository {config.template!r} is",
                                hint="prefix the URL with git+ (git+https://...) or hg+") from exc
        except cc_errors.CookiecutterException as exc:
            raise TemplateError(f"template {config.template!r} could not be rendered: {_first_line(exc)}") from exc
        except subprocess.CalledProcessError as exc:  # a clone that failed in a way cookiecutter does not name
            raise TemplateError(f"cannot fetch template {config.template!r}: {_git_said(exc)}",
                                hint=f"check the URL in {shown}, and that this machine can reach it") from exc
        except (OSError, ValueError) as exc:
            if isinstance(exc, FileNotFoundError) and "cookiecutter.json" in str(exc):
                raise TemplateError(f"{config.template!r} is not a cookiecutter template (no cookiecutter.json)",
                                    hint="point 'template'/'directory' at the folder holding it") from exc
            raise TemplateError(f"template {config.template!r} failed: {_first_line(exc)}") from exc
    return _finish(made, config.template)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _git_said(exc: subprocess.CalledProcessError) -> str:
    """The line of git's output that says what went wrong."""
    text = exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else str(exc.output or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    fatal = [line.removeprefix("fatal:").strip() for line in lines if line.startswith("fatal:")]
    return fatal[0] if fatal else lines[-1] if lines else f"git exited with status {exc.returncode}"


def _finish(path: Path, template: str) -> CreateResult:
    """Add tracker's files to a generated project; make it a git repository of its own with a first commit.

    A project inside another repository (ignored there or not) still gets its own: trials
    are tied to the project's commits, and ``tracker checkout`` rebuilds code from them.
    A directory that is a repository already (``overwrite``) keeps its history: nothing
    is committed unless it has no commit yet (a template hook that ran ``git init``).
    """
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
    if shutil.which("git") is None:
        raise TemplateError(f"created {path}, but git is not installed to make it a repository",
                            hint="install git, then run 'git init' there")
    around = repo_root(path)
    own = around is not None and around.resolve() == path.resolve()
    parent = None if own else around
    if not own:
        git(path, "init", "-q")
    commit = None
    if not own or not git(path, "rev-parse", "--verify", "-q", "HEAD", check=False).strip():
        git(path, "add", "-A")
        git(path, *committer_args(path), "commit", "-q", "-m", f"Create project from template {template}")
        commit = git(path, "rev-parse", "HEAD").strip()
    ignored = parent is not None and bool(git(parent, "check-ignore", str(path), check=False).strip())
    return CreateResult(path=path, commit=commit, initialized_git=not own, template=template,
                        parent_repo=parent, ignored_by_parent=ignored)
