"""The time budget as a hard limit: an alarm a few seconds past the deadline ends the run wherever it is.

The run stops itself at its deadline where it can: no trial starts after it, training and
validation take no step past it, a test pass has TEST_GRACE_S, the start-up's checks and draws
stop at it, the dashboard makes no update that would end past it. What cannot look at a clock
(a read of a study of thousands of trials, one training step longer than the budget, a plugin's
own code) is ended by SIGALRM, GRACE_S after the deadline: the handler raises OutOfTime, an
Interrupted, so the worker records the trial under way as it records a SIGTERM (failed with
reason ``deadline``, its last validated epoch kept, queued again) and the run ends with a line
saying so, exit code 0: it ran for its budget.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

from automl.errors import is_or_are, plural
from automl.workers.interrupts import Interrupted

# How long after the deadline the alarm goes off: the deadline's own stops take a step, a test
# pass within its grace (2 s) and the trial's last writes, well within it.
GRACE_S = 5.0


class OutOfTime(Interrupted):
    """The run was GRACE_S past its deadline (``late_s`` seconds past it, when raised)."""

    def __init__(self, late_s: float) -> None:
        super().__init__(signal.SIGALRM)
        self.late_s = late_s

    @property
    def exit_code(self) -> int:
        return 0

    def _what_it_did(self) -> str:
        late = f"the time budget ran out {self.late_s:.0f} s ago"
        if self.queued_after_workers is not None:
            return (f"{late}: {plural(self.queued_after_workers, 'trial')} "
                    f"{is_or_are(self.queued_after_workers)} queued for the next run")
        if self.requeued_trial is not None:
            return (f"{late}: trial {self.requeued_trial} was still running; it is recorded as failed with reason "
                    "'deadline' and queued again with its last validated epoch; run again to resume it")
        return f"{late}: the run stopped where it was; the queued trials wait for the next run"


class HardDeadline:
    """While armed (``with``), OutOfTime is raised in the main thread GRACE_S after ``at``
    (``time.time()`` seconds); nothing is armed without a deadline or outside the main thread.
    ``paused()`` (the module's function) holds the armed one's alarm back for a block."""

    def __init__(self, at: float | None, grace_s: float | None = None) -> None:
        self.at, self.grace_s = at, GRACE_S if grace_s is None else grace_s
        self._previous: object = None
        self._armed = False

    def _arm(self, seconds: float) -> None:
        signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))

    def _raise(self, signum: int, frame: FrameType | None) -> None:
        assert self.at is not None
        raise OutOfTime(time.time() - self.at)

    def __enter__(self) -> HardDeadline:
        if self.at is not None and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGALRM, self._raise)
            self._arm(self.at + self.grace_s - time.time())
            self._armed = True
            _ARMED.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)  # type: ignore[arg-type]
            self._armed = False
            _ARMED.remove(self)


# The HardDeadline armed now, if any (one per process: a run, or a worker).
_ARMED: list[HardDeadline] = []


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No alarm within the block (a run waiting for worker processes, which keep the deadline
    themselves); after it, the rest of the grace, and at least a fresh grace, for what follows."""
    if not _ARMED:
        yield
        return
    armed = _ARMED[-1]
    signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        yield
    finally:
        assert armed.at is not None
        armed._arm(max(armed.at + armed.grace_s - time.time(), armed.grace_s))


def tighten(at: float | None) -> None:
    """Move the armed alarm to GRACE_S after ``at`` when that is earlier (a study's own deadline
    found once the run has read the study)."""
    if at is None or not _ARMED or (_ARMED[-1].at is not None and _ARMED[-1].at <= at):
        return
    armed = _ARMED[-1]
    armed.at = at
    armed._arm(at + armed.grace_s - time.time())
