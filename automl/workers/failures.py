"""Trials that fail: their recorded reasons, and a study stopped by failures in a row."""

from __future__ import annotations

import contextlib
import logging
import re
import textwrap
import traceback
from collections import Counter
from collections.abc import Iterator

import optuna
from optuna.trial import FrozenTrial, TrialState

from automl.errors import AutomlError
from automl.storage.schema import DEADLINE, TrialAttr

INTERRUPTED = "interrupted"



def short_reason(trial: FrozenTrial) -> str:
    """The first line of a failed trial's reason, as a summary key, shortened at a word boundary."""
    reason = str(trial.user_attrs.get(TrialAttr.FAIL_REASON) or "no reason recorded (worker died?)")
    return textwrap.shorten(reason.splitlines()[0], width=240, placeholder=" ...")


def error_location(error: BaseException) -> str:
    """Where ``error`` was raised: "path/to/file.py:LINE in function", from its traceback."""
    frames = traceback.extract_tb(error.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else "an unknown place"


class GroupedFailureLog(logging.Filter):
    """Lets Optuna log a failed trial's traceback once per distinct error (type, message, place);
    a later trial that failed the same way gets one line naming the place and the count so far.

    It filters handlers, and a record goes through each handler's filters: it is judged once, and
    the verdict given again to the next handler.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter[tuple[str, str, str]] = Counter()
        self.repeated: set[str] = set()  # trial numbers whose failure was told in one line
        self._last: tuple[logging.LogRecord, bool] | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if self._last is None or self._last[0] is not record:
            self._last = (record, self._judge(record))
        return self._last[1]

    def _judge(self, record: logging.LogRecord) -> bool:
        number = re.match(r"Trial (\d+) failed", record.getMessage())
        if number is None:
            return True
        if record.exc_info is None or record.exc_info[1] is None:
            # Optuna's second line on a failed trial ("failed with value None") adds nothing to one line.
            return number.group(1) not in self.repeated
        error = record.exc_info[1]
        key = (type(error).__name__, str(error).split("\n")[0], error_location(error))
        self.seen[key] += 1
        if self.seen[key] == 1:
            return True
        self.repeated.add(number.group(1))
        record.msg, record.args, record.exc_info = (
            f"Trial {number.group(1)} failed the same way ({self.seen[key]} times so far): "
            f"{textwrap.shorten(f'{key[0]}: {key[1]}', width=240, placeholder=' ...')} at {key[2]}", (), None)
        return True


@contextlib.contextmanager
def grouped_failure_log() -> Iterator[None]:
    """Within the block, identical trial failures are logged once in full (GroupedFailureLog).

    Optuna's trial loop logs them through a logger below Optuna's root logger ("optuna"), whose
    handlers print them: the grouping filters those handlers (a logger's own filters would not
    see its children's records).
    """
    handlers = list(logging.getLogger("optuna").handlers)
    grouping = GroupedFailureLog()
    for handler in handlers:
        handler.addFilter(grouping)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(grouping)


class TooManyFailures(AutomlError):
    """The last trials of a study all failed; running more would only fail more."""


class FailureStreak:
    """After-trial callback that stops the study once its last ``limit`` finished trials all failed.

    The study's trials are counted, not this worker's, so every worker of a study stops on the
    same streak. The trials still queued stay queued: a rerun resumes them.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.summary: str | None = None

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state != TrialState.FAIL:
            return
        # A trial the deadline stopped before its first epoch did not fail: it is queued again.
        finished = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                                        TrialState.FAIL))
                    if t.user_attrs.get(TrialAttr.FAIL_REASON) != DEADLINE]
        latest = sorted(finished, key=lambda t: (t.datetime_complete or t.datetime_start, t.number))
        streak = latest[-self.limit:]
        if len(streak) < self.limit or any(t.state != TrialState.FAIL for t in streak):
            return
        reasons = Counter(short_reason(t) for t in streak)
        listed = "".join(f"\n  {n} x {reason}" for reason, n in reasons.most_common())
        self.summary = (f"study {study.study_name!r} stopped: its last {self.limit} trials failed in a row "
                        f"(trials {', '.join(str(t.number) for t in streak)}), the traceback of each distinct "
                        f"error is above. Reasons:{listed}\nFix the cause, then run again: the queued trials resume")
        study.stop()
