"""A worker's progress bar: the trials it finished, and either the expected time left or the time budget.

Optuna's own bar, given both a trial count and a timeout, counts trials with an ETA for all of
them and prints the unrounded timeout beside it (``47.43/47.36171817779541 seconds``): under a
time budget the run ends at its deadline, whatever is still queued, so an ETA for the queued
trials promises work that will not be done. Here a run with a deadline shows the seconds spent of
its budget (whole seconds) and the trials finished; a run without one shows the trials finished of
those queued, with the time left at the pace so far.
"""

from __future__ import annotations

import time

import optuna
from optuna.trial import FrozenTrial
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress_bar import ProgressBar as Bar
from rich.text import Text

from automl.storage.trial_queue import QUEUED, count


class _Budget:
    """The time budget as of now: seconds spent of it, at most all of it."""

    def __init__(self, deadline: float) -> None:
        self.started, self.deadline = time.time(), deadline

    @property
    def seconds(self) -> float:
        return max(self.deadline - self.started, 1e-3)

    @property
    def spent(self) -> float:
        return min(time.time(), self.deadline) - self.started


class _BudgetBar(ProgressColumn):
    """A bar of the time budget spent, drawn as of each refresh (not only when a trial ends)."""

    def __init__(self, budget: _Budget) -> None:
        super().__init__()
        self.budget = budget

    def render(self, task: Task) -> Bar:
        return Bar(total=self.budget.seconds, completed=self.budget.spent, width=40)


class _BudgetSeconds(ProgressColumn):
    """``12/60 s``: the seconds spent of the time budget, whole."""

    def __init__(self, budget: _Budget) -> None:
        super().__init__()
        self.budget = budget

    def render(self, task: Task) -> Text:
        return Text(f"{self.budget.spent:.0f}/{self.budget.seconds:.0f} s")


class ProgressBar:
    """An after-trial callback that draws the bar on stderr; ``close`` removes nothing, it ends it.

    ``deadline``: the run's deadline (``time.time()`` seconds), None without a time budget.
    """

    def __init__(self, study: optuna.Study, deadline: float | None) -> None:
        self.deadline = deadline
        self.done = 0
        console = Console(stderr=True)
        if deadline is None:
            self.progress = Progress(TextColumn("trials"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                     TextColumn("left"), TimeRemainingColumn(), console=console)
            self.task = self.progress.add_task("trials", total=count(study, QUEUED))
        else:
            budget = _Budget(deadline)
            self.progress = Progress(TextColumn("trials {task.completed:.0f}"), _BudgetBar(budget),
                                     _BudgetSeconds(budget), console=console)
            self.task = self.progress.add_task("trials", total=None)
        self.progress.start()

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.done += 1
        # Without a deadline the total follows the queue: retries and replacements join it as it goes.
        total = self.done + count(study, QUEUED) if self.deadline is None else None
        self.progress.update(self.task, completed=self.done, total=total)

    def close(self) -> None:
        self.progress.stop()
