"""Which rows train, validate and test: stratified splits fixed by the seed, the dataset's own
splits kept, and cross-validation folds when a validation split would be too small to tell
models apart.

A validation split of tens of samples moves in steps of several points and many models reach
100% on it: the search then selects on luck. Below ``MIN_VALIDATION_SAMPLES`` rows, ``folds =
"auto"`` cross-validates instead (stratified k-fold over the non-test rows, scikit-learn's
``StratifiedKFold``), so every non-test row validates once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from automl.config import DataConfig
from automl.errors import UsageError, plural
from automl.plugin.arrays import LabeledArrays

# Folds = "auto" cross-validates when a validation split would hold fewer samples than this...
MIN_VALIDATION_SAMPLES = 100
# ... with this many folds (fewer when a class has fewer non-test samples). Every non-test row
# validates once whatever k is; k sets what a trial costs (k models) and the share of the rows
# each model trains on (1 - 1/k). Three folds cost 3/5 of five: on a 600 s budget over 36 series,
# five folds left the time-series FCN time for 36 of its 142 epochs before the time budget stopped it.
AUTO_FOLDS = 3


@dataclass(frozen=True)
class SplitIndices:
    """Row indices into a dataset's arrays.

    ``folds``: with cross-validation, each fold's validation rows (``folds[0]`` is ``val``, and
    ``train`` the other non-test rows); empty for one validation split. ``note``: what the run
    should tell the user about how the rows were split (cross-validation chosen by itself).
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    folds: tuple[np.ndarray, ...] = ()
    note: str | None = None

    @property
    def parts(self) -> tuple[np.ndarray, ...]:
        """Every split as indices (each fold's validation rows after the first), for the data digest."""
        return (self.train, self.val, self.test, *self.folds[1:])


def _too_few_samples(arrays: LabeledArrays, config: DataConfig, reason: str) -> UsageError:
    # scikit-learn then lists every such class, hundreds for labels that are not classes at all.
    reason = reason.split(" Classes with too few members are")[0]
    counts = np.bincount(arrays.y)
    rarest = int(counts.argmin())
    return UsageError(f"dataset {config.dataset!r} cannot be split with val_size={config.val_size} and "
                      f"test_size={config.test_size}: class {arrays.class_label(rarest)} has "
                      f"{plural(int(counts[rarest]), 'sample')} of {len(arrays.y)} ({reason}); "
                      + ("no split sizes can help: add samples of it, or leave its rows out" if counts[rarest] < 2
                         else "use smaller val_size/test_size or more data"))


def _test_rows(arrays: LabeledArrays, config: DataConfig, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The non-test rows, the test rows, and the fraction of the non-test rows that validation takes."""
    indices = np.arange(len(arrays.y))
    given = len(arrays.y) - arrays.test_samples - arrays.val_samples
    if arrays.test_samples:
        return indices[:len(arrays.y) - arrays.test_samples], indices[len(arrays.y) - arrays.test_samples:], \
            config.val_size
    if config.test_size == 0:
        return indices, indices[:0], config.val_size
    if arrays.val_samples:  # a given validation split: the test split comes out of the other rows
        rest, test = train_test_split(indices[:given], test_size=config.test_size, random_state=seed,
                                      stratify=arrays.y[:given])
        return np.concatenate([np.sort(rest), indices[given:]]), np.sort(test), config.val_size
    rest, test = train_test_split(indices, test_size=config.test_size, random_state=seed, stratify=arrays.y)
    return rest, test, config.val_size / (1 - config.test_size)


def _fold_count(arrays: LabeledArrays, config: DataConfig, rest: np.ndarray, val_fraction: float
                ) -> tuple[int, str | None]:
    """How many folds validate (1: one validation split), and a note when ``auto`` chose folds."""
    smallest = int(np.bincount(arrays.y[rest], minlength=arrays.num_classes).min())
    if isinstance(config.folds, int):
        if config.folds > 1 and arrays.val_samples:
            raise UsageError(f"dataset {config.dataset!r} gives its own validation split, so [data] folds = "
                             f"{config.folds} cannot cross-validate; leave folds out, or give no validation split")
        if config.folds > 1 and config.folds > smallest:
            rarest = int(np.bincount(arrays.y[rest], minlength=arrays.num_classes).argmin())
            raise UsageError(f"dataset {config.dataset!r}: [data] folds = {config.folds}, but class "
                             f"{arrays.class_label(rarest)} has {plural(smallest, 'non-test sample')}, so some fold "
                             f"would not validate it; use folds = {max(smallest, 1)} or fewer")
        return config.folds, None
    expected = math.ceil(val_fraction * len(rest))
    folds = min(AUTO_FOLDS, smallest)
    if arrays.val_samples or expected >= MIN_VALIDATION_SAMPLES or folds < 2:
        return 1, None
    return folds, (f"cross-validating: {folds} stratified folds over the {len(rest)} non-test rows, as a "
                   f"validation split (val_size = {config.val_size}) would hold only {expected} samples, "
                   f"fewer than {MIN_VALIDATION_SAMPLES}; [data] folds = 1 keeps one validation split")


def _check_classes(arrays: LabeledArrays, config: DataConfig, splits: SplitIndices) -> None:
    # Every class trains; the splits automl cuts hold every class too. The user's own splits
    # need not: a test file of the classes at hand is the user's choice.
    named = [("train", splits.train)]
    if not arrays.val_samples:
        named.append(("validation", splits.val))
    named += [(f"validation fold {index + 1}", fold) for index, fold in enumerate(splits.folds)]
    if len(splits.test) and not arrays.test_samples:
        named.append(("test", splits.test))
    given = len(arrays.y) - arrays.test_samples - arrays.val_samples
    for name, part in named:
        missing = np.setdiff1d(np.arange(arrays.num_classes), arrays.y[part])
        if len(missing) and given < len(arrays.y) and not np.isin(missing[0], arrays.y[:given]):
            raise UsageError(
                f"dataset {config.dataset!r}: class {arrays.class_label(int(missing[0]))} has no training "
                f"samples: its {np.count_nonzero(arrays.y == missing[0])} are all in the dataset's own test or "
                "validation split (test_path/val_path, or x_test/x_val); give those splits only classes the "
                "training data has, or add samples of it to the training data")
        if len(missing):
            # A split automl cut too small to hold the class takes a larger share; the train split a smaller one.
            advice = ("smaller val_size/test_size" if name == "train" else "a larger test_size" if name == "test"
                      else "a larger val_size, cross-validation ([data] folds)")
            raise UsageError(
                f"dataset {config.dataset!r}: class {arrays.class_label(int(missing[0]))} has no "
                f"samples in the {name} split ({np.count_nonzero(arrays.y == missing[0])} in the whole "
                f"dataset); use {advice} or more data")


def split_indices(arrays: LabeledArrays, config: DataConfig, seed: int) -> SplitIndices:
    """Train, validation and test rows, and the folds: stratified and fixed by ``seed``.

    A dataset's own test split (``LabeledArrays.test_samples``) is the test split, and its own
    validation split (``val_samples``) the validation split; otherwise ``test_size`` (0: none) and
    ``val_size`` cut them, or ``folds`` cross-validates over the non-test rows. Raises UsageError
    when a class would be missing from a split, naming it.
    """
    try:
        rest, test, val_fraction = _test_rows(arrays, config, seed)
        folds, note = _fold_count(arrays, config, rest, val_fraction)
        if arrays.val_samples:
            train, val = rest[:len(rest) - arrays.val_samples], rest[len(rest) - arrays.val_samples:]
            splits = SplitIndices(train, val, test)
        elif folds > 1:
            k_fold = StratifiedKFold(folds, shuffle=True, random_state=seed)
            validation = tuple(np.sort(rest[part]) for _, part in k_fold.split(rest, arrays.y[rest]))
            splits = SplitIndices(np.setdiff1d(rest, validation[0]), validation[0], test, validation, note)
        else:
            train, val = train_test_split(rest, test_size=val_fraction, random_state=seed,
                                          stratify=arrays.y[rest])
            splits = SplitIndices(train, val, test)
    except ValueError as exc:
        raise _too_few_samples(arrays, config, str(exc)) from None
    _check_classes(arrays, config, splits)
    return splits
