"""The fastest a device computes: its peak FLOP rate on a dense matrix product, measured once.

A model's training step cannot run faster than its FLOPs at this rate, so it bounds an epoch's
time from below before the model has trained at all (automl.search.time_budget uses it while the
study has no trial of a model as large). Real layers reach a fraction of it: small convolutions
and recurrent steps a tenth or less on a CPU, so the bound is optimistic, never pessimistic.
"""

from __future__ import annotations

import functools
import time

import torch

# A square fp32 product large enough to reach the device's steady rate, small enough to take
# milliseconds: 2 * 512**3 = 0.27 GFLOP on a CPU; 4096 on a GPU (137 GFLOP, a few ms on an H100).
SIZE = {"cpu": 512, "cuda": 4096}
REPEATS = 8
# Training costs about three forward passes: the forward, and a backward pass of about two
# (gradients of the inputs and of the weights), as in Kaplan et al. (2020), "Scaling laws".
TRAINING_PASSES = 3


@functools.cache
def peak_flops_per_second(device: torch.device) -> float:
    """FLOPs per second of the fastest of REPEATS fp32 matrix products on ``device``.

    With the threads this process uses (``torch.get_num_threads()``), and under whatever load
    the machine has now: a busy machine measures lower, as it will train lower.
    """
    size = SIZE.get(device.type, SIZE["cpu"])
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.mm(a, b)  # warm-up: the first product pays for thread pools and kernel selection
    synchronize()
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        torch.mm(a, b)
        synchronize()
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / max(best, 1e-9)


def fastest_epoch_seconds(flops: float, train_samples: int, device: torch.device) -> float:
    """A lower bound on the seconds of one training epoch of a model of ``flops`` forward FLOPs per
    sample over ``train_samples`` samples on ``device``."""
    return TRAINING_PASSES * flops * train_samples / peak_flops_per_second(device)
