"""The study files in studies/ find their data and run, one short trial each."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.trial import TrialState

from automl.config import load_study_file
from automl.plugin.registry import registry
from automl.search.plan import plan_study
from automl.runner import run_plan
from conftest import REPO

pytestmark = pytest.mark.slow  # every shipped study file runs

STUDIES = sorted((REPO / "studies").glob("*.toml"))
# Those on data shipped in examples/data, one per kind besides the built-in digits and waveforms.
ON_SHIPPED_FILES = {"npz": "image", "csv": "tabular", "text": "tokens", "imagefolder": "image"}


@pytest.mark.parametrize("path", STUDIES, ids=[path.stem for path in STUDIES])
def test_study_data_is_there_unless_it_downloads(path: Path) -> None:
    options = load_study_file(path).data.options
    assert "path" not in options or options.get("download") or Path(options["path"]).exists()


@pytest.mark.parametrize("name", list(ON_SHIPPED_FILES))
def test_shipped_study_runs_a_trial(name: str, tmp_path: Path) -> None:
    path = REPO / "studies" / f"{name}.toml"
    config = load_study_file(path)
    config = config.model_copy(update={
        "storage": f"sqlite:///{tmp_path / 'study.db'}", "artifacts": str(tmp_path / "artifacts"),
        "train": config.train.model_copy(update={"max_epochs": 1})})
    plan = plan_study(config, path, registry())
    assert plan.data.task.kind == ON_SHIPPED_FILES[name]
    study = run_plan(plan, n_trials=1, progress=False)
    assert [trial.state for trial in study.trials] == [TrialState.COMPLETE]
