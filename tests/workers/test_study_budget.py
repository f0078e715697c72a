"""One budget for a whole study: `[budget] study_timeout` and `device_hours` bind every worker of it.

Real worker processes on one SQLite file for the shared deadline; a real run in-process for the
device-hours; the stored budget's rules on a study in memory.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from conftest import AUTOML, run_cli, sleepy_site, with_path, write_study
from optuna.trial import TrialState

from automl.config import BudgetConfig
from automl.search.time_budget import TIME_STOP
from automl.storage.schema import DEADLINE, STUDY_BUDGET_ATTR
from automl.workers.study_budget import StudyBudget, describe, device_hours_spent, record_study_budget

ONE_THREAD = {"OMP_NUM_THREADS": "1"}
# What a worker may take past the deadline: the step under way, the trial's last writes, its exit.
GRACE_S = 15.0


def _study() -> optuna.Study:
    return optuna.create_study(directions=["maximize", "minimize"])


def test_the_deadline_is_fixed_once_and_device_hours_follow_the_config() -> None:
    study = _study()
    assert record_study_budget(study, BudgetConfig(study_timeout=60, device_hours=2), now=1000.0) == []
    assert study.user_attrs[STUDY_BUDGET_ATTR] == {"deadline": 1060.0, "study_timeout": 60.0, "device_hours": 2.0}
    # A later run with another study_timeout keeps the deadline and says so; device_hours move.
    notes = record_study_budget(study, BudgetConfig(study_timeout=600, device_hours=3), now=2000.0)
    assert StudyBudget.of(study) == StudyBudget(1060.0, 60.0, 3.0)
    assert "stays at" in notes[0] and "device_hours was 2, now 3" in notes[1]
    # A run whose file gives neither leaves the study's budget as it is: it binds every worker.
    assert record_study_budget(study, BudgetConfig(), now=3000.0) == []
    assert StudyBudget.of(study) == StudyBudget(1060.0, 60.0, 3.0)
    # The study-wide keys are no constraint on a config.
    assert BudgetConfig(max_params=10, study_timeout=5, device_hours=1).limits() == {"max_params": 10.0}


def test_device_hours_count_every_trial_from_start_to_end_and_running_ones_to_now() -> None:
    start = datetime.datetime(2025, 1, 1, 12)
    trials = [optuna.trial.create_trial(state=TrialState.COMPLETE, values=[0.5, 1.0]),
              optuna.trial.create_trial(state=TrialState.PRUNED),
              optuna.trial.create_trial(state=TrialState.RUNNING),
              optuna.trial.create_trial(state=TrialState.WAITING)]
    for trial, minutes in zip(trials[:3], (30, 15, None), strict=True):
        trial.datetime_start = start
        trial.datetime_complete = None if minutes is None else start + datetime.timedelta(minutes=minutes)
    trials[3].datetime_start = None
    assert device_hours_spent(trials, now=start + datetime.timedelta(minutes=45)) == pytest.approx(1.5)


@pytest.mark.slow  # real trials, in this process
def test_no_trial_starts_once_the_device_hours_are_spent_and_show_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hours.db'}"
    limit_h = 4 / 3600  # four seconds of trials
    study_file = write_study(tmp_path, f"""
        name = "hours"
        n_trials = 60
        storage = "{url}"
        [search]
        families = ["mlp"]
        pruner = "none"
        [train]
        max_epochs = 2
        batch_size = [128]
        [budget]
        device_hours = {limit_h}
    """)
    result = run_cli("run", str(study_file), "--no-progress", cwd=tmp_path, env=ONE_THREAD)
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="hours", storage=url)
    started = sorted((t for t in study.trials if t.datetime_start), key=lambda t: t.datetime_start)
    assert 2 <= len(started) < 60 and study.get_trials(states=(TrialState.WAITING,)), result.stderr
    # It stopped once they were spent: every trial but the last started while some were left.
    assert device_hours_spent(started) >= limit_h > device_hours_spent(started[:-1])
    assert "device time is spent" in result.stderr
    # Another run finds the study's budget spent: nothing queued, nothing run.
    again = run_cli("run", str(study_file), "--no-progress", cwd=tmp_path, env=ONE_THREAD)
    assert again.returncode == 0 and "no trial is queued or run: the study's device time is spent" in again.stderr
    assert len(optuna.load_study(study_name="hours", storage=url).trials) == len(study.trials)
    shown = run_cli("show", "hours", "--storage", url, cwd=tmp_path)
    assert "study budget:" in shown.stdout and f"of {limit_h:,.3g} device-hours spent (no new trial starts)" in \
        " ".join(shown.stdout.split())
    assert describe(study) is not None


@pytest.mark.slow  # two worker processes training until a shared deadline
def test_two_workers_stop_at_the_study_deadline_with_their_trials_counted(tmp_path: Path) -> None:
    # Training steps that sleep 50 ms: a trial takes its time, not a core (at 10 ms, each step's
    # own work was a good share of it, for the minutes until the deadline, in both workers).
    site = sleepy_site(tmp_path, step_s=0.05)
    env = {**os.environ, **with_path(site), **ONE_THREAD}
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    # The clock starts when the study is created: it must leave the workers time to start on a busy
    # machine. A worker's start-up is a run's (imports, data, checks): one is timed first, on a study
    # of its own, and the budget leaves three times that (two start at once) plus half a minute of trials.
    warm_up = write_study(tmp_path, f"""
        name = "warm-up"
        n_trials = 1
        storage = "sqlite:///{tmp_path / 'warm-up.db'}"
        [search]
        families = ["sleepy"]
    """, name="warm-up.toml")
    started = time.monotonic()
    assert subprocess.run([*AUTOML, "run", str(warm_up), "--workers", "0"], cwd=tmp_path, env=env,
                          capture_output=True).returncode == 0
    timeout = round(3 * (time.monotonic() - started) + 30)
    study_file = write_study(tmp_path, f"""
        name = "shared"
        n_trials = 1000
        storage = "{url}"
        [search]
        families = ["sleepy"]
        [train]
        max_epochs = 100000
        batch_size = [32]
        [budget]
        study_timeout = {timeout}
    """)
    # Created and queued here: the deadline is fixed now. The workers have no timeout of their own.
    queued = run_cli("run", str(study_file), "--workers", "0", cwd=tmp_path, env=with_path(site))
    assert queued.returncode == 0, queued.stderr
    deadline = StudyBudget.of(optuna.load_study(study_name="shared", storage=url)).deadline
    assert deadline is not None and 0 < deadline - time.time() <= timeout
    workers = [subprocess.Popen([*AUTOML, "worker", str(study_file), "--no-progress"], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for worker in workers:
            _, stderr = worker.communicate(timeout=timeout + 180)
            assert worker.returncode == 0, stderr
    finally:
        for worker in workers:
            worker.kill()
    trials = optuna.load_study(study_name="shared", storage=url).get_trials(deepcopy=False)
    started = [t for t in trials if t.datetime_start is not None]
    assert len({t.user_attrs.get("worker") for t in started}) == 2, "both workers ran trials before the deadline"
    # Nothing started after the study's deadline, nothing ran on past it, nothing is left running.
    # (Whether trials stay queued depends on the pace: near the deadline the time budget refuses
    # configurations in milliseconds, and may empty the queue.)
    assert all(t.datetime_start.timestamp() <= deadline + 1 for t in started)
    assert all(t.datetime_complete.timestamp() <= deadline + GRACE_S for t in started if t.datetime_complete)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    # Trials ended as a time budget ends them: each counts with the epochs it validated; one the
    # deadline caught before its first validated epoch is queued again.
    for trial in started:
        if trial.state == TrialState.COMPLETE:
            assert trial.user_attrs["epochs"] == len(trial.user_attrs.get("val_curve") or [])
        elif trial.state == TrialState.FAIL:
            assert trial.user_attrs["fail_reason"] == DEADLINE, trial.user_attrs
    assert any(DEADLINE in (t.user_attrs.get("stopped"), t.user_attrs.get("fail_reason"))
               or t.user_attrs.get("stopped") == TIME_STOP or t.user_attrs.get("over_budget") for t in started)
    shown = run_cli("show", "shared", "--storage", url, cwd=tmp_path, env=with_path(site))
    assert f"of {timeout:,.0f} s of its study_timeout spent" in " ".join(shown.stdout.split())
