"""How a trial's command line and environment are built (the same for every executor)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from tracker.config import ExperimentConfig
from tracker.store import Trial


@dataclass(frozen=True)
class Launch:
    """Everything needed to start one trial's process, wherever it runs."""

    trial_id: str
    argv: list[str]
    env: dict[str, str]  # added to the executor's own environment
    params_files: dict[str, str]  # file name in the trial dir -> content (params_as json/yaml), one per phase
    timeout: float | None


def format_value(value: Any) -> str:
    """A param as a command-line string: numbers/strings as is, bools lower-case, lists as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _flag(name: str, value: Any, seeds_flag: str | None, booleans: str) -> str:
    """One param as a flag: ``--lr=0.1``, ``--eval_seeds=1,2``; with ``booleans: bare`` a true one is ``--name``."""
    if booleans == "bare" and value is True:
        return f"--{name}"
    return f"--{name}={','.join(map(str, value)) if name == seeds_flag else format_value(value)}"


def _env_name(name: str) -> str:
    return "TRACKER_PARAM_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def phases_of(trial: Trial, config: ExperimentConfig) -> list[str]:
    """The phases a trial runs, in order: a training trial trains, then validates when the
    experiment has a validate phase; a test trial (made by ``tracker test``) only tests."""
    if trial.phase == "test":
        return ["test"]
    return ["train", "validate"] if "validate" in config.phases else ["train"]


def _flags(trial: Trial, config: ExperimentConfig, phase: str) -> dict[str, Any]:
    """What a phase's command gets as params: the trial's, the phase's own, the seed, and the
    evaluation seeds (a list; ``--eval_seeds=1,2`` as a flag)."""
    settings = config.phase(phase)
    flags = {**trial.params, **settings.params}
    if trial.seed is not None and config.seed_flag:
        flags[config.seed_flag] = trial.seed
    seeds = trial.extra.get("eval_seeds", {}).get(phase)
    if seeds and settings.seed_flag:
        flags[settings.seed_flag] = list(seeds)
    return flags


def build(trial: Trial, config: ExperimentConfig, trial_dir: PurePath,
          project_dir: PurePath) -> Launch:
    """The argv and TRACKER_* environment for ``trial``; ``trial_dir`` as the process sees it.

    A trial that runs more than one phase (train, then validate) runs them one after the
    other in one process tree: :data:`tracker.execution.phases.CHAIN` starts each phase's
    command with its own flags and ``TRACKER_PHASE``, and stops at the first that fails.
    """
    phases = phases_of(trial, config)
    steps = []
    params_files: dict[str, str] = {}
    for number, phase in enumerate(phases):
        argv = config.phase(phase).argv(config.command)
        flags = _flags(trial, config, phase)
        if config.params_as == "flags":
            seeds_flag = config.phase(phase).seed_flag if phase != "train" else None
            argv += [_flag(k, v, seeds_flag, config.booleans) for k, v in flags.items()
                     if not (config.booleans == "bare" and v is False)]
        elif config.params_as in ("json", "yaml"):
            name = f"params.{config.params_as}" if number == 0 else f"params.{phase}.{config.params_as}"
            if config.params_as == "json":
                params_files[name] = json.dumps(flags, indent=2)
            else:
                import yaml

                params_files[name] = yaml.safe_dump(flags, sort_keys=False)
            argv.append(f"--params-file={trial_dir / name}")
        env = {"TRACKER_PHASE": phase}
        seeds = trial.extra.get("eval_seeds", {}).get(phase)
        if seeds:
            env["TRACKER_EVAL_SEEDS"] = ",".join(map(str, seeds))
        steps.append({"phase": phase, "argv": argv, "env": env})
    env = {
        "TRACKER_TRIAL_ID": trial.id,
        "TRACKER_EXPERIMENT": trial.experiment,
        "TRACKER_TRIAL_DIR": str(trial_dir),
        "TRACKER_PROJECT_DIR": str(project_dir),
        "TRACKER_PARAMS": json.dumps(trial.params),
        "PYTHONUNBUFFERED": "1",
        **{_env_name(k): format_value(v) for k, v in trial.params.items()},
        **config.env,
    }
    if trial.seed is not None:
        env["TRACKER_SEED"] = str(trial.seed)
    source = trial.extra.get("test", {}).get("source")
    if source:  # a test trial evaluates what its training trial wrote
        env["TRACKER_TRAIN_DIR"] = str(trial_dir.parent / source)
    if len(steps) == 1:
        return Launch(trial.id, steps[0]["argv"], {**env, **steps[0]["env"]}, params_files, config.timeout)
    from tracker.execution.phases import chain_argv

    return Launch(trial.id, chain_argv(steps), {**env, "TRACKER_PHASE": phases[0]}, params_files, config.timeout)
