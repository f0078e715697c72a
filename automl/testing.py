"""pytest conformance suites for plugin authors: one for families, one for datasets.

Subclass them in your package's tests and point them at your objects::

    from automl.testing import DatasetConformance, FamilyConformance
    from automl_mixer import MixerFamily

    class TestMixer(FamilyConformance):
        family = MixerFamily()

pytest then runs every family check on every task kind the family declares, and every dataset
check on the options ``dataset_options`` returns. The checks live in ``automl.conformance``
(``automl plugins check`` runs the family ones); each raises ConformanceError saying what broke.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from automl import conformance
from automl.conformance import DEFAULT_TASKS, Config, ConformanceError, sample_configs
from automl.plugin.build import example_inputs
from automl.plugin.contract import DatasetOptions, LabeledArrays
from automl.plugin.registry import registry
from automl.plugin.task import Task

__all__ = ["ConformanceError", "DatasetConformance", "FamilyConformance", "example_inputs", "registry",
           "sample_configs"]


class FamilyConformance:
    """Contract checks for ``family``; override ``tasks``, ``n_configs`` or ``min_size_ratio``."""

    family: Any = None
    tasks: dict[str, Task] = DEFAULT_TASKS
    n_configs: int = 8
    min_size_ratio: float = 10.0

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "task" in metafunc.fixturenames:
            kinds = list(self.family.task_kinds)
            metafunc.parametrize("task", [self.tasks[kind] for kind in kinds], ids=kinds)

    @pytest.fixture
    def configs(self, task: Task) -> list[Config]:
        return sample_configs(self.family, task, self.n_configs)

    def test_contract(self) -> None:
        conformance.check_family_contract(self.family)

    def test_build_and_forward(self, task: Task, configs: list[Config]) -> None:
        conformance.check_build_and_forward(self.family, task, configs)

    def test_flops(self, task: Task, configs: list[Config]) -> None:
        conformance.check_flops(self.family, task, configs)

    def test_size_range(self, task: Task) -> None:
        conformance.check_size_range(self.family, task, self.min_size_ratio)

    def test_replay(self, task: Task, configs: list[Config]) -> None:
        conformance.check_replay(self.family, task, configs)

    def test_training_lowers_loss(self, task: Task, configs: list[Config]) -> None:
        config = conformance.smallest(self.family, task, configs)
        conformance.check_training_lowers_loss(self.family, task, config)


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
