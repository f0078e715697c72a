"""What a dataset plugin returns: all samples and labels as arrays, plus the task kind."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from automl.errors import UsageError
from automl.plugin.task import TASK_KINDS
from automl.plugin.tokenizer import Tokenizer

# Offending values listed in an error message, at most.
SHOWN_VALUES = 20


@dataclass(frozen=True)
class LabeledArrays:
    """Samples ``x`` of shape ``[N, *input_shape]`` and integer labels ``y`` of shape ``[N]``.

    ``test_samples``: the last that many samples are the dataset's own test split (torchvision's
    test sets); 0 lets automl split one off. ``tokenizer``: ``x`` holds raw texts, turned into
    token ids by a vocabulary fitted on the train split only. ``class_names``: what each label
    means, when the data said (folder names, string labels). ``notes``: what the dataset did to
    the data that the user should hear about (rows it left out), printed before a run.
    """

    x: np.ndarray
    y: np.ndarray
    kind: str
    vocab_size: int | None = None
    class_names: tuple[str, ...] | None = None
    test_samples: int = 0
    tokenizer: Tokenizer | None = None
    notes: tuple[str, ...] = ()

    def checked(self, source: str) -> LabeledArrays:
        """Return self after checking shapes, labels and values; errors name ``source``."""
        if self.kind not in TASK_KINDS:
            raise UsageError(f"{source}: kind {self.kind!r} is not one of {', '.join(TASK_KINDS)}")
        if len(self.x) != len(self.y):
            raise UsageError(f"{source}: x has {len(self.x)} samples but y has {len(self.y)} labels")
        if self.y.ndim != 1 or not np.issubdtype(self.y.dtype, np.integer):
            raise UsageError(f"{source}: labels must be a 1-D integer array, found {self.y.dtype} "
                             f"with shape {self.y.shape}")
        if not len(self.y):
            raise UsageError(f"{source}: the dataset has no samples")
        if not 0 <= self.test_samples < len(self.y):
            raise UsageError(f"{source}: test_samples={self.test_samples} must be at least 0 and "
                             f"fewer than the {len(self.y)} samples")
        _check_labels(self.y, source)
        if self.num_classes < 2:
            raise UsageError(f"{source}: every sample has label {self.class_label(0)}; classification "
                             "needs at least two classes")
        if self.tokenizer is None and self.x.dtype.kind not in "biuf":  # booleans, integers, floats
            raise UsageError(f"{source}: x holds {self.x.dtype} values; inputs must be numbers (save x "
                             "as a numeric array, e.g. np.asarray(x, dtype=np.float32))")
        if self.kind == "tokens" and self.tokenizer is None:
            _check_token_ids(self.x, self.vocab_size, source)
        if np.issubdtype(self.x.dtype, np.floating) and not np.isfinite(self.x).all():
            index = tuple(int(i) for i in np.argwhere(~np.isfinite(self.x))[0])
            raise UsageError(f"{source}: x[{', '.join(map(str, index))}] (sample {index[0]}) is "
                             f"{self.x[index]}; features must be finite")
        return self

    @property
    def num_classes(self) -> int:
        return int(self.y.max()) + 1

    def class_label(self, label: int) -> str:
        """``label`` as a user knows it: ``3``, or ``3 ('cat')`` when the class has a name."""
        return f"{label} ({self.class_names[label]!r})" if self.class_names else str(label)


def _check_labels(y: np.ndarray, source: str) -> None:
    classes = np.unique(y)
    expected = np.arange(len(classes))
    if np.array_equal(classes, expected):
        return
    offending = np.setdiff1d(classes, expected)
    raise UsageError(f"{source}: labels must be 0..K-1 with every class present; the {len(classes)} "
                     f"labels found would be 0..{len(classes) - 1}, but these are not: "
                     f"{offending[:SHOWN_VALUES].tolist()}{' ...' if len(offending) > SHOWN_VALUES else ''} "
                     f"(missing: {np.setdiff1d(expected, classes)[:SHOWN_VALUES].tolist()})")


def _check_token_ids(x: np.ndarray, vocab_size: int | None, source: str) -> None:
    if not np.issubdtype(x.dtype, np.integer) or x.ndim != 2:
        raise UsageError(f"{source}: tokens must be integer ids [N, T], found {x.dtype} with shape {x.shape}")
    if not vocab_size or x.min() < 0 or x.max() >= vocab_size:
        raise UsageError(f"{source}: token ids must lie in 0..vocab_size-1 (vocab_size={vocab_size}), "
                         f"found {x.min()}..{x.max()}")
