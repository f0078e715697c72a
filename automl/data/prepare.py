"""From a dataset plugin to normalized train/validation/test tensors and the task they define."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from automl.config import DataConfig, check_options
from automl.data.digest import data_sha256
from automl.data.standardize import Standardization
from automl.errors import UsageError
from automl.plugin.arrays import LabeledArrays, RawInputs
from automl.plugin.registry import Registry
from automl.plugin.task import Task
from automl.plugin.tokenizer import Vocabulary


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
    # What the dataset did to the data that the user should hear about (LabeledArrays.notes).
    notes: tuple[str, ...] = field(default=(), hash=False, compare=False)


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
    inputs = torch.from_numpy(np.ascontiguousarray(x))
    inputs = inputs.long() if kind == "tokens" else inputs.float()
    return Split(inputs, torch.from_numpy(y.astype(np.int64)))


def _too_few_samples(arrays: LabeledArrays, config: DataConfig, reason: str) -> UsageError:
    # scikit-learn then lists every such class, hundreds for labels that are not classes at all.
    reason = reason.split(" Classes with too few members are")[0]
    counts = np.bincount(arrays.y)
    rarest = int(counts.argmin())
    return UsageError(f"dataset {config.dataset!r} cannot be split with val_size={config.val_size} and "
                      f"test_size={config.test_size}: class {arrays.class_label(rarest)} has "
                      f"{counts[rarest]} sample(s) of {len(arrays.y)} ({reason}); use smaller "
                      "val_size/test_size or more data")


def split_indices(arrays: LabeledArrays, config: DataConfig, seed: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train, validation and test indices: stratified and fixed by ``seed``.

    A dataset with its own test split keeps it; validation then takes ``val_size`` of the rest.
    """
    indices = np.arange(len(arrays.y))
    try:
        if arrays.test_samples:
            rest, test = indices[:-arrays.test_samples], indices[-arrays.test_samples:]
            val_fraction = config.val_size
        else:
            rest, test = train_test_split(indices, test_size=config.test_size, random_state=seed,
                                          stratify=arrays.y)
            val_fraction = config.val_size / (1 - config.test_size)
        train, val = train_test_split(rest, test_size=val_fraction, random_state=seed,
                                      stratify=arrays.y[rest])
    except ValueError as exc:
        raise _too_few_samples(arrays, config, str(exc)) from None
    for name, part in (("train", train), ("validation", val), ("test", test)):
        missing = np.setdiff1d(np.arange(arrays.num_classes), arrays.y[part])
        if len(missing):
            raise UsageError(
                f"dataset {config.dataset!r}: class {arrays.class_label(int(missing[0]))} has no "
                f"samples in the {name} split ({np.count_nonzero(arrays.y == missing[0])} in the whole "
                f"dataset); use smaller val_size/test_size or more data")
    return train, val, test


def split_arrays(arrays: LabeledArrays, config: DataConfig, seed: int) -> PreparedData:
    """Stratified split fixed by ``seed``; normalization statistics and a text vocabulary come
    from the train split only."""
    train, val, test = split_indices(arrays, config, seed)
    x, vocab_size, standardization, vocabulary = arrays.x, arrays.vocab_size, None, None
    if arrays.tokenizer is not None:
        vocabulary = arrays.tokenizer.fit(x[train])
        x, vocab_size = vocabulary.encode(x), vocabulary.size
    elif arrays.kind != "tokens":
        x = _float32_inputs(x, config.dataset)
        standardization = Standardization.fit(x[train], arrays.kind, config.dataset)
        x = standardization.apply(x)
    task = Task(arrays.kind, x.shape[1:], arrays.num_classes, vocab_size, arrays.class_names)
    train_split, val_split, test_split = (_to_split(x[part], arrays.y[part], arrays.kind)
                                          for part in (train, val, test))
    token_ids = x if arrays.tokenizer is not None else None  # what a tokenizer's options change
    return PreparedData(task, train_split, val_split, test_split, standardization, vocabulary, arrays.raw,
                        data_sha256(arrays, (train, val, test), token_ids), notes=arrays.notes)


@functools.lru_cache(maxsize=4)
def prepare(config: DataConfig, registry: Registry, seed: int) -> PreparedData:
    """Load the configured dataset through its plugin, with its options, and split it; cached per process.

    Raises UsageError for an unknown dataset, options it refuses (each named by key) or bad data.
    """
    options, problems = check_options(config, registry)
    if options is None:
        raise UsageError("; ".join(problems))
    registered = registry.datasets[config.dataset]
    path = config.options.get("path")
    where = f" at {path}" if path else ""
    arrays = registered.obj.load(seed, options).checked(
        f"dataset {config.dataset!r}{where} (from {registered.source})")
    return split_arrays(arrays, config, seed)
