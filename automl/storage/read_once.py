"""What a worker's storage knows of a study's trials: each trial loaded in full only when it may
have changed.

A worker reads the study several times a trial (the pop, the sampler, the pruner at each rung, the
front check), and ``automl run`` queues its trials up front: reloading every unfinished trial with
all its rows at each read, as Optuna's storages do, made a read of a study with 1,000 queued
trials 30 times as long (benchmarks/worker_storage.py). A read first asks the database for the
states of the trials that may have changed (automl.storage.optuna_tables.OptunaTables.trial_states),
then loads in full only those whose state shows they did. Three kinds cannot have changed since
this process last read them:

- a finished trial: nothing may change it;
- a queued trial, until it is popped: queueing and retrying create it whole (a write through this
  storage to a trial it does not run marks the copy outdated);
- a trial this process runs ("ours"): only this process writes to it, and its writes are applied
  to the copy here; another worker failing it as stale changes its state, which is read.

A trial another worker runs does change (its curve, its costs), but that worker commits what it
writes only every so often (automl.storage.held_writes: at its heartbeat at the latest), so its
copy here is loaded again when its state changes, or else once it is ``fresh_s`` old (the worker
storage's heartbeat interval). Loading every such trial at every read made a read's cost grow with
the number of workers: with 128 workers each read loaded the 127 trials the others ran, in full.
A queued trial another worker pops is not loaded at its pop either (that was one load per worker
and trial): its copy here turns running, with the start time the read found, and is loaded once
``fresh_s`` later or when it finishes, whichever comes first. So another worker's running trial is
seen here with what it committed at most ``fresh_s`` (plus that worker's own commit delay) ago,
and a finished one as it finished, at the first read after.

A listing loads in full only the trials it lists; the others it finds new or changed are kept in
outline (number, state and start, which the query of states gives) and loaded when a listing first
shows them. Two listings show trials in outline:

- optuna.Study's pop, which lists the queued trials for their ids only, on a study that runs
  queued trials only (automl.storage.trial_queue). With 128 workers, every worker loaded every
  queued trial in full to pop one: half the loads a finished trial cost. automl's own readers of
  the queued trials' attributes list every trial, in full (trial_queue.still_queued).
- a trial another worker runs, first seen running here (or seen queued in outline only), in a
  listing of some states (MO-ASHA's, the workers' count): it is listed with its number, state and
  start alone until ``fresh_s`` later, when it is loaded, or until it finishes. A listing of every
  state loads it: the attributes it was queued with (trial_queue.queue_more reads the next
  window's marker on the trials other workers run) are not in the outline.

With both, a worker loads another worker's trial once, when it finishes (benchmarks/study_scale.py:
with 128 workers, 119 loads per finished trial where there were 244).

A trial in outline is held as the query's row, and made a FrozenTrial (its number, state and start
alone) when a listing first shows it: a worker keeps each trial another worker runs in outline up
to three times (queued, running, finished), and the trial finished in outline is never shown. The
trials known here are also kept apart by state, so that a listing of some states goes through those
alone (the pop's, of the queued trials, passes over the finished ones). benchmarks/read_once.py
replays one worker's reads with 128 workers: 0.75 of the client work a read cost when every outline
was made a FrozenTrial at once and every listing went through every trial known.

Trial ids grow in the order trials are created within a study (Optuna creates a trial under the
study's row lock, or SQLite's write lock), so the states asked for are those from the lowest
unfinished trial known on (a finished one kept in outline is not: its state stays), and the new
ones above the highest id a read has seen. Unless the
listing loads queued trials, the query leaves out the queued trials up to that id: each is known
here, queued, until popped. A trial known here as started that the query does not show was put
back in the queue (a pop taken ahead and not run, automl.storage.pops).
"""

from __future__ import annotations

import bisect
import copy
import datetime
import itertools
import operator
import time
from collections.abc import Container, Sequence
from typing import cast

from optuna.distributions import BaseDistribution, check_distribution_compatibility
from optuna.trial import FrozenTrial, TrialState

from automl.storage.optuna_tables import Decoded, OptunaTables, StoredTrial, TrialStateRow, reading

_TRIAL_ID = operator.attrgetter("trial_id")


def snapshot(trial: FrozenTrial) -> FrozenTrial:
    """A copy of ``trial`` that later writes to it leave alone (its dicts copied, not their values)."""
    copied = copy.copy(trial)
    copied.params, copied.user_attrs = dict(trial.params), dict(trial.user_attrs)
    copied.distributions, copied.system_attrs = dict(trial.distributions), dict(trial.system_attrs)
    copied.intermediate_values = dict(trial.intermediate_values)
    return copied


def lists_queued_only(states: Container[TrialState] | None) -> bool:
    """Whether a listing of ``states`` is of the queued trials alone, as optuna.Study's pop lists them."""
    return states is not None and all((state in states) == (state == TrialState.WAITING) for state in TrialState)


class KnownTrials:
    """One study's trials as this process last read or wrote them (see module); each held whole
    (a FrozenTrial), or in outline (a FrozenTrial once listed, before that the TrialStateRow read)."""

    def __init__(self, fresh_s: float = 0.0) -> None:
        self.fresh_s = fresh_s
        self.trials: dict[int, FrozenTrial | TrialStateRow] = {}  # trial id -> trial (in outline, not listed: row)
        self._of_state: dict[TrialState, set[int]] = {state: set() for state in TrialState}  # the ids in ``trials``
        self._loaded_at: dict[int, float] = {}  # trials other workers run -> when loaded (time.monotonic)
        self._ids: dict[int, int] = {}  # trial number -> trial id
        self.ours: set[int] = set()  # running here: the copy (if loaded) is the truth
        self._outdated: set[int] = set()  # written through this storage while not ours: load again
        self._outline: set[int] = set()  # kept in outline (number, state, start): not loaded in full
        self._finished_outline: set[int] = set()  # those finished: loaded when a listing shows them
        self._rows: set[int] = set()  # those not listed yet, held as their row
        self._times = Decoded()  # the stored start times of the outlines, as local times
        self._highest = -1  # the highest trial id a read of the study has seen

    @property
    def lowest_to_check(self) -> int:
        """The lowest trial id whose state the next read of the study must look at."""
        unfinished = itertools.chain(self._of_state[TrialState.WAITING], self._of_state[TrialState.RUNNING])
        return min(unfinished, default=self._highest + 1)

    @property
    def highest_seen(self) -> int:
        """The highest trial id a read of the study has seen (-1: none yet)."""
        return self._highest

    def to_load(self, rows: list[TrialStateRow], states: Container[TrialState] | None = None,
                queued_in_outline: bool = False) -> list[int]:
        """The trials among ``rows`` (id, number, state and start now) that a listing of ``states``
        (None: all) must load in full; the others that changed are kept in outline (see module).
        Also notes the highest id seen, drops from ``ours`` a trial another process ended, and turns
        running the copy of a queued trial another process popped. ``queued_in_outline``: the
        listing is a pop's, which needs the queued trials' ids and numbers only."""
        load, now = [], time.monotonic()
        for row in rows:
            trial_id, _, state, stored_start = row
            if trial_id > self._highest:
                self._highest = trial_id
            known = self.trials.get(trial_id)
            whole = known is not None and trial_id not in self._outdated and trial_id not in self._outline
            if trial_id in self.ours:
                if not whole or state != TrialState.RUNNING:  # not read yet, or failed as stale by another worker
                    if state != TrialState.RUNNING:
                        self.ours.discard(trial_id)
                    load.append(trial_id)
                continue
            if whole and known is not None:
                # An aged copy is loaded again by a listing that shows it; the others leave it whole.
                aged = state == TrialState.RUNNING and now - self._loaded_at.get(trial_id, 0.0) >= self.fresh_s \
                    and (states is None or state in states)
                if known.state.is_finished() or (state == known.state and not aged):
                    continue
                if state == TrialState.RUNNING and known.state == TrialState.WAITING and self.fresh_s > 0:
                    popped = snapshot(cast(FrozenTrial, known))  # whole: not a row
                    popped.state, popped.datetime_start = state, self._times.local(stored_start)
                    self.keep(trial_id, popped)  # as if loaded now: loaded in full fresh_s later
                    continue
            if (states is not None and (state not in states or self._popped_elsewhere(trial_id, state, now))) \
                    or (state == TrialState.WAITING and queued_in_outline):
                if known is None or known.state != state or trial_id not in self._outline:  # else kept as it is
                    self._keep_outline(row, now)
            else:
                load.append(trial_id)  # new or changed, and listed now; or another worker's, loaded fresh_s ago
        return load

    def _popped_elsewhere(self, trial_id: int, state: TrialState, now: float) -> bool:
        """Whether ``trial_id``, known here in outline or not at all, is another worker's running
        trial that this process first saw running less than ``fresh_s`` ago."""
        if state != TrialState.RUNNING or self.fresh_s <= 0 or trial_id in self._outdated:
            return False
        if trial_id in self.trials and trial_id not in self._outline:
            return False  # a copy loaded before: loaded again once fresh_s old
        outline = self.trials.get(trial_id)
        return outline is None or outline.state != TrialState.RUNNING or \
            now - self._loaded_at.get(trial_id, now) < self.fresh_s

    def _keep_outline(self, row: TrialStateRow, now: float) -> None:
        """Keep the trial in outline: its number, state and start, as stored now (the row itself,
        made a FrozenTrial when a listing first shows it: most outlines change or are loaded before)."""
        trial_id, state = row.trial_id, row.state
        outline = self.trials.get(trial_id) if trial_id in self._outline else None
        if state == TrialState.RUNNING and (outline is None or outline.state != TrialState.RUNNING):
            self._loaded_at[trial_id] = now  # first seen running: loaded in full fresh_s later
        self._put(trial_id, row)
        self._outline.add(trial_id)
        self._rows.add(trial_id)
        if state.is_finished():  # its state stays: a read need not look at it again (finished_to_load)
            self._finished_outline.add(trial_id)

    def finished_to_load(self, states: Container[TrialState] | None) -> list[int]:
        """The finished trials kept in outline that a listing of ``states`` (None: all) shows."""
        return [trial_id for trial_id in self._finished_outline
                if states is None or self.trials[trial_id].state in states]

    def queued_again(self, rows: list[TrialStateRow], queued_after: int) -> list[TrialStateRow]:
        """The trials known here as started that ``rows``, a query of states that leaves out the
        queued trials up to ``queued_after``, does not show: they are queued again (a pop put back,
        trial_states.unpop), and are given here as queued rows."""
        shown = set(map(_TRIAL_ID, rows))
        return [TrialStateRow(trial_id, self.trials[trial_id].number, TrialState.WAITING, None)
                for trial_id in self._of_state[TrialState.RUNNING]
                if trial_id <= queued_after and trial_id not in shown]

    def keep(self, trial_id: int, trial: FrozenTrial) -> None:
        """Remember ``trial`` as it is stored now."""
        self._put(trial_id, trial)
        self._outdated.discard(trial_id)
        self._outline.discard(trial_id)
        self._finished_outline.discard(trial_id)
        self._rows.discard(trial_id)
        if trial.state.is_finished():
            self.ours.discard(trial_id)
        if trial.state == TrialState.RUNNING and trial_id not in self.ours:
            self._loaded_at[trial_id] = time.monotonic()
        else:
            self._loaded_at.pop(trial_id, None)

    def _put(self, trial_id: int, trial: FrozenTrial | TrialStateRow) -> None:
        """Hold ``trial`` (whole, or a row in outline) as the copy of ``trial_id``."""
        held = self.trials.get(trial_id)
        if held is None:
            self._ids[trial.number] = trial_id  # a trial's number stays
        if held is None or held.state is not trial.state:
            if held is not None:
                self._of_state[held.state].discard(trial_id)
            self._of_state[trial.state].add(trial_id)
        self.trials[trial_id] = trial

    def move(self, trial_id: int, state: TrialState, values: Sequence[float] | None,
             datetime_start: datetime.datetime | None, datetime_complete: datetime.datetime | None) -> None:
        """Move the copy of a trial along with the state this process gave it (with ``values`` and
        the times stamped): a trial it pops becomes its running copy, one it ends its finished
        copy, so neither is loaded again."""
        trial = self.current(trial_id)
        if state == TrialState.RUNNING:
            self.ours.add(trial_id)
        elif state.is_finished():
            self.ours.discard(trial_id)
        if trial is None or not (state == TrialState.RUNNING or state.is_finished()):
            self.outdate(trial_id)
            return
        moved = snapshot(trial)
        moved.datetime_start, moved.datetime_complete, moved.state = datetime_start, datetime_complete, state
        if values is not None:
            moved.values = [float(value) for value in values]
        self.keep(trial_id, moved)

    def outdate(self, trial_id: int) -> None:
        """Mark the copy of a trial this process wrote to, but does not run, for loading again."""
        if trial_id in self.trials:
            self._outdated.add(trial_id)

    def ours_copy(self, trial_id: int) -> FrozenTrial | None:
        """The copy of a trial this process runs, to apply its writes to; None if not loaded yet."""
        return self.current(trial_id) if trial_id in self.ours else None

    def current(self, trial_id: int) -> FrozenTrial | None:
        """The copy of the trial, if it is as stored: finished, ours, or queued (see module)."""
        trial = self.trials.get(trial_id)
        if trial is None or trial_id in self._outdated or trial_id in self._outline:
            return None
        unchanged = trial.state.is_finished() or trial_id in self.ours or trial.state == TrialState.WAITING
        return cast(FrozenTrial, trial) if unchanged else None  # whole: not a row

    def cached(self, trial_id: int) -> FrozenTrial | None:
        """The trial as get_trial returns it without reading the database: a finished trial, or one
        of ours (as a snapshot); None for any other (a queued one is read afresh, as Optuna's is)."""
        trial = self.current(trial_id)
        if trial is None or trial.state == TrialState.WAITING:
            return None
        return snapshot(trial) if trial_id in self.ours else trial

    def listing(self, states: Container[TrialState] | None) -> list[FrozenTrial]:
        """The known trials in ``states`` (all by default) by number; ours as snapshots."""
        trials = self.trials
        ids = sorted(itertools.chain.from_iterable(
            shown for state, shown in self._of_state.items() if states is None or state in states))
        for trial_id in [trial_id for trial_id in self._rows if states is None or trials[trial_id].state in states]:
            trials[trial_id] = self._outline_trial(cast(TrialStateRow, trials[trial_id]))  # first shown
            self._rows.discard(trial_id)
        listed = cast(list[FrozenTrial], list(map(trials.__getitem__, ids)))
        for trial_id in self.ours:  # one or two
            position = bisect.bisect_left(ids, trial_id)
            if position < len(ids) and ids[position] == trial_id:
                listed[position] = snapshot(listed[position])
        return listed

    def _outline_trial(self, row: TrialStateRow) -> FrozenTrial:
        """The trial in outline, as listed: its number, state and start alone."""
        # number, state, value, start, complete, params, distributions, user and system attrs,
        # intermediate values, trial id: positional, a third cheaper than by name
        return FrozenTrial(row.number, row.state, None, self._times.local(row.stored_start), None, {}, {}, {}, {}, {},
                           row.trial_id)

    def id_of(self, number: int) -> int | None:
        return self._ids.get(number)

    def counts(self) -> tuple[int, int]:
        """How many trials are known here, and how many of them finished."""
        unfinished = len(self._of_state[TrialState.RUNNING]) + len(self._of_state[TrialState.WAITING])
        return len(self.trials), len(self.trials) - unfinished


class TrialCache:
    """What this process knows of each study's trials, and of which study each trial is in."""

    def __init__(self, fresh_s: float = 0.0) -> None:
        self.fresh_s = fresh_s  # see KnownTrials
        self.studies: dict[int, KnownTrials] = {}
        self.study_of: dict[int, int] = {}  # trial id -> study id, for the trials seen here
        self._distributions: dict[int, dict[str, BaseDistribution]] = {}  # the first seen per parameter

    def forget(self, study_id: int) -> None:
        self.studies.pop(study_id, None)
        self._distributions.pop(study_id, None)

    def check_distribution(self, tables: OptunaTables, study_id: int, name: str,
                           distribution: BaseDistribution) -> None:
        """Refuse (ValueError) a distribution that contradicts the study's for parameter ``name``,
        as Optuna's write does where a trial suggests it; looked up in the database once per name
        that no trial read here had."""
        seen = self._distributions.setdefault(study_id, {})
        if name not in seen:
            with reading(tables.engine) as connection:
                seen[name] = tables.study_distribution(connection, study_id, name) or distribution
        check_distribution_compatibility(seen[name], distribution)

    def known(self, study_id: int) -> KnownTrials:
        known = self.studies.get(study_id)
        if known is None:  # made only then: a worker asks for it at every write and every trial it loads
            known = self.studies[study_id] = KnownTrials(self.fresh_s)
        return known

    def of_trial(self, trial_id: int) -> KnownTrials | None:
        study_id = self.study_of.get(trial_id)
        return None if study_id is None else self.known(study_id)

    def counts(self, study_id: int) -> tuple[int, int]:
        """How many of the study's trials are known here, and how many of them finished."""
        return self.studies[study_id].counts() if study_id in self.studies else (0, 0)

    def load(self, tables: OptunaTables, trial_ids: list[int]) -> list[FrozenTrial]:
        """Load trials by id, in full, and keep them; the ones that exist."""
        with reading(tables.engine) as connection:
            stored = tables.load(connection, trial_ids=trial_ids)
        for trial in stored:
            self._keep(trial)
        return [trial.trial for trial in stored]

    def _keep(self, stored: StoredTrial) -> None:
        self.study_of[stored.trial_id] = stored.study_id
        self.known(stored.study_id).keep(stored.trial_id, stored.trial)
        seen = self._distributions.setdefault(stored.study_id, {})
        if not seen.keys() >= stored.trial.distributions.keys():  # most trials have no new parameter
            for name, distribution in stored.trial.distributions.items():
                seen.setdefault(name, distribution)

    def refresh(self, tables: OptunaTables, study_id: int, states: Container[TrialState] | None = None,
                queued_in_outline: bool = False) -> KnownTrials | None:
        """The study's trials brought up to date for a listing of ``states`` (None: all): one query
        of their states, and the trials listed whose state shows they may have changed loaded in
        full (see KnownTrials.to_load). None if the study is gone."""
        known = self.studies.get(study_id) or KnownTrials(self.fresh_s)
        # The queued trials known here stay as they are (until popped) unless the listing loads them.
        loads_queued = (states is None or TrialState.WAITING in states) and not queued_in_outline
        queued_after = -1 if loads_queued else known.highest_seen
        with reading(tables.engine) as connection:
            current = tables.trial_states(connection, study_id, known.lowest_to_check, queued_after)
            if current is None:
                return None
            current += known.queued_again(current, queued_after)
            self.studies[study_id] = known
            everything, seen = not known.trials, known.highest_seen
            load = list(dict.fromkeys([*known.to_load(current, states, queued_in_outline),
                                       *known.finished_to_load(states)]))
            if known.highest_seen > seen:  # new trials
                self.study_of.update((row.trial_id, study_id) for row in current if row.trial_id > seen)
            if load:
                everything = everything and len(load) == len(current)
                for trial in tables.load(connection, study_id, () if everything else load):
                    self._keep(trial)
        return known
