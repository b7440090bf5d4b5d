"""tracker create with real cookiecutter templates: ours and third-party-style ones."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import git
from tracker.cli import app
from tracker.create import create_project
from tracker.errors import ConfigError, TemplateError, UsageError


def write_template(root: Path, *, hooks: bool = True, pre_fail: bool = False) -> Path:
    """A third-party-style template: hooks, _copy_without_render, nested directories."""
    (root / "{{cookiecutter.slug}}" / "pkg" / "sub").mkdir(parents=True)
    (root / "cookiecutter.json").write_text(json.dumps({
        "name": "Thing", "slug": "{{ cookiecutter.name.lower() }}", "owner": "",
        "license": ["MIT", "BSD"], "_copy_without_render": ["raw/*"]}))
    t = root / "{{cookiecutter.slug}}"
    (t / "README.md").write_text("# {{ cookiecutter.name }} by {{ cookiecutter.owner }} ({{ cookiecutter.license }})\n")
    (t / "pkg" / "sub" / "deep.py").write_text("NAME = '{{ cookiecutter.slug }}'\n")
    (t / "raw").mkdir()
    (t / "raw" / "keep.j2").write_text("{{ not_rendered }}\n")
    if hooks:
        (root / "hooks").mkdir()
        (root / "hooks" / "pre_gen_project.py").write_text(
            "import sys\n" + ("sys.exit('pre hook refuses')\n" if pre_fail else "print('pre ok')\n"))
        (root / "hooks" / "post_gen_project.py").write_text(
            "from pathlib import Path\nPath('made-by-hook.txt').write_text('{{ cookiecutter.owner }}')\n")
    return root


def conf(path: Path, **data: object) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data))
    return path


def test_local_template_with_hooks_raw_files_and_nesting(tmp_path: Path) -> None:
    write_template(tmp_path / "tpl")
    result = create_project(conf(tmp_path / "conf.yaml", template="./tpl", output_dir="out",
                                 context={"name": "Cart", "owner": "Ada"}))
    project = tmp_path / "out" / "cart"
    assert result.path == project and result.initialized_git and result.commit
    assert (project / "README.md").read_text() == "# Cart by Ada (MIT)\n"
    assert (project / "pkg/sub/deep.py").read_text() == "NAME = 'cart'\n"
    assert (project / "raw/keep.j2").read_text() == "{{ not_rendered }}\n"
    assert (project / "made-by-hook.txt").read_text() == "Ada"
    # tracker's additions, all in the initial commit
    assert ".tracker/" in (project / ".gitignore").read_text()
    import yaml

    assert len(yaml.safe_load((project / "tracker.yaml").read_text())["seeds"]) == 10
    assert git(project, "status", "--porcelain") == ""
    assert "Create project from template ./tpl" in git(project, "log", "--format=%s")
    tracked = git(project, "ls-files").split()
    assert {"tracker.yaml", ".gitignore", "experiments/.gitkeep", "made-by-hook.txt"} <= set(tracked)


def test_failing_hook_leaves_nothing_behind(tmp_path: Path) -> None:
    write_template(tmp_path / "tpl", pre_fail=True)
    with pytest.raises(TemplateError, match="hook failed"):
        create_project(conf(tmp_path / "conf.yaml", template="./tpl", context={"owner": "x"}))
    assert not (tmp_path / "thing").exists()


def test_missing_needed_value_is_a_one_line_error_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_template(tmp_path / "tpl", hooks=False)
    path = conf(tmp_path / "conf.yaml", template="./tpl", context={"name": "X"})
    with pytest.raises(ConfigError, match="needs a value for 'owner'"):
        create_project(path)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["create", "conf.yaml"])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("error: conf.yaml: the template needs a value for 'owner'")
    assert "context: {owner: ...}" in result.stderr


def test_unknown_context_key_and_bad_conf(tmp_path: Path) -> None:
    write_template(tmp_path / "tpl", hooks=False)
    with pytest.raises(ConfigError, match=r"'colour' is not a variable of the template.*name, slug, owner"):
        create_project(conf(tmp_path / "c.yaml", template="./tpl", context={"owner": "a", "colour": 1}))
    (tmp_path / "bad.yaml").write_text("template: ./tpl\ncontxt: {}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:2: unknown key 'contxt'"):
        create_project(tmp_path / "bad.yaml")


def test_interactive_prompts_only_for_missing_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_template(tmp_path / "tpl", hooks=False)
    asked: list[str] = []

    def fake_read(name: str, default: object, *a: object, **k: object) -> str:
        asked.append(name)
        return "Typed"

    monkeypatch.setattr("cookiecutter.prompt.read_user_variable", fake_read)
    monkeypatch.setattr("cookiecutter.prompt.read_user_choice", lambda name, options, *a, **k: options[1])
    result = create_project(conf(tmp_path / "c.yaml", template="./tpl", context={"name": "N"}),
                            interactive=True)
    assert asked == ["owner"]  # name was given, slug is computed, license is a choice
    assert (result.path / "README.md").read_text() == "# N by Typed (BSD)\n"


def test_git_url_with_checkout_and_directory(tmp_path: Path) -> None:
    repo = tmp_path / "tplrepo"
    write_template(repo / "templates" / "thing", hooks=False)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "v1")
    git(repo, "tag", "v1")
    readme = repo / "templates/thing/{{cookiecutter.slug}}/README.md"
    readme.write_text("version two\n")
    git(repo, "commit", "-qam", "v2")
    old = create_project(conf(tmp_path / "a.yaml", template=f"file://{repo}", checkout="v1",
                              directory="templates/thing", output_dir="v1",
                              context={"owner": "o", "name": "Old"}))
    new = create_project(conf(tmp_path / "b.yaml", template=f"file://{repo}", directory="templates/thing",
                              output_dir="v2", context={"owner": "o", "name": "New"}))
    assert (old.path / "README.md").read_text() == "# Old by o (MIT)\n"
    assert (new.path / "README.md").read_text() == "version two\n"
    with pytest.raises(TemplateError, match="cannot fetch template"):
        create_project(conf(tmp_path / "c.yaml", template=f"file://{repo}", checkout="no-such-tag",
                            directory="templates/thing", output_dir="v3", context={"owner": "o"}))


def test_zip_template(tmp_path: Path) -> None:
    src = write_template(tmp_path / "src" / "thing-template", hooks=False)
    archive = tmp_path / "thing.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(src, src.name)  # cookiecutter wants the top-level directory first
        for path in sorted(src.rglob("*")):
            zf.write(path, path.relative_to(src.parent))
    result = create_project(conf(tmp_path / "c.yaml", template=str(archive), output_dir="z",
                                 context={"owner": "Z"}))
    assert (result.path / "README.md").read_text() == "# Thing by Z (MIT)\n"


def test_inside_existing_repo_no_new_repo_and_existing_output(tmp_path: Path) -> None:
    write_template(tmp_path / "tpl", hooks=False)
    git(tmp_path, "init", "-q")
    result = create_project(conf(tmp_path / "c.yaml", template="./tpl", context={"owner": "x"}))
    assert not result.initialized_git and result.commit is None
    assert not (result.path / ".git").exists()
    with pytest.raises(UsageError, match="already exists"):
        create_project(tmp_path / "c.yaml")


def test_not_a_template(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(TemplateError):
        create_project(conf(tmp_path / "c.yaml", template="./empty"))


def test_default_template_end_to_end_over_three_seeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sklearn")
    monkeypatch.chdir(tmp_path)
    conf(tmp_path / "conf.yaml", template="default", context={"project_name": "Digits Demo", "author": "A. Researcher"})
    result = CliRunner().invoke(app, ["create", "conf.yaml", "--json"])
    assert result.exit_code == 0, result.output
    project = Path(json.loads(result.stdout)["path"])
    assert project == tmp_path / "digits-demo"
    monkeypatch.chdir(project)
    # the experiment's command is `python train.py`: run it with this interpreter
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{__import__('os').environ['PATH']}")
    result = CliRunner().invoke(app, ["run", "baseline", "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    trials = json.loads(result.stdout)
    from tracker.project import Project

    presets = Project.find().config.seeds
    assert [t["seed"] for t in trials] == presets[:3]
    assert all(t["status"] == "completed" and not t["dirty"] for t in trials)
    for t in trials:
        assert 0.85 < t["metrics"]["val/acc"] <= 1 and 0.85 < t["metrics"]["test/acc"] <= 1
        directory = project / ".tracker/trials" / t["id"]
        assert (directory / "model.pkl").stat().st_size > 0
        detail = Project.find().store.get(t["id"])
        assert detail.extra["autolog"]["SGDClassifier"]["params"]["eta0"] == 0.01
    losses = [p.value for p in Project.find().store.metrics(trials[0]["id"], "train/loss")]
    assert len(losses) == 10 and losses[-1] < losses[0]
    # the script also runs without tracker
    out = subprocess.run([sys.executable, "train.py", "--epochs", "2"], cwd=project, capture_output=True,
                         text=True, check=True).stdout
    assert "test/acc:" in out and (project / "outputs/model.pkl").exists()
