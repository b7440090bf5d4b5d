"""Pydantic models for tracker.yaml, experiment files and conf.yaml.

Every loader turns a validation failure into one :class:`ConfigError` line that
names the file, the line, what is wrong and how to fix it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tracker.errors import ConfigError
from tracker.names import RULE, valid_name
from tracker.yamlio import LineMap, line_of, load_yaml, parse_yaml

PARAM_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
TAG_RE = re.compile(r"[^\s,\x00-\x1f\x7f-][^\s,\x00-\x1f\x7f]{0,99}\Z")


def check_tag(tag: object) -> str:
    """A trial tag as given, or ValueError: 1-100 characters, no spaces or commas, not starting with '-'."""
    if not isinstance(tag, str) or not TAG_RE.match(tag):
        raise ValueError(f"invalid tag {tag!r}: use 1-100 characters without spaces, commas or control characters, "
                         "not starting with '-'")
    return tag


def check_tags(tags: Iterable[str], where: str = "--tag") -> list[str]:
    """Tags given on the command line, each once; a bad one is a ConfigError naming ``where``."""
    try:
        return list(dict.fromkeys(check_tag(t) for t in tags))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- tracker.yaml


class RemoteConfig(_Strict):
    """A named SSH host (``remotes:`` in tracker.yaml)."""

    host: str | None = None  # None: the remote's name is a Host alias in ~/.ssh/config
    user: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    key: str | None = None
    workdir: str = "~/tracker"
    python: str = "python3"
    setup: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    slots: int = Field(default=1, ge=1)
    gpus: list[int] = Field(default_factory=list)
    ssh_config: str | None = None  # an OpenSSH config file to read the Host entry from
    known_hosts: str | None = None  # extra known_hosts file (besides ~/.ssh/known_hosts)

    @model_validator(mode="after")
    def _gpus_fit_slots(self) -> RemoteConfig:
        if self.gpus and len(self.gpus) < self.slots:
            raise ValueError(f"{self.slots} slots need at least {self.slots} gpus, got {self.gpus}")
        return self


class TargetConfig(BaseModel):
    """A named place trials run (``targets:`` in tracker.yaml): a ``type`` (default ``ssh``) and the
    options that type declares, validated by its model (tracker.execution.targets)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = "ssh"
    options: SerializeAsAny[BaseModel]

    @model_validator(mode="before")
    @classmethod
    def _typed(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError(f"a target is a mapping of its options with a 'type', got {_describe(data)}")
        from tracker.execution.targets import options_model

        rest = dict(data)
        kind = rest.pop("type", "ssh")
        if not isinstance(kind, str):
            raise ValueError(f"type must be a string, got {_describe(kind)}")
        model = RemoteConfig if kind == "ssh" else options_model(kind)
        try:
            return {"type": kind, "options": model.model_validate(rest)}
        except ValidationError as exc:  # re-raised with the type's keys, each error at its key's place
            from pydantic_core import InitErrorDetails, PydanticCustomError

            valid = ", ".join(["type", *model.model_fields])
            errors = [InitErrorDetails(type=PydanticCustomError("extra_forbidden", "unknown key", {"valid": valid}),
                                       loc=e["loc"], input=e["input"])
                      if e["type"] == "extra_forbidden" else e for e in exc.errors()]  # type: ignore[misc]
            raise ValidationError.from_exception_data(exc.title, errors) from None


class StorageTarget(BaseModel):
    """A backup target (``storage:`` in tracker.yaml); backends validate their own options."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str

    def options(self) -> dict[str, Any]:
        """Backend-specific options (everything but ``type``)."""
        return dict(self.model_extra or {})


class Defaults(_Strict):
    """Project-wide defaults for runs."""

    seeds: int = Field(default=3, ge=1)
    parallel: int = Field(default=1, ge=1)
    lease: float = Field(default=60, ge=2)  # a running trial whose heartbeat is older than this is lost
    grace: float = Field(default=5, ge=0)  # seconds between SIGTERM and SIGKILL when a trial is stopped


class QueueSettings(_Strict):
    """How queued trials are retried (``queue:`` in tracker.yaml)."""

    max_attempts: int = Field(default=3, ge=1)  # a trial lost by its worker runs again until it had this many


class EnvironmentConfig(_Strict):
    """The environment local trials run in (``environment:`` in tracker.yaml).

    Off by default: trials run with whatever ``python`` the shell finds. With ``venv: true``
    they run in the project's own venv, built from its requirements on first need and
    reused until the requirements, the python or the set-up commands change.
    """

    venv: bool = False
    python: str | None = None  # the interpreter the venv is made from; default: the one running tracker
    requirements: list[str] | None = None  # files for `pip install -r`; default: found as on remotes
    setup: list[str] = Field(default_factory=list)  # shell commands run in the new venv, in the project root
    shared: bool = False  # keep the venv by key in the user's cache, for every project with the same requirements

    @field_validator("requirements", mode="before")
    @classmethod
    def _one_file(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("python", "requirements", "setup", "shared")
    @classmethod
    def _needs_venv(cls, v: Any, info: ValidationInfo) -> Any:
        if v not in (None, [], False) and not info.data.get("venv"):
            raise ValueError(f"{info.field_name!r} applies to the project's venv: add 'venv: true' or remove it")
        return v


class CodeConfig(_Strict):
    """What counts as a trial's code (``code:`` in tracker.yaml; see :mod:`tracker.codeset`)."""

    include: list[str] = Field(default_factory=list)  # untracked files taken as code whatever the rules say
    exclude: list[str] = Field(default_factory=list)  # untracked files never taken as code
    max_file_size: int | str = "1MiB"  # larger untracked files are left out

    @field_validator("include", "exclude")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        for pattern in v:
            if not pattern.strip() or pattern.startswith("/") or ".." in pattern.split("/"):
                raise ValueError(f"invalid pattern {pattern!r}: use a name or path relative to the project root, "
                                 "such as '*.csv' or 'data/raw/'")
        return v

    @field_validator("max_file_size")
    @classmethod
    def _size(cls, v: int | str) -> int | str:
        parse_size(v)
        return v

    @property
    def max_bytes(self) -> int:
        """``max_file_size`` in bytes."""
        return parse_size(self.max_file_size)


class ProjectConfig(_Strict):
    """tracker.yaml: project settings."""

    name: str | None = None
    seeds: list[int] = Field(default_factory=list)
    master_seed: int | None = None
    defaults: Defaults = Field(default_factory=Defaults)
    remotes: dict[str, RemoteConfig] = Field(default_factory=dict)  # SSH hosts: targets of type ssh
    targets: dict[str, TargetConfig] = Field(default_factory=dict)
    storage: dict[str, StorageTarget] = Field(default_factory=dict)
    environment: EnvironmentConfig = Field(default_factory=EnvironmentConfig)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    code: CodeConfig = Field(default_factory=CodeConfig)
    store: str | None = None  # the store's URL (sqlite:///path, relative to the project); default .tracker/tracker.db

    @field_validator("store")
    @classmethod
    def _store_url(cls, v: str | None) -> str | None:
        if v is not None and "://" not in v:
            raise ValueError(f"store must be a URL like sqlite:///path/to/tracker.db, got {v!r}")
        return v

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("preset seeds must be distinct")
        return v

    @field_validator("remotes", "targets", "storage")
    @classmethod
    def _names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if not valid_name(name):
                raise ValueError(f"invalid name {name!r}: {RULE}")
        return v

    @model_validator(mode="after")
    def _distinct_targets(self) -> ProjectConfig:
        both = sorted(set(self.remotes) & set(self.targets))
        if both:
            raise ValueError(f"{both[0]!r} is both a remote and a target: rename one (remotes: are targets "
                             "of type ssh)")
        return self

    def all_targets(self) -> dict[str, TargetConfig]:
        """Every named target: ``targets:`` and the SSH hosts of ``remotes:``."""
        hosts = {name: TargetConfig.model_construct(type="ssh", options=cfg) for name, cfg in self.remotes.items()}
        return {**hosts, **self.targets}

    def hosts(self) -> dict[str, RemoteConfig]:
        """Every named SSH host: ``remotes:`` and the ``targets:`` of type ssh."""
        extra = {n: t.options for n, t in self.targets.items() if isinstance(t.options, RemoteConfig)}
        return {**self.remotes, **extra}


# --------------------------------------------------------------------------- experiments


class SearchSpace(_Strict):
    """A parameter range for ``tracker optimize``."""

    type: Literal["uniform", "loguniform", "int", "choice"]
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    values: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> SearchSpace:
        if self.type == "choice":
            if not self.values:
                raise ValueError("a 'choice' range needs a non-empty 'values' list")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type!r} range needs 'low' and 'high'")
        if not self.low <= self.high:
            raise ValueError(f"'low <= high' must hold, but got (low={self.low}, high={self.high})")
        if self.type == "loguniform" and self.low <= 0:
            raise ValueError(f"a 'loguniform' range needs low > 0, but got low={self.low}")
        if self.type == "int" and not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise ValueError("an 'int' range needs integer 'low' and 'high'")
        return self


class Objective(_Strict):
    """The metric a search optimises; must be a validation metric."""

    metric: str
    goal: Literal["min", "max"] = "max"

    @field_validator("metric")
    @classmethod
    def _not_test(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the objective needs a metric name, e.g. val/acc")
        return selectable(v)


def is_test_metric(metric: str) -> bool:
    """Whether ``metric`` measures test data: any part of its name is ``test`` (``test/acc``,
    ``train/test/acc``, ``test_acc``, ``val.test-loss``), whatever phase recorded it."""
    return "test" in re.split(r"[^a-z0-9]+", metric.lower())


def selectable(metric: str) -> str:
    """``metric`` if it may drive selection; ValueError for a test metric."""
    if is_test_metric(metric):
        raise ValueError(f"{metric!r} is a test metric; test data must not drive selection "
                         "(optimise and compare on a validation metric such as val/acc)")
    return metric


def check_seeds(v: int | list[int] | None) -> int | list[int] | None:
    """A ``seeds`` setting as given: a count of at least 1, or a non-empty list without repeats."""
    if isinstance(v, int) and v < 1:
        raise ValueError(f"'seeds' must be at least 1, got {v}")
    if isinstance(v, list) and (not v or len(set(v)) != len(v)):
        raise ValueError("'seeds' must be a non-empty list that does not repeat a seed")
    return v


_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]i?)?[bB]?\s*\Z")
_SIZE_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "ki": 1024, "mi": 1024**2, "gi": 1024**3}


def parse_size(value: int | str) -> int:
    """Bytes from ``1024``, ``"10kB"``, ``"1.5MiB"``; ValueError otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"a size must not be negative, got {value}")
        return value
    match = _SIZE_RE.match(str(value))
    if not match:
        raise ValueError(f"invalid size {value!r}: use bytes (1024) or a unit (10kB, 1.5MiB, 2GB)")
    return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()])


class Deliverable(_Strict):
    """An output a trial must produce, checked when it finishes."""

    path: str
    check: Literal["exists", "nonempty", "min_size", "contains_keys"] = "exists"
    keys: list[str] = Field(default_factory=list)
    size: int | str | None = None  # for min_size: bytes, or 10kB / 1.5MiB

    @model_validator(mode="after")
    def _keys(self) -> Deliverable:
        if self.check == "contains_keys" and not self.keys:
            raise ValueError("check 'contains_keys' needs a non-empty 'keys' list")
        if self.keys and self.check != "contains_keys":
            raise ValueError(f"'keys' applies to check 'contains_keys', not {self.check!r}")
        if self.check == "min_size":
            if self.size is None:
                raise ValueError("check 'min_size' needs a 'size' (bytes, or 10kB / 1.5MiB)")
            parse_size(self.size)
        elif self.size is not None:
            raise ValueError(f"'size' applies to check 'min_size', not {self.check!r}")
        if Path(self.path).is_absolute() or ".." in Path(self.path).parts:
            raise ValueError(f"deliverable path {self.path!r} must be relative to the trial directory")
        return self

    @property
    def min_bytes(self) -> int:
        """The least size a ``min_size`` deliverable may have."""
        return parse_size(self.size) if self.size is not None else 0


PHASES = ("train", "validate", "test")
"""The phases an experiment may define, in the order they run."""
PHASE_PREFIX = {"train": "train", "validate": "val", "test": "test"}
"""The namespace of each phase's metrics (``train/loss``, ``val/acc``, ``test/acc``)."""


class Phase(_Strict):
    """One phase (train / validate / test) of an experiment.

    In the experiment file a phase is a command (string or list), a mapping, or empty
    (``validate: {}``: the experiment's ``command`` runs with ``TRACKER_PHASE=validate``).
    """

    command: str | list[str] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    seeds: int | list[int] | None = None
    seed_flag: str | None = "eval_seeds"  # the flag carrying evaluation seeds (--eval_seeds=1,2)
    deliverables: list[Deliverable] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, v: Any) -> Any:
        if v is None:
            return {}
        if isinstance(v, (str, list)):
            return {"command": v}
        return v

    @field_validator("command")
    @classmethod
    def _command(cls, v: str | list[str] | None) -> str | list[str] | None:
        if v is not None and ((isinstance(v, str) and not v.strip()) or (isinstance(v, list) and not v)):
            raise ValueError("a phase's 'command' must not be empty (leave it out to run the experiment's command)")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: int | list[int] | None) -> int | list[int] | None:
        return check_seeds(v)

    def argv(self, default: str | list[str]) -> list[str]:
        """The phase's command as an argument list (``default``: the experiment's command)."""
        import shlex

        command = self.command if self.command is not None else default
        return shlex.split(command) if isinstance(command, str) else list(command)


class OutputScalars(_Strict):
    """``output_scalars``: how metrics are read from what a trial prints (see docs/guide.md)."""

    patterns: list[str | dict[str, str]] = Field(default_factory=list)
    defaults: bool = True

    @field_validator("patterns")
    @classmethod
    def _compile(cls, v: list[str | dict[str, str]]) -> list[str | dict[str, str]]:
        from tracker.execution.patterns import compile_pattern

        for item in v:
            compile_pattern(item)
        return v


class ExperimentConfig(_Strict):
    """experiments/NAME.yaml: what to run and over which parameters and seeds."""

    description: str = ""
    command: str | list[str]
    params: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    search: dict[str, SearchSpace] = Field(default_factory=dict)
    seeds: int | list[int] | None = None
    seed_flag: str | None = "seed"
    params_as: Literal["flags", "env", "json", "yaml"] = "flags"
    booleans: Literal["value", "bare"] = "value"  # as flags: --name=true/false, or bare (--name; false left out)
    objective: Objective | None = None
    phases: dict[Literal["train", "validate", "test"], Phase] = Field(default_factory=dict)
    deliverables: list[Deliverable] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    timeout: float | None = Field(default=None, gt=0)
    backup: str | None = None
    tags: list[str] = Field(default_factory=list)
    output_scalars: OutputScalars = Field(default_factory=OutputScalars)
    tensorboard: bool | str = True

    @field_validator("tensorboard")
    @classmethod
    def _tensorboard_dir(cls, v: bool | str) -> bool | str:
        if isinstance(v, str) and (not v.strip() or Path(v).is_absolute() or ".." in Path(v).parts):
            raise ValueError(f"{v!r} must be a directory inside the trial directory (e.g. tb), "
                             "or true/false")
        return v

    @field_validator("output_scalars", mode="before")
    @classmethod
    def _scalars_short_forms(cls, v: Any) -> Any:
        if isinstance(v, list):  # output_scalars: [patterns...] - read with the defaults
            return {"patterns": v}
        if v is False:  # output_scalars: false - nothing is read from the output
            return {"defaults": False}
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(check_tag(t) for t in v))

    @field_validator("command")
    @classmethod
    def _command(cls, v: str | list[str]) -> str | list[str]:
        if (isinstance(v, str) and not v.strip()) or (isinstance(v, list) and not v):
            raise ValueError("'command' must not be empty")
        return v

    @field_validator("params", "grid", "search")
    @classmethod
    def _param_names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if not isinstance(name, str) or not PARAM_RE.match(name):
                raise ValueError(f"invalid parameter name {name!r}: use letters, digits, '_', '.', '-'")
        return v

    @field_validator("grid")
    @classmethod
    def _grid(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for name, values in v.items():
            if not values:
                raise ValueError(f"grid {name!r} has no values; give at least one")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: int | list[int] | None) -> int | list[int] | None:
        return check_seeds(v)

    @field_validator("phases", mode="before")
    @classmethod
    def _phase_list(cls, v: Any) -> Any:
        if isinstance(v, list):  # phases: [train, validate, test] - one command, told by TRACKER_PHASE
            if not all(isinstance(p, str) for p in v):
                raise ValueError("a 'phases' list names phases: [train, validate, test]")
            return dict.fromkeys(v)
        return v

    @model_validator(mode="after")
    def _overlap(self) -> ExperimentConfig:
        both = sorted(set(self.params) & set(self.grid))
        if both:
            raise ValueError(f"{both[0]!r} is in both 'params' and 'grid'; keep it in one")
        if self.seed_flag and (self.seed_flag in self.params or self.seed_flag in self.grid):
            raise ValueError(f"{self.seed_flag!r} is set by tracker from 'seeds'; remove it from params")
        return self

    @model_validator(mode="after")
    def _phases(self) -> ExperimentConfig:
        train = self.phases.get("train")
        if train is not None and "seed_flag" in train.model_fields_set:
            raise ValueError("'seed_flag' of a phase names the flag of evaluation seeds; the train phase has "
                             "none (its seed's flag is the experiment's 'seed_flag')")
        if train is not None and train.seeds is not None and self.seeds is not None:
            raise ValueError("training seeds are set twice, in 'seeds' and in 'phases: train: seeds'; keep one")
        if self.phases and self.objective and "/" not in self.objective.metric:
            metric = self.objective.metric
            keras = re.match(r"(?:val|valid|validation)_(\w.*)", metric)  # val_acc is stored as val/acc
            raise ValueError(f"with phases, metrics are namespaced by phase: name the objective "
                             f"'val/{keras.group(1) if keras else metric}', not {metric!r}")
        for name in ("validate", "test"):
            phase = self.phases.get(name)
            if phase is not None and phase.seed_flag and phase.seed_flag in (self.seed_flag, *self.params,
                                                                             *self.grid, *phase.params):
                raise ValueError(f"the {name} phase's seed_flag {phase.seed_flag!r} clashes with a param or "
                                 "the seed flag; pick another name")
        return self

    def phase(self, name: str) -> Phase:
        """The settings of phase ``name`` (defaults when the experiment does not define it)."""
        return self.phases.get(name) or Phase()

    @property
    def training_seeds(self) -> int | list[int] | None:
        """The training seeds setting: ``seeds``, or ``phases: train: seeds``."""
        train = self.phases.get("train")
        return self.seeds if self.seeds is not None or train is None else train.seeds

    def command_argv(self) -> list[str]:
        """The command as an argument list."""
        import shlex

        return shlex.split(self.command) if isinstance(self.command, str) else list(self.command)


# --------------------------------------------------------------------------- conf.yaml


class CreateConfig(_Strict):
    """conf.yaml for ``tracker create``."""

    template: str
    checkout: str | None = None
    directory: str | None = None
    output_dir: str = "."
    context: dict[str, Any] = Field(default_factory=dict)
    overwrite: bool = False


# --------------------------------------------------------------------------- loading

M = TypeVar("M", bound=BaseModel)


_UNION_TAGS = {
    "str": "a string", "list[str]": "a list of strings", "int": "an integer",
    "list[int]": "a list of integers", "float": "a number", "bool": "true/false",
}


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validation_error(exc: ValidationError, model: type[BaseModel], path: object,
                     lines: LineMap) -> ConfigError:
    """Turn the first pydantic error into a one-line ConfigError naming file and line."""
    errors = exc.errors()
    err = errors[0]
    members = [str(p) for e in errors for p in e["loc"] if str(p) in _UNION_TAGS]
    loc = tuple(p for p in err["loc"] if str(p) not in _UNION_TAGS
                and not (isinstance(p, str) and p.startswith("function-")))
    key = ".".join(str(p) for p in loc) or "(top level)"
    line = line_of(lines, loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        valid = (err.get("ctx") or {}).get("valid") or (", ".join(parent.model_fields) if parent else "")
        return ConfigError(f"unknown key {loc[-1]!r}", path=path, line=line,
                           hint=f"valid keys here: {valid}" if valid else "remove it")
    if kind == "missing":
        return ConfigError(f"missing required key {key!r}", path=path, line=line,
                           hint=f"add '{loc[-1]}: ...'")
    msg = err["msg"].removeprefix("Value error, ")
    if members and kind not in {"value_error", "assertion_error"}:
        expected = " or ".join(_UNION_TAGS[m] for m in dict.fromkeys(members))
        return ConfigError(f"{key} must be {expected}, got {_describe(err.get('input'))}",
                           path=path, line=line)
    if kind in {"value_error", "assertion_error"}:
        return ConfigError(f"{key}: {msg}" if loc else msg, path=path, line=line)
    return ConfigError(f"{key}: {msg}, got {_describe(err.get('input'))}", path=path, line=line)


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that owns the keys at ``loc`` (for listing valid keys)."""
    import types
    import typing

    def unwrap(tp: Any) -> Any:
        if typing.get_origin(tp) not in (typing.Union, types.UnionType):
            return tp
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        return models[0] if models else tp

    current: Any = model
    for part in loc:
        current = unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            current = field.annotation if field else None
        elif typing.get_origin(current) in (dict, list):
            current = typing.get_args(current)[-1]
        else:
            return None
    current = unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def validate_data(data: Any, model: type[M], path: object, lines: LineMap) -> M:
    """Validate parsed YAML against ``model``; errors become one-line ConfigErrors."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping of keys, got {type(data).__name__}", path=path, line=1)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, model, path, lines) from None


def load_model(path: Path, model: type[M]) -> M:
    """Read and validate a YAML file as ``model``."""
    data, lines = load_yaml(path)
    return validate_data(data, model, path, lines)


def parse_model(text: str, model: type[M], path: object = "<string>") -> M:
    """Parse and validate YAML text as ``model``."""
    data, lines = parse_yaml(text, path)
    return validate_data(data, model, path, lines)


def parse_assignment(text: str, *, where: str = "--param") -> tuple[str, Any]:
    """Parse ``name=value`` from the command line.

    The value is read as YAML (``0.1``, ``true``, ``[1, 2]``, ``'quoted'``), except that an
    unquoted string is kept exactly as typed, newlines and ``#`` included.
    """
    import yaml

    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ConfigError(f"{where} {text!r}: expected NAME=VALUE", hint=f"e.g. {where} lr=0.01")
    if not PARAM_RE.match(name):
        raise ConfigError(f"{where} {text!r}: invalid parameter name {name!r}")
    if not raw.strip():
        return name, ""
    try:
        node = yaml.compose(raw, Loader=yaml.SafeLoader)
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return name, raw
    if isinstance(value, float) and math.isnan(value):
        value = raw
    if isinstance(value, str) and isinstance(node, yaml.ScalarNode) and node.style is None:
        value = raw  # a plain string arrives as typed: YAML would fold a newline into a space, drop "# ..."
    return name, value
