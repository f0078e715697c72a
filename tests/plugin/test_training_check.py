"""The training check passes a model that learns, BatchNorm or not, and fails one that cannot;
``automl plugins check`` and the pytest suite run the same checks on the same configs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from automl import conformance
from automl.conformance import DEFAULT_TASKS, ConformanceError, FamilySettings
from automl.testing import FamilyConformance
from conftest import make_distribution, run_cli, run_pytest, with_path
from learners import BUILD_LOG_ENV, BlindFamily, FrozenFamily, MobileNetFamily

TABULAR = DEFAULT_TASKS["tabular"]


class TestMobileNetConformance(FamilyConformance):
    """Every check, the training one included, passes a BatchNorm family that learns."""

    family = MobileNetFamily()


@pytest.mark.slow  # trains all eight sampled models
def test_every_sampled_batchnorm_config_learns() -> None:
    # Not just the smallest: each config the suite samples, measured in eval mode after one epoch,
    # was where the old check failed models that learned (2.3040 -> 2.3152).
    task = DEFAULT_TASKS["image"]
    for config in conformance.sample_configs(MobileNetFamily(), task, FamilySettings().n_configs):
        conformance.check_training_learns(MobileNetFamily(), task, config)


@pytest.mark.parametrize("family", [BlindFamily(), FrozenFamily()], ids=["blind", "frozen"])
def test_a_model_that_cannot_learn_from_its_inputs_fails(family: BlindFamily | FrozenFamily) -> None:
    config = conformance.sample_configs(family, TABULAR, 1)[0]
    with pytest.raises(ConformanceError, match="without looking at the inputs") as failed:
        conformance.check_training_learns(family, TABULAR, config, max_epochs=20)
    before, after, floor = map(float, re.search(r"from (\S+) to (\S+), not below (\S+),", str(failed.value)).groups())
    assert after >= floor
    if isinstance(family, BlindFamily):
        # Its bias learned the class frequencies: "the loss went down" alone would have passed it.
        assert after < before
    else:
        assert after == before  # no gradient reaches what it computes with


def test_run_checks_reports_the_failed_training_check() -> None:
    results = {result.check: result for result in conformance.run_checks(BlindFamily())}
    assert not results["training"].passed and "without looking at the inputs" in results["training"].error
    assert results["build and forward"].passed and results["replay"].passed


@pytest.mark.slow  # an automl process and a pytest process, each training a few models
def test_plugins_check_and_the_suite_build_the_same_configs(tmp_path: Path) -> None:
    source = Path(__file__).with_name("learners.py").read_text()
    site = make_distribution(tmp_path / "site", "learners", {"learners": source}, {"learners": "learners"})
    command_log, suite_log = tmp_path / "command.jsonl", tmp_path / "suite.jsonl"

    checked = run_cli("plugins", "check", "mobilenet", cwd=tmp_path,
                      env={**with_path(site), BUILD_LOG_ENV: str(command_log)})
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "training" in checked.stdout and "FAIL" not in checked.stdout

    (tmp_path / "test_mobilenet.py").write_text(
        "from automl.testing import FamilyConformance\nfrom learners import MobileNetFamily\n\n"
        "class TestMobileNet(FamilyConformance):\n    family = MobileNetFamily()\n")
    suite = run_pytest("test_mobilenet.py", cwd=tmp_path, env={**with_path(site), BUILD_LOG_ENV: str(suite_log)})
    assert suite.returncode == 0, suite.stdout + suite.stderr
    assert f"{len(conformance.TASK_CHECKS) + 2} passed" in suite.stdout

    def built(log: Path) -> set[str]:
        return set(log.read_text().splitlines())

    assert built(command_log) == built(suite_log)
    assert len({json.dumps(json.loads(line)) for line in built(command_log)}) >= 4
