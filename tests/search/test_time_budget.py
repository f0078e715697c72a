"""The time budget's later decision points: a trial the pruner keeps may spend more of the time left on
its next leg the longer it has trained, as successive halving gives each rung about the same epochs."""

from __future__ import annotations

import time

import pytest

from automl.search.time_budget import MAX_LEG_SHARE, SHARE, Deadline, NextDecisionGuard, leg_share
from automl.training.loop import StopTraining

# Small data's decision points on ACSF1 (60 epochs, rungs from 2 epochs by a factor of 3).
DECISIONS = [2, 6, 18, 60]


def test_the_share_grows_with_the_epochs_a_trial_was_kept_for() -> None:
    assert leg_share(2, 2) == SHARE
    assert leg_share(6, 2) == pytest.approx(3 * SHARE)
    assert leg_share(18, 2) == MAX_LEG_SHARE  # 9 * SHARE is over the cap


def _goes_on(done: int, pace_s: float, left_s: float) -> bool:
    """Whether a trial at ``done`` epochs, ``pace_s`` seconds each, goes on with ``left_s`` left."""
    guard = NextDecisionGuard(Deadline(time.time() + left_s), DECISIONS)
    guard.started = time.perf_counter() - pace_s * done
    try:
        guard.on_validation_epoch_end(done - 1, 0.5)
    except StopTraining:
        return False
    return True


def test_a_kept_trial_goes_on_while_its_next_leg_fits_its_share() -> None:
    # 1,000 s left. From the first rung (2 epochs) the 4 epochs to the next must fit in 8%: 80 s.
    assert _goes_on(2, 19.0, 1000) and not _goes_on(2, 21.0, 1000)
    # From 6 epochs, 12 epochs in 24%: 240 s (8% would have stopped a trial of 7 s an epoch).
    assert _goes_on(6, 19.0, 1000) and not _goes_on(6, 21.0, 1000)
    # From 18 epochs, the 42 to the end in half of it: 500 s.
    assert _goes_on(18, 11.5, 1000) and not _goes_on(18, 12.5, 1000)
    # Between decision points nothing stops it.
    assert _goes_on(5, 1000.0, 1000)
