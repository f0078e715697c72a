"""The mixer's layers: imported by MixerFamily.build, so that automl loads the plugin (to read a
study file) without torch."""

from __future__ import annotations

import torch
from torch import nn


class MixerBlock(nn.Module):
    def __init__(self, tokens: int, width: int, expansion: int) -> None:
        super().__init__()
        self.token_norm = nn.LayerNorm(width)
        self.token_mlp = nn.Sequential(nn.Linear(tokens, tokens * expansion), nn.GELU(),
                                       nn.Linear(tokens * expansion, tokens))
        self.channel_norm = nn.LayerNorm(width)
        self.channel_mlp = nn.Sequential(nn.Linear(width, width * expansion), nn.GELU(),
                                         nn.Linear(width * expansion, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.token_mlp(self.token_norm(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.channel_norm(x))


class Mixer(nn.Module):
    def __init__(self, channels: int, side: int, patch: int, width: int, depth: int,
                 expansion: int, num_classes: int) -> None:
        super().__init__()
        self.embed = nn.Conv2d(channels, width, kernel_size=patch, stride=patch)
        tokens = (side // patch) ** 2
        self.blocks = nn.Sequential(*(MixerBlock(tokens, width, expansion) for _ in range(depth)))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2).transpose(1, 2)
        return self.head(self.norm(self.blocks(x)).mean(dim=1))
