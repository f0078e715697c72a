"""Convolutional network: conv blocks that double the channels, global average pooling, linear head.

Images use 2-D convolutions; sequences ``[T, F]`` use 1-D convolutions over time with the ``F``
features as channels; tokens are embedded first, the embedding's features as channels.

For sequences the space also holds the time-series classifiers of Wang et al. (2017) and Ismail
Fawaz et al. (2019): kernels 8, 5 and 3 in turn (across the blocks, or within each block of three
convolutions), no pooling, and residual blocks with a 1x1 shortcut. FCN is 3 blocks of one
convolution (kernels 8, 5, 3) with batch norm; ResNet is 3 residual blocks of three (8, 5, 3),
64 channels first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import automl
from automl_plugins._space import check_kind, suggest_embedding

if TYPE_CHECKING:  # torch is imported by build: reading a study file loads this module without it
    from torch import nn

BASE_CHANNELS = [8, 16, 32, 64, 128]
# Doubling stops here: four blocks from 128 channels would otherwise reach 1024 and ~60M parameters.
MAX_CHANNELS = 256
# Pool between blocks only while every spatial side is at least this long, so nothing shrinks
# below 2: the 8x8 digits get two poolings (8 -> 4 -> 2), 32x32 images three.
MIN_SIDE_TO_POOL = 4
# The kernels of the time-series FCN and ResNet, used in turn ("8-5-3" in the space).
TIME_SERIES_KERNELS = (8, 5, 3)
# Above this many FLOPs per sample, the FCN a study on sequences starts from pools (max, 2x) after
# its first two blocks, which cuts its cost about threefold. Its cost grows with the length: 18
# MFLOPs at 251 steps, 102 at 1,460 (ACSF1), where on a 600 s budget on one busy CPU thread its
# epochs (3 folds of 66 rows) were too slow to reach its second rung. Trained alone on ACSF1's 100
# training series, cosine from lr 3.2e-3 over 40 epochs, both scored 0.77 on the test rows, the
# pooled one in half the CPU time (17 s against 35); over 80 epochs, 37 s, the pooled one 0.85.
FCN_POOLED_ABOVE_FLOPS = 50e6
IMAGE_KERNELS: list[int | str] = [3, 5]
SEQUENCE_KERNELS: list[int | str] = [3, 5, 8, "8-5-3"]


def _sides(task: automl.Task) -> tuple[int, ...]:
    """The spatial sides convolutions slide over: ``(H, W)`` or ``(T,)``."""
    return task.input_shape[1:] if task.kind == "image" else task.input_shape[:1]


def _input_layers(task: automl.Task, params: dict[str, Any]) -> tuple[list[nn.Module], int]:
    """Layers from ``task``'s inputs to what the first convolution reads, and its channels."""
    from automl_plugins._layers import TimeAsLastAxis, embedding

    if task.kind == "image":
        return [], task.input_shape[0]
    if task.kind == "tokens":
        return [embedding(task, params["embedding"]), TimeAsLastAxis()], params["embedding"]
    return [TimeAsLastAxis()], task.input_shape[1]


def _poolings(blocks: int, sides: tuple[int, ...]) -> int:
    """How many of the gaps between blocks get a 2x pooling: the first ones, while sides allow."""
    count = 0
    while count < blocks - 1 and min(sides) >= MIN_SIDE_TO_POOL:
        sides = tuple(side // 2 for side in sides)
        count += 1
    return count


def _kernels(params: dict[str, Any], block: int) -> list[int]:
    """The kernel of each convolution of block ``block``."""
    convs = params.get("convs", 1)
    if params["kernel"] != "8-5-3":
        return [params["kernel"]] * convs
    if convs == 1:  # FCN: one kernel per block, in turn
        return [TIME_SERIES_KERNELS[min(block, len(TIME_SERIES_KERNELS) - 1)]]
    return list(TIME_SERIES_KERNELS)  # ResNet: every block runs through them


def fcn_flops(task: automl.Task, channels: int) -> int:
    """FLOPs per sample of the unpooled time-series FCN of ``channels`` on sequences ``[T, F]``: its
    three convolutions (kernels 8, 5, 3; ``channels``, twice and four times as many out), 2 FLOPs
    per multiply-add; the rest of the net costs under 1% of that."""
    steps, features = task.input_shape
    widths = [features, channels, 2 * channels, 4 * channels]
    return 2 * steps * sum(kernel * c_in * c_out
                           for kernel, c_in, c_out in zip(TIME_SERIES_KERNELS, widths[:-1], widths[1:], strict=True))


class CNNFamily:
    """1 to 4 conv blocks of 8 to 256 channels: 170 to about four million parameters on the digits."""

    name = "cnn"
    task_kinds: tuple[str, ...] = ("image", "sequence", "tokens")

    def search_space(self, trial: automl.Trial, task: automl.Task) -> dict[str, Any]:
        check_kind(self, task)
        sequence = task.kind == "sequence"
        params = {
            **suggest_embedding(trial, task),
            "blocks": trial.suggest_int("blocks", 1, 4),
            "channels": trial.suggest_categorical("channels", BASE_CHANNELS),
            "kernel": trial.suggest_categorical("kernel", SEQUENCE_KERNELS if sequence else IMAGE_KERNELS),
            "norm": trial.suggest_categorical("norm", ["none", "batch"]),
        }
        if sequence:
            params["convs"] = trial.suggest_categorical("convs", [1, 3])
            params["residual"] = trial.suggest_categorical("residual", [False, True])
        if _poolings(params["blocks"], _sides(task)):
            params["pool"] = trial.suggest_categorical("pool", ["none", "max", "avg"] if sequence else ["max", "avg"])
        return params

    def starting_points(self, task: automl.Task) -> list[dict[str, Any]]:
        """For sequences, the time-series FCN (three blocks of one convolution, kernels 8, 5, 3,
        batch norm, no pooling) at 32 channels first: a search starts from the net that does best
        on small archive tasks, at a fraction of the published 128 channels' cost. On long
        sequences, where it would cost more than FCN_POOLED_ABOVE_FLOPS, it pools after its first
        two blocks."""
        if task.kind != "sequence":
            return []
        blocks, channels = 3, 32
        fcn = {"blocks": blocks, "channels": channels, "kernel": "8-5-3", "norm": "batch", "convs": 1,
               "residual": False}
        if not _poolings(blocks, _sides(task)):
            return [fcn]
        return [{**fcn, "pool": "max" if fcn_flops(task, channels) > FCN_POOLED_ABOVE_FLOPS else "none"}]

    def build(self, params: dict[str, Any], task: automl.Task) -> nn.Module:
        from torch import nn

        from automl_plugins._layers import CONV_LAYERS_BY_RANK, Residual

        check_kind(self, task)
        sides = _sides(task)
        layers, in_channels = _input_layers(task, params)
        conv, batch_norm, pools, global_pool = CONV_LAYERS_BY_RANK[len(sides)]
        poolings = _poolings(params["blocks"], sides)
        use_batch_norm = params["norm"] == "batch"
        for block in range(params["blocks"]):
            out_channels = min(params["channels"] * 2**block, MAX_CHANNELS)
            body: list[nn.Module] = []
            channels = in_channels
            for kernel in _kernels(params, block):
                # A bias right before batch norm is cancelled by its mean subtraction.
                if kernel % 2 == 0:  # only sequences have even kernels: pad one step more on the right
                    body.append(nn.ConstantPad1d((kernel // 2 - 1, kernel // 2), 0.0))
                body.append(conv(channels, out_channels, kernel, padding=kernel // 2 if kernel % 2 else 0,
                                 bias=not use_batch_norm))
                if use_batch_norm:
                    body.append(batch_norm(out_channels))
                body.append(nn.ReLU())
                channels = out_channels
            if params.get("residual"):
                shortcut: nn.Module = nn.Identity()
                if in_channels != out_channels:
                    shortcut = nn.Sequential(conv(in_channels, out_channels, 1, bias=not use_batch_norm),
                                             *([batch_norm(out_channels)] if use_batch_norm else []))
                layers.append(Residual(nn.Sequential(*body[:-1]), shortcut))  # ReLU after the sum
            else:
                layers += body
            if block < poolings and params["pool"] != "none":
                layers.append(pools[params["pool"]](2))
            in_channels = out_channels
        layers += [global_pool(1), nn.Flatten(), nn.Linear(in_channels, task.num_classes)]
        return nn.Sequential(*layers)


@automl.hookimpl
def register_families(register: Callable[[automl.Family], None]) -> None:
    register(CNNFamily())
