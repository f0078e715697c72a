"""The fastest a device computes: its peak FLOP rate on a dense matrix product, measured once.

A model's training step cannot run faster than its FLOPs at this rate, so it bounds an epoch's
time from below before the model has trained at all (automl.search.time_budget uses it while the
study has no trial of a model as large). Real layers reach a fraction of it: small convolutions
and recurrent steps a tenth or less on a CPU, so the bound is optimistic, never pessimistic.
"""

from __future__ import annotations

import functools
import math
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


def fastest_forward_seconds(model: torch.nn.Module, batch: torch.Tensor, repeats: int = 2) -> float:
    """The fastest of ``repeats`` forward passes of ``model`` on ``batch``, in eval mode without
    gradients, in seconds (wall time, the device waited for).

    A training step on a batch of at least as many samples runs such a forward pass and more (in
    training mode, the backward and the optimizer), so this bounds each step's time from below
    where the FLOPs cannot: on 1,460-step series an attention model of 0.3 GFLOPs a sample trained
    at a hundredth of the device's peak rate. The fastest of two leaves most one-time warm-ups out.
    """
    was_training = model.training
    model.eval()
    synchronize = torch.cuda.synchronize if batch.is_cuda else (lambda: None)
    best = math.inf
    try:
        with torch.no_grad():
            for _ in range(repeats):
                synchronize()
                started = time.perf_counter()
                model(batch)
                synchronize()
                best = min(best, time.perf_counter() - started)
    finally:
        model.train(was_training)
    return best
