"""Where a rendered template may write: inside its project directory, and nowhere else.

``tracker create`` renders a template into a staging directory. Before cookiecutter writes
anything, :func:`project_name` renders every folder and file name the template will make,
exactly as cookiecutter's ``generate_files`` will, and refuses names that leave the project
(``..``, absolute paths, a project name that is not one folder) and template files that are
symlinks leading out of the template. After rendering, :func:`check_rendered` refuses
symlinks (made by hooks) that are absolute or lead out of the project and drops Python
bytecode caches; :func:`merge` moves a result into an existing project (``overwrite``)
without writing through anything there, and undoes every step if one fails.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from tracker.errors import TemplateError


def inside(path: str, top: str) -> bool:
    """Whether ``path`` is ``top`` or below it (both absolute, normalized)."""
    return os.path.commonpath([top, path]) == top


def project_name(repo_dir: str, context: dict[str, Any], staging: Path) -> str:
    """Render every path the template will write, before anything is written; return the project's name.

    Mirrors cookiecutter's ``generate_files``: the project directory must be one folder
    name, every rendered directory and file must stay inside it, and no file of the
    template may be a symlink leading out of the template (its content would be copied).
    """
    import jinja2
    from cookiecutter.find import find_template
    from cookiecutter.generate import is_copy_only_path
    from cookiecutter.utils import create_env_with_context

    env = create_env_with_context(context)
    template_dir = Path(find_template(repo_dir, env))
    home = os.path.realpath(repo_dir)

    def render(text: str) -> str:
        try:
            return env.from_string(text).render(**context)
        except jinja2.TemplateError as exc:
            raise TemplateError(f"cannot render the file name {text!r}: {exc}") from exc

    name = render(template_dir.name)
    if name.strip() in ("", ".", "..") or "/" in name or os.sep in name:
        raise TemplateError(f"the project directory's name renders to {name!r}, which is not a single folder name",
                            hint="check the context values it is made from, such as project_slug; nothing was created")
    project = os.path.join(staging, name)

    def check(rendered: str) -> None:
        path = os.path.normpath(os.path.join(project, rendered))
        if not inside(path, project):
            raise TemplateError(f"the template would write {rendered!r} outside the project directory",
                                hint="a context value used in a file or folder name contains '..' or '/'; "
                                     "nothing was created")

    for root, dirs, files in os.walk(template_dir):
        rel = os.path.relpath(root, template_dir)
        for entry in (*dirs, *files):
            source = os.path.join(root, entry)
            if os.path.islink(source) and not inside(os.path.realpath(source), home):
                raise TemplateError(f"the template's {os.path.normpath(os.path.join(rel, entry))} is a symlink to "
                                    f"{os.path.realpath(source)}, outside the template",
                                    hint="a template may only link to its own files")
    for root, dirs, files in os.walk(template_dir):
        rel = os.path.relpath(root, template_dir)
        rendered_dirs = []
        for d in sorted(dirs):
            inner = os.path.normpath(os.path.join(rel, d))
            if is_copy_only_path(inner, context):  # copied whole: only its own name is rendered
                check(render(os.path.normpath(os.path.join(project, inner))))
            else:
                rendered_dirs.append(d)
                check(render(os.path.join(project, rel, d)))
        dirs[:] = rendered_dirs
        for f in files:
            check(render(os.path.normpath(os.path.join(rel, f))))
    return name


def check_rendered(project: Path) -> None:
    """Check a rendered project before it moves into place; drop Python bytecode caches.

    Every symlink (only hooks make them) must be relative and lead to a path inside the project.
    """
    top = os.path.realpath(project)
    for root, dirs, files in os.walk(project):
        for entry in (*dirs, *files):
            path = os.path.join(root, entry)
            if os.path.islink(path) and (os.path.isabs(os.readlink(path))
                                         or not inside(os.path.realpath(path), top)):
                shown = os.path.relpath(path, project)
                raise TemplateError(f"the new project's {shown} is a symlink to {os.readlink(path)}, "
                                    "which leads outside the project",
                                    hint="a template (or its hooks) may only link inside the project; "
                                         "nothing was created")
        for cache in [d for d in dirs if d == "__pycache__"]:
            shutil.rmtree(os.path.join(root, cache))
            dirs.remove(cache)
        for f in files:
            if f.endswith((".pyc", ".pyo")):
                os.unlink(os.path.join(root, f))


def merge(source: Path, dest: Path, replaced: Path) -> None:
    """Move everything in ``source`` into the existing directory ``dest`` (``overwrite``).

    What is in the way is moved aside to ``replaced``, never written through, so a symlink in
    ``dest`` is replaced rather than followed; on any failure every step is undone.
    """
    replaced.mkdir()
    done: list[tuple[Path, Path | None]] = []  # (path in dest, None: placed there | where its old self went)

    def move_in(src: Path, dst: Path) -> None:
        for entry in sorted(src.iterdir()):
            to = dst / entry.name
            if entry.is_dir() and not entry.is_symlink() and to.is_dir() and not to.is_symlink():
                move_in(entry, to)
                continue
            if os.path.lexists(to):
                aside = replaced / str(len(done))
                shutil.move(to, aside)  # a rename, or a copy when the project is on another file system
                done.append((to, aside))
            shutil.move(entry, to)
            done.append((to, None))

    try:
        move_in(source, dest)
    except BaseException:
        for path, aside in reversed(done):
            if aside is None:
                _remove(path)
            else:
                shutil.move(aside, path)
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()
