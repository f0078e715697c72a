"""From a dataset plugin to normalized train/validation/test tensors and the task they define."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from automl.config import DataConfig, check_options
from automl.data.digest import data_sha256
from automl.data.standardize import Standardization
from automl.errors import UsageError
from automl.plugin.arrays import LabeledArrays, RawInputs
from automl.plugin.registry import Registry
from automl.plugin.task import Task
from automl.plugin.tokenizer import Vocabulary

# torch and scikit-learn (the splits) are imported once the dataset has loaded: a missing or
# malformed data file is reported without waiting for them.
if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Split:
    """One split as tensors: float inputs (or integer tokens) and integer labels."""

    x: torch.Tensor
    y: torch.Tensor

    def to(self, device: torch.device) -> Split:
        return Split(self.x.to(device), self.y.to(device))


@dataclass(frozen=True)
class PreparedData:
    task: Task
    train: Split
    val: Split
    test: Split
    # What turned the dataset's inputs into the model's (see split_arrays), for exports and
    # automl.results.raw_inputs: the standardization of float inputs, the vocabulary of texts;
    # neither for token ids given by the dataset. Not part of the identity: the splits are, and
    # the per-process caches key on it.
    standardization: Standardization | None = field(default=None, hash=False, compare=False)
    vocabulary: Vocabulary | None = field(default=None, hash=False, compare=False)
    # How the dataset's inputs relate to the user's own data (LabeledArrays.raw).
    raw: RawInputs = field(default=RawInputs(), hash=False, compare=False)
    # SHA-256 of the data as loaded and split (automl.data.digest), which a resumed study compares.
    sha256: str = field(default="", hash=False, compare=False)
    # What the dataset did to the data that the user should hear about (LabeledArrays.notes), and
    # how the rows were split when the user did not say (cross-validation chosen by itself).
    notes: tuple[str, ...] = field(default=(), hash=False, compare=False)
    # Cross-validation: each fold's validation rows, as positions in the non-test rows
    # ``train`` + ``val`` (``non_test``); the first fold is ``val`` itself. Empty: one validation split.
    folds: tuple[torch.Tensor, ...] = field(default=(), hash=False, compare=False)

    @property
    def non_test(self) -> Split:
        """Every row but the test rows: train and validation together."""
        import torch

        return Split(torch.cat([self.train.x, self.val.x]), torch.cat([self.train.y, self.val.y]))


def _float32_inputs(x: np.ndarray, dataset: str) -> np.ndarray:
    """``x`` as float32, in which models train; a value beyond its range (3.4e38), finite in the
    dataset's own type, would turn infinite there and every loss NaN."""
    with np.errstate(over="ignore"):
        inputs = x.astype(np.float32)
    overflowed = np.argwhere(~np.isfinite(inputs))
    if len(overflowed):
        index = tuple(int(i) for i in overflowed[0])
        raise UsageError(f"dataset {dataset!r}: x[{', '.join(map(str, index))}] (sample {index[0]}) is "
                         f"{x[index]:g}, beyond float32's range (3.4e38) in which models train; "
                         "rescale the inputs")
    return inputs


def _to_split(x: np.ndarray, y: np.ndarray, kind: str) -> Split:
    import torch

    inputs = torch.from_numpy(np.ascontiguousarray(x))
    inputs = inputs.long() if kind == "tokens" else inputs.float()
    return Split(inputs, torch.from_numpy(y.astype(np.int64)))


def split_arrays(arrays: LabeledArrays, config: DataConfig, seed: int) -> PreparedData:
    """Stratified split fixed by ``seed`` (automl.data.splits); normalization statistics and a
    text vocabulary come from the train split only, or with cross-validation from every non-test
    row (they use no label, and one vocabulary keeps the task the same in every fold)."""
    import torch

    from automl.data.splits import split_indices

    splits = split_indices(arrays, config, seed)
    train, val, test = splits.train, splits.val, splits.test
    fitted = np.concatenate([train, val]) if splits.folds else train
    x, vocab_size, standardization, vocabulary = arrays.x, arrays.vocab_size, None, None
    if arrays.tokenizer is not None:
        vocabulary = arrays.tokenizer.fit(x[fitted])
        x, vocab_size = vocabulary.encode(x), vocabulary.size
    elif arrays.kind != "tokens":
        x = _float32_inputs(x, config.dataset)
        standardization = Standardization.fit(x[fitted], arrays.kind, config.dataset)
        x = standardization.apply(x)
    task = Task(arrays.kind, x.shape[1:], arrays.num_classes, vocab_size, arrays.class_names)
    train_split, val_split, test_split = (_to_split(x[part], arrays.y[part], arrays.kind)
                                          for part in (train, val, test))
    token_ids = x if arrays.tokenizer is not None else None  # what a tokenizer's options change
    non_test = np.concatenate([train, val])
    folds = tuple(torch.from_numpy(np.flatnonzero(np.isin(non_test, fold))) for fold in splits.folds)
    notes = (*arrays.notes, splits.note) if splits.note else arrays.notes
    return PreparedData(task, train_split, val_split, test_split, standardization, vocabulary, arrays.raw,
                        data_sha256(arrays, splits.parts, token_ids), notes=notes, folds=folds)


@functools.lru_cache(maxsize=4)
def fold_data(data: PreparedData) -> tuple[PreparedData, ...]:
    """The data each fold trains and validates on (the test split is every fold's), made once per
    process; ``(data,)`` without cross-validation."""
    if not data.folds:
        return (data,)
    import torch

    rows = data.non_test
    folds = []
    for validation in data.folds:
        training = torch.ones(len(rows.y), dtype=torch.bool)
        training[validation] = False
        folds.append(dataclasses.replace(data, train=Split(rows.x[training], rows.y[training]),
                                         val=Split(rows.x[validation], rows.y[validation]), folds=()))
    return tuple(folds)


def prepare(config: DataConfig, registry: Registry, seed: int) -> PreparedData:
    """Load the configured dataset through its plugin, with its options, and split it; cached per
    process until a data file or folder the options name changes (a notebook that rewrites its CSV
    and runs again gets the new rows, and a resume is checked against them).

    Raises UsageError for an unknown dataset, options it refuses (each named by key) or bad data.
    """
    return _prepared(config, registry, seed, _files_state(config))


def _files_state(config: DataConfig) -> tuple[tuple[str, int, int], ...]:
    """(path, size in bytes, modification time in ns) of every file the options name, a named
    folder's files included. Options hold absolute paths once validated (automl.config)."""
    named = [Path(value) for value in config.options.values() if isinstance(value, str) and Path(value).is_absolute()]
    files = [file for path in named if path.exists()
             for file in ([path] if path.is_file() else sorted(path.rglob("*")))]
    return tuple((str(file), (stat := file.stat()).st_size, stat.st_mtime_ns) for file in files)


@functools.lru_cache(maxsize=4)
def _prepared(config: DataConfig, registry: Registry, seed: int,
              files_state: tuple[tuple[str, int, int], ...]) -> PreparedData:
    options, problems = check_options(config, registry)
    if options is None:
        raise UsageError("; ".join(problems))
    registered = registry.datasets[config.dataset]
    path = config.options.get("path")
    where = f" at {path}" if path else ""
    arrays = registered.obj.load(seed, options).checked(
        f"dataset {config.dataset!r}{where} (from {registered.source})")
    return split_arrays(arrays, config, seed)
