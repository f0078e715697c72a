"""FLOPs counted for small built-in models against counts worked out by hand.

A multiply-add is 2 FLOPs; matmuls, convolutions and the two attention matmuls are counted,
elementwise work (activations, norms, pooling, biases) is not.
"""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from automl import Task
from automl.training.efficiency import flops_per_sample
from automl.plugin.registry import registry
from automl.plugin.space import replay_params

DIGITS = Task("image", (1, 8, 8), 10)
SEQUENCE = Task("sequence", (12, 3), 5)
TABLE = Task("tabular", (20,), 3)


def linear(rows: int, fan_in: int, fan_out: int) -> int:
    return 2 * rows * fan_in * fan_out


def conv(positions: int, in_channels: int, out_channels: int, kernel_size: int) -> int:
    return 2 * positions * in_channels * out_channels * kernel_size


def recurrent(steps: int, fan_in: int, hidden: int, gates: int) -> int:
    """One direction of one layer: input and hidden weights, each ``gates * hidden`` rows, per step."""
    return linear(steps, fan_in, gates * hidden) + linear(steps, hidden, gates * hidden)


def encoder_layer(tokens: int, d_model: int, ff_width: int) -> int:
    projections = linear(tokens, d_model, 3 * d_model) + linear(tokens, d_model, d_model)
    scores_and_values = 2 * linear(tokens, d_model, tokens)
    feed_forward = linear(tokens, d_model, ff_width) + linear(tokens, ff_width, d_model)
    return projections + scores_and_values + feed_forward


CASES = {
    "mlp-table": ("mlp", TABLE,
                  {"depth": 2, "width": 32, "activation": "relu", "norm": "layer", "dropout": 0.1},
                  linear(1, 20, 32) + linear(1, 32, 32) + linear(1, 32, 3)),
    "mlp-digits": ("mlp", DIGITS,
                   {"depth": 1, "width": 64, "activation": "gelu", "norm": "batch", "dropout": 0.0},
                   linear(1, 64, 64) + linear(1, 64, 10)),
    # 8x8 -> pool -> 4x4 -> pool -> 2x2; channels 8, 16, 32.
    "cnn-digits": ("cnn", DIGITS,
                   {"blocks": 3, "channels": 8, "kernel": 3, "norm": "batch", "pool": "avg"},
                   conv(64, 1, 8, 9) + conv(16, 8, 16, 9) + conv(4, 16, 32, 9) + linear(1, 32, 10)),
    # Conv1d over 12 steps with the 3 features as channels, pooled once to 6 steps.
    "cnn-sequence": ("cnn", SEQUENCE,
                     {"blocks": 2, "channels": 8, "kernel": 5, "norm": "none", "convs": 1, "residual": False,
                      "pool": "max"},
                     conv(12, 3, 8, 5) + conv(6, 8, 16, 5) + linear(1, 16, 5)),
    # A residual block of the time-series ResNet: kernels 8, 5, 3 and a 1x1 shortcut, lengths kept.
    "cnn-resnet": ("cnn", SEQUENCE,
                   {"blocks": 1, "channels": 8, "kernel": "8-5-3", "norm": "none", "convs": 3, "residual": True},
                   conv(12, 3, 8, 8) + conv(12, 8, 8, 5) + conv(12, 8, 8, 3) + conv(12, 3, 8, 1) + linear(1, 8, 5)),
    "rnn-lstm": ("rnn", SEQUENCE,
                 {"cell": "lstm", "hidden": 16, "layers": 2, "bidirectional": True,
                  "readout": "last", "dropout": 0.0},
                 2 * recurrent(12, 3, 16, 4) + 2 * recurrent(12, 32, 16, 4) + linear(1, 32, 5)),
    # Digits read row by row: 8 steps of 8 features.
    "rnn-gru": ("rnn", DIGITS,
                {"cell": "gru", "hidden": 16, "layers": 1, "bidirectional": False, "readout": "mean"},
                recurrent(8, 8, 16, 3) + linear(1, 16, 10)),
    "transformer-sequence": ("transformer", SEQUENCE,
                             {"d_model": 16, "heads": 2, "layers": 1, "ff_multiplier": 2,
                              "dropout": 0.0, "norm_first": False, "pooling": "mean"},
                             linear(12, 3, 16) + encoder_layer(12, 16, 32) + linear(1, 16, 5)),
    # 4x4 patches: 4 tokens, plus [CLS].
    "transformer-patches": ("transformer", DIGITS,
                            {"tokenizer": "patches", "patch_size": 4, "d_model": 32, "heads": 4,
                             "layers": 2, "ff_multiplier": 4, "dropout": 0.1, "norm_first": True,
                             "pooling": "cls"},
                            conv(4, 1, 32, 16) + 2 * encoder_layer(5, 32, 128) + linear(1, 32, 10)),
    # 8 row tokens of 8 pixels.
    "transformer-rows": ("transformer", DIGITS,
                         {"tokenizer": "rows", "d_model": 16, "heads": 1, "layers": 1,
                          "ff_multiplier": 1, "dropout": 0.0, "norm_first": False,
                          "pooling": "mean"},
                         linear(8, 8, 16) + encoder_layer(8, 16, 16) + linear(1, 16, 10)),
}


@pytest.mark.parametrize(("family_name", "task", "params", "expected"), list(CASES.values()),
                         ids=list(CASES))
def test_family_flops_match_the_analytic_count(family_name, task, params, expected):
    family = registry().family(family_name)
    stored = {f"{family_name}.{key}": value for key, value in params.items()}
    model = family.build(replay_params(family, stored, task), task)
    # Two samples in the batch: the count must be per sample.
    example = torch.randn(2, *task.input_shape)
    assert flops_per_sample(model, example) == pytest.approx(expected, rel=0.1)


@pytest.mark.parametrize(("layers", "bidirectional"), [(1, False), (2, True), (3, False)])
def test_lstm_alone_counts_its_matmuls(layers, bidirectional):
    # PyTorch's own counter has no formula for the fused LSTM kernels and reports 0 on a CPU.
    directions = 2 if bidirectional else 1
    lstm = nn.LSTM(3, 16, num_layers=layers, bidirectional=bidirectional, batch_first=True)
    expected = directions * sum(recurrent(12, 3 if layer == 0 else directions * 16, 16, 4)
                                for layer in range(layers))
    assert flops_per_sample(lstm, torch.randn(2, 12, 3)) == pytest.approx(expected, rel=0.1)


class StepsFirst(nn.Module):
    """A recurrent layer fed ``[T, B, F]`` (batch_first=False) and read out at its last output."""

    def __init__(self, layer: nn.RNNBase) -> None:
        super().__init__()
        self.layer, self.head = layer, nn.Linear(layer.hidden_size, 2)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.layer(inputs.transpose(0, 1))
        return self.head(outputs[-1])


@pytest.mark.parametrize("model", [
    nn.GRU(3, 16, num_layers=2, bidirectional=True, batch_first=True),
    StepsFirst(nn.GRU(3, 8, num_layers=1)),
    nn.RNN(3, 16, num_layers=3, nonlinearity="relu", batch_first=True),
], ids=["gru-bidirectional", "gru-steps-first", "rnn"])
def test_recurrent_layers_count_what_the_counter_counts_running_them(model):
    # The counter sees a GRU's and an RNN's per-step matmuls; the formula that stands in for
    # running them must give exactly its count.
    example = torch.randn(1, 12, 3)
    with FlopCounterMode(display=False) as counter:
        model(example)
    assert flops_per_sample(model, example) == counter.get_total_flops() > 0


def test_lstm_with_projections_counts_its_projection_weights():
    lstm = nn.LSTM(3, 16, proj_size=4, batch_first=True)
    expected = linear(12, 3, 4 * 16) + linear(12, 4, 4 * 16) + linear(12, 16, 4)
    assert flops_per_sample(lstm, torch.randn(1, 12, 3)) == expected


def test_a_long_recurrent_model_is_counted_without_running_its_steps():
    # Through the counter these 20,000 steps of a 3-layer bidirectional GRU take minutes (every
    # step's ops dispatched through Python); the formula takes milliseconds.
    task = Task("sequence", (20_000, 1), 10)
    family = registry().family("rnn")
    params = {"rnn.cell": "gru", "rnn.hidden": 64, "rnn.layers": 3, "rnn.bidirectional": True,
              "rnn.readout": "mean", "rnn.dropout": 0.0}
    model = family.build(replay_params(family, params, task), task)
    example = torch.randn(1, *task.input_shape)
    started = time.process_time()
    flops = flops_per_sample(model, example)
    assert time.process_time() - started < 10
    assert flops == 2 * (recurrent(20_000, 1, 64, 3) + 2 * recurrent(20_000, 128, 64, 3)) + linear(1, 128, 10)
    # The layers run again after the count.
    assert model(example[:, :50]).abs().sum() > 0
