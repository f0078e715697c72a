"""A trial's state changes and heartbeats, each a few statements of SQLAlchemy Core in one transaction.

Optuna's RDBStorage changes a trial's state through its ORM (the trial read under a row lock, each
value looked up, then written, the row updated: five to seven statements), records a heartbeat in
four (its row read twice, the server's clock read, the row written) and finds the stale trials by
loading every running trial of the study as ORM objects. A worker does each several times a trial,
and with many workers on one study that was most of what the database and the workers did
(benchmarks/study_scale.py, its workers part). Here each is what the database needs:

- a state change: the trial's row read under a row lock, its values upserted, its row updated;
- a pop (WAITING to RUNNING): the same, but the row lock is taken with SKIP LOCKED. optuna.Study
  pops by trying the queued trials in order, so every worker that asks at once tries the same
  first trial; Optuna's FOR UPDATE made each wait for the worker ahead of it to commit, then try
  the next. A trial another worker is popping is passed over at once instead: it is RUNNING once
  that worker commits (if that worker's transaction fails, the trial stays queued for a later pop).
  A pop that fails also finds the first trial after it that is queued and not being popped, and
  pops it in its place when asked to (automl.storage.pops says when, and how the worker storage
  passes over the trials between). The popped trial's first heartbeat is written in the same
  transaction, so a trial is never running without one (Optuna never takes a running trial
  without a heartbeat as stale);
- a heartbeat: one upsert of the server's clock;
- the stale trials: one query of the study's running trials' heartbeats beside the server's clock,
  made by a worker once a heartbeat interval at most (StaleCheck);
- queueing trials (queue_in): Optuna creates a trial in a transaction of its own (the study's row
  locked, the trial inserted, each attribute, its number set), so queueing a window of 100 trials
  was 100 transactions: with 128 simulated workers it took 20 to 50 s, while the workers that
  found nothing queued waited. Here a window is one transaction of five statements: the study's
  row locked as Optuna locks it (the new trials' numbers are counted under it), the trials, their
  ids read back, their system attrs (Optuna's ``fixed_params``, as ``enqueue_trial`` stores it)
  and their user attrs.

The semantics are Optuna's (its storage conformance suite runs on the worker storage that uses
these, tests/storage/test_optuna_suites.py): a finished trial raises UpdateFinishedTrialError, a
missing one KeyError, RUNNING is set only on a WAITING trial (else False), the start and end times
are stamped by the client in UTC, the heartbeat by the server's clock, a trial is stale when its
heartbeat is more than the grace period older than the server's clock now.
"""

from __future__ import annotations

import datetime
import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
from sqlalchemy.engine import Connection, Engine

from automl.storage.optuna_tables import (
    HEARTBEATS,
    STUDIES,
    SYSTEM_ATTRS,
    TRIALS,
    USER_ATTRS,
    VALUES,
    OptunaTables,
    local_time,
    reading,
    stored_value,
)

# The statements, built once with their values as parameters: building one for each call (and the
# key SQLAlchemy finds its compiled form under) cost 50 to 150 us of a worker's CPU, as running it did.
_BY_ID = TRIALS.c.trial_id == sqlalchemy.bindparam("trial")
_TRIAL = sqlalchemy.select(TRIALS.c.study_id, TRIALS.c.number, TRIALS.c.state, TRIALS.c.datetime_start).where(_BY_ID)
# FOR NO KEY UPDATE: the row is not deleted nor its key changed, so writes to the trial's other
# rows (which lock it FOR KEY SHARE) go on meanwhile; a pop passes over a row locked (SKIP LOCKED).
_LOCKED = {popping: _TRIAL.with_for_update(key_share=True, skip_locked=popping) for popping in (False, True)}
_SET_STATE = sqlalchemy.update(TRIALS).where(_BY_ID)  # the columns set: the parameters given
_QUEUED_AFTER = sqlalchemy.select(TRIALS.c.trial_id).where(
    TRIALS.c.study_id == sqlalchemy.bindparam("study"), TRIALS.c.trial_id > sqlalchemy.bindparam("after"),
    TRIALS.c.state == TrialState.WAITING.name).order_by(TRIALS.c.trial_id).limit(1)
_NEXT_QUEUED = {up_to: (_QUEUED_AFTER if not up_to else _QUEUED_AFTER.where(
    TRIALS.c.trial_id <= sqlalchemy.bindparam("up_to"))).with_for_update(key_share=True, skip_locked=True)
    for up_to in (False, True)}
_UNPOP = sqlalchemy.update(TRIALS).where(_BY_ID, TRIALS.c.state == TrialState.RUNNING.name).values(
    state=TrialState.WAITING.name, datetime_start=None)
_NO_HEARTBEAT = sqlalchemy.delete(HEARTBEATS).where(HEARTBEATS.c.trial_id == sqlalchemy.bindparam("trial"))
_HEARTBEATS = (sqlalchemy.select(TRIALS.c.trial_id, HEARTBEATS.c.heartbeat,
                                 sqlalchemy.func.now().label("now"))  # typed DateTime: a datetime on every dialect
               .join(HEARTBEATS, HEARTBEATS.c.trial_id == TRIALS.c.trial_id)
               .where(TRIALS.c.study_id == sqlalchemy.bindparam("study"), TRIALS.c.state == TrialState.RUNNING.name)
               .order_by(TRIALS.c.trial_id))


class StateChanged(NamedTuple):
    """What a state change did: whether it changed the state (False: RUNNING asked of a trial not
    WAITING, or of one another worker is popping), and the trial's start and end times as Optuna
    shows them (naive local time). After a pop that failed, ``next_queued`` is the id of the first
    trial after it that was queued and not being popped (None: none was), and ``popped_next``
    whether that trial was popped in its place (then ``datetime_start`` is its start)."""

    changed: bool
    datetime_start: datetime.datetime | None = None
    datetime_complete: datetime.datetime | None = None
    next_queued: int | None = None
    popped_next: bool = False


def change_state(connection: Connection, tables: OptunaTables, trial_id: int, state: TrialState,
                 values: Sequence[float] | None = None, beat: bool = False,
                 pop_ahead_to: int | None = None) -> StateChanged:
    """Set the trial's ``state`` (and ``values``) as Optuna's ``set_trial_state_values`` does, in
    the caller's transaction; with ``beat``, a trial set RUNNING gets its first heartbeat. A pop
    that fails with ``pop_ahead_to`` pops instead the first queued trial after it that is not being
    popped, if its id is at most ``pop_ahead_to`` (see module).

    Raises KeyError for a trial that does not exist, UpdateFinishedTrialError for a finished one.
    """
    popping = state == TrialState.RUNNING
    row = connection.execute(_LOCKED[popping], {"trial": trial_id}).first()
    if row is None and popping:  # another worker is popping it, or it does not exist
        row = connection.execute(_TRIAL, {"trial": trial_id}).first()
        if row is not None and not TrialState[row.state].is_finished():
            return _passed_over(connection, tables, row.study_id, trial_id, beat, pop_ahead_to)
    if row is None:
        raise KeyError(f"no trial with id {trial_id}")
    current = TrialState[row.state]
    if current.is_finished():
        raise UpdateFinishedTrialError(f"Trial#{row.number} has already finished and can not be updated.")
    if values is not None:
        tables.upsert(connection, VALUES, [{"trial_id": trial_id, "objective": objective, **stored_value(value)}
                                           for objective, value in enumerate(values)], ("value", "value_type"))
    if popping and current != TrialState.WAITING:
        return _passed_over(connection, tables, row.study_id, trial_id, beat, pop_ahead_to)
    now = _utc_now()
    started = now if popping else row.datetime_start
    completed = now if state.is_finished() else None
    stamped = {"datetime_start": now} if popping else {"datetime_complete": now} if completed else {}
    connection.execute(_SET_STATE, {"trial": trial_id, "state": state.name, **stamped})
    if popping and beat:
        record_heartbeat(connection, tables, trial_id)
    return StateChanged(True, local_time(started), local_time(completed))


def _utc_now() -> datetime.datetime:
    """The client's clock, naive UTC, as Optuna stamps a trial's start and end."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def _passed_over(connection: Connection, tables: OptunaTables, study_id: int, after: int, beat: bool,
                 pop_ahead_to: int | None) -> StateChanged:
    """A pop of trial ``after`` that failed: the first trial of the study after it that is queued
    and not being popped (at most ``pop_ahead_to``, then popped in its place, with a heartbeat if
    ``beat``)."""
    next_queued = connection.execute(_NEXT_QUEUED[pop_ahead_to is not None], {
        "study": study_id, "after": after, "up_to": pop_ahead_to}).scalar()
    if next_queued is None or pop_ahead_to is None:
        return StateChanged(False, next_queued=next_queued)
    now = _utc_now()
    # Locked above on PostgreSQL (SQLite's writers hold the database's lock): still queued.
    connection.execute(_SET_STATE, {"trial": next_queued, "state": TrialState.RUNNING.name, "datetime_start": now})
    if beat:
        record_heartbeat(connection, tables, next_queued)
    return StateChanged(False, local_time(now), next_queued=next_queued, popped_next=True)


def unpop(connection: Connection, trial_id: int) -> None:
    """Put a trial popped ahead and never run back in the queue, as it was (automl.storage.pops)."""
    connection.execute(_UNPOP, {"trial": trial_id})
    connection.execute(_NO_HEARTBEAT, {"trial": trial_id})


def record_heartbeat(connection: Connection, tables: OptunaTables, trial_id: int) -> None:
    """Stamp the trial's heartbeat with the server's clock (an upsert), in the caller's transaction."""
    tables.upsert(connection, HEARTBEATS, [{"trial_id": trial_id}], ("heartbeat",), server_now=("heartbeat",))


def stale_trial_ids(connection: Connection, study_id: int, grace_period: float) -> list[int]:
    """The study's running trials whose heartbeat is more than ``grace_period`` seconds older than
    the server's clock; a running trial without a heartbeat is never stale (as in Optuna)."""
    rows = connection.execute(_HEARTBEATS, {"study": study_id}).all()
    grace = datetime.timedelta(seconds=grace_period)
    # As Optuna: PostgreSQL's now() is aware, the stored heartbeat naive in the server's time zone.
    return [row.trial_id for row in rows if row.now.replace(tzinfo=None) - row.heartbeat > grace]


class StaleCheck:
    """When a worker looks for a study's stale trials: Optuna looks before every trial it runs, a
    worker's storage once a heartbeat interval at most (a trial is stale only a grace period after
    its last beat, so it is found at most an interval later), not once per trial of every worker.
    Also when the worker last beat each trial it runs: Optuna's heartbeat thread beats as a trial
    starts, just after its pop did (``due``)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval  # seconds, the heartbeat interval
        self._checked: dict[int, float] = {}  # study id -> when this process last looked (time.monotonic)
        self._beaten: dict[int, float] = {}  # running trial id -> when this process last beat it

    def beaten(self, trial_id: int, state: TrialState | None = None) -> None:
        """Note a beat of the trial (with its pop, if ``state`` is RUNNING), or its end (a finished ``state``)."""
        if state is not None and state.is_finished():
            self._beaten.pop(trial_id, None)
        elif state in (None, TrialState.RUNNING):
            self._beaten[trial_id] = time.monotonic()

    def due(self, trial_id: int) -> bool:
        """Whether the trial's heartbeat is due: half an interval since its last beat here."""
        return time.monotonic() - self._beaten.get(trial_id, -math.inf) >= self.interval / 2

    def ids(self, engine: Engine, study_id: int, grace_period: float) -> list[int]:
        """The study's stale trials (stale_trial_ids) if it is time to look again, else none."""
        now = time.monotonic()
        if now - self._checked.get(study_id, -math.inf) < self.interval:
            return []
        with reading(engine) as connection:
            found = stale_trial_ids(connection, study_id, grace_period)
        self._checked[study_id] = now
        return found


def queue_in(connection: Connection, tables: OptunaTables, study_id: int,
             user_attrs: Sequence[Mapping[str, Any]]) -> bool:
    """Queue a trial per ``user_attrs`` (each its user attrs) as Optuna's ``enqueue_trial({},
    user_attrs=...)`` queues one, in the caller's transaction; False, queueing none, if there is no
    such study."""
    study = sqlalchemy.select(STUDIES.c.study_id).where(STUDIES.c.study_id == study_id).with_for_update()
    if connection.execute(study).first() is None:
        return False
    first = connection.execute(sqlalchemy.select(sqlalchemy.func.count()).select_from(TRIALS)
                               .where(TRIALS.c.study_id == study_id)).scalar_one()
    tables.insert(connection, TRIALS, [{"number": first + index, "study_id": study_id, "state": TrialState.WAITING.name,
                                        "datetime_start": None, "datetime_complete": None}
                                       for index in range(len(user_attrs))])
    trial_ids = connection.execute(sqlalchemy.select(TRIALS.c.trial_id).where(
        TRIALS.c.study_id == study_id, TRIALS.c.number >= first).order_by(TRIALS.c.number)).scalars().all()
    tables.upsert_attrs(connection, SYSTEM_ATTRS, [(trial_id, "fixed_params", "{}") for trial_id in trial_ids])
    tables.upsert_attrs(connection, USER_ATTRS, [(trial_id, key, json.dumps(value)) for trial_id, attrs in zip(
        trial_ids, user_attrs, strict=True) for key, value in attrs.items()])
    return True
