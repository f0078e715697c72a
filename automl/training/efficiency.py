"""Efficiency of a built model: parameter count, FLOPs per sample and inference latency."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

aten = torch.ops.aten
# The FLOP counter calls the formulas below with its operands' shapes (torch.Size) and the op's other arguments.
Shape = Sequence[int]


def _recurrent_matmul_flops(steps: int, batch: int, weight_shapes: Sequence[Shape]) -> int:
    # Each weight matrix of a recurrent layer is applied once per time step and sample.
    return 2 * steps * batch * sum(shape[0] * shape[1] for shape in weight_shapes if len(shape) == 2)


def _lstm_flops(input_shape: Shape, hx_shapes: Sequence[Shape], param_shapes: Sequence[Shape], has_biases: bool,
                num_layers: int, dropout: float, train: bool, bidirectional: bool, batch_first: bool, *args: Any,
                out_shape: Any = None, **kwargs: Any) -> int:
    # PyTorch's FLOP counter has no formula for the fused LSTM kernels and counts them as 0.
    batch, steps = (input_shape[0], input_shape[1]) if batch_first else (input_shape[1], input_shape[0])
    return _recurrent_matmul_flops(steps, batch, param_shapes)


def _mkldnn_lstm_layer_flops(input_shape: Shape, weight_ih_shape: Shape, weight_hh_shape: Shape, *args: Any,
                             out_shape: Any = None, **kwargs: Any) -> int:
    # The oneDNN kernel that runs one LSTM layer on CPU; its input is always [T, B, F].
    return _recurrent_matmul_flops(input_shape[0], input_shape[1], [weight_ih_shape, weight_hh_shape])


def _cpu_flash_attention_flops(query_shape: Shape, key_shape: Shape, value_shape: Shape, *args: Any,
                               out_shape: Any = None, **kwargs: Any) -> int:
    # The CPU flash-attention kernel behind scaled_dot_product_attention is missing from the
    # counter's table, so attention scores would count as free on CPU.
    return sdpa_flop_count(query_shape, key_shape, value_shape)


_MISSING_FORMULAS = {
    aten.lstm: _lstm_flops,
    aten.mkldnn_rnn_layer: _mkldnn_lstm_layer_flops,
    aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_attention_flops,
}


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
        with counter, torch.enable_grad():
            model(batch)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def latency_ms(model: nn.Module, example: torch.Tensor, batch_size: int = 1, warmup: int = 3,
               repeats: int = 15) -> float:
    """Median wall time of one inference call on ``example``'s device, in milliseconds."""
    batch = example[:1].expand(batch_size, *example.shape[1:]).contiguous()
    synchronize = torch.cuda.synchronize if batch.is_cuda else (lambda: None)
    was_training = model.training
    model.eval()
    timings = []
    try:
        with torch.inference_mode():
            for index in range(warmup + repeats):
                synchronize()
                start = time.perf_counter()
                model(batch)
                synchronize()
                if index >= warmup:
                    timings.append((time.perf_counter() - start) * 1000.0)
    finally:
        model.train(was_training)
    return statistics.median(timings)


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
    latency_ms: float


def measure(model: nn.Module, example: torch.Tensor, device: torch.device,
            latency_batch_size: int = 1) -> Efficiency:
    """Count parameters and FLOPs on the CPU, then move ``model`` to ``device`` and time it there."""
    n_params = count_parameters(model)
    flops = flops_per_sample(model.cpu(), example.cpu())
    model.to(device)
    return Efficiency(n_params, flops, latency_ms(model, example.to(device), latency_batch_size))
