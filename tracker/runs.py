"""``tracker run``: expand experiments into trials, record the code, run them.

This is the library entry point the CLI calls; tests call it directly::

    result = run_experiments(Project.find(), ["baseline"], RunOptions(seed_count=3))
    print([t.status for t in result.trials])

A run checks everything it can before it writes anything (the experiments exist, the
options fit them, the project is in git), so a run refused at the start leaves nothing
behind. Trials already completed with the same params, seed, code and experiment
settings are skipped unless ``rerun`` is set: each trial carries a fingerprint of those
(``extra["fingerprint"]``), found again with one indexed query.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tracker import codeset, experiments, gitinfo, venvs
from tracker.config import ExperimentConfig, check_tags
from tracker.errors import GitError, ProjectError, TrackerError, UsageError
from tracker.execution import lifecycle
from tracker.execution.base import BaseExecutor, Reporter
from tracker.experiments import TrialSpec
from tracker.launch import Launcher, fingerprint, spec_fingerprints
from tracker.launch import create_trials as create_trials  # re-exported: tests and plug-ins make trials by hand
from tracker.project import Project
from tracker.store import Trial

if TYPE_CHECKING:
    from tracker.execution.targets import Target

DEFAULT_MAX_FAILURES = 3
"""A run stops starting trials after this many failed the same way before any completed."""


@dataclass(frozen=True)
class RunOptions:
    """What ``tracker run`` was asked to do (the same for every experiment of the run)."""

    seeds: list[int] = field(default_factory=list)
    seed_count: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    parallel: int | None = None
    dry_run: bool = False
    remote: list[str] = field(default_factory=list)  # SSH hosts: the same as target="gpu1,gpu2"
    target: str | Target | None = None  # where the trials run (tracker.execution.targets); None: local
    backup_to: str | None = None
    rerun: bool = False  # run trials again even if one with the same fingerprint completed
    max_failures: int = DEFAULT_MAX_FAILURES  # 0: never stop early
    tags: list[str] = field(default_factory=list)  # on top of the experiment file's tags


@dataclass(frozen=True)
class Plan:
    """What a run will do: its experiments, the trials to run and the completed ones it skips."""

    configs: dict[str, ExperimentConfig]
    specs: list[TrialSpec]
    skipped: list[Trial]
    code: gitinfo.CodeState | None  # None only for a dry run outside git
    prints: list[str | None] = field(default_factory=list)  # each spec's fingerprint, computed once (with code)
    reasons: list[str | None] = field(default_factory=list)  # per spec: why a trial done before runs again


@dataclass(frozen=True)
class RunResult:
    """The outcome of a run: its trials (final), or the plan of a dry run."""

    run_id: str | None
    experiments: list[str]
    specs: list[TrialSpec]
    trials: list[Trial]
    skipped: list[Trial] = field(default_factory=list)
    dry_run: bool = False
    stopped: str | None = None  # why the run started no more trials (see --max-failures)
    reasons: list[str | None] = field(default_factory=list)  # per spec: why a trial done before runs again

    @property
    def failed(self) -> list[Trial]:
        return [t for t in self.trials if t.status != "completed"]


def unknown_params(name: str, config: ExperimentConfig, options: RunOptions) -> list[str]:
    """Warnings for ``--param``/``--grid`` names the experiment does not know (scripts may take
    others, so these are warnings: a typo such as ``lrr`` is the usual cause)."""
    known = set(config.params) | set(config.grid) | set(config.search)
    out = []
    for flag, names in (("--param", options.params), ("--grid", options.grid)):
        for param in names:
            if param not in known:
                listed = ", ".join(sorted(known)) or "none"
                out.append(f"warning: {flag} {param} is not among the params, grid or search keys of "
                           f"experiment {name!r} ({listed}); it is passed to the script anyway")
    return out


def plan(project: Project, names: Sequence[str], options: RunOptions, reporter: Reporter | None = None) -> Plan:
    """Check the experiments and options, record nothing but seeds, and expand them into trial specs.

    Unknown experiments, a bad ``--backup-to`` and (for a real run) a project outside git fail
    here, before anything is written. Trials already completed with the same fingerprint
    are left out (``skipped``) unless ``options.rerun``.
    """
    reporter = reporter or Reporter()
    names = list(dict.fromkeys(names))
    check_tags(options.tags)
    if not names:
        raise UsageError("name at least one experiment to run", hint="see 'tracker experiments list'")
    configs = {name: experiments.load(project, name) for name in names}  # every name, before any work
    _check_max_failures(options.max_failures)
    if options.parallel is not None and options.parallel < 1:
        raise UsageError(f"--parallel must be at least 1, got {options.parallel}")
    for name, config in configs.items():
        target = options.backup_to or config.backup
        if target and target not in project.config.storage:
            where = "--backup-to" if options.backup_to else f"'backup:' of experiment {name!r}"
            raise UsageError(f"no storage target {target!r} for {where}", hint="see 'tracker storage list'")
        for warning in unknown_params(name, config, options):
            reporter.message(warning)
    try:
        code: gitinfo.CodeState | None = gitinfo.capture(project.root, project.config.code)
    except (ProjectError, GitError):
        if not options.dry_run:
            raise
        code = None  # a dry run lists the trials anyway; nothing can be skipped without code
    if code is not None and (line := codeset.left_out_line(code.left_out)):
        reporter.message(line)
    specs: list[TrialSpec] = []
    for name, config in configs.items():
        expanded = experiments.expand(project, name, config, seeds=options.seeds, seed_count=options.seed_count,
                                      params=options.params, grid=options.grid)
        if not expanded:
            raise UsageError(f"experiment {name!r} expands to no trials")
        specs += expanded
    if code is None:
        return Plan(configs, specs, [], None)
    prints = spec_fingerprints(specs, code, configs)
    if options.rerun:
        return Plan(configs, specs, [], code, prints)
    done = {t.extra["fingerprint"]: t for t in project.store.list_trials(fingerprints=[p for p in prints if p])
            if t.status == "completed"}
    skipped = [done[p] for p in prints if p in done]
    specs, prints = keep_specs(specs, prints, done)
    return Plan(configs, specs, skipped, code, prints, why_run_again(project, specs, code))


def why_run_again(project: Project, specs: Sequence[TrialSpec], code: gitinfo.CodeState) -> list[str | None]:
    """For each spec, why the completed trial with its experiment, params and seed (the latest) is not
    re-used: "code changed: notes.txt" or "experiment settings changed"; None when no such trial
    exists. One store query per experiment, one ``git diff`` per code version.
    """
    def key(params: dict[str, object], seed: int | None) -> str:
        return json.dumps([params, seed], sort_keys=True, default=str)

    done: dict[str, dict[str, Trial]] = {}
    for name in dict.fromkeys(s.experiment for s in specs if s.phase == "train"):
        trials = project.store.list_trials(experiment=name, status="completed")
        done[name] = {key(t.params, t.seed): t for t in trials if t.phase == "train"}
    now = code.snapshot or code.commit
    diffs: dict[str, list[str] | None] = {}
    out: list[str | None] = []
    for spec in specs:
        before = done.get(spec.experiment, {}).get(key(spec.params, spec.seed)) if spec.phase == "train" else None
        if before is None:
            out.append(None)
            continue
        then = before.snapshot or before.commit
        if then and now and then not in diffs:
            diffs[then] = [] if then == now else gitinfo.changed_files(project.root, then, now)
        files = diffs.get(then) if then and now else None
        if files is None:
            out.append("code changed (the earlier trial's code is not in this repository)")
        elif files:
            more = f" and {len(files) - 3} more" if len(files) > 3 else ""
            out.append("code changed: " + ", ".join(files[:3]) + more)
        else:
            out.append("experiment settings changed")
    return out


def keep_specs(specs: list[TrialSpec], prints: list[str | None], drop: Container[str | None]
          ) -> tuple[list[TrialSpec], list[str | None]]:
    """The specs (and their fingerprints) whose fingerprint is not in ``drop``."""
    kept = [(s, p) for s, p in zip(specs, prints, strict=True) if p not in drop]
    return [s for s, _ in kept], [p for _, p in kept]


def _check_max_failures(value: int) -> None:
    if value < 0:
        raise UsageError(f"--max-failures must be 0 (never stop early) or more, got {value}")


def run_target(project: Project, options: RunOptions) -> Target:
    """Where the run's trials run: ``options.target`` (or its ``remote`` hosts), else local."""
    from tracker.execution import targets

    if options.remote and options.target:
        raise UsageError("--remote and --target both say where trials run", hint="give one of them")
    if isinstance(options.target, targets.Target):
        return options.target
    return targets.ssh_hosts(options.remote) if options.remote else targets.resolve(project, options.target)


def make_executor(project: Project, options: RunOptions, venv: venvs.ProjectEnv | None = None) -> BaseExecutor:
    """The executor for a run: its target's (local, in ``venv`` when given, unless the run names another)."""
    target = run_target(project, options)
    if target.kind != "executor":
        raise UsageError(f"target {target.name!r} ({target.type}) starts workers for a queue; this command drives "
                         "its trials itself", hint="use it with 'tracker run', or queue the trials (--queue) "
                         "and start workers there")
    return target.executor(project, parallel=options.parallel, venv=venv)


def launcher(project: Project, options: RunOptions, reporter: Reporter | None = None,
             executor: BaseExecutor | None = None) -> Launcher:
    """The launcher for a run's trials: ``executor`` as given, else the one its target chooses
    (local trials in the project's venv when tracker.yaml switches it on; remotes build their own)."""
    from tracker.execution import registry

    target = run_target(project, options)
    local = target.kind == "executor" and registry.executors.get(target.type).uses_project_venv
    return Launcher(project, reporter, executor=executor, local=local,
                    choose=lambda venv: make_executor(project, options, venv))


def run_experiments(project: Project, names: Sequence[str], options: RunOptions,
                    reporter: Reporter | None = None, executor: BaseExecutor | None = None) -> RunResult:
    """Run the experiments ``names`` as ``options`` say, as one run; return its trials in their final state.

    Local trials run in the project's venv when tracker.yaml switches it on (built before any
    trial is created, so a build that fails leaves no trial behind). An ``executor`` given
    here is used as it is.
    """
    reporter = reporter or Reporter()
    names = list(dict.fromkeys(names))
    planned = plan(project, names, options, reporter)
    if options.dry_run:
        return RunResult(None, names, planned.specs, [], planned.skipped, dry_run=True, reasons=planned.reasons)
    if planned.skipped and options.tags:  # so a tagged study holds every trial it consists of
        project.store.tag([t.id for t in planned.skipped], add=options.tags)
    if planned.skipped and planned.specs:  # with nothing left to run, the result says it
        reporter.message(f"skipped {len(planned.skipped)} trial(s) already completed with the same params, seed, "
                         "code and experiment settings (--rerun runs them again)")
    if not planned.specs:
        return RunResult(None, names, [], [], planned.skipped)
    assert planned.code is not None
    code = planned.code
    start = launcher(project, options, reporter, executor)
    start.prepare()
    _warn_code(code, reporter)
    env_ids = start.record(planned.configs)
    trials = start.create(planned.specs, planned.configs, code, env_ids, options.tags, prints=planned.prints)
    driver = start.driver(max_failures=options.max_failures)
    start.drive(trials, driver)
    final = project.store.list_trials(run_id=trials[0].run_id)
    _backup(project, planned.configs, options, final, reporter)
    return RunResult(trials[0].run_id, names, planned.specs, final, planned.skipped, stopped=driver.stopped,
                     reasons=planned.reasons)


def _warn_code(code: gitinfo.CodeState, reporter: Reporter) -> None:
    """Warn about uncommitted changes that are large or hold credentials (saved with every trial)."""
    if code.dirty and len(code.patch) > gitinfo.LARGE_PATCH:
        reporter.message(f"warning: uncommitted changes are {len(code.patch) / 2**20:.0f} MiB; "
                         "they are saved with every trial (commit large files or ignore them)")
    if code.redacted:
        reporter.message(f"warning: the uncommitted tracker.yaml holds credentials ({', '.join(code.redacted)}); "
                         "they are masked as *** in the code.patch saved with each trial and its backups "
                         "(use ${VAR} references instead, see docs/backup.md)")


def run_experiment(project: Project, name: str, options: RunOptions, reporter: Reporter | None = None,
                   executor: BaseExecutor | None = None) -> RunResult:
    """Run one experiment (see :func:`run_experiments`)."""
    return run_experiments(project, [name], options, reporter, executor)


def _backup(project: Project, configs: dict[str, ExperimentConfig], options: RunOptions, trials: list[Trial],
            reporter: Reporter) -> None:
    """Back up the completed trials, each to ``--backup-to`` or its experiment's ``backup:``."""
    targets: dict[str, list[Trial]] = {}
    for t in trials:
        target = options.backup_to or configs[t.experiment].backup
        if target and t.status == "completed":
            targets.setdefault(target, []).append(t)
    if targets:
        from tracker.storage.backup import backup_completed

        for target, completed in targets.items():
            backup_completed(project, target, completed, reporter)


def rerun_queued(project: Project, trial_ids: list[str], reporter: Reporter | None = None,
                 parallel: int | None = None, remote: list[str] | None = None,
                 max_failures: int = DEFAULT_MAX_FAILURES) -> RunResult:
    """Run queued trials again (after ``trials reset``), each with its recorded params and seed.

    Trials run against the current checkout and environment (the project's venv for local
    trials when tracker.yaml asks for it), locally or on ``remote`` hosts, and are recorded
    where and in what they actually ran; the commit they originally ran on is kept in the
    record's history, and a note is given when the code has moved on. Their fingerprints
    follow the code and experiment settings they now run with. If the venv cannot be built
    the trials end ``cancelled`` with the reason (they never started).
    """
    reporter = reporter or Reporter()
    _check_max_failures(max_failures)
    store = project.store
    trials = [store.get(t) for t in trial_ids]
    options = RunOptions(parallel=parallel, remote=remote or [])
    code = gitinfo.capture(project.root, project.config.code)
    for t in trials:
        if t.status != "queued":
            raise UsageError(f"trial {t.id} is {t.status}, not queued")

    def cancel(exc: TrackerError) -> None:
        lifecycle.cancel_unstarted(store, [t.id for t in trials], f"not started: {exc}")

    start = launcher(project, options, reporter)
    start.prepare(on_venv_error=cancel)
    configs: dict[str, ExperimentConfig] = {}
    for t in trials:
        env_id = start.environment(t.command)
        if t.env_id != env_id:
            store.update(t.id, env_id=env_id)
        if (t.commit, t.snapshot) != (code.commit, code.snapshot):
            reporter.message(f"note: trial {t.id} was made at {(t.commit or '?')[:8]}; "
                             f"it now runs on {(code.commit or '?')[:8]}{'*' if code.dirty else ''}")
            store.update(t.id, commit=code.commit, branch=code.branch, dirty=code.dirty,
                         snapshot=code.snapshot, event=f"re-run on {(code.commit or '?')[:8]}")
            if code.snapshot:
                gitinfo.pin(project.root, [t.id], code.snapshot)
        if t.experiment not in configs:
            with contextlib.suppress(UsageError):  # an experiment file since deleted: the driver copes
                configs[t.experiment] = experiments.load(project, t.experiment)
        key = fingerprint(t.experiment, t.params, t.seed, code, configs[t.experiment]) \
            if t.experiment in configs else None
        if key != t.extra.get("fingerprint"):
            store.merge_extra(t.id, {"fingerprint": key})
    driver = start.driver(max_failures=max_failures)
    final = start.drive([store.get(t.id) for t in trials], driver)
    return RunResult(None, list(dict.fromkeys(t.experiment for t in trials)), [], final, stopped=driver.stopped)
