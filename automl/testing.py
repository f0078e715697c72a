"""pytest conformance suites for plugin authors: one for families, one for datasets.

Subclass them in your package's tests and point them at your objects::

    from automl.testing import DatasetConformance, FamilyConformance
    from automl_mixer import MixerFamily

    class TestMixer(FamilyConformance):
        family = MixerFamily()

pytest then runs every family check on every task kind the family declares, and every dataset
check on the options ``dataset_options`` returns. The checks live in ``automl.conformance``;
``automl plugins check`` runs the same family checks on the same configs, with the default
settings. Each raises ConformanceError saying what broke.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from automl import conformance
from automl.conformance import DEFAULT_TASKS, Config, ConformanceError, FamilySettings, sample_configs
from automl.plugin.build import example_inputs
from automl.plugin.contract import DatasetOptions, LabeledArrays
from automl.plugin.registry import registry
from automl.plugin.task import Task

__all__ = ["DEFAULT_TASKS", "ConformanceError", "DatasetConformance", "FamilyConformance", "FamilySettings",
           "example_inputs", "registry", "sample_configs"]


class FamilyConformance:
    """Contract checks for ``family``: the checks and configs ``automl plugins check`` runs, one
    test per check and task kind. Class attributes named as ``automl.conformance.FamilySettings``'
    fields override its defaults (``min_size_ratio = 5.0``, ``max_epochs = 10``, ``tasks``...)."""

    family: Any = None
    tasks: Mapping[str, Task] = DEFAULT_TASKS
    n_configs: int = FamilySettings.n_configs
    min_size_ratio: float = FamilySettings.min_size_ratio
    max_epochs: int = FamilySettings.max_epochs
    learning_rate: float = FamilySettings.learning_rate

    @property
    def settings(self) -> FamilySettings:
        return FamilySettings(**{field.name: getattr(self, field.name) for field in dataclasses.fields(FamilySettings)})

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "task" in metafunc.fixturenames:
            kinds = list(self.family.task_kinds)
            metafunc.parametrize("task", [self.tasks[kind] for kind in kinds], ids=kinds)
        if "check" in metafunc.fixturenames:
            metafunc.parametrize("check", list(conformance.TASK_CHECKS))

    @pytest.fixture
    def configs(self, task: Task) -> list[Config]:
        return sample_configs(self.family, task, self.n_configs)

    def test_contract(self) -> None:
        conformance.check_family_contract(self.family)

    def test_search_space(self, task: Task) -> None:
        sample_configs(self.family, task, self.n_configs)

    def test_check(self, task: Task, configs: list[Config], check: str) -> None:
        conformance.TASK_CHECKS[check](self.family, task, configs, self.settings)


class DatasetConformance:
    """Contract checks for ``dataset``, loaded with ``seed`` and the options ``dataset_options``
    returns::

        class TestBlobs(DatasetConformance):
            dataset = Blobs()

            @pytest.fixture
            def dataset_options(self, tmp_path):
                return {"classes": 4}

    A dataset that reads a file writes a small one under ``tmp_path`` there and names it: a
    relative path is taken relative to ``tmp_path``, as a study file's is to its folder.
    """

    dataset: Any = None
    seed: int = 0

    @pytest.fixture
    def dataset_options(self, tmp_path: Path) -> dict[str, Any]:
        """The ``[data]`` keys to load with, as a study file gives them; none by default."""
        return {}

    @pytest.fixture
    def options(self, dataset_options: dict[str, Any], tmp_path: Path) -> DatasetOptions:
        return conformance.validate_options(self.dataset, dataset_options, tmp_path)

    @pytest.fixture
    def arrays(self, options: DatasetOptions) -> LabeledArrays:
        return conformance.load_arrays(self.dataset, options, self.seed)

    def test_contract(self) -> None:
        conformance.check_dataset_contract(self.dataset)

    def test_options_refuse_an_unknown_key(self, dataset_options: dict[str, Any], tmp_path: Path) -> None:
        conformance.check_refuses_unknown_option(self.dataset, dataset_options, tmp_path)

    def test_load_returns_checked_arrays(self, options: DatasetOptions) -> None:
        conformance.load_arrays(self.dataset, options, self.seed)

    def test_same_seed_same_arrays(self, options: DatasetOptions) -> None:
        conformance.check_same_seed_same_arrays(self.dataset, options, self.seed)

    def test_splits_into_a_task(self, arrays: LabeledArrays) -> None:
        conformance.check_splits_into_task(self.dataset, arrays, self.seed)
