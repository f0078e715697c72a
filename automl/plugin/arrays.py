"""What a dataset plugin returns: all samples and labels as arrays, the task kind, and how the
samples relate to the user's own data (RawInputs)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from automl.errors import UsageError
from automl.plugin.task import TASK_KINDS, class_labels, kind_of
from automl.plugin.tokenizer import Tokenizer

# Offending values listed in an error message, at most.
SHOWN_VALUES = 20


@dataclass(frozen=True)
class RawInputs:
    """How ``LabeledArrays.x`` relates to the data as the user holds it, so that an exported model
    (and ``automl.load_model``) takes that data as it is.

    - ``scale``: ``x`` holds the user's values times ``scale``: ``1/255`` for 8-bit pixels loaded
      as 0..1, ``1/16`` for scikit-learn digits' 0..16 pixels, 1 for values loaded unchanged.
      An exported model multiplies by it in its first layer, so it takes the unscaled values.
    - ``description``: what one raw sample is and what turns a user's file into it that a model
      cannot do (decoding and resizing an image, say): an export's JSON repeats it word for word.
      ``None``: the values as the dataset loads them.
    - ``feature_names``: a name for each entry of the last axis of ``x``, in order (a table's
      columns); ``None`` when the features have no names.
    """

    scale: float = 1.0
    description: str | None = None
    feature_names: tuple[str, ...] | None = None

    def check(self, x: np.ndarray, source: str) -> None:
        """Raise UsageError naming ``source`` for a scale that is not a positive number, or feature
        names that do not match the last axis of ``x``."""
        scale = self.scale
        if isinstance(scale, bool) or not (isinstance(scale, numbers.Real) and math.isfinite(scale) and scale > 0):
            raise UsageError(f"{source}: RawInputs.scale is {self.scale!r}; expected a positive number "
                             "(x = the user's values * scale)")
        if self.feature_names is not None and len(self.feature_names) != x.shape[-1]:
            raise UsageError(f"{source}: RawInputs.feature_names names {len(self.feature_names)} features, "
                             f"but x has {x.shape[-1]} along its last axis (shape {list(x.shape)})")


@dataclass(frozen=True)
class LabeledArrays:
    """Samples ``x`` of shape ``[N, *input_shape]`` and integer labels ``y`` of shape ``[N]``.

    ``test_samples``: the last that many samples are the dataset's own test split (torchvision's
    test sets, a user's test file); 0 lets automl split one off. ``val_samples``: the that many
    samples before them are the dataset's own validation split; 0 lets automl split one off (or
    cross-validate). ``tokenizer``: ``x`` holds raw texts, turned into
    token ids by a vocabulary fitted on the train split only. ``class_names``: what each label
    means, when the data said (folder names, string labels). ``notes``: what the dataset did to
    the data that the user should hear about (rows it left out), printed before a run.
    ``raw``: how ``x`` relates to the user's own data (its scale, its feature names), for exports.
    """

    x: np.ndarray
    y: np.ndarray
    kind: str
    vocab_size: int | None = None
    class_names: tuple[str, ...] | None = None
    test_samples: int = 0
    val_samples: int = 0
    tokenizer: Tokenizer | None = None
    notes: tuple[str, ...] = ()
    raw: RawInputs = RawInputs()

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
        if min(self.test_samples, self.val_samples) < 0 or self.test_samples + self.val_samples >= len(self.y):
            raise UsageError(f"{source}: test_samples={self.test_samples} and val_samples={self.val_samples} "
                             f"must be at least 0 and leave some of the {len(self.y)} samples to train on")
        _check_labels(self.y, source, self.test_samples + self.val_samples)
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
        self.raw.check(self.x, source)
        return self

    @property
    def num_classes(self) -> int:
        return int(self.y.max()) + 1

    def class_label(self, label: int) -> str:
        """``label`` as a user knows it: ``3``, or ``3 ('cat')`` when the class has a name."""
        return f"{label} ({self.class_names[label]!r})" if self.class_names else str(label)


def _check_labels(y: np.ndarray, source: str, given: int) -> None:
    """Labels 0..K-1; ``given``: how many last samples are the dataset's own test and validation
    splits, named when the labels outside 0..K-1 come from them alone."""
    classes = np.unique(y)
    expected = np.arange(len(classes))
    if np.array_equal(classes, expected):
        return
    offending = np.setdiff1d(classes, expected)
    only_given = given and not np.isin(offending, y[:len(y) - given]).any()
    raise UsageError(f"{source}: labels must be 0..K-1 with every class present; the {len(classes)} "
                     f"labels found would be 0..{len(classes) - 1}, but these are not: "
                     f"{offending[:SHOWN_VALUES].tolist()}{' ...' if len(offending) > SHOWN_VALUES else ''} "
                     f"(missing: {np.setdiff1d(expected, classes)[:SHOWN_VALUES].tolist()})"
                     + (f"; they are only in the dataset's own test or validation split (its last {given} "
                        "samples, from test_path/val_path or x_test/x_val): give those splits only labels "
                        "the training data has" if only_given else ""))


def _check_token_ids(x: np.ndarray, vocab_size: int | None, source: str) -> None:
    if not np.issubdtype(x.dtype, np.integer) or x.ndim != 2:
        raise UsageError(f"{source}: tokens must be integer ids [N, T], found {x.dtype} with shape {x.shape}")
    if not vocab_size or x.min() < 0 or x.max() >= vocab_size:
        raise UsageError(f"{source}: token ids must lie in 0..vocab_size-1 (vocab_size={vocab_size}), "
                         f"found {x.min()}..{x.max()}")


def labeled_arrays(x: np.ndarray, y: np.ndarray, kind: str | None = None, source: str = "data=(x, y)"
                   ) -> LabeledArrays:
    """Samples and labels given in memory, taken as the ``npz`` dataset takes them.

    ``x``: ``[N, C, H, W]`` images, ``[N, T, F]`` sequences, ``[N, F]`` tables (the kind its rank
    says), or integer ``[N, T]`` token ids with ``kind="tokens"``. ``y``: ``[N]`` integer labels
    0..K-1, or strings naming the classes (numbered in sorted order, the names kept). Call
    ``checked`` on the result for the checks every dataset's arrays get.
    """
    x = np.asarray(x)
    found = kind_of(x, kind, source)
    labels, names = class_labels(np.asarray(y))
    vocab_size = int(x.max()) + 1 if found == "tokens" and x.size else None
    return LabeledArrays(x, labels, found, vocab_size=vocab_size, class_names=names)
