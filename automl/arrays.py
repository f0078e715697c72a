"""What a dataset plugin returns: all samples and labels as arrays, plus the task kind."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from automl.errors import UsageError
from automl.task import TASK_KINDS


@dataclass(frozen=True)
class LabeledArrays:
    """Samples ``x`` of shape ``[N, *input_shape]`` and integer labels ``y`` of shape ``[N]``."""

    x: np.ndarray
    y: np.ndarray
    kind: str
    vocab_size: int | None = None

    def checked(self, source: str) -> LabeledArrays:
        """Return self after checking shapes, labels and values; errors name ``source``."""
        if self.kind not in TASK_KINDS:
            raise UsageError(f"{source}: kind {self.kind!r} is not one of {', '.join(TASK_KINDS)}")
        if len(self.x) != len(self.y):
            raise UsageError(f"{source}: x has {len(self.x)} samples but y has {len(self.y)} labels")
        if self.y.ndim != 1 or not np.issubdtype(self.y.dtype, np.integer):
            raise UsageError(f"{source}: labels must be a 1-D integer array, found {self.y.dtype} "
                             f"with shape {self.y.shape}")
        classes = np.unique(self.y)
        if classes[0] != 0 or classes[-1] != len(classes) - 1:
            raise UsageError(f"{source}: labels must be 0..K-1 with every class present, "
                             f"found {classes[:20].tolist()}")
        if np.issubdtype(self.x.dtype, np.floating) and not np.isfinite(self.x).all():
            index = int(np.argwhere(~np.isfinite(self.x))[0][0])
            raise UsageError(f"{source}: sample {index} has a NaN or infinite value")
        return self

    @property
    def num_classes(self) -> int:
        return int(self.y.max()) + 1
