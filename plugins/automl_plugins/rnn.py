"""Recurrent network: an LSTM or GRU over the steps, read out at the end or averaged, linear head.

Images are read row by row, top to bottom: ``H`` steps of ``C * W`` features; tokens are
embedded (the embedding width is searched).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

import automl
from automl_plugins._layers import as_sequence, check_kind, suggest_embedding

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}
# 512 units would put three bidirectional LSTM layers at ~15M parameters; 256 stops at ~3.7M.
HIDDEN_SIZES = [16, 32, 64, 128, 256]


class RecurrentClassifier(nn.Module):
    """A recurrent layer stack whose last state (``"last"``) or mean output (``"mean"``) is classified."""

    def __init__(self, to_sequence: nn.Module, rnn: nn.RNNBase, readout: str, num_classes: int) -> None:
        super().__init__()
        self.to_sequence = to_sequence
        self.rnn = rnn
        self.readout = readout
        self.directions = 2 if rnn.bidirectional else 1
        self.head = nn.Linear(self.directions * rnn.hidden_size, num_classes)

    def forward(self, inputs: Tensor) -> Tensor:
        outputs, state = self.rnn(self.to_sequence(inputs))
        if self.readout == "mean":
            return self.head(outputs.mean(dim=1))
        hidden = state[0] if isinstance(state, tuple) else state  # an LSTM's state is (h, c)
        # The top layer's final state per direction; the backward one has read the sequence from the end.
        return self.head(torch.cat(list(hidden[-self.directions:]), dim=-1))


class RNNFamily:
    """1 to 3 LSTM or GRU layers of 16 to 256 units, from about 1.4 thousand to 3.7 million parameters."""

    name = "rnn"
    task_kinds: tuple[str, ...] = ("image", "sequence", "tokens")

    def search_space(self, trial: automl.Trial, task: automl.Task) -> dict[str, Any]:
        check_kind(self, task)
        params = {
            **suggest_embedding(trial, task),
            "cell": trial.suggest_categorical("cell", list(CELLS)),
            "hidden": trial.suggest_categorical("hidden", HIDDEN_SIZES),
            "layers": trial.suggest_int("layers", 1, 3),
            "bidirectional": trial.suggest_categorical("bidirectional", [False, True]),
            "readout": trial.suggest_categorical("readout", ["last", "mean"]),
        }
        # PyTorch applies recurrent dropout only between layers.
        if params["layers"] > 1:
            params["dropout"] = trial.suggest_float("dropout", 0.0, 0.5, step=0.05)
        return params

    def build(self, params: dict[str, Any], task: automl.Task) -> nn.Module:
        check_kind(self, task)
        to_sequence, _, features = as_sequence(task, params.get("embedding"))
        rnn = CELLS[params["cell"]](
            features, params["hidden"], num_layers=params["layers"], batch_first=True,
            bidirectional=params["bidirectional"], dropout=params.get("dropout", 0.0))
        return RecurrentClassifier(to_sequence, rnn, params["readout"], task.num_classes)


@automl.hookimpl
def register_families(register: Callable[[automl.Family], None]) -> None:
    register(RNNFamily())
