"""Mini-batches for the trial loop: cut from tensors on the device, or streamed by a DataLoader."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset


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


class LoaderBatches:
    """Yields ``(x, y)`` mini-batches from host tensors through a DataLoader, moved to ``device``.

    For splits that do not fit in the device's memory. The sampler hands the dataset a whole
    batch of indices at a time, so a batch is one indexing op (no per-sample collation); the
    loader's worker processes cut and pin the next batches while the device trains on this one.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool,
                 device: torch.device, workers: int, seed: int = 0) -> None:
        dataset = TensorDataset(x, y)
        order = (RandomSampler(dataset, generator=torch.Generator().manual_seed(seed)) if shuffle
                 else SequentialSampler(dataset))
        # As in TensorBatches: no one-sample training batch, which would break batch normalization.
        drop_last = shuffle and len(y) % batch_size == 1
        self.loader = DataLoader(dataset, sampler=BatchSampler(order, batch_size, drop_last), batch_size=None,
                                 num_workers=workers, pin_memory=device.type == "cuda",
                                 persistent_workers=workers > 0)
        self.device = device

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
