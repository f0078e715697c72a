"""Mini-batches cut from tensors that already live on the training device."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch


class TensorBatches:
    """Yields ``(x, y)`` mini-batches as index slices of in-memory tensors.

    A DataLoader over a TensorDataset collates every batch sample by sample on the host; slicing
    tensors that already sit on the device costs one indexing op per batch instead.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool,
                 seed: int = 0) -> None:
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self._generator = torch.Generator(device=x.device).manual_seed(seed) if shuffle else None

    def __len__(self) -> int:
        if self.shuffle and len(self.y) % self.batch_size == 1:
            return len(self.y) // self.batch_size
        return math.ceil(len(self.y) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        count = len(self.y)
        if self.shuffle:
            order = torch.randperm(count, generator=self._generator, device=self.x.device)
            # A one-sample training batch breaks batch normalization; with reshuffling every
            # epoch, skipping it leaves out a different sample each time.
            for start in range(0, len(self) * self.batch_size, self.batch_size):
                index = order[start:start + self.batch_size]
                yield self.x[index], self.y[index]
        else:
            for start in range(0, count, self.batch_size):
                yield self.x[start:start + self.batch_size], self.y[start:start + self.batch_size]
