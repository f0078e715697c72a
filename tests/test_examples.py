"""The Python examples run as written, in this process, from an empty folder."""

from __future__ import annotations

import logging
import runpy
from pathlib import Path

import numpy as np
import pytest
from optuna.trial import TrialState

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def in_empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    level = logging.getLogger("lightning.pytorch").level
    yield tmp_path
    logging.getLogger("lightning.pytorch").setLevel(level)


@pytest.mark.slow  # a study of six trials
def test_python_api_example_predicts_with_a_front_model(in_empty_folder: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    example = runpy.run_path(str(EXAMPLES / "python_api.py"), run_name="__main__")
    assert example["front"] and example["best"] in example["front"]
    assert np.mean(example["predicted"] == example["y_new"]) > 0.9
    assert "on 200 new digits: accuracy" in capsys.readouterr().out
    assert (in_empty_folder / "python-api.db").exists()


@pytest.mark.slow  # twelve Lightning fits
def test_own_optuna_study_example_prunes_with_a_plain_trainer(in_empty_folder: Path) -> None:
    example = runpy.run_path(str(EXAMPLES / "own_optuna_study.py"), run_name="__main__")
    trials = example["study"].trials
    pruned = [trial for trial in trials if trial.state == TrialState.PRUNED]
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    assert pruned and complete and len(pruned) + len(complete) == len(trials)
    assert all(trial.user_attrs["pruned_at_epoch"] < example["MAX_EPOCHS"] for trial in pruned)
    assert all(len(trial.user_attrs["val_curve"]) == example["MAX_EPOCHS"] for trial in complete)
