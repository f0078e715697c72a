"""MLP-Mixer for automl: images are cut into patches, then token- and channel-mixing MLPs alternate."""

from __future__ import annotations

from typing import TYPE_CHECKING

import automl

if TYPE_CHECKING:  # torch is imported by build (automl_mixer.layers), not when automl loads the plugin
    import torch


class MixerFamily:
    """An ``automl.Family``: images ``[B, C, H, W]`` to logits ``[B, num_classes]``."""

    name = "mixer"
    task_kinds = ("image",)

    def search_space(self, trial: automl.Trial, task: automl.Task) -> dict:
        side = task.input_shape[1]
        return {
            "patch": trial.suggest_categorical("patch", [p for p in (2, 4) if side % p == 0]),
            "depth": trial.suggest_int("depth", 1, 4),
            "width": trial.suggest_categorical("width", [32, 64, 128]),
            "expansion": trial.suggest_categorical("expansion", [1, 2, 4]),
        }

    def build(self, params: dict, task: automl.Task) -> torch.nn.Module:
        from automl_mixer.layers import Mixer

        channels, side, _ = task.input_shape
        return Mixer(channels, side, params["patch"], params["width"], params["depth"],
                     params["expansion"], task.num_classes)


@automl.hookimpl
def register_families(register):
    register(MixerFamily())
