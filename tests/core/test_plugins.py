"""Third-party executors and stores arrive through entry points, like storage backends."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tracker.errors import UsageError
from tracker.plugins import Registry
from tracker.project import Project


def _plugin(site: Path, group: str, name: str, module: str, source: str) -> None:
    info = site / f"{module}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{name} = {module}:Plugin\n")
    (site / f"{module}.py").write_text(textwrap.dedent(source))


def test_third_party_executor_runs_trials_and_is_recorded(project_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from tracker.execution import registry

    _plugin(tmp_path / "site", "tracker.executors", "nice", "tracker_nice", """
        from tracker.execution.local import LocalExecutor

        class Plugin(LocalExecutor):
            '''A third-party executor: local trials, under its own name.'''
            name = "nice"
    """)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(registry, "executors", Registry("executor", registry.BaseExecutor,
                                                        registry.ENTRY_POINT_GROUP, registry.BUILTIN))
    assert registry.executors.names() == ["local", "nice", "ssh"]
    project = Project.find()
    from tracker.runs import RunOptions, run_experiment

    result = run_experiment(project, "base", RunOptions(seeds=[1]), executor=registry.open_executor(project, "nice"))
    assert {(t.status, t.executor) for t in result.trials} == {("completed", "nice")}
    with pytest.raises(UsageError, match="already registered"):
        registry.executors.register("nice", "x:Y")
    with pytest.raises(UsageError, match="unknown executor 'slurm'"):
        registry.open_executor(project, "slurm")


def test_third_party_store_scheme(project_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tracker.store as store_module

    _plugin(tmp_path / "site", "tracker.stores", "memo", "tracker_memo", """
        from tracker.store import SQLiteStore

        class Plugin(SQLiteStore):
            '''A third-party store: SQLite in memory under the memo:// scheme.'''
            @classmethod
            def from_url(cls, url):
                return cls.memory()
    """)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(store_module, "stores", Registry("store scheme", store_module.BaseStore,
                                                         store_module.ENTRY_POINT_GROUP, store_module._BUILTIN))
    (project_dir / "tracker.yaml").write_text((project_dir / "tracker.yaml").read_text() + "store: memo://x\n")
    store = Project.find().store
    assert type(store).__name__ == "Plugin" and store.list_trials() == []
