"""Peak training memory: measured on a GPU, absent on a CPU."""

from __future__ import annotations

import torch

from automl.training.efficiency import peak_memory_mb
from conftest import NEEDS_GPU


def _model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))


def test_no_peak_memory_on_cpu() -> None:
    assert peak_memory_mb(_model(), torch.randn(1, 1, 8, 8), batch_size=32) is None


@NEEDS_GPU
def test_peak_memory_counts_weights_gradients_and_activations_on_gpu() -> None:
    model = _model().cuda()
    weights_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    small = peak_memory_mb(model, torch.randn(1, 1, 8, 8, device="cuda"), batch_size=8)
    large = peak_memory_mb(model, torch.randn(1, 1, 8, 8, device="cuda"), batch_size=4096)
    assert small is not None and large is not None
    assert 2 * weights_mb <= small < large  # weights and their gradients, plus activations growing with the batch
    assert all(p.grad is None for p in model.parameters())
