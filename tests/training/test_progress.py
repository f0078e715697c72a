"""A training stopped by a deadline or an interrupt keeps its last validated epoch, and resumes from it."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import torch
from torch import nn

from automl.config import DataConfig
from automl.data.prepare import PreparedData, Split, prepare
from automl.plugin.registry import registry
from automl.training import loop
from automl.training.loop import TEST_GRACE_S, TrainingParams, train
from automl.training.progress import Checkpoint, Progress

PARAMS = TrainingParams(optimizer="adam", lr=3e-3, weight_decay=0.0, batch_size=32)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits() -> PreparedData:
    return prepare(DataConfig(dataset="digits"), registry(), 0)


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


class SleepPast:
    """A callback that, at ``event``, sleeps until ``deadline`` has passed: a slow step, made certain."""

    def __init__(self, event: str, deadline: float, epoch: int | None = None) -> None:
        self.deadline, self.epoch = deadline, epoch
        setattr(self, event, self._sleep)

    def _sleep(self, epoch: int, **_: object) -> None:
        if self.epoch is None or epoch == self.epoch:
            time.sleep(max(0.0, self.deadline - time.time()) + 0.01)


def _states_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def test_a_deadline_between_epochs_ends_the_training_with_the_epochs_it_validated(
        digits: PreparedData, monkeypatch: pytest.MonkeyPatch) -> None:
    # The clock jumps past the deadline as epoch 2 is validated: however slow the machine, the
    # deadline falls between epochs 2 and 3.
    offset = {"s": 0.0}
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + offset["s"])

    deadline = real_time() + 600

    class JumpAfterSecondEpoch:
        def on_validation_epoch_end(self, epoch: int, val_accuracy: float) -> None:
            if epoch == 1:
                offset["s"] = deadline - real_time() + 0.1  # just past it: the test pass still runs

    progress = Progress()
    result = train(_model(), digits, PARAMS, CPU, "32-true", max_epochs=5, seed=0, deadline=deadline,
                   progress=progress, callbacks=[JumpAfterSecondEpoch()])
    assert result.stopped == progress.stopped == "deadline"
    assert result.epochs == 2 and len(result.val_curve) == 2
    assert result.val_accuracy == result.val_curve[-1] and 0 < result.test_accuracy <= 1
    assert progress.checkpoint is not None and progress.checkpoint.epochs == 2


class CountsEvaluations(nn.Module):
    """The model of _model, calling ``at_evaluation(n)`` before its n-th evaluation batch (from 1)."""

    def __init__(self, at_evaluation: Callable[[int], None]) -> None:
        super().__init__()
        self.inner, self.at_evaluation, self.evaluations = _model(), at_evaluation, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            self.evaluations += 1
            self.at_evaluation(self.evaluations)
        return self.inner(x)


@pytest.mark.parametrize("past_s", [0.1, TEST_GRACE_S + 1.0], ids=["just-past", "past-the-grace"])
def test_a_deadline_inside_a_validation_leaves_that_epoch_out(digits: PreparedData, monkeypatch: pytest.MonkeyPatch,
                                                             past_s: float) -> None:
    # Validation in batches of 64: the clock passes the deadline at the second validation's first batch.
    monkeypatch.setattr(loop, "EVAL_BATCH_SIZE", 64)
    batches = -(-len(digits.val.y) // 64)
    offset = {"s": 0.0}
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + offset["s"])
    deadline = real_time() + 600

    def jump(evaluation: int) -> None:
        if evaluation == batches + 1:
            offset["s"] = deadline - real_time() + past_s

    model, progress = CountsEvaluations(jump), Progress()
    result = train(model, digits, PARAMS, CPU, "32-true", max_epochs=5, seed=0, deadline=deadline, progress=progress)
    assert result.stopped == "deadline" and result.epochs == 1 and len(result.val_curve) == 1
    assert progress.checkpoint is not None and progress.checkpoint.epochs == 1
    assert _states_equal(model.state_dict(), progress.checkpoint.model_state), "back to the validated epoch"
    tested = -(-len(digits.test.y) // 64) if past_s < TEST_GRACE_S else 0
    assert model.evaluations == batches + 1 + tested, "no batch after the deadline; the test pass within its grace"
    assert (result.test_accuracy is None) == (past_s > TEST_GRACE_S)


def test_a_model_scored_as_built_stops_at_the_deadline_too(digits: PreparedData) -> None:
    pooled = nn.Sequential(nn.Flatten(), nn.AdaptiveAvgPool1d(10))  # no parameters: scored as built
    result = train(pooled, digits, PARAMS, CPU, "32-true", max_epochs=3, seed=0, deadline=time.time() - 1)
    assert result.stopped == "deadline" and result.epochs == 0 and result.test_accuracy is None


def test_a_deadline_inside_an_epoch_returns_the_model_to_its_last_validated_epoch(digits: PreparedData) -> None:
    first = Progress()
    train(_model(), digits, PARAMS, CPU, "32-true", max_epochs=1, seed=0, progress=first)
    assert first.checkpoint is not None and first.checkpoint.epochs == 1
    model, deadline = _model(), time.time() + 3.0
    # Resumed at epoch 1; a few steps into epoch 2 the deadline passes: those steps are undone.
    result = train(model, digits, PARAMS, CPU, "32-true", max_epochs=4, seed=0, deadline=deadline,
                   resume=first.checkpoint, callbacks=[SleepPast("on_epoch_time_estimate", deadline)])
    assert result.stopped == "deadline" and result.epochs == 1
    assert result.val_curve == first.checkpoint.val_curve
    assert _states_equal(model.state_dict(), first.checkpoint.model_state)


def test_a_deadline_before_the_first_step_trains_nothing(digits: PreparedData) -> None:
    model = _model()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    result = train(model, digits, PARAMS, CPU, "32-true", max_epochs=3, seed=0, deadline=time.time() - 1)
    assert result.stopped == "deadline" and result.epochs == 0 and result.val_curve == []
    assert _states_equal(model.state_dict(), before)


def test_an_interrupt_leaves_the_last_validated_epoch_in_progress(digits: PreparedData) -> None:
    class Interrupt(BaseException):
        pass

    class InterruptInSecondEpoch:
        def on_validation_epoch_end(self, epoch: int, val_accuracy: float) -> None:
            if epoch == 1:
                raise Interrupt()

    progress = Progress()
    with pytest.raises(Interrupt):
        train(_model(), digits, PARAMS, CPU, "32-true", max_epochs=3, seed=0, progress=progress,
              callbacks=[InterruptInSecondEpoch()])
    assert progress.checkpoint is not None and progress.checkpoint.epochs == 2


def test_a_resumed_training_continues_from_the_checkpoint_with_its_optimizer_state(digits: PreparedData) -> None:
    progress = Progress()
    train(_model(), digits, PARAMS, CPU, "32-true", max_epochs=2, seed=0, progress=progress)
    saved = Checkpoint.from_bytes(progress.checkpoint.to_bytes())
    assert saved.epochs == 2 and _states_equal(saved.model_state, progress.checkpoint.model_state)
    steps_done = float(saved.optimizer_state["state"][0]["step"])

    resumed, model = Progress(), _model(seed=1)
    result = train(model, digits, PARAMS, CPU, "32-true", max_epochs=3, seed=0, progress=resumed, resume=saved)
    assert result.epochs == 3 and result.val_curve[:2] == saved.val_curve and result.stopped is None
    assert float(resumed.checkpoint.optimizer_state["state"][0]["step"]) > steps_done  # Adam went on counting
    assert float(saved.optimizer_state["state"][0]["step"]) == steps_done  # and the checkpoint stayed put
    # With nothing left to train, the resumed model is the checkpoint's.
    again = _model(seed=2)
    done = train(again, digits, PARAMS, CPU, "32-true", max_epochs=2, seed=0, resume=saved)
    assert done.epochs == 2 and _states_equal(again.state_dict(), saved.model_state)


def test_the_first_epoch_trained_reports_its_projected_time_once(digits: PreparedData) -> None:
    estimates: list[tuple[int, float]] = []

    class Record:
        def on_epoch_time_estimate(self, epoch: int, seconds: float) -> None:
            estimates.append((epoch, seconds))

    result = train(_model(), digits, PARAMS, CPU, "32-true", max_epochs=2, seed=0, callbacks=[Record()])
    assert [epoch for epoch, _ in estimates] == [0]
    assert 0 < estimates[0][1] < 10 * result.train_s


@pytest.mark.parametrize("rows", [None, 3 * PARAMS.batch_size], ids=["many-steps", "too-few-steps-to-time"])
def test_a_slow_step_is_judged_alone_before_more_steps_are_spent(digits: PreparedData, rows: int | None) -> None:
    """A model whose steps take seconds has its epoch projected after its first step, not its tenth,
    also in an epoch of too few steps to time them (small data), which it would otherwise finish."""
    if rows is not None:
        digits = PreparedData(digits.task, Split(digits.train.x[:rows], digits.train.y[:rows]), digits.val, digits.test)

    class SlowSteps(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner, self.steps = _model(), 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.training:
                self.steps += 1
                time.sleep(1.05)
            return self.inner(x)

    class Refuse(Exception):
        pass

    class Judge:
        def on_epoch_time_estimate(self, epoch: int, seconds: float) -> None:
            raise Refuse(seconds)

    model = SlowSteps()
    with pytest.raises(Refuse) as refused:
        train(model, digits, PARAMS, CPU, "32-true", max_epochs=1, seed=0, callbacks=[Judge()])
    steps_per_epoch = -(-len(digits.train.y) // PARAMS.batch_size)
    assert model.steps == 1
    assert refused.value.args[0] >= 1.05 * steps_per_epoch
