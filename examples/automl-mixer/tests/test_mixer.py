"""The mixer family against automl's conformance suite, plus what is special about it."""

from __future__ import annotations

import optuna
import torch

from automl import Task
from automl.plugin.registry import registry
from automl.plugin.space import sample_params
from automl.testing import FamilyConformance
from automl_mixer import MixerFamily


class TestMixerConformance(FamilyConformance):
    family = MixerFamily()


def test_installed_package_registers_the_family():
    source = registry().families["mixer"].source
    assert source.distribution == "automl-mixer" and source.module == "automl_mixer"


def test_patches_always_tile_the_image():
    task = Task("image", (3, 28, 28), 10)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(10):
        params = sample_params(MixerFamily(), study.ask(), task)
        assert 28 % params["patch"] == 0
        assert MixerFamily().build(params, task)(torch.randn(2, 3, 28, 28)).shape == (2, 10)
