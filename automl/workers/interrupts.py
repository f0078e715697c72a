"""Every signal that ends a run as one exception that reaches the worker through Lightning and Optuna.

Not only Ctrl-C (SIGINT) and ``kill`` (SIGTERM): a closed terminal or ssh session sends SIGHUP,
Ctrl-\\ SIGQUIT, and batch schedulers warn a job before they kill it with SIGTERM or with the
signal the job asked for (Slurm's ``--signal``, commonly SIGUSR1 or SIGUSR2; SIGXCPU at a CPU-time
limit). Each one's default action ends the process at once, leaving its trial RUNNING until another
worker's grace period fails it, and the epochs it trained lost; handled, the worker records it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from automl.errors import is_or_are, plural

# The signals a terminal, a user or a scheduler sends to end a process (see the module docstring).
TERMINATION_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                       signal.SIGUSR2, signal.SIGXCPU)


class Interrupted(BaseException):
    """The worker got one of TERMINATION_SIGNALS.

    A BaseException on purpose: Lightning turns a KeyboardInterrupt into ``sys.exit(1)`` and
    ignores further Ctrl-C, and Optuna's trial loop catches KeyboardInterrupt, while both let any
    other BaseException pass. So the worker that owns the running trial is the one that records it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        # Set by the worker: the trial it was running, now failed as "interrupted" and queued again.
        self.requeued_trial: int | None = None
        # Set by `automl run` over several workers, once they stopped: the study's trials still queued.
        self.queued_after_workers: int | None = None
        # Set by `automl worker`: its name ("host:pid"), which starts its line.
        self.worker: str | None = None

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def explain(self) -> str:
        """What the interrupt did, and what a rerun would do, in one line."""
        return f"worker {self.worker}: {self._what_it_did()}" if self.worker else self._what_it_did()

    def _what_it_did(self) -> str:
        name = signal.Signals(self.signum).name
        if self.queued_after_workers == 0:
            return f"interrupted ({name}): the workers stopped; every trial had finished, so nothing is left to resume"
        if self.queued_after_workers is not None:
            return (f"interrupted ({name}): the workers stopped; {plural(self.queued_after_workers, 'trial')} "
                    f"{is_or_are(self.queued_after_workers)} queued "
                    "(the interrupted ones among them); run again to resume them")
        if self.requeued_trial is not None:
            return (f"interrupted ({name}): trial {self.requeued_trial} was running; it is recorded as failed with "
                    "reason 'interrupted' and queued again; run again to resume it")
        return f"interrupted ({name}) while no trial was running here"


class DeadlineReached(BaseException):
    """The run's deadline came before the running trial validated its first epoch: the trial has
    nothing to count, and the worker queues it again with its parameters.

    A BaseException for the reason Interrupted is one: Optuna's trial loop would log an Exception
    as a failed trial, with its traceback; this one passes it, to the worker that records it.
    """


@contextlib.contextmanager
def raise_on_signals(signals: tuple[int, ...] = TERMINATION_SIGNALS) -> Iterator[None]:
    """Within the block, the first of ``signals`` raises Interrupted; repeats wait for cleanup."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; the caller's own handling stays in force
        return
    received: list[int] = []

    def handle(signum: int, frame: FrameType | None) -> None:
        if received:
            return  # a second Ctrl-C must not cut short recording the first one
        received.append(signum)
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, handle) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
