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
    params_file: tuple[str, str] | None  # (file name in the trial dir, content) for json/yaml
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


def _env_name(name: str) -> str:
    return "TRACKER_PARAM_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def build(trial: Trial, config: ExperimentConfig, trial_dir: PurePath,
          project_dir: PurePath) -> Launch:
    """The argv and TRACKER_* environment for ``trial``; ``trial_dir`` as the process sees it."""
    argv = config.command_argv()
    flags = dict(trial.params)
    if trial.seed is not None and config.seed_flag:
        flags[config.seed_flag] = trial.seed
    params_file = None
    if config.params_as == "flags":
        argv += [f"--{k}={format_value(v)}" for k, v in flags.items()]
    elif config.params_as in ("json", "yaml"):
        name = f"params.{config.params_as}"
        if config.params_as == "json":
            content = json.dumps(flags, indent=2)
        else:
            import yaml

            content = yaml.safe_dump(flags, sort_keys=False)
        params_file = (name, content)
        argv.append(f"--params-file={trial_dir / name}")
    env = {
        "TRACKER_TRIAL_ID": trial.id,
        "TRACKER_EXPERIMENT": trial.experiment,
        "TRACKER_TRIAL_DIR": str(trial_dir),
        "TRACKER_PROJECT_DIR": str(project_dir),
        "TRACKER_PARAMS": json.dumps(trial.params),
        "TRACKER_PHASE": trial.phase,
        "PYTHONUNBUFFERED": "1",
        **{_env_name(k): format_value(v) for k, v in trial.params.items()},
        **config.env,
    }
    if trial.seed is not None:
        env["TRACKER_SEED"] = str(trial.seed)
    return Launch(trial.id, argv, env, params_file, config.timeout)
