"""tracker create with real cookiecutter templates (ours and third-party-style ones) and real git."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
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
        ".gitignore", ".trackerignore", "README.md", "experiments/baseline.yaml", "experiments/tune.yaml",
        "experiments/phases.yaml", "experiments/rl.yaml", "evaluate.py", "rl.py",
        "requirements.txt", "tracker.yaml", "train.py"}
    settings = yaml.safe_load((project / "tracker.yaml").read_text())
    assert settings["name"] == "digits-demo" and len(settings["seeds"]) == 10
    assert settings["environment"] == {"venv": True, "shared": True}  # trials get scikit-learn from requirements.txt
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


def test_default_template_tune_experiment_is_a_valid_search() -> None:
    from tracker.config import ExperimentConfig, parse_model
    from tracker.search import space

    text = (default_template() / "{{cookiecutter.project_slug}}" / "experiments" / "tune.yaml").read_text()
    config = parse_model(text, ExperimentConfig, "tune.yaml")
    ranges = space.ranges(config, space.Where("tune.yaml", {}))
    assert set(space.distributions(ranges)) == {"lr", "alpha", "loss"}  # what train.py takes as flags
    assert config.objective is not None and config.objective.metric == "val/acc"


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


def test_input_that_ends_at_a_prompt_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_template(tmp_path / "tpl", hooks=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # Ctrl-D at the first prompt
    with pytest.raises(UsageError, match="the input ended before a value for 'owner' was given") as caught:
        create_project(conf(tmp_path / "c.yaml", template="./tpl", context={"name": "N"}), interactive=True)
    assert "--no-input" in (caught.value.hint or "")
    assert not (tmp_path / "n").exists()


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
    code, _, err = cli("create", "c.yaml")
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


def _default_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The bundled template made into a project whose trials run with this interpreter."""
    pytest.importorskip("sklearn")
    monkeypatch.chdir(tmp_path)
    conf(tmp_path / "conf.yaml", template="default", context={"project_name": "Digits Demo", "author": "A. Researcher"})
    code, out, err = cli("create", "conf.yaml", "--json")
    assert code == 0, err
    project = Path(json.loads(out)["path"])
    assert project == tmp_path / "digits-demo"
    monkeypatch.chdir(project)
    # the template's own venv would come from PyPI, which tests never reach: its trials run
    # here with this interpreter (the experiment's command is `python train.py`)
    settings = (project / "tracker.yaml").read_text()
    assert "environment:\n  venv: true\n  shared: true\n" in settings
    (project / "tracker.yaml").write_text(settings.replace("environment:\n  venv: true\n  shared: true\n", ""))
    git(project, "commit", "-qam", "use the current python")
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return project


def test_default_template_end_to_end_over_three_seeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _default_project(tmp_path, monkeypatch)
    code, out, err = cli("run", "baseline", "--quiet", "--json")
    assert code == 0, err
    trials = json.loads(out)
    from tracker.project import Project

    presets = yaml.safe_load((project / "tracker.yaml").read_text())["seeds"]
    assert [t["seed"] for t in trials] == presets[:3] and len(set(presets[:3])) == 3
    assert all(t["status"] == "completed" and not t["dirty"] for t in trials)
    store = Project.find().store
    for t in trials:
        # the test split waits for `tracker test`: baseline passes the switch --no-test (booleans: bare)
        assert 0.5 < t["metrics"]["val/acc"] <= 1 and not any("test" in m for m in t["metrics"])
        directory = project / ".tracker/trials" / t["id"]
        assert (directory / "model.pkl").stat().st_size > 0
        assert set(json.loads((directory / "metrics.json").read_text())) == {"val_acc", "epochs"}
        assert t["params"]["no-test"] is True
        autolog = store.get(t["id"]).extra["autolog"]["SGDClassifier"]["params"]
        assert (autolog["eta0"], autolog["learning_rate"], autolog["random_state"]) == (0.01, "constant", t["seed"])
    losses = [p.value for p in store.metrics(trials[0]["id"], "train/loss")]
    assert len(losses) == 10 and losses[-1] < losses[0]
    # the script also runs without tracker
    out = subprocess.run([sys.executable, "train.py", "--epochs", "2"], cwd=project, capture_output=True,
                         text=True, check=True).stdout
    assert "test/acc:" in out and (project / "outputs/model.pkl").exists()


@pytest.mark.parametrize(("experiment", "metric", "train_metric"), [
    ("phases", "acc", "train/loss"),  # supervised: a train/validation/test split of the digits
    ("rl", "return", "train/return"),  # RL: training episodes vs fresh evaluation episodes
])
def test_default_template_phase_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, experiment: str,
                                         metric: str, train_metric: str) -> None:
    _default_project(tmp_path, monkeypatch)
    code, out, err = cli("run", experiment, "--seeds", "2", "-j", "2", "--quiet", "--json")
    assert code == 0, err
    trials = json.loads(out)
    assert len(trials) == 6 and all(t["status"] == "completed" for t in trials)
    assert all({train_metric, f"val/{metric}"} <= set(t["metrics"]) for t in trials)
    assert not any(name.startswith("test/") for t in trials for name in t["metrics"])
    code, out, err = cli("test", experiment, "--best", f"val/{metric}", "--json", "-q")
    assert code == 0, err
    tested = json.loads(out)
    assert tested["configurations"] == 3 and set(tested["metrics"]) == {f"test/{metric}"}
    means = {}
    for t in trials:
        means.setdefault(json.dumps(t["params"], sort_keys=True), []).append(t["metrics"][f"val/{metric}"])
    means = {p: sum(v) / len(v) for p, v in means.items()}
    # the chosen configuration has the best validation mean (several may tie for it)
    assert means[json.dumps(tested["params"], sort_keys=True)] == pytest.approx(max(means.values()))
    assert tested["validation"] == pytest.approx(max(means.values())) and len(tested["trials"]) == 2


def tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its content (files), its target (symlinks) or 'dir'."""
    found = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            found[key] = "-> " + os.readlink(path)
        elif path.is_dir():
            found[key] = "dir"
        else:
            found[key] = path.read_bytes().decode(errors="replace")
    return found


@pytest.mark.parametrize("value", ["../../escape", "{tmp}/escape-abs", "a/../../b"])
def test_a_context_value_cannot_put_the_project_outside_output_dir(tmp_path: Path, value: str) -> None:
    value = value.format(tmp=tmp_path)
    (tmp_path / "work" / "x").mkdir(parents=True)
    path = conf(tmp_path / "work" / "x" / "conf.yaml", template="default",
                context={"project_name": value, "author": "A"})
    before = tree(tmp_path)
    with pytest.raises(TemplateError, match="not a single folder name"):
        create_project(path)
    assert tree(tmp_path) == before


@pytest.mark.parametrize("value", ["../../../escaped", "../sibling", "{tmp}/escaped-abs"])
@pytest.mark.parametrize("where", ["file", "folder", "raw folder"])
def test_a_value_used_in_a_file_name_cannot_write_outside_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      value: str, where: str) -> None:
    value = value.format(tmp=tmp_path)
    write_template(tmp_path / "tpl", hooks=False)
    template = tmp_path / "tpl"
    data = json.loads((template / "cookiecutter.json").read_text())
    data["fname"] = "ok"
    if where == "raw folder":
        data["_copy_without_render"] = [*data["_copy_without_render"], "{{cookiecutter.fname}}"]
    (template / "cookiecutter.json").write_text(json.dumps(data))
    inner = template / "{{cookiecutter.slug}}"
    if where == "file":
        (inner / "{{cookiecutter.fname}}.txt").write_text("x\n")
    else:
        (inner / "{{cookiecutter.fname}}").mkdir()
        (inner / "{{cookiecutter.fname}}" / "inside.txt").write_text("x\n")
    (tmp_path / "out").mkdir()
    path = conf(tmp_path / "out" / "c.yaml", template=str(template), context={"owner": "o", "fname": value})
    before = tree(tmp_path)
    if where == "raw folder" and value.startswith("/"):  # cookiecutter appends it to the project's path
        assert (create_project(path).path / value.lstrip("/") / "inside.txt").read_text() == "x\n"
        return
    with pytest.raises(TemplateError, match="outside the project directory"):
        create_project(path)
    assert tree(tmp_path) == before
    assert not list(tmp_path.parent.glob("escaped*"))  # where ../../../escaped would have gone
    monkeypatch.chdir(tmp_path / "out")
    code, out, err = cli("create", "c.yaml")
    assert code == 1 and out == "" and err.count("\n") == 1 and "nothing was created" in err
    # the same template with a harmless value works, the folder copied or rendered
    create_project(conf(tmp_path / "out" / "c.yaml", template=str(template), context={"owner": "o", "fname": "sub"}))
    assert (tmp_path / "out/thing" / ("sub.txt" if where == "file" else "sub/inside.txt")).read_text() == "x\n"


def test_a_failing_hook_with_overwrite_restores_the_project_exactly(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    write_template(tmp_path / "tpl")
    made = create_project(conf(tmp_path / "c.yaml", template="./tpl", context={"owner": "x"})).path
    (made / "README.md").write_text("my edits\n")
    (made / "pkg/sub/deep.py").unlink()
    (made / "extra.txt").write_text("mine\n")
    write_template(tmp_path / "bad", post_fail=True)
    before = tree(tmp_path / "thing")
    path = conf(tmp_path / "c.yaml", template="./bad", overwrite=True, context={"owner": "y"})
    with pytest.raises(TemplateError, match="post_gen_project hook failed") as failed:
        create_project(path)
    assert "the existing project was left as it was" in str(failed.value)
    assert "nothing was created" not in str(failed.value)
    assert tree(tmp_path / "thing") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "c.yaml", "thing", "tpl"]


def test_overwrite_replaces_a_symlink_instead_of_writing_through_it(tmp_path: Path) -> None:
    write_template(tmp_path / "tpl", hooks=False)
    made = create_project(conf(tmp_path / "c.yaml", template="./tpl", context={"owner": "x"})).path
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.rmtree(made / "pkg")
    (made / "pkg").symlink_to("../outside")
    create_project(conf(tmp_path / "c.yaml", template="./tpl", overwrite=True, context={"owner": "y"}))
    assert list(outside.iterdir()) == []
    assert not (made / "pkg").is_symlink() and (made / "pkg/sub/deep.py").read_text() == "NAME = 'thing'\n"


def test_symlinks_that_lead_outside_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not copy me\n")
    write_template(tmp_path / "tpl", hooks=False)
    (tmp_path / "tpl/{{cookiecutter.slug}}/leak.txt").symlink_to(secret)
    before = tree(tmp_path)
    with pytest.raises(TemplateError, match=r"leak.txt is a symlink to .*secret.txt, outside the template"):
        create_project(conf(tmp_path / "c.yaml", template="./tpl", context={"owner": "x"}))
    assert tree(tmp_path) == {**before, "c.yaml": tree(tmp_path)["c.yaml"]}
    # a hook that links out of the project is refused before anything is moved into place
    write_template(tmp_path / "hooked")
    (tmp_path / "hooked/hooks/post_gen_project.py").write_text(
        "import os\nos.symlink('../../../secret.txt', 'data')\nos.symlink('README.md', 'README.link')\n")
    with pytest.raises(TemplateError, match=r"data is a symlink to \.\./\.\./\.\./secret\.txt, which leads outside"):
        create_project(conf(tmp_path / "c.yaml", template="./hooked", context={"owner": "x"}))
    assert not (tmp_path / "thing").exists()
    # links inside the project are fine
    (tmp_path / "hooked/hooks/post_gen_project.py").write_text("import os\nos.symlink('README.md', 'README.link')\n")
    made = create_project(conf(tmp_path / "c.yaml", template="./hooked", context={"owner": "x"})).path
    assert os.readlink(made / "README.link") == "README.md"


def test_python_caches_of_a_template_are_not_copied(tmp_path: Path) -> None:
    write_template(tmp_path / "tpl", hooks=False)
    cache = tmp_path / "tpl/{{cookiecutter.slug}}/pkg/__pycache__"
    cache.mkdir()
    (cache / "deep.cpython-311.pyc").write_bytes(b"\x00\x01compiled")
    (tmp_path / "tpl/{{cookiecutter.slug}}/stray.pyc").write_bytes(b"\x00\x01compiled")
    made = create_project(conf(tmp_path / "c.yaml", template="./tpl", context={"owner": "x"})).path
    assert not (made / "pkg/__pycache__").exists() and not (made / "stray.pyc").exists()
    assert (made / "pkg/sub/deep.py").exists()
    assert not [f for f in git(made, "ls-files").split() if "pycache" in f or f.endswith(".pyc")]


def test_the_wheel_ships_the_template_without_python_caches(tmp_path: Path) -> None:
    pytest.importorskip("hatchling")
    root = Path(__file__).resolve().parents[2]
    inner = root / "templates/default/{{cookiecutter.project_slug}}"
    planted = [inner / "__pycache__/train.cpython-311.pyc", inner / "train.pyc", root / "templates/default/x.pyo"]
    planted = [p for p in planted if not p.exists()]
    try:
        for path in planted:
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(b"\x00compiled")
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                        "-q", "-w", str(tmp_path), str(root)], check=True, capture_output=True)
    finally:
        for path in planted:
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            (inner / "__pycache__").rmdir()
    (wheel,) = tmp_path.glob("seedtracker-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "tracker/_templates/default/cookiecutter.json" in names
    assert "tracker/_templates/default/{{cookiecutter.project_slug}}/train.py" in names
    assert "tracker/execution/runner.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]


def test_a_local_template_honours_checkout_or_refuses_it(tmp_path: Path) -> None:
    work = write_template(tmp_path / "work", hooks=False)
    git(work, "init", "-q")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "v1")
    git(work, "tag", "v1")
    readme = work / "{{cookiecutter.slug}}" / "README.md"
    readme.write_text("# v2 of {{ cookiecutter.name }}\n")
    git(work, "commit", "-qam", "v2")
    made = create_project(conf(tmp_path / "a.yaml", template="./work", checkout="v1", output_dir="a",
                               context={"owner": "o"}))
    assert (made.path / "README.md").read_text() == "# Thing by o (MIT)\n"  # v1, not the folder as it is
    write_template(tmp_path / "plain", hooks=False)
    with pytest.raises(ConfigError, match=r"'checkout' applies to a git repository, and template '\./plain' is a "
                                          r"folder that is not one"):
        create_project(conf(tmp_path / "b.yaml", template="./plain", checkout="v1", context={"owner": "o"}))


def test_file_url_templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a bare repository whose name does not say "git" (cookiecutter guesses the kind from the name)
    work = write_template(tmp_path / "work", hooks=False)
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    subprocess.run(["git", "add", "-A"], cwd=work, check=True)
    subprocess.run(["git", "commit", "-qm", "t"], cwd=work, check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(tmp_path / "shared" / "lab-template")], check=True)
    made = create_project(conf(tmp_path / "a.yaml", template=f"file://{tmp_path}/shared/lab-template",
                               output_dir="a", context={"owner": "o"}))
    assert (made.path / "README.md").read_text() == "# Thing by o (MIT)\n"
    # so is a working copy
    made = create_project(conf(tmp_path / "b.yaml", template=f"file://{work}", output_dir="b", context={"owner": "o"}))
    assert (made.path / "README.md").read_text() == "# Thing by o (MIT)\n"
    # a folder that is no repository: a hint to write it as a path
    plain = write_template(tmp_path / "plain", hooks=False)
    with pytest.raises(TemplateError, match=r"is a folder, not a .* repository.*'template: .*plain'"):
        create_project(conf(tmp_path / "c.yaml", template=f"file://{plain}", context={"owner": "o"}))
    # nothing there: one line naming what the clone said, no traceback
    monkeypatch.chdir(tmp_path)
    for url in (f"file://{tmp_path}/nowhere/lab", f"git+file://{tmp_path}/nowhere/lab.git"):
        conf(tmp_path / "d.yaml", template=url, context={"owner": "o"})
        code, out, err = cli("create", "d.yaml")
        assert code == 1 and out == "", err
        assert err.count("\n") == 1 and "Traceback" not in err and "unexpected" not in err
        assert err.startswith(f"error: cannot fetch template {url!r}: '{tmp_path}/nowhere/lab")
        assert "does not appear to be a git repository" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "a.yaml", "b", "b.yaml", "c.yaml", "d.yaml",
                                                          "plain", "shared", "work"]


def test_default_template_needs_only_a_project_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    conf(tmp_path / "conf.yaml", template="default", context={"project_name": "Digits Demo"})
    code, _, err = cli("create", "conf.yaml")  # no terminal
    assert code == 0, err
    assert "Author: Test User\n" in (tmp_path / "digits-demo/README.md").read_text()  # git config user.name
    # without a git user name: the login name
    (tmp_path / "empty.gitconfig").write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "empty.gitconfig"))
    monkeypatch.setenv("USER", "ada")
    monkeypatch.setenv("LOGNAME", "ada")
    conf(tmp_path / "conf.yaml", template="default", context={"project_name": "Second"})
    code, _, err = cli("create", "conf.yaml")
    assert code == 0, err
    assert "Author: ada\n" in (tmp_path / "second/README.md").read_text()
    # a value in context still wins
    conf(tmp_path / "conf.yaml", template="default", context={"project_name": "Third", "author": "Grace"})
    assert cli("create", "conf.yaml")[0] == 0
    assert "Author: Grace\n" in (tmp_path / "third/README.md").read_text()


def test_a_template_of_templates_uses_the_first_without_a_terminal(tmp_path: Path) -> None:
    write_template(tmp_path / "tpl" / "first", hooks=False)
    write_template(tmp_path / "tpl" / "second", hooks=False)
    (tmp_path / "tpl/cookiecutter.json").write_text(json.dumps({"templates": {
        "first": {"path": "./first", "title": "First", "description": "one"},
        "second": {"path": "./second", "title": "Second", "description": "two"}}}))
    (tmp_path / "tpl/second/{{cookiecutter.slug}}/README.md").write_text("second\n")
    made = create_project(conf(tmp_path / "c.yaml", template="./tpl", context={"owner": "o", "name": "N"}))
    assert (made.path / "README.md").read_text() == "# N by o (MIT)\n"  # its variables are the nested one's
