"""Study files: TOML that selects and limits a search, validated before anything runs."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import (BaseModel, ConfigDict, Field, NonNegativeInt, PositiveFloat, PositiveInt,
                      field_validator, model_validator)

from automl.errors import UsageError
from automl.plugin.task import TASK_KINDS

ObjectiveName = Literal["val_accuracy", "flops", "params", "latency_ms"]
OptimizerName = Literal["adam", "adamw", "sgd"]
PrunerName = Literal["none", "median", "sha", "hyperband", "moasha"]
# Optuna's pruners read trial.report(), which multi-objective studies refuse.
SINGLE_OBJECTIVE_PRUNERS = ("median", "sha", "hyperband")

DEFAULT_STORAGE = "sqlite:///automl.db"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Section):
    """``[data]``: which dataset, its options, and how it is split (stratified, fixed by the study seed).

    Every key but the split sizes is an option some datasets read; a dataset ignores the others.
    """

    dataset: str = "digits"
    val_size: float = Field(0.15, gt=0, lt=1)
    test_size: float = Field(0.15, gt=0, lt=1)
    # The data file or folder (a torchvision-style root for mnist, cifar10, ...); a relative path
    # in a study file is relative to that file's folder.
    path: str | None = None
    # Fetch a torchvision dataset into ``path`` when it is not there (needs automl[torchvision]).
    download: bool = False
    # npz: the task kind when the shape of x does not say it (integer [N, T] is tokens only if asked).
    kind: Literal[TASK_KINDS] | None = None
    label: str = "label"  # csv and text: the label column
    text: str = "text"  # text: the text column
    tokenizer: Literal["chars", "words"] = "words"
    max_length: PositiveInt = 64  # text: tokens per sample, padded or truncated
    min_freq: PositiveInt = 1  # text: rarer tokens become the unknown token
    image_size: PositiveInt | None = None  # imagefolder: resize to this square; default the first image's size
    # ``[data.options]``: keys for a dataset from another package, which checks their values; their
    # names are checked when it lists its option_keys (automl.data.prepare). The keys above are the
    # built-in datasets', where a typo is an error.
    options: dict[str, Any] = {}

    def __hash__(self) -> int:
        # prepare() caches per config; a frozen model's default hash fails on the options dict.
        return hash(json.dumps(self.model_dump(mode="json"), sort_keys=True))

    @model_validator(mode="after")
    def _leaves_training_data(self) -> DataConfig:
        if self.val_size + self.test_size >= 0.9:
            raise ValueError(f"val_size + test_size = {self.val_size + self.test_size:g} leaves "
                             "too little to train on; keep the sum below 0.9")
        return self


class SearchConfig(_Section):
    """``[search]``: which families compete, for which objectives, with which sampler."""

    families: list[str] | None = Field(None, min_length=1)
    objectives: list[ObjectiveName] = Field(["val_accuracy", "flops"], min_length=1)
    sampler: Literal["tpe", "nsgaii", "random", "gp"] = "tpe"
    # Early stopping at rungs min_epochs * reduction_factor**k (automl.pruning).
    pruner: PrunerName = "moasha"
    reduction_factor: int = Field(3, ge=2)
    min_epochs: PositiveInt = 1
    latency_batch_size: PositiveInt = 1
    # Where latency is timed: the training device, or the CPU when models will be served there.
    latency_device: Literal["train", "cpu"] = "train"
    # Configs a new study runs first: "study:NAME" (its Pareto front), "study:NAME@URL", or a JSON file.
    warm_start: list[str] = []

    @field_validator("warm_start", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("families", "objectives")
    @classmethod
    def _unique(cls, values: list[str] | None) -> list[str] | None:
        if values and len(set(values)) != len(values):
            raise ValueError(f"a name is listed twice: {values}")
        return values

    @model_validator(mode="after")
    def _pruner_fits_objectives(self) -> SearchConfig:
        # Optuna's pruners compare the one value each trial reports, its validation accuracy, in
        # the study's direction; multi-objective studies cannot report at all.
        if self.pruner in SINGLE_OBJECTIVE_PRUNERS and list(self.objectives) != ["val_accuracy"]:
            raise ValueError(f"pruner = {self.pruner!r} needs objectives = [\"val_accuracy\"] "
                             f"(Optuna's pruners rank one reported value, and multi-objective studies "
                             f"cannot report), but objectives = {list(self.objectives)}; use "
                             "pruner = \"moasha\" (or \"none\"), or search val_accuracy alone")
        return self


class BudgetConfig(_Section):
    """``[budget]``: limits a config must meet to be trained at all; unset means no limit."""

    max_params: PositiveInt | None = None
    max_flops: PositiveFloat | None = None  # forward FLOPs per sample
    max_latency_ms: PositiveFloat | None = None  # at [search] latency_batch_size

    def limits(self) -> dict[str, float]:
        """The budget keys that are set, with their limits."""
        return {key: float(value) for key, value in self.model_dump().items() if value is not None}


class TrainConfig(_Section):
    """``[train]``: trainer limits and the ranges of the searched training hyperparameters."""

    max_epochs: PositiveInt = 10
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"] = "auto"
    lr: tuple[float, float] = (1e-4, 1e-2)
    weight_decay: tuple[float, float] = (1e-6, 1e-2)
    batch_size: list[PositiveInt] = Field([32, 64, 128], min_length=1)
    optimizer: list[OptimizerName] = Field(["adam", "adamw"], min_length=1)
    augment: bool = False  # random crop and flip for image tasks, done on the device
    compile: bool = False  # torch.compile each model: pays off for long trials on a GPU
    # Splits live on the device when they fit ("auto": under half the GPU's free memory);
    # otherwise a DataLoader with this many worker processes streams them from host memory.
    data_on_device: Literal["auto"] | bool = "auto"
    loader_workers: NonNegativeInt = 2

    @field_validator("lr", "weight_decay")
    @classmethod
    def _log_range(cls, bounds: tuple[float, float]) -> tuple[float, float]:
        low, high = bounds
        if not 0 < low <= high:
            raise ValueError("expected [low, high] with 0 < low <= high (searched on a log scale)")
        return bounds


class WorkersConfig(_Section):
    """``[workers]``: how a study outlives dead workers and failing trials.

    Every worker of a study should use the same values: whichever worker notices a stale trial
    judges it by its own grace period.
    """

    heartbeat_interval: PositiveInt = 10
    grace_period: PositiveInt = 60
    max_retry: NonNegativeInt = 2
    max_failures_in_row: PositiveInt = 10
    # Small trials leave most of a GPU idle: `automl run` starts this many workers per GPU, and
    # each worker may use that share of the GPU's memory.
    trials_per_gpu: PositiveInt = 1

    @model_validator(mode="after")
    def _grace_outlasts_heartbeat(self) -> WorkersConfig:
        if self.grace_period <= self.heartbeat_interval:
            raise ValueError(f"grace_period ({self.grace_period} s) must be longer than heartbeat_interval "
                             f"({self.heartbeat_interval} s), or live trials would be failed as stale")
        return self


class StudyConfig(_Section):
    """A whole study file."""

    name: str = Field(min_length=1)
    n_trials: PositiveInt = 30
    timeout: float | None = Field(None, gt=0)
    storage: str | None = None
    # Folder of the trials' artifacts (automl.storage.artifacts); default: derived from the storage URL.
    artifacts: str | None = None
    seed: int = 0
    data: DataConfig = DataConfig()
    search: SearchConfig = SearchConfig()
    budget: BudgetConfig = BudgetConfig()
    train: TrainConfig = TrainConfig()
    workers: WorkersConfig = WorkersConfig()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _allowed_keys(model: type[BaseModel], location: tuple[Any, ...]) -> list[str]:
    for key in location[:-1]:
        annotation = model.model_fields[key].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _describe(error: Any, path: Path) -> str:
    location = tuple(error["loc"])
    key = ".".join(str(part) for part in location) or "(top level)"
    if error["type"] == "extra_forbidden":
        section = ".".join(str(part) for part in location[:-1])
        where = f"[{section}]" if section else "the top level"
        allowed = ", ".join(_allowed_keys(StudyConfig, location))
        hint = "; a dataset from another package reads its own keys from [data.options]" if section == "data" else ""
        return f"{path}: unknown key '{key}'; allowed in {where}: {allowed}{hint}"
    message = error["msg"].removeprefix("Value error, ")
    found = error.get("input")
    shown = "" if isinstance(found, dict) else f" (found {found!r})"
    return f"{path}: key '{key}': {message}{shown}"


def parse_study(data: dict[str, Any], path: Path) -> StudyConfig:
    """Validate already-parsed TOML; every problem is named with file and key.

    A relative ``[data] path`` is made relative to the study file's folder, so a study runs the
    same from any working directory (and its stored config still finds the data).
    """
    try:
        config = StudyConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = [_describe(error, path) for error in exc.errors()]
        raise UsageError("invalid study file:\n  " + "\n  ".join(problems)) from None
    if config.data.path is None:
        return config
    resolved = str((path.parent / Path(config.data.path).expanduser()).resolve())
    return config.model_copy(update={"data": config.data.model_copy(update={"path": resolved})})


def load_study_file(path: str | Path) -> StudyConfig:
    """Read and validate a study file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"study file {path} does not exist; ship one like studies/quickstart.toml") from None
    except OSError as exc:
        raise UsageError(f"cannot read study file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    return parse_study(data, path)
