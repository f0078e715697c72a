"""Efficiency of a built model: parameter count, FLOPs per sample and inference latency."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from automl.errors import plural

aten = torch.ops.aten
# The FLOP counter calls the formulas below with its operands' shapes (torch.Size) and the op's other arguments.
Shape = Sequence[int]


def _recurrent_flops(layer: nn.RNNBase, inputs: torch.Tensor) -> int:
    """Each weight matrix of a recurrent layer (input, hidden and, for an LSTM, projection weights
    of every layer and direction) is applied once per time step and sample."""
    batch, steps = (inputs.shape[0], inputs.shape[1]) if layer.batch_first else (inputs.shape[1], inputs.shape[0])
    return 2 * steps * batch * sum(weight.numel() for weight in layer.parameters() if weight.dim() == 2)


@contextlib.contextmanager
def _recurrent_layers_by_formula(model: nn.Module) -> Iterator[list[int]]:
    """Within it, ``model``'s recurrent layers (torch's GRU, LSTM, RNN) return zeros of their
    outputs' shapes and add their FLOPs, by _recurrent_flops, to the list it yields.

    The FLOP counter is a dispatch mode: a GRU, and an LSTM off oneDNN's fused kernel, run their
    steps one by one through it, several ops a step dispatched through Python. Counting a 3-layer
    GRU over 1,460 steps took 7.4 CPU-s, running it 0.4 s; the formula gives the same count as
    the counter's (tests/training/test_flops.py) at once, whatever the length. Later layers see
    zeros instead of the recurrent outputs: FLOPs depend on shapes, not values. A packed or
    unbatched input runs the layer itself (counted by the counter).
    """
    counted: list[int] = []

    def stand_in(layer: nn.RNNBase) -> Callable[..., Any]:
        def forward(inputs: Any, hx: Any = None) -> Any:
            if not isinstance(inputs, torch.Tensor) or inputs.dim() != 3:
                return type(layer).forward(layer, inputs, hx)
            counted.append(_recurrent_flops(layer, inputs))
            directions = 2 if layer.bidirectional else 1
            width = getattr(layer, "proj_size", 0) or layer.hidden_size
            batch, steps = (inputs.shape[0], inputs.shape[1]) if layer.batch_first else \
                (inputs.shape[1], inputs.shape[0])
            outputs = inputs.new_zeros((batch, steps, directions * width) if layer.batch_first else
                                       (steps, batch, directions * width))
            hidden = inputs.new_zeros((directions * layer.num_layers, batch, width))
            if isinstance(layer, nn.LSTM):
                return outputs, (hidden, inputs.new_zeros((directions * layer.num_layers, batch, layer.hidden_size)))
            return outputs, hidden
        return forward

    layers = [module for module in model.modules() if isinstance(module, nn.RNNBase)]
    for layer in layers:
        layer.forward = stand_in(layer)
    try:
        yield counted
    finally:
        for layer in layers:
            del layer.forward


def _cpu_flash_attention_flops(query_shape: Shape, key_shape: Shape, value_shape: Shape, *args: Any,
                               out_shape: Any = None, **kwargs: Any) -> int:
    # The CPU flash-attention kernel behind scaled_dot_product_attention is missing from the
    # counter's table, so attention scores would count as free on CPU.
    return sdpa_flop_count(query_shape, key_shape, value_shape)


_MISSING_FORMULAS = {aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_attention_flops}


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def flops_per_sample(model: nn.Module, example: torch.Tensor) -> int:
    """Forward FLOPs (a multiply-add counts 2) for one sample, counted by torch's FLOP counter.

    Call it while the model is on the CPU: FLOPs do not depend on the device, and the extra
    formulas above cover the CPU kernels. Gradients stay enabled so that PyTorch's fused inference fast
    paths, which the counter cannot see into, are not taken; nothing is backpropagated.
    """
    batch = example[:1]
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False, custom_mapping=_MISSING_FORMULAS)
    try:
        with _recurrent_layers_by_formula(model) as recurrent, counter, torch.enable_grad():
            model(batch)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) + sum(recurrent)


@dataclass(frozen=True)
class Latency:
    """One model's inference latency and how it was measured."""

    ms: float  # per inference call of one batch, in milliseconds
    method: str  # the clock, threads, warm-up, repeats and statistic, e.g. for a trial's attrs


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def latency(model: nn.Module, example: torch.Tensor, batch_size: int = 1, warmup_s: float = 0.05,
            repeats: int = 21, repeat_s: float = 0.002, budget_s: float = 1.0) -> Latency:
    """Time of one inference call on ``example``'s device, measured so that a busy machine barely moves it.

    On a CPU the clock is the calling thread's CPU time (``time.thread_time``) with torch pinned to
    one thread: time the thread spends waiting for a core while other processes run is not counted,
    so the number is what one call costs on one core, however loaded the machine. A wall clock
    read the same trial as 0.19 ms and 24 ms on a loaded machine. On a GPU it is wall time between
    synchronizations. Calls run for ``warmup_s`` first (lazy initialization, allocator and kernel
    caches), at least three; then ``repeats`` timings of ``repeat_s`` or more each (several calls
    per timing for a fast model, so the clock's resolution does not matter), fewer (at least five)
    when they would pass ``budget_s``. The statistic is their minimum, as timeit advises: what
    else runs (interrupts, a busy sibling hyperthread, flushed caches) only ever adds time. Under
    three busy processes on two cores, repeated medians spread by 1.45x, minimums by 1.36x (by up to
    1.5x over eight measurements). It costs about 0.1 s of CPU per model.
    """
    batch = example[:1].expand(batch_size, *example.shape[1:]).contiguous()
    on_gpu = batch.is_cuda
    synchronize = torch.cuda.synchronize if on_gpu else (lambda: None)
    clock = time.perf_counter if on_gpu else time.thread_time
    threads = torch.get_num_threads() if on_gpu else 1

    def timed(calls: int) -> float:
        synchronize()
        start = clock()
        for _ in range(calls):
            model(batch)
        synchronize()
        return clock() - start

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), _torch_threads(threads):
            warmup: list[float] = []
            while len(warmup) < 3 or sum(warmup) < warmup_s:
                warmup.append(timed(1))
            calls = max(1, math.ceil(repeat_s / max(min(warmup), 1e-9)))
            timings: list[float] = []
            while len(timings) < repeats and (len(timings) < 5 or sum(timings) * calls < budget_s):
                timings.append(timed(calls) / calls)
    finally:
        model.train(was_training)
    clock_name = "wall time between CUDA synchronizations" if on_gpu else "thread CPU time, torch on 1 thread"
    method = (f"{clock_name}; batch {batch_size}; minimum of {len(timings)} timings of {plural(calls, 'call')} "
              f"after {len(warmup)} warm-up calls")
    return Latency(min(timings) * 1000.0, method)


def peak_memory_mb(model: nn.Module, example: torch.Tensor, batch_size: int) -> float | None:
    """Peak GPU memory of one training step at ``batch_size`` (weights, activations, gradients), in MiB.

    ``model`` and ``example`` must be on the device. None on a CPU, where no allocator keeps a peak;
    the optimizer's state is left out (it is created later and depends on the optimizer).
    """
    if not example.is_cuda:
        return None
    batch = example[:1].expand(batch_size, *example.shape[1:]).contiguous()
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    try:
        model(batch).float().sum().backward()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before + weights
    finally:
        model.zero_grad(set_to_none=True)
    return peak / 2**20


@dataclass(frozen=True)
class Efficiency:
    """What a model costs, measured once before it trains."""

    n_params: int
    flops: int
    latency_ms: float | None  # None when not timed
    latency_method: str  # how latency_ms was measured (see latency), or why it was not


# The latency_method of a model whose latency was not timed.
NOT_TIMED = "not timed: latency is neither an objective nor a [budget] limit of the study"


def measure(model: nn.Module, example: torch.Tensor, device: torch.device,
            latency_batch_size: int = 1, time_latency: bool = True) -> Efficiency:
    """Count parameters and FLOPs on the CPU, then move ``model`` to ``device`` and, with
    ``time_latency``, time it there (about 0.1 s of CPU: a trial of a small model takes a few
    tenths of a second, so a study that neither ranks nor limits latency does not pay for it)."""
    n_params = count_parameters(model)
    flops = flops_per_sample(model.cpu(), example.cpu())
    model.to(device)
    if not time_latency:
        return Efficiency(n_params, flops, None, NOT_TIMED)
    timed = latency(model, example.to(device), latency_batch_size)
    return Efficiency(n_params, flops, timed.ms, timed.method)
