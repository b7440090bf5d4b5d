"""tracker create with real cookiecutter templates (ours and third-party-style ones) and real git."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import git
from tracker.cli import app
from tracker.create import create_project, default_template
from tracker.errors import ConfigError, TemplateError, UsageError


def write_template(root: Path, *, hooks: bool = True, pre_fail: bool = False, post_fail: bool = False) -> Path:
    """A third-party-style template: hooks, _copy_without_render, nested directories, a choice."""
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
            "import sys\nfrom pathlib import Path\nPath('made-by-hook.txt').write_text('{{ cookiecutter.owner }}')\n"
            + ("print('checking', file=sys.stderr)\nsys.exit('post hook refuses')\n" if post_fail else ""))
    return root


def conf(path: Path, **data: object) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_default_template_makes_a_committed_tracker_project(tmp_path: Path) -> None:
    result = create_project(conf(tmp_path / "conf.yaml", template="default",
                                 context={"project_name": "Digits Demo", "author": "Ada"}), interactive=False)
    project = tmp_path / "digits-demo"
    assert result.path == project and result.initialized_git and result.template == "default"
    assert result.commit == git(project, "rev-parse", "HEAD").strip()
    assert set(result.as_dict()) == {"path", "commit", "initialized_git", "template", "parent_repo",
                                     "ignored_by_parent"}
    assert git(project, "log", "--format=%s") == "Create project from template default\n"
    assert git(project, "log", "--format=%an <%ae>") == "Test User <test@example.invalid>\n"  # the user's identity
    assert git(project, "status", "--porcelain") == ""
    assert set(git(project, "ls-files").split()) == {
        ".gitignore", ".trackerignore", "README.md", "experiments/baseline.yaml", "requirements.txt",
        "tracker.yaml", "train.py"}
    settings = yaml.safe_load((project / "tracker.yaml").read_text())
    assert settings["name"] == "digits-demo" and len(settings["seeds"]) == 10
    assert (project / "tracker.yaml").read_text().startswith("# tracker project settings")
    assert {".tracker/", "outputs/", "__pycache__/"} <= set((project / ".gitignore").read_text().splitlines())
    assert "Author: Ada" in (project / "README.md").read_text()
    assert "scikit-learn" in (project / "requirements.txt").read_text()


def test_default_template_baseline_is_in_the_experiments_create_style() -> None:
    from tracker.experiments import render

    text = (default_template() / "{{cookiecutter.project_slug}}" / "experiments" / "baseline.yaml").read_text()
    data = yaml.safe_load(text)
    assert text == render("baseline", data)  # every key, commented, as `tracker experiments create` writes
    assert data["command"] == "python train.py" and data["seeds"] == 3 and not data["grid"]
    assert data["objective"] == {"metric": "val/acc", "goal": "max"}
    assert "seeds" not in yaml.safe_load(
        (default_template() / "{{cookiecutter.project_slug}}" / "tracker.yaml").read_text().replace("{{", "x{"))


def test_local_template_with_hooks_raw_files_and_nesting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_template(tmp_path / "tpl")
    (tmp_path / "tpl" / "{{cookiecutter.slug}}" / ".gitignore").write_text("*.log")  # no .tracker/, no newline
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("create", conf(tmp_path / "conf.yaml", template="./tpl", output_dir="out",
                                        context={"name": "Cart", "owner": "Ada"}).name, "--json")
    assert code == 0, err
    assert "pre ok" in err  # what hooks print goes to stderr; stdout stays JSON
    result = json.loads(out)
    project = tmp_path / "out" / "cart"
    assert result["path"] == str(project) and result["initialized_git"] and result["commit"]
    assert (project / "README.md").read_text() == "# Cart by Ada (MIT)\n"
    assert (project / "pkg/sub/deep.py").read_text() == "NAME = 'cart'\n"
    assert (project / "raw/keep.j2").read_text() == "{{ not_rendered }}\n"
    assert (project / "made-by-hook.txt").read_text() == "Ada"
    # tracker's additions, all in the initial commit
    assert (project / ".gitignore").read_text().splitlines()[0] == "*.log"
    assert ".tracker/" in (project / ".gitignore").read_text().splitlines()
    assert yaml.safe_load((project / "tracker.yaml").read_text())["name"] == "cart"
    assert git(project, "status", "--porcelain") == ""
    assert "Create project from template ./tpl" in git(project, "log", "--format=%s")
    tracked = git(project, "ls-files").split()
    assert {"tracker.yaml", ".gitignore", "experiments/.gitkeep", "made-by-hook.txt", "raw/keep.j2"} <= set(tracked)


@pytest.mark.parametrize("hook", ["pre", "post"])
def test_failing_hook_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hook: str) -> None:
    write_template(tmp_path / "tpl", pre_fail=hook == "pre", post_fail=hook == "post")
    path = conf(tmp_path / "conf.yaml", template="./tpl", output_dir="out/deeper", context={"owner": "x"})
    with pytest.raises(TemplateError, match=f"{hook}_gen_project hook failed: {hook} hook refuses"):
        create_project(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf.yaml", "tpl"]
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("create", "conf.yaml")
    assert code == 1 and out == "" and "Traceback" not in err
    assert err.splitlines()[-1].startswith(f"error: the template's {hook}_gen_project hook failed: {hook} hook refuses")
    assert err.splitlines()[:-1] == ([] if hook == "pre" else ["pre ok", "checking"])  # what hooks printed before


def test_missing_needed_value_is_a_one_line_error_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_template(tmp_path / "tpl", hooks=False)
    path = conf(tmp_path / "conf.yaml", template="./tpl", context={"name": "X"})
    with pytest.raises(ConfigError, match="needs a value for 'owner'"):
        create_project(path)
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("create", "conf.yaml")
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: conf.yaml: the template needs a value for 'owner'")
    assert "context: {owner: ...}" in err
    assert not (tmp_path / "x").exists()


def test_unknown_context_key_bad_choice_and_bad_conf(tmp_path: Path) -> None:
    write_template(tmp_path / "tpl", hooks=False)
    with pytest.raises(ConfigError, match=r"'colour' is not a variable of the template.*name, slug, owner, license"):
        create_project(conf(tmp_path / "c.yaml", template="./tpl", context={"owner": "a", "colour": 1}))
    with pytest.raises(ConfigError, match=r"c.yaml: context value 'GPL' for 'license'.*use one of: MIT, BSD"):
        create_project(conf(tmp_path / "c.yaml", template="./tpl", context={"owner": "a", "license": "GPL"}))
    (tmp_path / "bad.yaml").write_text("template: ./tpl\ncontxt: {}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:2: unknown key 'contxt'"):
        create_project(tmp_path / "bad.yaml")


def test_interactive_prompts_only_for_missing_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    write_template(tmp_path / "tpl", hooks=False)
    monkeypatch.setattr("sys.stdin", io.StringIO("Typed\n2\n"))  # owner, then the 2nd license choice
    result = create_project(conf(tmp_path / "c.yaml", template="./tpl", context={"name": "N"}),
                            interactive=True)
    asked = capsys.readouterr().out
    assert "owner" in asked and "license" in asked and "1 - MIT" in asked
    assert "name" not in asked and "slug" not in asked  # given, computed
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
    assert git(old.path, "log", "--format=%s") == f"Create project from template file://{repo}\n"
    with pytest.raises(TemplateError, match="cannot fetch template"):
        create_project(conf(tmp_path / "c.yaml", template=f"file://{repo}", checkout="no-such-tag",
                            directory="templates/thing", output_dir="v3", context={"owner": "o"}))
    with pytest.raises(TemplateError, match="not found"):
        create_project(conf(tmp_path / "d.yaml", template=f"file://{repo}", directory="templates/nope",
                            output_dir="v4", context={"owner": "o"}))
    assert not (tmp_path / "v3").exists() and not (tmp_path / "v4").exists()


def test_zip_template_with_directory(tmp_path: Path) -> None:
    src = write_template(tmp_path / "src" / "bundle" / "thing", hooks=False)
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        top = src.parent
        zf.write(top, top.name)  # cookiecutter wants the top-level directory first
        for path in sorted(top.rglob("*")):
            zf.write(path, path.relative_to(top.parent))
    result = create_project(conf(tmp_path / "c.yaml", template="bundle.zip", directory="thing", output_dir="z",
                                 context={"owner": "Z"}))
    assert (result.path / "README.md").read_text() == "# Thing by Z (MIT)\n"
    assert (result.path / "pkg/sub/deep.py").exists() and result.commit


def outer_repo(root: Path, ignore: str) -> Path:
    """A repository with one commit that ignores ``ignore`` (like tracker's own, which ignores demo/)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / ".gitignore").write_text(ignore)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "outer")
    (root / "demo").mkdir()
    return root


@pytest.mark.parametrize("ignored", [True, False])
def test_a_project_inside_another_repository_is_a_repository_of_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ignored: bool) -> None:
    from tracker import trials
    from tracker.project import Project
    from tracker.runs import RunOptions, run_experiment

    outer = outer_repo(tmp_path / "outer", "demo/\n" if ignored else "*.log\n")
    write_template(tmp_path / "tpl", hooks=False)
    (tmp_path / "tpl/{{cookiecutter.slug}}/experiments").mkdir()
    (tmp_path / "tpl/{{cookiecutter.slug}}/experiments/quick.yaml").write_text(
        f"command: [{sys.executable!r}, -c, \"print('acc: 1')\"]\nseeds: 1\nseed_flag: null\n")
    conf(outer / "demo" / "c.yaml", template=str(tmp_path / "tpl"), context={"owner": "x"})
    monkeypatch.chdir(outer / "demo")
    code, out, err = cli("create", "c.yaml")
    assert code == 0, err
    project = outer / "demo" / "thing"
    assert f"created {project}, a new git repository (commit " in err
    assert f"it is a repository of its own inside the repository {outer}" in err
    assert ("will list it as untracked" in err) is not ignored
    assert git(project, "rev-parse", "--show-toplevel").strip() == str(project)
    assert git(project, "status", "--porcelain") == ""
    assert git(outer, "rev-list", "--count", "HEAD") == "1\n"  # nothing committed in the outer repository
    # trials are tied to the project's own commits, so the code a trial ran can be checked out
    proj = Project.load(project)
    trial = run_experiment(proj, "quick", RunOptions()).trials[0]
    assert trial.status == "completed" and trial.commit == git(project, "rev-parse", "HEAD").strip()
    trials.checkout(proj, trial.id, tmp_path / "exact")
    assert (tmp_path / "exact" / "README.md").read_text() == "# Thing by x (MIT)\n"


def test_json_names_the_enclosing_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outer = outer_repo(tmp_path / "outer", "demo/\n")
    write_template(tmp_path / "tpl", hooks=False)
    conf(outer / "demo" / "c.yaml", template=str(tmp_path / "tpl"), context={"owner": "x"})
    monkeypatch.chdir(outer / "demo")
    code, out, err = cli("create", "c.yaml", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["initialized_git"] and result["commit"]
    assert (result["parent_repo"], result["ignored_by_parent"]) == (str(outer), True)


def test_existing_project_needs_overwrite_and_keeps_its_history(tmp_path: Path) -> None:
    write_template(tmp_path / "tpl", hooks=False)
    result = create_project(conf(tmp_path / "c.yaml", template="./tpl", context={"owner": "x"}))
    first = result.commit
    (result.path / "README.md").write_text("mine\n")
    (result.path / "notes.txt").write_text("my own file\n")
    with pytest.raises(UsageError, match=r"thing\" directory already exists.*'overwrite: true' in /.*c.yaml"):
        create_project(tmp_path / "c.yaml")
    assert (result.path / "README.md").read_text() == "mine\n"
    assert not any(p.name.startswith(".tracker-create-") for p in tmp_path.iterdir())
    again = create_project(conf(tmp_path / "c.yaml", template="./tpl", overwrite=True, context={"owner": "y"}))
    assert again.path == result.path and not again.initialized_git and again.commit is None
    assert (again.path / "README.md").read_text() == "# Thing by y (MIT)\n"
    assert (again.path / "notes.txt").read_text() == "my own file\n"  # what the template does not make stays
    assert git(again.path, "log", "--format=%H").split() == [first]  # the user commits the update
    code, _, err = cli("create", str(tmp_path / "c.yaml"))
    assert code == 0 and "updated " in err and "review and commit" in err


def test_fallback_identity_only_without_a_configured_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_template(tmp_path / "tpl", hooks=False)
    (tmp_path / "empty.gitconfig").write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "empty.gitconfig"))
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(var, raising=False)
    result = create_project(conf(tmp_path / "c.yaml", template="./tpl", context={"owner": "x"}))
    assert git(result.path, "log", "--format=%an <%ae>") == "tracker <tracker@localhost>\n"


def test_not_a_template_and_no_replay_files_in_home(tmp_path: Path) -> None:
    from cookiecutter.config import DEFAULT_CONFIG

    (tmp_path / "empty").mkdir()
    with pytest.raises(TemplateError, match="not found"):
        create_project(conf(tmp_path / "c.yaml", template="./empty"))
    name = f"tpl-{os.getpid()}-{tmp_path.name}"
    write_template(tmp_path / name, hooks=False)
    create_project(conf(tmp_path / "c.yaml", template=f"./{name}", context={"owner": "x"}))
    assert not (Path(DEFAULT_CONFIG["replay_dir"]) / f"{name}.json").exists()


def test_default_template_end_to_end_over_three_seeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sklearn")
    monkeypatch.chdir(tmp_path)
    conf(tmp_path / "conf.yaml", template="default", context={"project_name": "Digits Demo", "author": "A. Researcher"})
    code, out, err = cli("create", "conf.yaml", "--json")
    assert code == 0, err
    project = Path(json.loads(out)["path"])
    assert project == tmp_path / "digits-demo"
    monkeypatch.chdir(project)
    # the experiment's command is `python train.py`: run it with this interpreter
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    code, out, err = cli("run", "baseline", "--quiet", "--json")
    assert code == 0, err
    trials = json.loads(out)
    from tracker.project import Project

    presets = yaml.safe_load((project / "tracker.yaml").read_text())["seeds"]
    assert [t["seed"] for t in trials] == presets[:3] and len(set(presets[:3])) == 3
    assert all(t["status"] == "completed" and not t["dirty"] for t in trials)
    store = Project.find().store
    for t in trials:
        assert 0.5 < t["metrics"]["val/acc"] <= 1 and 0.5 < t["metrics"]["test/acc"] <= 1
        directory = project / ".tracker/trials" / t["id"]
        assert (directory / "model.pkl").stat().st_size > 0
        assert {"val_acc", "test_acc"} <= set(json.loads((directory / "metrics.json").read_text()))
        autolog = store.get(t["id"]).extra["autolog"]["SGDClassifier"]["params"]
        assert (autolog["eta0"], autolog["learning_rate"], autolog["random_state"]) == (0.01, "constant", t["seed"])
    losses = [p.value for p in store.metrics(trials[0]["id"], "train/loss")]
    assert len(losses) == 10 and losses[-1] < losses[0]
    # the script also runs without tracker
    out = subprocess.run([sys.executable, "train.py", "--epochs", "2"], cwd=project, capture_output=True,
                         text=True, check=True).stdout
    assert "test/acc:" in out and (project / "outputs/model.pkl").exists()
