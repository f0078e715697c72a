"""The time budget's later decision points: a trial that leads its rung may spend more of the time left
on its next leg the longer it has trained, as successive halving gives each rung about the same epochs."""

from __future__ import annotations

import time

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from automl.search.time_budget import MAX_LEG_SHARE, SHARE, Deadline, Leaders, NextDecisionGuard, leg_share
from automl.storage.schema import TrialAttr
from automl.training.loop import StopTraining

# Small data's decision points on ACSF1 (60 epochs, rungs from 2 epochs by a factor of 3).
DECISIONS = [2, 6, 18, 60]


def test_the_share_grows_with_the_epochs_a_trial_was_kept_for() -> None:
    assert leg_share(2, 2) == SHARE
    assert leg_share(6, 2) == pytest.approx(3 * SHARE)
    assert leg_share(18, 2) == MAX_LEG_SHARE  # 9 * SHARE is over the cap


def _goes_on(done: int, pace_s: float, left_s: float, accuracy: float = 0.5, others: tuple[list[float], ...] = (),
             ) -> bool:
    """Whether a trial at ``done`` epochs, ``pace_s`` seconds each, validating ``accuracy``, goes
    on with ``left_s`` left, in a study whose other trials validated the curves ``others``."""
    study = optuna.create_study()
    for curve in others:
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=curve[-1], params={"x": 0.5},
                                     distributions={"x": FloatDistribution(0, 1)},
                                     user_attrs={TrialAttr.VAL_CURVE: curve}))
    guard = NextDecisionGuard(study.ask(), Deadline(time.time() + left_s), DECISIONS)
    guard.started = time.perf_counter() - pace_s * done
    try:
        guard.on_validation_epoch_end(done - 1, accuracy)
    except StopTraining:
        return False
    return True


def test_a_trial_that_leads_its_rung_goes_on_while_its_next_leg_fits_its_share() -> None:
    # 1,000 s left. From the first rung (2 epochs) the 4 epochs to the next must fit in 8%: 80 s.
    assert _goes_on(2, 19.0, 1000) and not _goes_on(2, 21.0, 1000)
    # From 6 epochs, 12 epochs in 24%: 240 s (8% would have stopped a trial of 7 s an epoch).
    assert _goes_on(6, 19.0, 1000) and not _goes_on(6, 21.0, 1000)
    # From 18 epochs, the 42 to the end in half of it: 500 s.
    assert _goes_on(18, 11.5, 1000) and not _goes_on(18, 12.5, 1000)
    # Between decision points nothing stops it.
    assert _goes_on(5, 1000.0, 1000)


def test_a_trial_behind_another_at_its_rung_keeps_the_first_share() -> None:
    ahead, behind, short = [0.3] * 5 + [0.6] + [0.7] * 54, [0.3] * 5 + [0.4] + [0.7] * 54, [0.9] * 5
    # 12 epochs at 7 s (84 s) fit in 24% of 1,000 s, not in 8%: the share depends on the others at epoch 6.
    assert not _goes_on(6, 7.0, 1000, accuracy=0.5, others=(behind, ahead))
    assert _goes_on(6, 7.0, 1000, accuracy=0.5, others=(behind, short))  # short: never reached epoch 6
    assert _goes_on(6, 7.0, 1000, accuracy=0.6, others=(ahead,))  # a tie leads
    assert _goes_on(6, 1.0, 1000, accuracy=0.5, others=(ahead,))  # 12 s fit in 8%


def test_leaders_take_in_each_finished_trial_once_and_the_running_ones_at_each_decision() -> None:
    study, leaders = optuna.create_study(), Leaders()

    def finished(curve: list[float]) -> None:
        trial = study.ask()
        trial.set_user_attr(TrialAttr.VAL_CURVE, curve)
        study.tell(trial, curve[-1])

    finished([0.5, 0.6])
    mine = study.ask()
    mine.set_user_attr(TrialAttr.VAL_CURVE, [0.99, 0.99])  # its own curve is no rival
    assert leaders.leads(mine, 2, 0.6) and not leaders.leads(mine, 2, 0.59)
    running = study.ask()
    running.set_user_attr(TrialAttr.VAL_CURVE, [0.4, 0.7])
    assert not leaders.leads(mine, 2, 0.65) and leaders.leads(mine, 1, 0.5)
    running.set_user_attr(TrialAttr.VAL_CURVE, [0.4, 0.7, 0.8])  # a running trial is read again
    assert not leaders.leads(mine, 3, 0.75)
    finished([0.9])  # finished after the first decisions: taken in at the next
    assert not leaders.leads(mine, 1, 0.8) and leaders.leads(mine, 2, 0.7)
    assert leaders.leads(mine, 4, 0.1), "no trial got that far"
