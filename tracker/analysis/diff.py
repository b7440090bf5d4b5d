"""``tracker diff A B``: what differs between two trials, or between two experiments.

Two trials: params, seeds (training and evaluation), final metrics side by side, status,
phase and duration, the environment they ran in, and the code: a unified diff between the
exact trees they ran (the pinned snapshot of a dirty tree, else the commit plus the trial's
saved patch, as ``tracker checkout`` rebuilds them). Two experiments: their configs, the
seeds their trials ran, trial counts by status, the objective's mean over completed trials,
the commits their trials ran on, and the environments of their latest completed trials.

Only what differs is kept; the CLI renders it (or prints :meth:`TrialDiff.as_dict` /
:meth:`ExperimentDiff.as_dict` with ``--json``).
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tracker import gitinfo
from tracker.errors import GitError, NotFoundError, UsageError
from tracker.execution import lifecycle
from tracker.project import Project
from tracker.store import Trial

# environment keys in the order they are shown; keys not listed follow, sorted
ENV_KEYS = ("python", "implementation", "executable", "venv", "host", "os", "os_release", "platform",
            "machine", "cpus", "gpus", "cuda_visible_devices")


@dataclass(frozen=True)
class MappingDiff:
    """Keys only in A (``removed``), only in B (``added``), and in both with other values (``changed``)."""

    added: dict[str, Any] = field(default_factory=dict)
    removed: dict[str, Any] = field(default_factory=dict)
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def as_dict(self) -> dict[str, Any]:
        return {"added": self.added, "removed": self.removed,
                "changed": {k: {"a": a, "b": b} for k, (a, b) in self.changed.items()}}


def diff_mappings(a: dict[str, Any], b: dict[str, Any]) -> MappingDiff:
    """Compare two mappings key by key (order: A's keys, then B's new ones)."""
    return MappingDiff(added={k: b[k] for k in b if k not in a},
                       removed={k: a[k] for k in a if k not in b},
                       changed={k: (a[k], b[k]) for k in a if k in b and a[k] != b[k]})


@dataclass(frozen=True)
class MetricDiff:
    """One metric's final value in A and B (None where a trial lacks it), and B - A."""

    name: str
    a: float | None
    b: float | None

    @property
    def difference(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "a": self.a, "b": self.b, "difference": self.difference}


@dataclass(frozen=True)
class EnvironmentDiff:
    """Where two recorded environments differ: plain fields (python, host, os, gpus...) and packages."""

    a_id: str | None
    b_id: str | None
    fields: dict[str, tuple[Any, Any]]
    packages: MappingDiff
    missing: str | None = None  # why nothing could be compared (no environment recorded)

    @property
    def same(self) -> bool:
        return self.missing is None and not self.fields and not self.packages

    def as_dict(self) -> dict[str, Any]:
        return {"a": self.a_id, "b": self.b_id, "same": self.same, "missing": self.missing,
                "fields": {k: {"a": a, "b": b} for k, (a, b) in self.fields.items()},
                "packages": self.packages.as_dict()}


def diff_environments(project: Project, a_id: str | None, b_id: str | None) -> EnvironmentDiff:
    """Compare the stored environments ``a_id`` and ``b_id`` (see :mod:`tracker.environment`)."""
    a = project.store.environment(a_id) if a_id else None
    b = project.store.environment(b_id) if b_id else None
    if a is None or b is None:
        which = " and ".join(side for side, env in (("A", a), ("B", b)) if env is None)
        return EnvironmentDiff(a_id, b_id, {}, MappingDiff(), missing=f"no environment recorded for {which}")
    keys = [k for k in ENV_KEYS if k in a or k in b]
    keys += sorted((set(a) | set(b)) - set(ENV_KEYS) - {"packages"})
    fields = {k: (a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)}
    return EnvironmentDiff(a_id, b_id, fields, diff_mappings(a.get("packages") or {}, b.get("packages") or {}))


@dataclass(frozen=True)
class CodeDiff:
    """The code two trials ran: what each was, and the unified diff (or per-file counts) between them."""

    a: str  # "3f2a9c1d" or "3f2a9c1d + uncommitted changes"
    b: str
    same: bool
    patch: str = ""  # unified diff (empty with ``stat`` or when the code is the same)
    stat: list[tuple[str, int | None, int | None]] = field(default_factory=list)  # (path, added, removed)
    unavailable: str | None = None  # why the code could not be rebuilt (a commit not in this repository)

    def as_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "same": self.same, "unavailable": self.unavailable,
                "patch": self.patch,
                "stat": [{"path": p, "added": n, "removed": d} for p, n, d in self.stat]}


def _describe(trial: Trial) -> str:
    return f"{(trial.commit or '?')[:8]}{' + uncommitted changes' if trial.dirty else ''}"


def _tree(project: Project, top: Path, trial: Trial) -> str:
    """The git tree of exactly the code ``trial`` ran: its pinned snapshot, else commit + saved patch."""
    for source in (trial.snapshot, trial.commit):
        if source and gitinfo.git(top, "cat-file", "-t", source, check=False).strip() == "commit":
            break
    else:
        raise GitError(f"commit {(trial.commit or '?')[:12]} of trial {trial.id} is not in this repository",
                       hint="fetch the branch it was made on, then retry")
    if source == trial.snapshot or not trial.dirty:
        return gitinfo.git(top, "rev-parse", f"{source}^{{tree}}").strip()
    patch = project.paths.trial_dir(trial.id) / lifecycle.PATCH_FILE
    if not patch.is_file():
        raise GitError(f"trial {trial.id} ran on uncommitted changes, but neither its snapshot "
                       f"nor its saved {lifecycle.PATCH_FILE} is here",
                       hint="restore the trial from a backup, or compare with --no-code")
    with tempfile.TemporaryDirectory(prefix="tracker-diff-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        gitinfo.git(top, "read-tree", source, env=env)
        gitinfo.git(top, "apply", "--cached", "--whitespace=nowarn", str(patch.resolve()), env=env)
        return gitinfo.git(top, "write-tree", env=env).strip()


def diff_code(project: Project, a: Trial, b: Trial, *, stat: bool = False) -> CodeDiff:
    """The code B ran against the code A ran: a unified diff, or with ``stat`` per-file line counts.

    Credentials in the diff of tracker.yaml are masked, as in a trial's saved patch.
    """
    top = gitinfo.require_repo(project.root)
    try:
        trees = _tree(project, top, a), _tree(project, top, b)
    except GitError as exc:
        return CodeDiff(_describe(a), _describe(b), False, unavailable=str(exc))
    if trees[0] == trees[1]:
        return CodeDiff(_describe(a), _describe(b), True)
    # whatever the user's git config says: plain a/ b/ paths from the top, no colour, no external tools
    base = ["diff", "--no-color", "--no-ext-diff", "--no-textconv", "--no-renames", "--no-relative",
            "--src-prefix=a/", "--dst-prefix=b/"]
    if stat:
        out = gitinfo.git(top, *base, "--numstat", "-z", *trees)
        rows = []
        for entry in out.split("\0"):
            if entry:
                added, removed, path = entry.split("\t", 2)
                rows.append((path, None if added == "-" else int(added), None if removed == "-" else int(removed)))
        return CodeDiff(_describe(a), _describe(b), False, stat=rows)
    raw = gitinfo.git(top, *base, *trees).encode()
    masked, _ = gitinfo.redact_patch(raw, top, project.root / "tracker.yaml")
    return CodeDiff(_describe(a), _describe(b), False, patch=masked.decode(errors="replace"))


@dataclass(frozen=True)
class TrialDiff:
    """What differs between trial A and trial B (B's values are the new ones)."""

    a: Trial
    b: Trial
    fields: dict[str, tuple[Any, Any]]  # experiment, phase, status, exit_code, duration
    params: MappingDiff
    seeds: dict[str, tuple[Any, Any]]  # "train" -> (seed A, seed B); "validate"/"test" -> eval seed lists
    metrics: list[MetricDiff]
    environment: EnvironmentDiff
    code: CodeDiff | None  # None with --no-code

    kind = "trials"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "a": self.a.summary(), "b": self.b.summary(),
                "fields": {k: {"a": a, "b": b} for k, (a, b) in self.fields.items()},
                "params": self.params.as_dict(),
                "seeds": {k: {"a": a, "b": b} for k, (a, b) in self.seeds.items()},
                "metrics": [m.as_dict() for m in self.metrics],
                "environment": self.environment.as_dict(),
                "code": self.code.as_dict() if self.code else None}


TRIAL_FIELDS = ("experiment", "phase", "status", "exit_code", "duration")


def diff_trials(project: Project, a: Trial, b: Trial, *, code: bool = True, stat: bool = False) -> TrialDiff:
    """Compare two trials; ``code=False`` skips the code diff, ``stat`` keeps only per-file counts."""
    fields = {k: (getattr(a, k), getattr(b, k)) for k in TRIAL_FIELDS if getattr(a, k) != getattr(b, k)}
    seeds: dict[str, tuple[Any, Any]] = {}
    if a.seed != b.seed:
        seeds["train"] = (a.seed, b.seed)
    eval_a, eval_b = a.extra.get("eval_seeds") or {}, b.extra.get("eval_seeds") or {}
    for phase in [*eval_a, *(p for p in eval_b if p not in eval_a)]:
        if eval_a.get(phase) != eval_b.get(phase):
            seeds[phase] = (eval_a.get(phase), eval_b.get(phase))
    names = [*a.metrics, *(n for n in b.metrics if n not in a.metrics)]
    metrics = [MetricDiff(n, a.metrics.get(n), b.metrics.get(n)) for n in names
               if a.metrics.get(n) != b.metrics.get(n)]
    return TrialDiff(a, b, fields, diff_mappings(a.params, b.params), seeds, metrics,
                     diff_environments(project, a.env_id, b.env_id),
                     diff_code(project, a, b, stat=stat) if code else None)


@dataclass(frozen=True)
class ObjectiveDiff:
    """The mean of one metric over each experiment's completed trials that logged it."""

    metric: str
    a_mean: float | None
    a_n: int
    b_mean: float | None
    b_n: int

    @property
    def difference(self) -> float | None:
        return None if self.a_mean is None or self.b_mean is None else self.b_mean - self.a_mean

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "difference": self.difference}


@dataclass(frozen=True)
class ExperimentDiff:
    """What differs between experiment A and experiment B."""

    a: str
    b: str
    config_source: tuple[str, str]  # "stored" (what the last run used), "file" (never run) or "none"
    config: MappingDiff  # flattened keys: command, params.lr, grid.lr, search.lr.high, seeds, ...
    seeds: tuple[list[int | None], list[int | None]]  # training seeds only A's / only B's trials ran
    counts: dict[str, tuple[int, int]]  # status -> (A, B), the statuses whose counts differ
    objective: ObjectiveDiff | None
    commits: tuple[dict[str, int], dict[str, int]]  # commit (+ "*" when dirty) -> trials, when they differ
    environment: EnvironmentDiff | None  # of the latest completed trials (None: one has none)

    kind = "experiments"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "a": self.a, "b": self.b,
                "config_source": {"a": self.config_source[0], "b": self.config_source[1]},
                "config": self.config.as_dict(),
                "seeds": {"only_a": self.seeds[0], "only_b": self.seeds[1]},
                "counts": {k: {"a": a, "b": b} for k, (a, b) in self.counts.items()},
                "objective": self.objective.as_dict() if self.objective else None,
                "commits": {"a": self.commits[0], "b": self.commits[1]},
                "environment": self.environment.as_dict() if self.environment else None}


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys (``{"grid": {"lr": [..]}}`` -> ``{"grid.lr": [..]}``); lists stay
    whole, and unset values (None, empty mappings) are left out, so setting one shows as added."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        elif value is not None:
            out[f"{prefix}{key}"] = value
    return out


def experiment_config(project: Project, name: str) -> tuple[dict[str, Any], str]:
    """The config experiment ``name`` last ran with ("stored"), else its experiments/NAME.yaml ("file")."""
    from tracker import experiments

    stored = project.store.experiment(name)
    if stored is not None:
        return stored, "stored"
    if name not in experiments.names(project):  # trials restored without their experiment
        return {}, "none"
    return experiments.load(project, name).model_dump(mode="json"), "file"


def _commits(trials: list[Trial]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in trials:
        key = f"{(t.commit or '?')[:8]}{'*' if t.dirty else ''}"
        out[key] = out.get(key, 0) + 1
    return out


def _mean(trials: list[Trial], metric: str) -> tuple[float | None, int]:
    values = [t.metrics[metric] for t in trials if t.status == "completed" and metric in t.metrics]
    return (statistics.fmean(values) if values else None), len(values)


def diff_experiments(project: Project, a: str, b: str, *, metric: str | None = None) -> ExperimentDiff:
    """Compare two experiments; ``metric`` (default: A's objective, else B's) is averaged over completed trials."""
    (conf_a, src_a), (conf_b, src_b) = experiment_config(project, a), experiment_config(project, b)
    trials_a = project.store.list_trials(experiment=a)
    trials_b = project.store.list_trials(experiment=b)
    seeds_a = list(dict.fromkeys(t.seed for t in trials_a))
    seeds_b = list(dict.fromkeys(t.seed for t in trials_b))
    counts_a = {s: sum(t.status == s for t in trials_a) for s in dict.fromkeys(t.status for t in trials_a)}
    counts_b = {s: sum(t.status == s for t in trials_b) for s in dict.fromkeys(t.status for t in trials_b)}
    counts = {s: (counts_a.get(s, 0), counts_b.get(s, 0)) for s in [*counts_a, *counts_b]
              if counts_a.get(s, 0) != counts_b.get(s, 0)}
    if metric is None:
        metric = next((c["objective"]["metric"] for c in (conf_a, conf_b) if c.get("objective")), None)
    objective = ObjectiveDiff(metric, *_mean(trials_a, metric), *_mean(trials_b, metric)) if metric else None
    commits = _commits(trials_a), _commits(trials_b)
    latest = [max((t for t in ts if t.status == "completed"), key=lambda t: t.finished or "", default=None)
              for ts in (trials_a, trials_b)]
    environment = (diff_environments(project, latest[0].env_id, latest[1].env_id)
                   if latest[0] and latest[1] else None)
    return ExperimentDiff(
        a, b, (src_a, src_b), diff_mappings(flatten(conf_a), flatten(conf_b)),
        ([s for s in seeds_a if s not in seeds_b], [s for s in seeds_b if s not in seeds_a]),
        counts, objective, commits if set(commits[0]) != set(commits[1]) else ({}, {}), environment)


def _lookup(project: Project, ref: str) -> tuple[bool, Trial | None]:
    """Whether ``ref`` names an experiment (a file, stored config or trials), and the trial it names."""
    from tracker import experiments

    known = (ref in experiments.names(project) or ref in project.store.count_by_status()
             or project.store.experiment(ref) is not None)
    try:
        return known, project.store.get(ref)
    except NotFoundError:
        return known, None
    except UsageError:  # an ambiguous id prefix: an error only when it is no experiment either
        if not known:
            raise
        return known, None


def diff(project: Project, a: str, b: str, *, code: bool = True, stat: bool = False,
         metric: str | None = None) -> TrialDiff | ExperimentDiff:
    """``tracker diff A B``: two trials (ids or unique prefixes) or two experiments (names).

    A name that is both an experiment and a trial id prefix is taken as the kind that makes
    a pair (experiments when both could). Example::

        d = diff(project, "3f2a", "9bc1")          # TrialDiff
        d = diff(project, "baseline", "wide")      # ExperimentDiff
    """
    (exp_a, trial_a), (exp_b, trial_b) = _lookup(project, a), _lookup(project, b)
    if exp_a and exp_b:
        if stat or not code:
            raise UsageError("--stat and --no-code apply to trials, not experiments",
                             hint="experiments list the commits their trials ran on; diff two of their trials "
                                  "for the code")
        return diff_experiments(project, a, b, metric=metric)
    if trial_a is not None and trial_b is not None:
        if metric is not None:
            raise UsageError("--metric applies to experiments, not trials",
                             hint="two trials are compared on every metric they logged")
        if stat and not code:
            raise UsageError("--stat and --no-code contradict each other", hint="give one of them")
        return diff_trials(project, trial_a, trial_b, code=code, stat=stat)
    for ref, is_experiment, trial in ((a, exp_a, trial_a), (b, exp_b, trial_b)):
        if not is_experiment and trial is None:
            raise NotFoundError(f"no trial or experiment {ref!r}",
                                hint="give a trial id (or its start) or an experiment name; "
                                     "see 'tracker trials list' and 'tracker experiments list'")
    raise UsageError(f"cannot diff {'experiment' if exp_a else 'trial'} {a!r} against "
                     f"{'experiment' if exp_b else 'trial'} {b!r}", hint="give two trials or two experiments")
