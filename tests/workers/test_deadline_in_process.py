"""The deadline, in one process: the start-up counts against it and stops at it, a trial it catches
before its first validated epoch counts for nothing (queued again with its parameters, in silence),
and what cannot look at the clock is ended by the alarm a few seconds past it."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

import optuna
import pytest
from conftest import write_study
from optuna.trial import TrialState
from torch import nn

from automl import Task
from automl.cli import main
from automl.config import load_study_file
from automl.plugin.registry import Registered, Registry, registry
from automl.runner import run_plan
from automl.search.plan import plan_study
from automl.storage.schema import DEADLINE
from automl.workers import hard_deadline

# Under StepPace.LONG_STEP_S, a step the time guard would judge alone.
STEP_S = 0.6


class SlowSteps(nn.Module):
    """A linear model whose every training step takes STEP_S: an epoch of 14 steps outlasts a
    short budget, and too few steps to time leave the time guard nothing to refuse it on."""

    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(features, classes)

    def forward(self, x):
        if self.training and x.shape[0] > 8:  # not the pre-flight check's step of a few samples
            time.sleep(STEP_S)
        return self.linear(x.flatten(1))


class Slow:
    name = "slow"
    task_kinds = ("image",)

    def search_space(self, trial, task: Task) -> dict:
        return {"bias": trial.suggest_categorical("bias", [True])}

    def build(self, params: dict, task: Task) -> nn.Module:
        return SlowSteps(64, task.num_classes)


def test_a_trial_the_deadline_catches_before_its_first_epoch_is_queued_again_in_silence(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'slow.db'}"
    study_file = write_study(tmp_path, f"""
        name = "slow"
        n_trials = 2
        storage = "{url}"
        [search]
        pruner = "none"
        [train]
        max_epochs = 1
        batch_size = [96]
    """)
    real = registry()
    families = Registry({"slow": Registered(Slow(), real.families["mlp"].source)}, real.datasets)
    plan = plan_study(load_study_file(study_file), study_file, families)
    budget = 8.0  # the start-up and part of the first epoch (14 steps)
    started = time.monotonic()
    with caplog.at_level(logging.INFO):
        study = run_plan(plan, timeout=budget, progress=False)
    assert time.monotonic() - started < budget + STEP_S + 2.0
    caught, *queued = study.trials
    assert (caught.state, caught.user_attrs["fail_reason"]) == (TrialState.FAIL, DEADLINE)
    assert [t.state for t in queued] == [TrialState.WAITING] * 2
    retry = next(t for t in queued if t.system_attrs.get("failed_trial") == caught.number)
    assert retry.params == caught.params
    assert "failed" not in caplog.text and "Traceback" not in caplog.text and "DeadlineReached" not in caplog.text


def test_the_start_up_counts_against_the_budget_and_stops_at_it(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'short.db'}"
    study_file = write_study(tmp_path, f"""
        name = "short"
        n_trials = 5
        storage = "{url}"
        [search]
        families = ["mlp", "cnn"]
        [budget]
        max_flops = 1e9
    """)
    # A budget shorter than loading the data: the checks, the survey and the startup draws stop
    # at once, the trials are queued for the next run, and none starts.
    assert main(["run", str(study_file), "--timeout", "0.01", "--no-progress"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "note: the time budget ran out before the first trial: the start-up" in err
    study = optuna.load_study(study_name="short", storage=url)
    assert [t.state for t in study.trials] == [TrialState.WAITING] * 5
    assert "warning" not in err, "a survey cut short warns of nothing"


class Stuck(Slow):
    """Its first training step takes a minute: no check inside automl can stop it."""

    name = "stuck"

    def build(self, params: dict, task: Task) -> nn.Module:
        model = SlowSteps(64, task.num_classes)
        model.forward = lambda x: (time.sleep(60) if x.shape[0] > 8 else None) or model.linear(x.flatten(1))
        return model


def test_what_cannot_look_at_the_clock_is_ended_by_the_alarm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'stuck.db'}"
    study_file = write_study(tmp_path, f"""
        name = "stuck"
        n_trials = 2
        storage = "{url}"
        [search]
        pruner = "none"
        [train]
        max_epochs = 1
        batch_size = [512]
    """)
    real = registry()
    monkeypatch.setattr("automl.runner.registry", lambda: Registry(
        {"stuck": Registered(Stuck(), real.families["mlp"].source)}, real.datasets))
    monkeypatch.setattr(hard_deadline, "GRACE_S", 1.0)
    budget = 6.0
    started = time.monotonic()
    assert main(["run", str(study_file), "--timeout", str(budget), "--no-progress"]) == 0
    assert time.monotonic() - started < budget + 1.0 + 2.0
    err = " ".join(capsys.readouterr().err.split())
    assert "the time budget ran out 1 s ago: trial 0 was still running; it is recorded as failed with reason " \
           "'deadline' and queued again" in err
    trials = optuna.load_study(study_name="stuck", storage=url).trials
    assert [(t.state, t.user_attrs.get("fail_reason")) for t in trials] == [
        (TrialState.FAIL, DEADLINE), (TrialState.WAITING, None), (TrialState.WAITING, None)]
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0), "the alarm is disarmed after the run"
