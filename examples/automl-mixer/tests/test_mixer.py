"""The mixer family against automl's conformance suite, plus what is special about it."""

from __future__ import annotations

from automl import Task
from automl.testing import FamilyConformance, example_inputs, registry, sample_configs
from automl_mixer import MixerFamily


class TestMixerConformance(FamilyConformance):
    family = MixerFamily()


def test_installed_package_registers_the_family():
    source = registry().families["mixer"].source
    assert source.distribution == "automl-mixer" and source.module == "automl_mixer"


def test_patches_always_tile_the_image():
    task = Task("image", (3, 28, 28), 10)
    for config in sample_configs(MixerFamily(), task, 10):
        assert 28 % config.params["patch"] == 0
        assert MixerFamily().build(config.params, task)(example_inputs(task, 2)).shape == (2, 10)
