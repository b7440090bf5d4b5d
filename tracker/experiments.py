"""Experiment files: writing them (commented), reading them, expanding them into trials."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracker import seeds as seedlib
from tracker.config import ExperimentConfig, load_model, validate_data
from tracker.errors import ConfigError, NotFoundError, UsageError
from tracker.names import check_name as _check_name
from tracker.project import Project
from tracker.yamlio import atomic_write, dump_yaml, line_of, load_yaml
from tracker.yamlio import display_path as _display

DEFAULT_COMMAND = "python train.py"


@dataclass(frozen=True)
class TrialSpec:
    """One trial to run: an experiment with concrete params and a seed."""

    experiment: str
    params: dict[str, Any]
    seed: int | None
    phase: str = "train"
    extra: dict[str, Any] = field(default_factory=dict)  # recorded with the trial (a test's selection)


@dataclass(frozen=True)
class ExperimentInfo:
    """An experiment file and what it expands to, or why it cannot be read."""

    name: str
    path: Path
    config: ExperimentConfig | None  # None when the file is invalid
    grid_size: int | None
    error: str | None = None  # the file's one-line error (file:line: what, how to fix)


def _flow(value: Any) -> str:
    """A value in YAML flow style, on one line."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False)
    return text.strip().removesuffix("...").strip()


def render(name: str, data: dict[str, Any], notes: dict[str, list[str]] | None = None) -> str:
    """The experiment file text: every key with a comment saying what it does (``notes``: more
    comment lines above a key, e.g. why it was detected)."""
    data = dict(data)
    notes = notes or {}
    lines = [
        f"# Experiment {name!r}: run with `tracker run {name}`.",
        "# Each trial runs `command` once with one parameter set and one seed.",
        "",
        "# What this experiment is for (shown by `tracker experiments list`).",
        f"description: {_flow(data.pop('description', ''))}",
        "",
        "# The command to run, from the project root. A string or a list of arguments.",
        "# Params are appended as --name=value flags (see params_as) and also passed as",
        "# TRACKER_PARAMS (JSON), TRACKER_SEED, TRACKER_TRIAL_DIR environment variables.",
        "# Scripts should write models and outputs into $TRACKER_TRIAL_DIR.",
        f"command: {_flow(data.pop('command', DEFAULT_COMMAND))}",
        "",
        "# Fixed parameters, the same in every trial. Override one with",
        "# `tracker run NAME --param lr=0.05`.",
        f"params: {_flow(data.pop('params', {}))}",
        "",
        "# Parameter grid: every combination is run, each over every seed,",
        "# e.g. grid: {lr: [0.1, 0.01], alpha: [0.0001, 0.001]} gives 4 x seeds trials.",
        f"grid: {_flow(data.pop('grid', {}))}",
        "",
        "# Seeds: a count N (the first N of the project's preset seeds, shared by all",
        "# experiments so comparisons are paired by seed) or an explicit list [1, 2, 3].",
        "# Leave out to use the project default (defaults.seeds in tracker.yaml).",
    ]
    seeds = data.pop("seeds", None)
    lines.append(f"seeds: {_flow(seeds)}" if seeds is not None else "# seeds: 3")
    lines += [
        "",
        "# Name of the flag that carries the seed (--seed=N); null to not pass it as a flag.",
        *notes.get("seed_flag", []),
        f"seed_flag: {_flow(data.pop('seed_flag', 'seed'))}",
        "",
        "# How params reach the script: flags (--name=value), env (environment only),",
        "# json / yaml (written to a file passed as --params-file=PATH).",
        f"params_as: {_flow(data.pop('params_as', 'flags'))}",
        "",
        "# Boolean params as flags: value (--name=true, --name=false) or bare (--name when true,",
        "# left out when false: argparse's store_true switches).",
        *notes.get("booleans", []),
        f"booleans: {_flow(data.pop('booleans', 'value'))}",
        "",
        "# Ranges for `tracker optimize` (automatic search). Types: uniform, loguniform,",
        "# int (low/high), choice (values). Example:",
        "#   lr: {type: loguniform, low: 1.0e-4, high: 1.0}",
        f"search: {_flow(data.pop('search', {}))}",
        "",
        "# The metric a search optimises and compares on: a validation metric, never test.",
    ]
    objective = data.pop("objective", None)
    lines.append(f"objective: {_flow(objective)}" if objective else
                 "# objective: {metric: val/acc, goal: max}")
    lines += [
        "",
        "# Phases (docs/phases.md): each trial trains, then validates when 'validate' is set, on",
        "# evaluation seeds apart from the training seeds; 'test' runs only by `tracker test NAME",
        "# --best val/acc`. Each is a command, or {command, seeds}, or {} for `command` with",
        "# TRACKER_PHASE. Metrics are named by phase: train/..., val/..., test/...",
        "#   phases: {validate: python evaluate.py --split val, test: python evaluate.py --split test}",
    ]
    phases = data.pop("phases", None)
    if phases:
        lines.append(f"phases: {_flow(phases)}")
    lines += [
        "",
        "# Outputs each trial must produce in its trial directory, checked when it ends:",
        "# check: exists | nonempty | min_size (with size: 10kB) | contains_keys (keys of a",
        "# JSON or YAML file), e.g. [{path: model.pt, check: min_size, size: 1kB}].",
        f"deliverables: {_flow(data.pop('deliverables', []))}",
        "",
        "# Extra environment variables for the script.",
        f"env: {_flow(data.pop('env', {}))}",
        "",
        "# Stop a trial after this many seconds (it then counts as failed). null: no limit.",
        f"timeout: {_flow(data.pop('timeout', None))}",
        "",
        "# Back up each completed trial to this storage target (see `tracker storage list`).",
        f"backup: {_flow(data.pop('backup', None))}",
    ]
    if data:  # keys this template does not describe (phases, tags, ...): keep them
        lines += ["", "# Further settings (see docs/experiments.md)."]
        lines += dump_yaml(data).rstrip().splitlines()
    return "\n".join(lines) + "\n"


def check_name(name: str) -> str:
    """Validate an experiment name (it becomes a file name)."""
    if name.endswith(".yaml"):
        raise UsageError(f"invalid experiment name {name!r}", hint="leave out the .yaml suffix")
    return _check_name("experiment", name)


@dataclass(frozen=True)
class Created:
    """A written experiment file and what was detected or doubted about its script's flags."""

    path: Path
    notes: list[str] = field(default_factory=list)  # one line each, for the user


def create(project: Project, name: str, *, base: str | None = None,
           params: dict[str, Any] | None = None, command: str | list[str] | None = None,
           description: str | None = None, force: bool = False) -> Created:
    """Write experiments/NAME.yaml (from ``base`` if given).

    The command's ``--help`` is read (:mod:`tracker.scriptflags`) to set
    ``seed_flag: null`` for a script without the seed flag and ``booleans: bare`` for one with
    switches, unless the settings already say; a param the script does not take is noted.
    """
    path = project.paths.experiment_file(check_name(name))
    if path.exists() and not force:
        raise UsageError(f"{_display(path)} already exists", hint="pick another name or pass --force")
    data: dict[str, Any]
    if base:
        load(project, base)  # validates the source, with its own file:line errors
        data, _ = load_yaml(project.paths.experiment_file(base))
        data = dict(data or {})
    else:
        data = {"command": command or _default_command(project), "params": {}}
    if command:
        data["command"] = command
    if description is not None:
        data["description"] = description
    if params:
        fixed = dict(data.get("params") or {})
        grid = dict(data.get("grid") or {})
        for key, value in params.items():
            grid.pop(key, None)
            fixed[key] = value
        data["params"], data["grid"] = fixed, grid
    comments, notes = _detect(project, data)
    text = render(name, data, comments)
    from tracker.config import parse_model

    parse_model(text, ExperimentConfig, _display(path))  # never write a file we cannot read
    atomic_write(path, text)
    return Created(path, notes)


def _detect(project: Project, data: dict[str, Any]) -> tuple[dict[str, list[str]], list[str]]:
    """Settle ``seed_flag`` and ``booleans`` in ``data`` from the script's ``--help``: (comments, notes)."""
    import shlex

    from tracker import scriptflags

    if data.get("params_as", "flags") != "flags":
        return {}, []
    command = data.get("command") or DEFAULT_COMMAND
    flags = scriptflags.probe(project.root, shlex.split(command) if isinstance(command, str) else list(command))
    if flags is None:
        return {}, []
    comments: dict[str, list[str]] = {}
    notes = []
    seed_flag = data.get("seed_flag", "seed")
    if "seed_flag" not in data and not flags.accepts(seed_flag):
        data["seed_flag"] = None
        comments["seed_flag"] = [f"# The script's --help shows no --{seed_flag}: "
                                 "the seed reaches it only as TRACKER_SEED."]
        notes.append(f"the script takes no --{seed_flag}: wrote 'seed_flag: null' (the seed is in TRACKER_SEED)")
    if "booleans" not in data and flags.switches:
        data["booleans"] = "bare"
        switches = ", ".join("--" + s for s in flags.switches)
        comments["booleans"] = [f"# The script's --help shows switches ({switches})."]
    names = [*(data.get("params") or {}), *(data.get("grid") or {})]
    for unknown in [n for n in names if not flags.accepts(n)]:
        notes.append(f"warning: the script's --help shows no --{unknown}; it will refuse --{unknown}=...")
    return comments, notes


def _default_command(project: Project) -> str | list[str]:
    """The command of the project's first valid experiment, else ``python train.py``."""
    for other in sorted(project.paths.experiments.glob("*.yaml")):
        try:
            return load_model(other, ExperimentConfig).command
        except ConfigError:
            continue
    return DEFAULT_COMMAND


def load(project: Project, name: str) -> ExperimentConfig:
    """Read and validate experiments/NAME.yaml."""
    path = project.paths.experiment_file(check_name(name))
    if not path.is_file():
        known = ", ".join(names(project)) or "none yet"
        raise NotFoundError(f"no experiment {name!r} ({_display(path)} does not exist)",
                            hint=f"known: {known}; create one with 'tracker experiments create {name}'")
    data, lines = load_yaml(path)
    return validate_data(data, ExperimentConfig, _display(path), lines)


def names(project: Project) -> list[str]:
    """Names of the project's experiment files."""
    return sorted(p.stem for p in project.paths.experiments.glob("*.yaml"))


def list_experiments(project: Project) -> list[ExperimentInfo]:
    """Every experiment with its config; an invalid file is listed too, with its error."""
    out = []
    for name in names(project):
        path = project.paths.experiment_file(name)
        try:
            config = load(project, name)
        except UsageError as exc:  # ConfigError, or a file name that is no experiment name
            out.append(ExperimentInfo(name, path, None, None, str(exc)))
            continue
        out.append(ExperimentInfo(name, path, config, grid_size(config)))
    return out


def objectives(project: Project, names: Sequence[str] | None = None) -> dict[str, str]:
    """The objective metric of each experiment (of ``names``, else of every file) that names one
    (invalid files are skipped)."""
    if names is not None:  # read only those files: a run's summary needs no other experiment
        configs = {name: load(project, name) for name in names}
        return {name: c.objective.metric for name, c in configs.items() if c.objective is not None}
    return {i.name: i.config.objective.metric for i in list_experiments(project)
            if i.config is not None and i.config.objective is not None}


def grid_size(config: ExperimentConfig) -> int:
    """How many parameter combinations the grid gives."""
    size = 1
    for values in config.grid.values():
        size *= len(values)
    return size


def config_hash(config: ExperimentConfig) -> str:
    """A short stable hash of a resolved experiment config."""
    blob = json.dumps(config.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def preset_seeds(project: Project, needed: int) -> list[int]:
    """The project's preset seeds, generating (and saving) them on first need.

    Generation happens once, under the project's lock: runs started at the same time in a
    project without seeds all wait for the first one's list and use it.
    """
    if len(project.config.seeds) >= needed:
        return list(project.config.seeds)
    with project.locked():
        project.reload()  # another run may have written the list while this one waited
        presets = list(project.config.seeds)
        if len(presets) >= needed:
            return presets
        count = max(needed, seedlib.DEFAULT_COUNT)
        if presets:
            raise ConfigError(
                f"the run needs {needed} seeds but tracker.yaml has only {len(presets)} preset seeds",
                path=_display(project.paths.config), line=project.line("seeds"),
                hint=f"run 'tracker seeds generate {count} --extend' or ask for fewer seeds",
            )
        write_seeds(project, count, None)
    return list(project.config.seeds)


def write_seeds(project: Project, count: int, master_seed: int | None, *,
                extend: bool = False) -> tuple[int, list[int]]:
    """Generate the preset seed list into tracker.yaml; return (master, seeds).

    With ``extend``, keeps the existing master seed so the old seeds stay first.
    """
    if count < 1:
        raise UsageError(f"seed count must be at least 1, got {count}")
    if extend and project.config.master_seed is not None:
        if master_seed is not None and master_seed != project.config.master_seed:
            raise UsageError("--extend keeps the existing master seed; do not pass another")
        master_seed = project.config.master_seed
    master, values = seedlib.generate(count, master_seed)
    data = project.raw()
    data["seeds"] = values
    data["master_seed"] = master
    project.save_raw(data)
    return master, values


def expand(
    project: Project,
    name: str,
    config: ExperimentConfig,
    *,
    seeds: list[int] | None = None,
    seed_count: int | None = None,
    params: dict[str, Any] | None = None,
    grid: dict[str, list[Any]] | None = None,
) -> list[TrialSpec]:
    """Fixed params x grid x seeds, with command-line overrides applied.

    Seeds: an explicit ``seeds`` list wins, then ``seed_count`` presets, then the
    experiment's ``seeds``, then the project's ``defaults.seeds`` presets.
    """
    fixed = dict(config.params)
    full_grid = dict(config.grid)
    for key, value in (params or {}).items():
        full_grid.pop(key, None)
        fixed[key] = value
    for key, values in (grid or {}).items():
        if not isinstance(values, list) or not values:
            raise UsageError(f"--grid {key}: expected a non-empty list like '{key}=[0.1,0.01]' (quoted for the shell)")
        fixed.pop(key, None)
        full_grid[key] = values
    if config.seed_flag and config.seed_flag in fixed:
        raise UsageError(f"{config.seed_flag!r} is the seed; use --seed instead of --param")
    if seeds:
        chosen = list(dict.fromkeys(seeds))
    else:
        spec: int | list[int] | None = seed_count if seed_count is not None else config.training_seeds
        if isinstance(spec, int) or spec is None:
            count = spec if spec is not None else project.config.defaults.seeds
            if count < 1:
                raise UsageError(f"--seeds must be at least 1, got {count}")
            chosen = seedlib.choose(preset_seeds(project, count), count, count)
        else:
            chosen = list(spec)
    keys = list(full_grid)
    specs = []
    for combo in itertools.product(*(full_grid[k] for k in keys)):
        trial_params = {**fixed, **dict(zip(keys, combo, strict=False))}
        for seed in chosen:
            specs.append(TrialSpec(name, trial_params, seed))
    return specs


def evaluation_seeds(project: Project, name: str, config: ExperimentConfig, phase: str,
                     training: Sequence[int | None] = ()) -> list[int]:
    """The evaluation seeds of ``phase`` (validate or test): an explicit list from the phase, or the
    first N (default 1) of the project's evaluation pool, which never meets its training seeds.

    ``training``: the seeds the experiment's trials train with; an explicit list meeting them
    is a ConfigError at the phase's ``seeds`` line.
    """
    spec = config.phase(phase).seeds
    presets = preset_seeds(project, 1)
    trained = {s for s in training if s is not None}
    if isinstance(spec, list):
        chosen = list(spec)
        other = "test" if phase == "validate" else "validate"
        other_spec = config.phase(other).seeds
        taken = trained | (set(other_spec) if isinstance(other_spec, list) and other in config.phases else set())
    else:
        key: int | str = project.config.master_seed if project.config.master_seed is not None else \
            ",".join(map(str, presets))
        chosen = seedlib.evaluation(key, phase, spec or 1, exclude=presets)
        taken = trained
    clash = sorted(set(chosen) & taken)
    if clash:
        path = project.paths.experiment_file(name)
        _, lines = load_yaml(path)
        raise ConfigError(
            f"the {phase} seeds must be disjoint from the training seeds and the other evaluation "
            f"seeds, but {clash[0]} is in both", path=_display(path),
            line=line_of(lines, ("phases", phase, "seeds")),
            hint="give other seeds, or a count to draw them from the project's evaluation pool")
    return chosen
