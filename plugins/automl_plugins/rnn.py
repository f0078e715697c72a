"""Recurrent network: an LSTM or GRU over the steps, read out at the end or averaged, linear head.

Images are read row by row, top to bottom: ``H`` steps of ``C * W`` features; tokens are
embedded (the embedding width is searched).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import automl
from automl_plugins._space import check_kind, suggest_embedding

if TYPE_CHECKING:  # torch is imported by build: reading a study file loads this module without it
    from torch import nn

CELLS = ["gru", "lstm"]
# 512 units would put three bidirectional LSTM layers at ~15M parameters; 256 stops at ~3.7M.
HIDDEN_SIZES = [16, 32, 64, 128, 256]


class RNNFamily:
    """1 to 3 LSTM or GRU layers of 16 to 256 units, from about 1.4 thousand to 3.7 million parameters."""

    name = "rnn"
    task_kinds: tuple[str, ...] = ("image", "sequence", "tokens")

    def search_space(self, trial: automl.Trial, task: automl.Task) -> dict[str, Any]:
        check_kind(self, task)
        params = {
            **suggest_embedding(trial, task),
            "cell": trial.suggest_categorical("cell", CELLS),
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
        from automl_plugins._layers import RECURRENT_CELLS, RecurrentClassifier, as_sequence

        check_kind(self, task)
        to_sequence, _, features = as_sequence(task, params.get("embedding"))
        rnn = RECURRENT_CELLS[params["cell"]](
            features, params["hidden"], num_layers=params["layers"], batch_first=True,
            bidirectional=params["bidirectional"], dropout=params.get("dropout", 0.0))
        return RecurrentClassifier(to_sequence, rnn, params["readout"], task.num_classes)


@automl.hookimpl
def register_families(register: Callable[[automl.Family], None]) -> None:
    register(RNNFamily())
