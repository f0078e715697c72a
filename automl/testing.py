"""A pytest conformance suite for family authors.

Subclass it in your package's tests and point it at your family::

    from automl.testing import FamilyConformance
    from automl_mixer import MixerFamily

    class TestMixer(FamilyConformance):
        family = MixerFamily()

pytest then runs every check on every task kind the family declares.
"""

from __future__ import annotations

from typing import Any

import pytest

from automl import conformance
from automl.conformance import DEFAULT_TASKS, Config
from automl.plugin.task import Task


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
        return conformance.sample_configs(self.family, task, self.n_configs)

    def test_contract(self) -> None:
        conformance.check_contract(self.family)

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
