"""The plugin contract in code: what automl expects of an architecture family and of a dataset.

A plugin registers objects that satisfy ``Family`` or ``Dataset`` through the hooks in
``automl.plugin.hookspecs``. These protocols are the one definition of the contract: the
registry, the conformance checks and the objective all check against them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Generic, Protocol, TypeVar, runtime_checkable

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo

from automl.plugin.arrays import LabeledArrays

# Key of the pydantic validation context that holds the study file's folder (see DataPath).
BASE_DIR = "base_dir"


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


class DatasetOptions(BaseModel):
    """Base of a dataset's options: the ``[data]`` keys it reads, validated before anything runs.

    Subclass it with one annotated field per key (pydantic), and name the subclass as the
    dataset's ``options``. Unknown keys are refused; values are frozen. Use ``DataPath`` for a
    file or folder, so a relative path is taken relative to the study file.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


OptionsT = TypeVar("OptionsT", bound=DatasetOptions)


@runtime_checkable
class Dataset(Protocol, Generic[OptionsT]):
    """A dataset plugin: named data that loads as arrays.

    - ``name``: an identifier, unique among installed datasets; study files select it with
      ``[data] dataset = NAME``.
    - ``options``: the ``DatasetOptions`` subclass listing the ``[data]`` keys it reads (the
      base class itself for none).
    - ``load(seed, options)`` returns every sample as ``LabeledArrays``; ``seed`` is the study's,
      for generated data. A problem the user can fix is raised as ``automl.errors.UsageError``
      naming the file and the ``[data]`` key.
    """

    name: str
    options: type[OptionsT]

    def load(self, seed: int, options: OptionsT) -> LabeledArrays:
        ...


__all__ = ["BASE_DIR", "DataPath", "Dataset", "DatasetOptions", "LabeledArrays"]
