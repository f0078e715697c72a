"""Trials that fail (exception, non-finite loss, out of memory), failure streaks, memory, Ctrl-C."""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
import weakref
from pathlib import Path

import optuna
import pytest
import torch
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from torch import nn

from automl.training.batches import TensorBatches
from automl.config import DataConfig, StudyConfig, load_study_file
from automl.data.prepare import prepare
from automl.training.loop import NonFiniteLoss
from automl.workers.failures import TooManyFailures
from automl.workers.interrupts import Interrupted
from automl.plugin.registry import Registered, Registry, registry
from automl.search.startup import DRAWS
from automl.search.plan import plan_study
from automl.search.preflight import DRAWS as PREFLIGHT_DRAWS
from automl.search.preflight import SAMPLES
from automl.runner import run_plan
from automl.search.study import create_or_resume, work
from automl.plugin.task import Task
from automl.training.loop import TrainingParams, train
from conftest import has_study, write_study

COMPLETE, FAIL, WAITING = TrialState.COMPLETE, TrialState.FAIL, TrialState.WAITING


class _Family:
    """A test family: one searched parameter, a model built by ``model()``."""

    name = "base"
    task_kinds = ("image",)

    def search_space(self, trial, task: Task) -> dict:
        return {"width": trial.suggest_int("width", 1, 4)}

    def build(self, params: dict, task: Task) -> nn.Module:
        return self.model()

    def model(self) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


class _Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


class NanFamily(_Family):
    name = "nan"

    def model(self) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 10), _Scale(float("nan")))


class ExplodingFamily(_Family):
    name = "exploding"

    def model(self) -> nn.Module:
        class Explodes(nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                raise RuntimeError("kaboom in forward")
        return Explodes()


class ExplodingInTrainingFamily(_Family):
    """Builds and passes the plan's one-step check on a few samples; fails on a real training batch."""

    name = "exploding_in_training"

    def model(self) -> nn.Module:
        class ExplodesOnFullBatches(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.linear = nn.Linear(64, 10)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                if len(x) > 16:
                    raise RuntimeError("kaboom in forward")
                return self.linear(x.flatten(1))
        return ExplodesOnFullBatches()


class _OutOfMemoryInTraining(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The build check and the latency measurement run in eval mode, the plan's one-step check
        # on a few samples (automl.search.preflight.SAMPLES).
        if self.training and len(x) > SAMPLES:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return self.linear(x.flatten(1))


class TrackedFamily(_Family):
    """Remembers how many of its models were still alive at each build."""

    name = "tracked"

    def __init__(self) -> None:
        self.models: list[weakref.ref] = []
        self.alive_at_build: list[int] = []

    def model(self) -> nn.Module:
        self.alive_at_build.append(sum(ref() is not None for ref in self.models))
        model = self.new_model()
        self.models.append(weakref.ref(model))
        return model

    def new_model(self) -> nn.Module:
        return super().model()


class OutOfMemoryFamily(TrackedFamily):
    """Runs out of memory in training; remembers how many of its models were still alive at each build."""

    name = "oom"

    def new_model(self) -> nn.Module:
        return _OutOfMemoryInTraining()


def _registry(*families: _Family, mlp: bool = False) -> Registry:
    real = registry()
    source = real.families["mlp"].source
    entries = {family.name: Registered(family, source) for family in families}
    if mlp:
        entries["mlp"] = real.families["mlp"]
    return Registry(entries, real.datasets)


def _config(study_file: Path, n_trials: int, max_failures_in_row: int) -> StudyConfig:
    config = load_study_file(study_file)
    workers = config.workers.model_copy(update={"max_failures_in_row": max_failures_in_row})
    return config.model_copy(update={"n_trials": n_trials, "workers": workers})


def test_a_worker_that_freezes_what_outlives_each_trial_still_frees_each_trials_model(tiny_study: Path) -> None:
    """A worker in a process that froze nothing freezes what is alive after each trial's collection
    (so the next collection scans one trial's objects): a trial's model must not be among it."""
    family = TrackedFamily()
    plan = plan_study(_config(tiny_study, 4, max_failures_in_row=3), tiny_study, _registry(family))
    builds_by_trial_end: list[int] = []
    gc.unfreeze()  # the test session froze what is alive (conftest)
    try:
        run_plan(plan, progress=False, callbacks=[lambda study, trial: builds_by_trial_end.append(
            len(family.alive_at_build))])
    finally:
        gc.collect()
        gc.freeze()
    # The start-up's draws build models before the worker runs; each trial builds a few after.
    after_first_trial = family.alive_at_build[builds_by_trial_end[0]:]
    assert len(builds_by_trial_end) == 4 and len(after_first_trial) >= 3
    assert set(after_first_trial) == {0}, str(family.alive_at_build)


def test_failed_trials_are_recorded_and_the_study_goes_on(tiny_study: Path) -> None:
    families = _registry(NanFamily(), ExplodingFamily(), OutOfMemoryFamily(), mlp=True)
    plan = plan_study(_config(tiny_study, 1, max_failures_in_row=50), tiny_study, families)
    study = create_or_resume(plan)
    for family in ("nan", "exploding", "oom", "mlp"):
        study.enqueue_trial({"family": family})
    study = work(plan, None, show_progress_bar=False)
    trials = study.trials
    first = {t.params["family"]: t for t in trials[:4]}
    assert first["nan"].user_attrs["fail_reason"] == "NonFiniteLoss: non-finite training loss in epoch 0"
    assert first["exploding"].user_attrs["fail_reason"] == "RuntimeError: kaboom in forward"
    assert first["oom"].user_attrs["fail_reason"].startswith("OutOfMemoryError: CUDA out of memory")
    assert [first[f].state for f in ("nan", "exploding", "oom", "mlp")] == [FAIL, FAIL, FAIL, COMPLETE]
    # Four queued trials end as four finished ones: every failure was replaced.
    assert sum(t.state == COMPLETE for t in trials) == 4
    assert all(t.state in (COMPLETE, FAIL) for t in trials)


def test_failures_in_a_row_stop_the_study_with_a_summary(tiny_study: Path) -> None:
    plan = plan_study(_config(tiny_study, 2, max_failures_in_row=3), tiny_study,
                      _registry(ExplodingInTrainingFamily()))
    with pytest.raises(TooManyFailures) as stopped:
        run_plan(plan, progress=False)
    message = str(stopped.value)
    assert "its last 3 trials failed in a row (trials 0, 1, 2)" in message
    assert "3 x RuntimeError: kaboom in forward" in message
    study = optuna.load_study(study_name="tiny", storage=plan.storage_url)
    states = [t.state for t in study.trials]
    assert states.count(FAIL) == 3 and states.count(WAITING) == 2, "the queue was not kept for a rerun"


def test_identical_failures_show_one_traceback_then_one_line_each(tiny_study: Path) -> None:
    plan = plan_study(_config(tiny_study, 2, max_failures_in_row=3), tiny_study,
                      _registry(ExplodingInTrainingFamily()))
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    optuna_logger = logging.getLogger("optuna")
    optuna_logger.addHandler(handler)
    try:
        with pytest.raises(TooManyFailures) as stopped:
            run_plan(plan, progress=False)
    finally:
        optuna_logger.removeHandler(handler)
    failed = [record for record in records if " failed" in record.getMessage()]
    assert [record.exc_info is not None for record in failed] == [True, False, False, False]
    assert failed[1].getMessage() == "Trial 0 failed with value None."  # Optuna's own second line, once
    repeats = [record.getMessage() for record in failed[2:]]
    for number, times in ((1, 2), (2, 3)):
        line = repeats[number - 1]
        assert line.startswith(f"Trial {number} failed the same way ({times} times so far): "
                               "RuntimeError: kaboom in forward at ")
        assert "test_failures.py:" in line and line.endswith(" in forward")
    assert "\n  3 x RuntimeError: kaboom in forward\n" in str(stopped.value)


def test_a_trial_that_ran_out_of_memory_is_freed_before_the_next(tiny_study: Path) -> None:
    family = OutOfMemoryFamily()
    plan = plan_study(_config(tiny_study, 1, max_failures_in_row=3), tiny_study, _registry(family))
    gc.disable()  # only the worker's own collection may free the failed trials' reference cycles
    # pytest's log capture would keep each failure's traceback, and with it the model.
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with pytest.raises(TooManyFailures, match="OutOfMemoryError"):
            run_plan(plan, progress=False)
    finally:
        gc.enable()
        optuna.logging.set_verbosity(verbosity)
    # The plan's one-step check builds PREFLIGHT_DRAWS, the startup survey DRAWS (automl.search.startup),
    # then one per trial.
    assert len(family.alive_at_build) == PREFLIGHT_DRAWS + DRAWS + 3
    assert family.alive_at_build[-3:] == [0, 0, 0]


def test_training_stops_at_the_end_of_the_epoch_its_loss_turns_non_finite() -> None:
    class NanFromThirdStep(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(64, 10)
            self.training_calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.training:
                self.training_calls += 1
            logits = self.linear(x.flatten(1))
            return logits * float("nan") if self.training_calls >= 3 else logits

    data = prepare(DataConfig(), registry(), 0)
    model = NanFromThirdStep()
    params = TrainingParams(optimizer="adam", lr=1e-3, weight_decay=0.0, batch_size=64)
    with pytest.raises(NonFiniteLoss, match="non-finite training loss in epoch 0"):
        train(model, data, params, torch.device("cpu"), "32-true", max_epochs=3, seed=0)
    # Checked once per epoch (a check per step would sync with the device per step): the steps
    # of epoch 0 ran, epoch 1 did not start.
    assert model.training_calls == len(TensorBatches(data.train.x, data.train.y, 64, shuffle=True))


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_fifty_trials_in_one_worker_do_not_grow_memory(tiny_study: Path) -> None:
    plan = plan_study(_config(tiny_study, 50, max_failures_in_row=10), tiny_study, _registry(_Family()))
    rss: list[float] = []
    run_plan(plan, progress=False, callbacks=[lambda study, trial: rss.append(_rss_mb())])
    assert len(rss) == 50
    # The first trials warm caches and allocators up; after that a leak grows with every trial.
    growth = rss[-1] - rss[9]
    assert growth < 20, f"RSS grew {growth:.1f} MB over 40 trials: {[round(r) for r in rss]}"


def test_a_worker_hands_back_what_it_froze_and_keeps_what_its_process_froze(tiny_study: Path) -> None:
    frozen = gc.get_freeze_count()
    assert frozen > 0  # the test session froze what is alive (conftest), as a long-lived process may
    during: list[int] = []
    freezes = [lambda study, trial: during.append(gc.get_freeze_count())]
    plan = plan_study(_config(tiny_study, 1, max_failures_in_row=3), tiny_study, _registry(_Family()))
    run_plan(plan, progress=False, callbacks=freezes)
    # Frozen objects may die (by reference count) but the worker froze none more, nor unfroze them.
    assert len(during) == 1 and 0 < during[0] <= frozen and 0 < gc.get_freeze_count() <= frozen
    gc.unfreeze()  # a process that froze nothing: the worker freezes what is alive, and unfreezes it after
    try:
        run_plan(plan, progress=False, callbacks=freezes)  # the study resumed: one trial more
        assert len(during) == 2 and during[-1] > 0 and gc.get_freeze_count() == 0
    finally:
        gc.collect()
        gc.freeze()


def test_ctrl_c_fails_the_running_trial_and_a_rerun_resumes(tmp_path: Path) -> None:
    db = tmp_path / "ctrl_c.db"
    url = f"sqlite:///{db}"
    study_file = write_study(tmp_path, f"""
        name = "ctrl-c"
        n_trials = 2
        storage = "{url}"
        [search]
        families = ["mlp"]
        [train]
        max_epochs = 8
        batch_size = [128]
    """)
    plan = plan_study(load_study_file(study_file), study_file, registry())

    def press_ctrl_c_mid_trial() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            trials = optuna.load_study(study_name="ctrl-c", storage=url).trials if has_study(db) else []
            if any(t.state == TrialState.RUNNING and "n_params" in t.user_attrs for t in trials):
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.05)

    presser = threading.Thread(target=press_ctrl_c_mid_trial)
    presser.start()
    with pytest.raises(Interrupted) as interrupted:
        run_plan(plan, progress=False)
    presser.join()
    assert interrupted.value.exit_code == 130
    assert interrupted.value.explain() == ("interrupted (SIGINT): trial 0 was running; it is recorded as failed "
                                           "with reason 'interrupted' and queued again; run again to resume it")
    trials = optuna.load_study(study_name="ctrl-c", storage=url).trials
    assert [(t.state, t.user_attrs.get("fail_reason")) for t in trials[:1]] == [(FAIL, "interrupted")]
    assert [t.state for t in trials[1:]] == [WAITING, WAITING]
    assert RetryHeartbeatStaleTrialCallback.retried_trial_number(trials[2]) == 0
    assert trials[2].params == trials[0].params

    # The same study file (a changed max_epochs is refused): 8 epochs keep a trial running for the
    # seconds the presser needs to see it, and the rerun's two trials cheap.
    resumed = run_plan(plan_study(load_study_file(study_file), study_file, registry()), progress=False)
    assert [t.state for t in resumed.trials] == [FAIL, COMPLETE, COMPLETE]
