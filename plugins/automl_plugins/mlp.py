"""Multilayer perceptron: the flattened input through a stack of equally wide hidden layers.

Tokens enter as a bag of embeddings: the mean embedding of a sample's tokens, padding left out,
times the square root of the width; with no hidden layer (depth 0, for tokens only) that is
fastText's linear model (Joulin et al., "Bag of Tricks for Efficient Text Classification", EACL 2017).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import automl
from automl_plugins._space import check_kind, suggest_embedding

if TYPE_CHECKING:  # torch is imported by build: reading a study file loads this module without it
    from torch import nn

# From 4 units: on an efficiency front the smallest models that still classify well are the point.
WIDTHS = [4, 8, 16, 32, 64, 128, 256, 512, 1024]
NORMALIZATIONS = ["none", "batch", "layer"]


class MLPFamily:
    """1 to 4 hidden layers of 4 to 1024 units, from a few hundred to three million parameters;
    for tokens also none (the bag of embeddings classified linearly)."""

    name = "mlp"
    task_kinds: tuple[str, ...] = ("image", "sequence", "tabular", "tokens")

    def search_space(self, trial: automl.Trial, task: automl.Task) -> dict[str, Any]:
        check_kind(self, task)
        # For tokens, depth 0 classifies the bag directly: fastText's own (linear) model.
        params = {**suggest_embedding(trial, task),
                  "depth": trial.suggest_int("depth", 0 if task.kind == "tokens" else 1, 4)}
        if params["depth"] == 0:
            return params
        return {
            **params,
            "width": trial.suggest_categorical("width", WIDTHS),
            "activation": trial.suggest_categorical("activation", ["relu", "gelu"]),
            "norm": trial.suggest_categorical("norm", NORMALIZATIONS),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5, step=0.05),
        }

    def starting_points(self, task: automl.Task) -> list[dict[str, Any]]:
        """For tokens, fastText's model: a bag of 16-wide embeddings classified linearly. On short
        movie-review snippets (3,101 training texts, 1,217 test texts) it reached 0.729 test
        accuracy in 10 epochs at a constant lr 1e-3 in batches of 64 (the centre of the default
        ranges; mean of 3 seeds), where TF-IDF + logistic regression scores 0.706; the former start,
        128-wide embeddings into a hidden layer of 16, scored 0.687, and hashed word bigrams in the
        bag (fastText's option) 0.681 to 0.709: too rare in 3,101 snippets to help."""
        if task.kind != "tokens":
            return []
        return [{"embedding": 16, "depth": 0}]

    def build(self, params: dict[str, Any], task: automl.Task) -> nn.Module:
        from torch import nn

        from automl_plugins._layers import NORMALIZATIONS, BagOfEmbeddings, activation

        check_kind(self, task)
        if task.kind == "tokens":
            layers: list[nn.Module] = [BagOfEmbeddings(task, params["embedding"])]
            features = params["embedding"]
        else:
            layers = [nn.Flatten()]
            features = math.prod(task.input_shape)
        for _ in range(params["depth"]):
            width, norm = params["width"], NORMALIZATIONS[params["norm"]]
            layers.append(nn.Linear(features, width))
            if norm is not None:
                layers.append(norm(width))
            layers.append(activation(params["activation"]))
            if params["dropout"] > 0:
                layers.append(nn.Dropout(params["dropout"]))
            features = width
        layers.append(nn.Linear(features, task.num_classes))
        return nn.Sequential(*layers)


@automl.hookimpl
def register_families(register: Callable[[automl.Family], None]) -> None:
    register(MLPFamily())
