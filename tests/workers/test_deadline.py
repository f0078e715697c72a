"""A time budget holds and loses no work: real `automl run` processes, real training, a real SQLite file."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from conftest import AUTOML, run_cli, write_study

pytestmark = pytest.mark.slow

# What the run may take beyond its budget: the step under way, testing the restored model, the
# trial's last writes, the front printed; and the interpreter's start, before the clock starts.
GRACE_S = 15.0


def _long_study(directory: Path, url: str, n_trials: int, timeout: float | None = None) -> Path:
    """mlp trials of many epochs on digits: any one of them outlasts the budget. MO-ASHA (the
    default) lets the first trials at each rung go on, and writes the curve every epoch."""
    return write_study(directory, f"""
        name = "long"
        n_trials = {n_trials}
        storage = "{url}"
        {f"timeout = {timeout}" if timeout else ""}
        [search]
        families = ["mlp"]
        [train]
        max_epochs = 100000
        batch_size = [32]
    """)


def test_the_deadline_stops_the_trial_under_way_with_the_epochs_it_validated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'long.db'}"
    budget = 20.0
    study_file = _long_study(tmp_path, url, n_trials=3, timeout=budget)
    started = time.monotonic()
    result = run_cli("run", str(study_file), "--no-progress", cwd=tmp_path, timeout=budget + 120)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert elapsed < budget + GRACE_S, f"the run took {elapsed:.1f} s of a {budget:.0f} s budget"
    trials = optuna.load_study(study_name="long", storage=url).get_trials(deepcopy=False)
    stopped = [t for t in trials if t.user_attrs.get("stopped") == "deadline"]
    assert len(stopped) == 1 and stopped[0].state == TrialState.COMPLETE, [(t.state, t.user_attrs) for t in trials]
    attrs = stopped[0].user_attrs
    # It counts with what it reached: every validated epoch, its accuracy that of the last one.
    assert attrs["epochs"] >= 2 and len(attrs["val_curve"]) == attrs["epochs"]
    assert attrs["val_accuracy"] == pytest.approx(attrs["val_curve"][-1], abs=1e-5)
    assert stopped[0].values[0] == attrs["val_accuracy"] and 0 < attrs["test_accuracy"] <= 1
    assert stopped[0] in optuna.load_study(study_name="long", storage=url).best_trials
    # Nothing started after the deadline; the trials not reached stay queued for a rerun.
    assert sum(t.state == TrialState.WAITING for t in trials) == 2
    assert "long" in result.stdout  # the front is printed


def test_an_interrupted_trial_resumes_from_its_last_validated_epoch(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'resume.db'}"
    study_file = _long_study(tmp_path, url, n_trials=1)
    run = subprocess.Popen([*AUTOML, "run", str(study_file), "--no-progress"], cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                running = optuna.load_study(study_name="long", storage=url).get_trials(
                    deepcopy=False, states=(TrialState.RUNNING,))
            except KeyError:
                continue
            if running and len(running[0].user_attrs.get("val_curve") or []) >= 2:
                break
        else:
            pytest.fail("no trial validated two epochs within 120 s")
        run.send_signal(signal.SIGINT)
        _, stderr = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 128 + signal.SIGINT, stderr
    study = optuna.load_study(study_name="long", storage=url)
    interrupted = next(t for t in study.trials if t.user_attrs.get("fail_reason") == "interrupted")
    validated = len(interrupted.user_attrs["val_curve"])

    # Resumed with a budget, the retry goes on from the interrupted trial's last validated epoch.
    timed = _long_study(tmp_path, url, n_trials=1, timeout=15)
    rerun = run_cli("run", str(timed), "--no-progress", cwd=tmp_path, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    retry = next(t for t in optuna.load_study(study_name="long", storage=url).trials
                 if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == interrupted.number)
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["resumed_from"] == interrupted.number
    assert retry.user_attrs["val_curve"][:validated] == interrupted.user_attrs["val_curve"][:validated]
    assert retry.user_attrs["epochs"] > validated
