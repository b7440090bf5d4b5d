"""``tracker create``: a project from any cookiecutter template.

The template may be a local directory, a git URL (with ``checkout``), a
``gh:``/``gl:``/``bb:`` abbreviation, a zip file, a ``directory`` inside a
repository, or ``default`` (the bundled template). Cookiecutter does the
rendering, hooks and ``_copy_without_render``; tracker decides which values to
ask for, then makes the result a git repository with tracker.yaml.
"""

from __future__ import annotations

import shutil
import tempfile
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
DEFAULT_SEED_COUNT = 10


@dataclass(frozen=True)
class CreateResult:
    """What ``tracker create`` made."""

    path: Path
    template: str
    initialized_git: bool
    commit: str | None

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


def _resolve_source(config: CreateConfig, base: Path) -> str:
    """The template argument for cookiecutter: local paths are taken relative to conf.yaml."""
    if config.template == DEFAULT_TEMPLATE:
        return str(default_template())
    candidate = Path(config.template).expanduser()
    if not candidate.is_absolute() and (base / candidate).exists():
        return str((base / candidate).resolve())
    return config.template


def _is_computed(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _needs_value(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def resolve_context(variables: dict[str, Any], given: dict[str, Any], *, conf: str,
                    interactive: bool) -> dict[str, Any]:
    """The values to render with: ``given`` plus, for what it lacks, prompts or defaults.

    A variable whose default is empty must be given (or typed on a terminal).
    """
    public = {k: v for k, v in variables.items() if not k.startswith("_")}
    unknown = sorted(set(given) - set(public))
    if unknown:
        raise ConfigError(f"context key {unknown[0]!r} is not a variable of the template", path=conf,
                          hint=f"the template's variables are: {', '.join(public) or 'none'}")
    context = dict(given)
    for key, default in public.items():
        if key in context or _is_computed(default):
            continue
        if interactive:
            from cookiecutter.prompt import read_user_choice, read_user_variable

            if isinstance(default, list):
                context[key] = read_user_choice(key, default)
            else:
                context[key] = read_user_variable(key, "" if default is None else default)
        elif _needs_value(default):
            raise ConfigError(f"the template needs a value for {key!r} and context has none", path=conf,
                              hint=f"add it: context: {{{key}: ...}}")
    return context


def create_project(conf: Path, *, interactive: bool = False) -> CreateResult:
    """Create a project as ``conf`` (a conf.yaml) describes; return where and how."""
    config = load_model(conf, CreateConfig)
    shown = display_path(conf)
    base = conf.resolve().parent
    output_dir = (base / Path(config.output_dir).expanduser()).resolve()
    source = _resolve_source(config, base)
    from cookiecutter import exceptions as cc_errors

    with tempfile.TemporaryDirectory(prefix="tracker-template-") as clones:
        try:
            from cookiecutter.config import BUILTIN_ABBREVIATIONS
            from cookiecutter.repository import determine_repo_dir

            repo_dir, _ = determine_repo_dir(
                template=source, abbreviations=BUILTIN_ABBREVIATIONS, clone_to_dir=clones,
                checkout=config.checkout, no_input=True, directory=config.directory)
            from cookiecutter.generate import generate_context

            variables = generate_context(str(Path(repo_dir) / "cookiecutter.json"))["cookiecutter"]
            context = resolve_context(dict(variables), config.context, conf=shown,
                                      interactive=interactive)
            output_dir.mkdir(parents=True, exist_ok=True)
            from cookiecutter.main import cookiecutter

            made = Path(cookiecutter(repo_dir, no_input=True, extra_context=context,
                                     output_dir=str(output_dir), overwrite_if_exists=config.overwrite,
                                     default_config=True))
        except cc_errors.OutputDirExistsException as exc:
            raise UsageError(f"the project directory already exists: {exc}",
                             hint=f"choose another name, or set 'overwrite: true' in {shown}") from exc
        except (cc_errors.RepositoryNotFound, cc_errors.RepositoryCloneFailed) as exc:
            raise TemplateError(f"cannot fetch template {config.template!r}: {_first_line(exc)}",
                                hint="check the URL, path, 'checkout' and 'directory' in " + shown) from exc
        except cc_errors.FailedHookException as exc:
            raise TemplateError(f"a template hook failed: {_first_line(exc)}",
                                hint="nothing was created; see the hook's output above") from exc
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

    project = Project.load(path)
    if not project.config.seeds:  # committed with the project, so the first run starts clean
        write_seeds(project, DEFAULT_SEED_COUNT, None)
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
        return CreateResult(path, template, False, None)
    if shutil.which("git") is None:
        raise TemplateError(f"created {path}, but git is not installed to make it a repository",
                            hint="install git, then run 'git init' there")
    git(path, "init", "-q")
    git(path, "add", "-A")
    git(path, *committer_args(path), "commit", "-q", "-m", f"Create project from template {template}")
    return CreateResult(path, template, True, git(path, "rev-parse", "HEAD").strip())
