"""The plugin contract in code: what automl expects of an architecture family and of a dataset.

A plugin registers objects that satisfy ``Family`` or ``Dataset`` through the hooks in
``automl.plugin.hookspecs``. These protocols are the one definition of the contract, and
``check_family`` / ``check_dataset`` the one check of it: the registry runs them on every
registration, the conformance suites (``automl.testing``) on the object under test.
``automl.plugin.build`` checks what ``Family.build`` returns.
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Generic,
    Protocol,
    TypeVar,
    Union,
    get_args,
    get_origin,
    runtime_checkable,
)

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo, field_validator

from automl.errors import PluginError
from automl.plugin.arrays import LabeledArrays, RawInputs
from automl.plugin.task import TASK_KINDS, Task

if TYPE_CHECKING:  # torch is imported only where a module is built, not by `import automl`
    from torch import nn

# Key of the pydantic validation context that holds the study file's folder (see DataPath).
BASE_DIR = "base_dir"

# The values Optuna's suggest_categorical accepts.
Choice = TypeVar("Choice", bound=None | bool | int | float | str)


@runtime_checkable
class Trial(Protocol):
    """What ``Family.search_space`` receives: Optuna's define-by-run trial API, namespaced.

    Name parameters plainly (``"depth"``); the study stores them as ``family.depth``, so families
    never clash. A stored trial is replayed on ``optuna.trial.FixedTrial``, so the parameters
    must depend only on what the trial returned and on the task.
    """

    @property
    def number(self) -> int:
        """The trial's number in its study, from 0."""

    @property
    def params(self) -> dict[str, Any]:
        """This family's parameters suggested so far, by their plain names."""

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        ...

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float:
        ...

    def suggest_categorical(self, name: str, choices: Sequence[Choice]) -> Choice:
        ...


@runtime_checkable
class Family(Protocol):
    """An architecture family: a search space and the module each point of it builds.

    - ``name``: an identifier, unique among installed families; ``[search] families`` names it.
    - ``task_kinds``: the kinds of ``Task`` it builds for, a non-empty tuple drawn from
      ``TASK_KINDS`` (``"image"``, ``"sequence"``, ``"tabular"``, ``"tokens"``). A study leaves
      out a family that does not build for its task.
    - ``search_space(trial, task)``: suggests parameters through ``trial`` (define-by-run:
      branches and loops are fine) and returns the dict ``build`` takes. A parameter's choices
      stay the same for a given task: Optuna refuses a distribution that changes.
    - ``build(params, task)``: a plain ``torch.nn.Module`` (never a LightningModule) mapping a
      batch ``[B, *task.input_shape]`` to logits ``[B, task.num_classes]``, unnormalized. It
      depends only on ``params`` and ``task``: a stored trial is rebuilt from its params alone.
      Inputs of a ``"tokens"`` task are int64 token ids below ``task.vocab_size``, 0 being
      padding (on the left) and 1 an unknown token; every other kind arrives as float32,
      standardized with the train split's mean and standard deviation (per channel for images,
      per feature otherwise). A task of a kind the family does not declare is a ValueError.
    """

    name: str
    task_kinds: tuple[str, ...]

    def search_space(self, trial: Trial, task: Task) -> dict[str, Any]:
        ...

    def build(self, params: dict[str, Any], task: Task) -> nn.Module:
        ...


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """A relative path is relative to the study file's folder, so a study runs the same from any
    working directory and its stored config still finds the data."""
    value = value.expanduser()
    base = (info.context or {}).get(BASE_DIR)
    if base is None or value.is_absolute():
        return value
    return (Path(base) / value).resolve()


DataPath = Annotated[Path, AfterValidator(_resolve_path)]
"""A file or folder named in a study file: made absolute against the study file's folder."""


def _takes_a_number(annotation: Any) -> bool:
    """Whether a field's type is int or float, alone, constrained (Annotated) or optional (a Union)."""
    if annotation in (int, float):
        return True
    return get_origin(annotation) in (Annotated, Union, types.UnionType) and any(
        _takes_a_number(arg) for arg in get_args(annotation))


class TomlModel(BaseModel):
    """Keys read from a TOML file: unknown keys refused, values frozen, and TOML's ``true`` and
    ``false`` refused where a number is expected (pydantic's lax mode would take them as 1 and 0)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        if (isinstance(value, bool) and info.field_name
                and _takes_a_number(cls.model_fields[info.field_name].annotation)):
            raise ValueError(f"expected a number, found {str(value).lower()}")
        return value


class DatasetOptions(TomlModel):
    """Base of a dataset's options: the ``[data]`` keys it reads, validated before anything runs.

    Subclass it with one annotated field per key (pydantic), and name the subclass as the
    dataset's ``options``. Unknown keys are refused; values are frozen. Use ``DataPath`` for a
    file or folder, so a relative path is taken relative to the study file.
    """


OptionsT = TypeVar("OptionsT", bound=DatasetOptions)


@runtime_checkable
class Dataset(Protocol, Generic[OptionsT]):
    """A dataset plugin: named data that loads as arrays.

    - ``name``: an identifier, unique among installed datasets; study files select it with
      ``[data] dataset = NAME``.
    - ``options``: the ``DatasetOptions`` subclass listing the ``[data]`` keys it reads (the
      base class itself for none).
    - ``load(seed, options)`` returns every sample as ``LabeledArrays``: ``x`` ``[N, *input_shape]``,
      integer labels ``y`` ``[N]`` in ``0..K-1``, and the task kind; a dataset that rescales the
      user's values (pixels to 0..1) or names its features says so in ``LabeledArrays.raw``
      (``RawInputs``), so exported models take the user's values. ``seed`` is the study's, for
      generated data: the same seed gives the same arrays. A problem the user can fix is raised
      as ``automl.UsageError`` naming the file and the ``[data]`` key.
    """

    name: str
    options: type[OptionsT]

    def load(self, seed: int, options: OptionsT) -> LabeledArrays:
        ...


def _members(protocol: type) -> tuple[list[str], list[str]]:
    """The attributes and the methods ``protocol`` declares, so the checks follow the protocol."""
    methods = [name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")]
    return list(protocol.__annotations__), methods


def _check_members(obj: Any, protocol: type, what: str, source: str | None) -> str:
    """Check ``obj`` has every member of ``protocol`` and a string name; return how to name it."""
    registered = f"{source} registered " if source else ""
    attributes, methods = _members(protocol)
    required = attributes + methods
    missing = [name for name in required if not hasattr(obj, name)]
    if missing:
        raise PluginError(f"{registered}a {what} ({type(obj).__name__}) without {', '.join(missing)}; "
                          f"a {what} needs {', '.join(required)} (see automl.{protocol.__name__}).")
    if not isinstance(obj.name, str) or not obj.name.isidentifier():
        raise PluginError(f"{registered}a {what} named {obj.name!r}; names must be identifiers such as 'mixer'.")
    described = f"{registered}{what} {obj.name!r}"
    for method in methods:
        if not callable(getattr(obj, method)):
            raise PluginError(f"{described}: {method} is {getattr(obj, method)!r}, expected a method.")
    return described


def check_family(family: Any, source: str | None = None) -> None:
    """Raise PluginError unless ``family`` has every member of ``Family``, an identifier for a
    name and ``task_kinds`` drawn from ``TASK_KINDS``; ``source`` (the plugin) starts the message."""
    described = _check_members(family, Family, "family", source)
    kinds = family.task_kinds
    if isinstance(kinds, str) or not kinds or any(kind not in TASK_KINDS for kind in kinds):
        raise PluginError(f"{described}: task_kinds={kinds!r}; expected a non-empty tuple drawn "
                          f"from {TASK_KINDS}.")


def check_dataset(dataset: Any, source: str | None = None) -> None:
    """Raise PluginError unless ``dataset`` has every member of ``Dataset``, an identifier for a
    name and a ``DatasetOptions`` subclass as ``options``; ``source`` starts the message."""
    described = _check_members(dataset, Dataset, "dataset", source)
    options = dataset.options
    if not (isinstance(options, type) and issubclass(options, DatasetOptions)):
        raise PluginError(f"{described}: options is {options!r}; expected a subclass of "
                          "automl.DatasetOptions with a field per [data] key it reads "
                          "(DatasetOptions itself when it reads none).")


__all__ = ["BASE_DIR", "DataPath", "Dataset", "DatasetOptions", "Family", "LabeledArrays", "RawInputs", "Trial",
           "check_dataset", "check_family"]
