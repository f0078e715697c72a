"""Study files: TOML that selects and limits a search, validated before anything runs.

Owns the study file's sections, their defaults and their checks; the ``[data]`` options are the
selected dataset's, validated by its own options model. May import ``automl.errors``,
``automl.plugin`` (the registry and the dataset contract) and ``automl.storage`` (the schema's
objectives table).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, Field, NonNegativeInt, PositiveFloat, PositiveInt, field_validator, model_validator

from automl.errors import UsageError
from automl.plugin.contract import BASE_DIR, DatasetOptions, TomlModel
from automl.plugin.registry import Registry
from automl.plugin.registry import registry as installed_registry
from automl.storage.schema import ACCURACY, FLOPS, OBJECTIVE_NAMES

if TYPE_CHECKING:
    ObjectiveName = str  # the objectives table's names are known only when it is built
else:
    # A Literal of the schema's objectives table: pydantic lists the allowed names when one is wrong.
    ObjectiveName = Literal[OBJECTIVE_NAMES]
OptimizerName = Literal["adam", "adamw", "sgd"]
PrunerName = Literal["none", "median", "sha", "hyperband", "moasha"]
# Optuna's pruners read trial.report(), which multi-objective studies refuse.
SINGLE_OBJECTIVE_PRUNERS = ("median", "sha", "hyperband")

DEFAULT_STORAGE = "sqlite:///automl.db"
# The dataset a study's stored config names when its data was given in memory (automl.run's data).
IN_MEMORY_DATASET = "arrays"
DEFAULT_N_TRIALS = 30


class _Section(TomlModel):
    """A study-file section (or the whole file)."""


class DataConfig(_Section):
    """``[data]``: which dataset, its options, and how it is split (stratified, fixed by the study seed).

    Every other key of ``[data]``, and every key of a ``[data.options]`` table, is an option of the
    selected dataset, which declares them (its ``options`` model, automl.plugin.contract); they are
    gathered in ``options``. ``parse_study`` validates them against the dataset, keeping them as
    JSON with absolute paths, so a stored config replays the same data.
    """

    dataset: str = "digits"
    val_size: float = Field(0.15, gt=0, lt=1)
    test_size: float = Field(0.15, ge=0, lt=1)  # 0: no test split
    # k-fold cross-validation (k >= 2), one validation split (1) or "auto" (automl.data.splits).
    folds: Literal["auto"] | Annotated[int, Field(ge=1)] = "auto"
    options: dict[str, Any] = {}

    def __hash__(self) -> int:
        # prepare() caches per config; a frozen model's default hash fails on the options dict.
        return hash(json.dumps(self.model_dump(mode="json"), sort_keys=True))

    @model_validator(mode="before")
    @classmethod
    def _gather_options(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        keys = {key: value for key, value in values.items() if key not in cls.model_fields}
        table = values.get("options", {})
        if not keys or not isinstance(table, dict):
            return values  # pydantic names a table that is no table
        twice = sorted(set(keys) & set(table))
        if twice:
            raise ValueError(f"{', '.join(map(repr, twice))} given both in [data] and in [data.options]; "
                             "give each key once")
        own = {key: value for key, value in values.items() if key in cls.model_fields}
        return {**own, "options": {**table, **keys}}

    @field_validator("folds", mode="wrap")
    @classmethod
    def _auto_or_count(cls, value: Any, handler: pydantic.ValidatorFunctionWrapHandler) -> Any:
        try:  # one error for the key, not one per member of the union with pydantic's names for them
            return handler(value)
        except pydantic.ValidationError:
            raise ValueError('expected "auto" or a whole number of folds, at least 1 (1: one validation '
                             'split; k >= 2: k-fold cross-validation)') from None

    @model_validator(mode="after")
    def _leaves_training_data(self) -> DataConfig:
        if self.val_size + self.test_size >= 0.9:
            raise ValueError(f"val_size + test_size = {self.val_size + self.test_size:g} leaves "
                             "too little to train on; keep the sum below 0.9")
        return self


class SearchConfig(_Section):
    """``[search]``: which families compete, for which objectives, with which sampler."""

    families: list[str] | None = Field(None, min_length=1)
    objectives: list[ObjectiveName] = Field([ACCURACY.name, FLOPS.name], min_length=1)
    sampler: Literal["tpe", "nsgaii", "random", "gp"] = "tpe"
    pruner: PrunerName = "moasha"  # early stopping at rungs min_epochs * reduction_factor**k (automl.search.pruners)
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
        if self.pruner in SINGLE_OBJECTIVE_PRUNERS and list(self.objectives) != [ACCURACY.name]:
            raise ValueError(f"pruner = {self.pruner!r} needs objectives = [\"{ACCURACY.name}\"] "
                             f"(Optuna's pruners rank one reported value, and multi-objective studies "
                             f"cannot report), but objectives = {list(self.objectives)}; use "
                             f"pruner = \"moasha\" (or \"none\"), or search {ACCURACY.name} alone")
        return self


class BudgetConfig(_Section):
    """``[budget]``: limits a config must meet to be trained (unset: none); study-wide ones (s, h) too."""

    max_params: PositiveInt | None = None
    max_flops: PositiveFloat | None = None  # forward FLOPs per sample
    max_latency_ms: PositiveFloat | None = None  # at [search] latency_batch_size
    study_timeout: PositiveFloat | None = None  # seconds from its creation (automl.workers.study_budget)
    device_hours: PositiveFloat | None = None  # its trials' device time summed over all workers

    def limits(self) -> dict[str, float]:
        """The per-config limits that are set (the trials' constraints), by budget key."""
        dumped = self.model_dump(exclude={"study_timeout", "device_hours"}).items()
        return {key: float(value) for key, value in dumped if value is not None}


class TrainConfig(_Section):
    """``[train]``: trainer limits and the ranges of the searched training hyperparameters."""

    max_epochs: PositiveInt = 10
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"] = "auto"
    lr: tuple[float, float] = (1e-4, 1e-2)
    weight_decay: tuple[float, float] = (1e-6, 1e-2)
    batch_size: list[PositiveInt] = Field([32, 64, 128], min_length=1)
    optimizer: list[OptimizerName] = Field(["adam", "adamw"], min_length=1)
    # "cosine": the sampled lr decays to 0 along a half cosine (Loshchilov and Hutter, 2017), so the
    # last epoch's model, the one kept, is not one noisy step's luck; small data's default unless set.
    lr_schedule: Literal["constant", "cosine"] = "constant"
    augment: bool = False  # random crop and flip for image tasks, done on the device
    compile: bool = False  # torch.compile each model: pays off for long trials on a GPU
    # Splits on the device when they fit ("auto": under half the GPU's free memory), else streamed by this many workers.
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
    # Seconds a worker retries an unreachable database (a restart, a blip) before it stops (automl.storage.retry).
    storage_retry_s: PositiveFloat = 120
    # Small trials leave most of a GPU idle: `automl run` starts this many workers per GPU, and
    # each worker may use that share of the GPU's memory.
    trials_per_gpu: PositiveInt = 1

    @model_validator(mode="after")
    def _grace_outlasts_heartbeat(self) -> WorkersConfig:
        if self.grace_period <= self.heartbeat_interval:
            raise ValueError(f"grace_period ({self.grace_period} s) must be longer than heartbeat_interval "
                             f"({self.heartbeat_interval} s), or live trials would be failed as stale")
        return self


class _StudyKeys(_Section):
    """The keys of a whole study file as pydantic checks them (parse_study adds the dataset's options)."""

    name: str = Field(min_length=1)
    n_trials: PositiveInt | None = None  # see trials_per_run
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

    def trials_per_run(self, timeout: float | None) -> int | None:
        """The trials a run adds: ``n_trials``; without it, None when the run has a budget (``timeout``
        seconds, from the command line or this file): it samples until its deadline, as Optuna's
        ``optimize(timeout=...)`` does (automl.storage.trial_queue); 30 when it has no budget either."""
        if self.n_trials is not None:
            return self.n_trials
        return None if timeout else DEFAULT_N_TRIALS

    def storage_url(self, storage: str | None = None) -> str:
        """Where the study is stored: ``storage`` (a command-line or call argument), else this
        config's ``storage``, else DEFAULT_STORAGE."""
        return storage or self.storage or DEFAULT_STORAGE

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class StudyConfig(_StudyKeys):
    """A whole study: what a study file holds, or the same keys given in Python.

    ``StudyConfig(name="digits", train={"max_epochs": 5})`` (or ``StudyConfig.from_dict(...)``) is
    validated as a study file is, the ``[data]`` options by the selected dataset among the installed
    plugins; a relative data path is taken relative to the working directory. Raises UsageError
    naming every wrong key, what is allowed and what was found."""

    # The study file it was read from (load_study_file); None for a config built in Python.
    _source: Path | None = pydantic.PrivateAttr(None)

    def __init__(self, /, **keys: Any) -> None:
        # Built in Python: checked as a study file is. Only the keys given count as set, as in a file.
        checked = parse_study(keys, None)
        super().__init__(**checked.model_dump(exclude_unset=True))

    @classmethod
    def from_dict(cls, keys: dict[str, Any]) -> StudyConfig:
        """A config from a study file's keys as a dict (``{"name": ..., "train": {...}}``)."""
        return cls(**keys)

    @classmethod
    def as_stored(cls, keys: dict[str, Any]) -> StudyConfig:
        """The config a study stored (its ``automl_config`` attr): its keys checked (pydantic.ValidationError,
        a ValueError, for keys that no longer validate), the dataset's options not (the data may have
        been given in memory, or its plugin is gone since)."""
        checked = _StudyKeys.model_validate(keys)
        return cls.model_construct(checked.model_fields_set, **dict(checked))

    @property
    def source(self) -> Path | None:
        """The study file this config was read from; None when it was built in Python."""
        return self._source


def _allowed_keys(model: type[BaseModel], location: tuple[Any, ...]) -> list[str]:
    for key in location[:-1]:
        annotation = model.model_fields[key].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _wrong_value(key: str, error: Any) -> str:
    message = error["msg"].removeprefix("Value error, ")
    found = error.get("input")
    shown = "" if isinstance(found, dict) else f" (found {found!r})"
    return f"key '{key}': {message}{shown}"


def _describe(error: Any, prefix: str) -> str:
    location = tuple(error["loc"])
    key = ".".join(str(part) for part in location) or "(top level)"
    if error["type"] == "extra_forbidden":
        section = ".".join(str(part) for part in location[:-1])
        where = f"[{section}]" if section else "the top level"
        allowed = ", ".join(_allowed_keys(_StudyKeys, location))
        return f"{prefix}unknown key '{key}'; allowed in {where}: {allowed}"
    return f"{prefix}{_wrong_value(key, error)}"


def _describe_option(error: Any, dataset: str, model: type[DatasetOptions], table_keys: Collection[str]) -> str:
    location = tuple(error["loc"])
    section = "data.options" if location and location[0] in table_keys else "data"
    key = ".".join((section, *map(str, location)))
    if error["type"] == "extra_forbidden" and len(location) == 1:
        allowed = [name for name in DataConfig.model_fields if name != "options"] + list(model.model_fields)
        return f"unknown key '{key}'; allowed in [data] for dataset {dataset!r}: {', '.join(allowed)}"
    if error["type"] == "missing" and len(location) == 1:
        description = model.model_fields[location[0]].description
        return f"dataset {dataset!r} needs key '{key}'{f': {description}' if description else ''}"
    return _wrong_value(key, error)


def check_options(data: DataConfig, registry: Registry, base_dir: Path | None = None,
                  table_keys: Collection[str] = ()) -> tuple[DatasetOptions | None, list[str]]:
    """``data.options`` as the selected dataset's options model, or else the problems with them.

    A relative ``DataPath`` is made absolute against ``base_dir`` (the study file's folder). Each
    problem is one line naming its key: ``data.KEY``, or ``data.options.KEY`` for the keys in
    ``table_keys`` (those written in a ``[data.options]`` table); an unknown dataset is named with
    the installed ones.
    """
    registered = registry.datasets.get(data.dataset)
    if registered is None:
        installed = ", ".join(registry.datasets) or "none"
        problem = (f"key 'data.dataset': unknown dataset {data.dataset!r}; installed datasets: {installed} "
                   "(see `automl plugins`)")
        return None, [problem]
    model = registered.obj.options
    try:
        return model.model_validate(data.options, context={BASE_DIR: base_dir}), []
    except pydantic.ValidationError as exc:
        return None, [_describe_option(error, data.dataset, model, table_keys) for error in exc.errors()]


def parse_study(data: dict[str, Any], path: Path | None, registry: Registry | None = None) -> StudyConfig:
    """Validate already-parsed TOML (or a config given in Python, ``path`` None); every problem is
    named with file and key.

    The ``[data]`` options are validated by the selected dataset among ``registry``'s (default: the
    installed plugins). A relative path among them is made relative to the study file's folder (the
    working directory without a file), so a study runs the same from any working directory (and its
    stored config still finds the data).
    """
    section = data.get("data", {})
    try:
        data_config: DataConfig | None = DataConfig.model_validate(section)
    except pydantic.ValidationError:
        data_config = None  # StudyConfig's errors name it
    prefix = f"{path}: " if path is not None else ""
    problems: list[str] = []
    options: DatasetOptions | None = None
    try:
        keys = _StudyKeys.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = [_describe(error, prefix) for error in exc.errors()]
    if data_config is not None:
        table = section.get("options") if isinstance(section, dict) else None
        options, wrong = check_options(data_config, registry or installed_registry(),
                                       path.parent if path is not None else Path.cwd(),
                                       table if isinstance(table, dict) else ())
        problems += [f"{prefix}{problem}" for problem in wrong]
    if problems:
        raise UsageError(f"invalid study {'file' if path is not None else 'config'}:\n  " + "\n  ".join(problems))
    assert options is not None  # check_options returns options or problems
    stored = keys.data.model_copy(update={"options": options.model_dump(mode="json")})
    # Validated above: constructed as it is, not through StudyConfig's own checks (this function).
    config = StudyConfig.model_construct(keys.model_fields_set | {"data"}, **{**dict(keys), "data": stored})
    config._source = path
    return config


def load_study_file(path: str | Path, registry: Registry | None = None) -> StudyConfig:
    """Read and validate a study file: TOML, or the JSON of a ``StudyConfig.to_dict()`` when its
    name ends in ``.json`` (how a config built in Python reaches worker processes).

    Raises UsageError for a missing or unreadable file, invalid TOML or JSON, and every wrong key
    (see ``parse_study``), before anything is written.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"study file {path} does not exist (looked in {Path.cwd()}); check the path, or write one: "
                         "studies/quickstart.toml in automl's repository is a commented example") from None
    except OSError as exc:
        raise UsageError(f"cannot read study file {path}: {exc.strerror}") from None
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise UsageError(f"{path}: expected a JSON object of study-file keys, found {type(data).__name__}")
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"{path} is not valid TOML: {exc}") from None
    return parse_study(data, path, registry)
