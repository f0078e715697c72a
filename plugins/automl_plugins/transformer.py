"""Transformer encoder: tokens with learned positions, self-attention layers, mean or [CLS] readout.

Images become tokens either row by row (``H`` tokens of ``C * W`` pixels) or as square patches;
sequences become one token per step; token ids are embedded straight to the model width, and their
padding is masked out of attention and of the mean readout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional

import automl
from automl import PAD
from automl_plugins._layers import as_sequence, check_kind, embedding

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


class PatchTokens(nn.Module):
    """Cut ``[B, C, H, W]`` into non-overlapping ``side x side`` patches, each projected to a token."""

    def __init__(self, channels: int, side: int, d_model: int) -> None:
        super().__init__()
        self.project = nn.Conv2d(channels, d_model, kernel_size=side, stride=side)

    def forward(self, images: Tensor) -> Tensor:
        return self.project(images).flatten(2).transpose(1, 2)


class TransformerClassifier(nn.Module):
    """Tokens plus learned positions through an encoder, then the mean token or [CLS] to the head."""

    def __init__(self, tokenize: nn.Module, tokens: int, d_model: int, encoder: nn.Module,
                 pooling: str, num_classes: int, token_ids: bool = False) -> None:
        super().__init__()
        self.tokenize = tokenize
        self.token_ids = token_ids  # inputs are token ids, whose padding is masked
        self.pad_id = PAD  # an attribute, not the global: TorchScript cannot read imported globals
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model)) if pooling == "cls" else None
        self.position = nn.Parameter(torch.empty(1, tokens + (pooling == "cls"), d_model))
        nn.init.trunc_normal_(self.position, std=0.02)
        self.encoder = encoder
        self.head = nn.Linear(d_model, num_classes)

    def forward(self, inputs: Tensor) -> Tensor:
        tokens = self.tokenize(inputs)
        padding: Tensor | None = None
        if self.token_ids:
            pads = inputs == self.pad_id
            # An empty text (all padding) attends over its padding rather than over nothing (NaN).
            padding = pads & ~pads.all(dim=1, keepdim=True)
        if self.cls_token is not None:
            # shape[0], not len(): exporters (torch.export, ONNX) keep a size symbolic, not a Python int.
            tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
            if padding is not None:
                padding = functional.pad(padding, (1, 0), value=False)
        encoded = self.encoder(tokens + self.position, src_key_padding_mask=padding)
        if self.cls_token is not None:
            return self.head(encoded[:, 0])
        if padding is None:
            return self.head(encoded.mean(dim=1))
        kept = (~padding).unsqueeze(-1).to(encoded.dtype)
        return self.head((encoded * kept).sum(dim=1) / kept.sum(dim=1))


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
