"""Standardization: ``(x - mean) / std`` with the train split's statistics, per channel for images
and per feature otherwise, as every family receives its float inputs (automl.Family)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from automl.errors import UsageError

# A feature this constant in the train split is centred and left unscaled, not divided by ~0.
MIN_STD = 1e-8


def _axes(kind: str, ndim: int) -> tuple[int, ...]:
    """The axes statistics are taken over: all but channels for images, all but features otherwise."""
    if kind == "image":
        return (0,) + tuple(range(2, ndim))
    return tuple(range(ndim - 1))


@dataclass(frozen=True)
class Standardization:
    """``(x - mean) / std``; ``mean`` and ``std`` are float32 arrays shaped to broadcast against a
    batch ``[B, *input_shape]``: ``[1, C, 1, 1]`` for images, ``[1, 1, F]`` for sequences, ``[1, F]``
    for tables. ``per`` is ``"channel"`` or ``"feature"``."""

    mean: np.ndarray
    std: np.ndarray
    per: str

    @classmethod
    def fit(cls, train_x: np.ndarray, kind: str, dataset: str) -> Standardization:
        """The statistics of ``train_x`` (float32, ``[N, *input_shape]``) for a task of ``kind``.

        Raises UsageError naming ``dataset`` when a square overflows float32.
        """
        axes = _axes(kind, train_x.ndim)
        with np.errstate(over="ignore"):
            mean = train_x.mean(axis=axes, keepdims=True)
            std = train_x.std(axis=axes, keepdims=True)
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise UsageError(f"dataset {dataset!r}: standardizing the inputs overflows float32: "
                             f"values up to {np.abs(train_x).max():g} have squares beyond its range (3.4e38); "
                             "rescale the inputs")
        return cls(mean, np.where(std > MIN_STD, std, 1.0).astype(mean.dtype),
                   "channel" if kind == "image" else "feature")

    def apply(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std

    def to_dict(self) -> dict[str, Any]:
        """The statistics as JSON, one number per channel or feature."""
        return {"per": self.per, "mean": self.mean.ravel().tolist(),
                "std": self.std.ravel().tolist()}

    @classmethod
    def from_dict(cls, stored: dict[str, Any], input_ndim: int) -> Standardization:
        """The statistics ``to_dict`` gave, shaped again to broadcast against ``[B, *input_shape]``
        batches of ``input_ndim`` dimensions per sample."""
        shape = [1] * (1 + input_ndim)
        shape[1 if stored["per"] == "channel" else -1] = -1
        mean, std = (np.asarray(stored[key], dtype=np.float32).reshape(shape) for key in ("mean", "std"))
        return cls(mean, std, stored["per"])
