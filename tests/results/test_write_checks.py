"""Every place automl writes is checked before the work that depends on it, and a by-product that
cannot be written never costs a trained trial."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState

from automl.cli import main
from automl.config import load_study_file
from automl.plugin.registry import registry
from automl.search.objective import Objective
from automl.search.plan import plan_study
from conftest import AUTOML, write_study

# root writes wherever file modes say it may not; setpriv drops that capability for the command.
AS_USER = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"] if os.geteuid() == 0 else []


def _study(tmp_path: Path, artifacts: str) -> Path:
    return write_study(tmp_path, f"""
        name = "writes"
        n_trials = 1
        storage = "sqlite:///{tmp_path / 'writes.db'}"
        artifacts = "{artifacts}"
        [search]
        families = ["mlp"]
        [train]
        max_epochs = 1
    """)


def test_an_artifact_folder_that_cannot_be_made_is_refused_before_anything_is_stored(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "shared").write_text("a file where the folder would go")
    folder = tmp_path / "shared" / "artifacts"
    assert main(["run", str(_study(tmp_path, str(folder))), "--no-progress"]) == 2
    message = " ".join(capsys.readouterr().err.split())
    assert f"cannot use {folder} as artifact folder (it would be made in {tmp_path / 'shared'})" in message
    assert "(the study file's artifacts)" in message
    assert not (tmp_path / "writes.db").exists()


def test_a_trained_trial_whose_artifacts_cannot_be_written_completes(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    study_file = _study(tmp_path, str(tmp_path / "artifacts"))
    plan = plan_study(load_study_file(study_file), study_file, registry())
    (tmp_path / "artifacts").mkdir()
    store = FileSystemArtifactStore(str(tmp_path / "artifacts"))
    (tmp_path / "artifacts").rmdir()  # the folder goes away mid-run (an unmounted share)
    (tmp_path / "artifacts").write_text("")
    study = optuna.create_study(directions=["maximize", "minimize"])
    with caplog.at_level(logging.WARNING):
        study.optimize(Objective(plan.config, plan.families, plan.data, store), n_trials=1)
    [trial] = study.trials
    assert trial.state == TrialState.COMPLETE and trial.user_attrs["epochs"] == 1
    assert "trial 0: its artifacts (summary, learning curve, weights) could not be written" in caplog.text


@pytest.mark.skipif(bool(AS_USER) and not shutil.which("setpriv"), reason="root without setpriv")
def test_a_report_into_a_folder_it_cannot_write_is_one_message(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'report.db'}"
    optuna.create_study(study_name="okstudy", storage=url)
    shared = tmp_path / "shared"  # a shared results folder the user may read but not write
    shared.mkdir(mode=0o555)
    result = subprocess.run([*AS_USER, *AUTOML, "report", "okstudy", "--storage", url, "--out", str(shared)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 2, result.stderr
    assert f"error: cannot use {shared} as report folder: Permission denied" in result.stderr
    assert "Traceback" not in result.stderr and not list(shared.iterdir())
