"""Transformer encoder: tokens with learned positions, self-attention layers, mean or [CLS] readout.

Images become tokens either row by row (``H`` tokens of ``C * W`` pixels) or as square patches;
sequences become one token per step; token ids are embedded straight to the model width, and their
padding is masked out of attention and of the mean readout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import automl
from automl_plugins._space import check_kind

if TYPE_CHECKING:  # torch is imported by build: reading a study file loads this module without it
    from torch import nn

D_MODELS = [16, 32, 64, 128, 256]
HEADS = [1, 2, 4, 8]  # every width in D_MODELS is a multiple of 8, so every head count divides it
FF_MULTIPLIERS = [1, 2, 4]
# Patches offered for an image must tile it into 4 to 64 tokens: fewer leaves attention nothing
# to relate, more makes the largest models slow on a CPU (attention grows with the square).
MIN_PATCH_TOKENS, MAX_PATCH_TOKENS = 4, 64


def patch_sizes(task: automl.Task) -> list[int]:
    """Square patch sides that tile ``task``'s images exactly into an allowed number of tokens."""
    _, height, width = task.input_shape
    return [side for side in range(2, min(height, width) + 1)
            if height % side == 0 and width % side == 0
            and MIN_PATCH_TOKENS <= (height // side) * (width // side) <= MAX_PATCH_TOKENS]


class TransformerFamily:
    """1 to 4 encoder layers 16 to 256 wide, from about two thousand to three million parameters."""

    name = "transformer"
    task_kinds: tuple[str, ...] = ("image", "sequence", "tokens")

    def search_space(self, trial: automl.Trial, task: automl.Task) -> dict[str, Any]:
        check_kind(self, task)
        params: dict[str, Any] = {}
        if task.kind == "image":
            sides = patch_sizes(task)
            params["tokenizer"] = trial.suggest_categorical(
                "tokenizer", ["rows", "patches"] if sides else ["rows"])
            if params["tokenizer"] == "patches":
                params["patch_size"] = trial.suggest_categorical("patch_size", sides)
        params.update(
            d_model=trial.suggest_categorical("d_model", D_MODELS),
            heads=trial.suggest_categorical("heads", HEADS),
            layers=trial.suggest_int("layers", 1, 4),
            ff_multiplier=trial.suggest_categorical("ff_multiplier", FF_MULTIPLIERS),
            dropout=trial.suggest_float("dropout", 0.0, 0.3, step=0.05),
            norm_first=trial.suggest_categorical("norm_first", [False, True]),
            pooling=trial.suggest_categorical("pooling", ["mean", "cls"]),
        )
        return params

    def build(self, params: dict[str, Any], task: automl.Task) -> nn.Module:
        from torch import nn

        from automl_plugins._layers import PatchTokens, TransformerClassifier, as_sequence, embedding

        check_kind(self, task)
        d_model = params["d_model"]
        if params.get("tokenizer") == "patches":
            channels, height, width = task.input_shape
            side = params["patch_size"]
            tokenize: nn.Module = PatchTokens(channels, side, d_model)
            tokens = (height // side) * (width // side)
        elif task.kind == "tokens":
            tokenize, (tokens,) = embedding(task, d_model), task.input_shape
        else:
            to_sequence, tokens, features = as_sequence(task)
            tokenize = nn.Sequential(to_sequence, nn.Linear(features, d_model))
        layer = nn.TransformerEncoderLayer(
            d_model, params["heads"], dim_feedforward=params["ff_multiplier"] * d_model,
            dropout=params["dropout"], activation="gelu", batch_first=True,
            norm_first=params["norm_first"])
        # Pre-norm layers leave the residual stream unnormalized; one final norm closes it.
        encoder = nn.TransformerEncoder(layer, params["layers"],
                                        norm=nn.LayerNorm(d_model) if params["norm_first"] else None,
                                        enable_nested_tensor=False)
        return TransformerClassifier(tokenize, tokens, d_model, encoder, params["pooling"],
                                     task.num_classes, token_ids=task.kind == "tokens")


@automl.hookimpl
def register_families(register: Callable[[automl.Family], None]) -> None:
    register(TransformerFamily())
