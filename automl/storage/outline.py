"""A study's trials as the views read them (``automl show``, ``automl report``): every trial in
outline, and in full only the few a view prints or draws.

Read in full, a study of 50,000 trials is a million rows of attributes and parameters, parsed into
50,000 trials: tens of seconds and hundreds of MB before anything is shown. Yet what a view counts
and compares of every trial is a few fields: its state, times, objective values and constraints,
its family, and the user attrs OUTLINE_ATTRS names (what the counts, the front, the warnings and
the report's scatter figures read). So a view reads every trial in outline, those rows alone, a
row per trial (read_outlines), and loads in full only the trials it prints or draws: the front's
rows, the learning curves a figure draws, the trials importance is computed over (``full``). A
trial in outline is an Optuna FrozenTrial whose ``user_attrs`` hold only OUTLINE_ATTRS and whose
``params`` only the family; nothing else of it may be read.

A study that is not in a database (Optuna's in-memory storage) is read in full, as Optuna keeps it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from typing import Any, NamedTuple

import optuna
import sqlalchemy
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import Connection

from automl.storage._optuna import storage_backend
from automl.storage.optuna_tables import (
    PARAMS,
    SYSTEM_ATTRS,
    TRIALS,
    USER_ATTRS,
    VALUES,
    Decoded,
    OptunaTables,
    StoredTrial,
    stored_float,
)
from automl.storage.schema import (
    FAMILY_PARAM,
    TrialAttr,
    is_completed,
    is_feasible,
    pareto_front,
    started_trials,
)


class Outline(NamedTuple):
    """What a trial read in outline holds (read_outlines): its row of the trials table and
    its values, and of its other rows only the user attrs and parameters named here, and the system
    attrs named here or named one of them, a colon and more (``constraints`` takes Optuna's
    ``constraints:NAME`` too); no intermediate values."""

    user_attrs: tuple[str, ...]
    params: tuple[str, ...]
    system_attrs: tuple[str, ...]


def read_outlines(connection: Connection, study_id: int, outline: Outline, objectives: int) -> list[StoredTrial]:
    """Every trial of the study in outline (see Outline), in id order, with at most ``objectives``
    values. One query reads a row per trial, its values, attrs and params joined to it by their
    unique keys (so the database, not Python, puts a trial's rows together), and one more the
    system attrs named."""
    columns: list[Any] = [TRIALS.c.trial_id, TRIALS.c.number, TRIALS.c.state, TRIALS.c.datetime_start,
                          TRIALS.c.datetime_complete]
    joined: Any = TRIALS
    for table, key, names, read in ((VALUES, "objective", range(objectives), ("value", "value_type")),
                                    (PARAMS, "param_name", outline.params, ("param_value", "distribution_json")),
                                    (USER_ATTRS, "key", outline.user_attrs, ("value_json",))):
        for name in names:
            rows_of = table.alias()
            joined = joined.outerjoin(rows_of, sqlalchemy.and_(rows_of.c.trial_id == TRIALS.c.trial_id,
                                                               rows_of.c[key] == name))
            columns += [rows_of.c[column] for column in read]
    rows = connection.execute(sqlalchemy.select(*columns).select_from(joined)
                              .where(TRIALS.c.study_id == study_id).order_by(TRIALS.c.trial_id)).all()
    keys = SYSTEM_ATTRS.c.key
    system: dict[int, list[Any]] = {}
    for attr in connection.execute(
            sqlalchemy.select(SYSTEM_ATTRS).join(TRIALS, TRIALS.c.trial_id == SYSTEM_ATTRS.c.trial_id)
            .where(TRIALS.c.study_id == study_id, sqlalchemy.or_(keys.in_(outline.system_attrs), *(
                keys.startswith(f"{name}:", autoescape=True) for name in outline.system_attrs)))
            .order_by(SYSTEM_ATTRS.c.trial_system_attribute_id)).all():
        system.setdefault(attr.trial_id, []).append(attr)
    decoded = Decoded()
    params_at, attrs_at = 5 + 2 * objectives, 5 + 2 * objectives + 2 * len(outline.params)
    trials = []
    for row in rows:
        values = [stored_float(row[at], row[at + 1]) for at in range(5, params_at, 2) if row[at + 1] is not None]
        distributions = {name: decoded.distribution(row[at + 1])
                         for name, at in zip(outline.params, range(params_at, attrs_at, 2), strict=True)
                         if row[at + 1] is not None}
        trial = FrozenTrial(
            number=row.number, state=TrialState[row.state], value=None, values=values or None,
            datetime_start=decoded.local(row.datetime_start),
            datetime_complete=decoded.local(row.datetime_complete),
            params={name: distributions[name].to_external_repr(row[at])
                    for name, at in zip(outline.params, range(params_at, attrs_at, 2), strict=True)
                    if name in distributions},
            distributions=distributions,
            user_attrs={key: decoded.value(row[at]) for at, key in enumerate(outline.user_attrs, attrs_at)
                        if row[at] is not None},
            system_attrs={a.key: decoded.value(a.value_json) for a in system.get(row.trial_id, [])},
            intermediate_values={}, trial_id=row.trial_id)
        trials.append(StoredTrial(study_id, row.trial_id, trial))
    return trials


# The user attrs every trial is read with: its family (automl.storage.schema.family_of), the scores
# and cost the report's scatter figures draw, and what the counts of show and report look at.
OUTLINE_ATTRS = (TrialAttr.FAMILY, TrialAttr.VAL_ACCURACY, TrialAttr.TEST_ACCURACY, TrialAttr.FLOPS,
                 TrialAttr.OVER_BUDGET, TrialAttr.FAIL_REASON)
# Optuna keeps a trial's constraints (FrozenTrial.constraints) in system attrs ``constraints``
# (older studies) and ``constraints:NAME``: feasibility, so the front, needs them.
OUTLINE = Outline(tuple(str(attr) for attr in OUTLINE_ATTRS), (FAMILY_PARAM,), ("constraints",))
# A learning curve's stored JSON when a trial has none yet.
NO_CURVE = ("[]", "null")


class StudyOutline:
    """A study's trials for a view: ``trials``, every one in outline (see module), by number;
    ``curved``, those of them with a learning curve; ``full`` loads the ones a view prints or draws."""

    def __init__(self, study: optuna.Study, trials: Sequence[FrozenTrial], curved: Sequence[FrozenTrial],
                 load: Callable[[list[int]], list[FrozenTrial]]) -> None:
        self.study = study
        self.trials = list(trials)
        self.curved = list(curved)
        self._load = load

    @classmethod
    def read(cls, study: optuna.Study) -> StudyOutline:
        """The study's trials in outline, read from its database in one batched read."""
        backend = storage_backend(study)
        if not isinstance(backend, RDBStorage):
            return cls.holding(study, study.get_trials(deepcopy=False))
        tables = OptunaTables(backend.engine)
        study_id = backend.get_study_id_from_name(study.study_name)
        with tables.engine.connect() as connection:
            stored = read_outlines(connection, study_id, OUTLINE, len(study.directions))
            curved = set(tables.trials_with_user_attr(connection, study_id, TrialAttr.VAL_CURVE, unless=NO_CURVE))
        ids = {row.trial.number: row.trial_id for row in stored}

        def load(numbers: list[int]) -> list[FrozenTrial]:
            with tables.engine.connect() as connection:
                return [row.trial for row in tables.load(connection, trial_ids=[ids[number] for number in numbers])]

        return cls(study, [row.trial for row in stored], [row.trial for row in stored if row.trial_id in curved], load)

    @classmethod
    def holding(cls, study: optuna.Study, trials: Sequence[FrozenTrial]) -> StudyOutline:
        """The view of trials already read in full (a running study's, Optuna's in-memory ones)."""
        by_number = {trial.number: trial for trial in trials}
        return cls(study, trials, [trial for trial in trials if trial.user_attrs.get(TrialAttr.VAL_CURVE)],
                   lambda numbers: [by_number[number] for number in numbers])

    def full(self, trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
        """``trials`` (outlines of this study's trials) read in full, in the order of their numbers."""
        numbers = sorted({trial.number for trial in trials})
        return sorted(self._load(numbers), key=lambda trial: trial.number) if numbers else []

    @cached_property
    def started(self) -> list[FrozenTrial]:
        """The trials but the queued ones (automl.storage.schema.started_trials)."""
        return started_trials(self.study, self.trials)

    @property
    def queued(self) -> int:
        return sum(trial.state == TrialState.WAITING for trial in self.trials)

    # Each view asks these of every trial, several times: found once.
    @cached_property
    def completed(self) -> list[FrozenTrial]:
        """The completed trials (automl.storage.schema.is_completed), in outline."""
        return [trial for trial in self.trials if is_completed(trial)]

    @cached_property
    def trained(self) -> list[FrozenTrial]:
        """The trained trials (automl.storage.schema.is_trained: completed and feasible), in outline."""
        return [trial for trial in self.completed if is_feasible(trial)]

    @cached_property
    def over_budget(self) -> list[FrozenTrial]:
        """The completed trials that are not trained (over a [budget] limit or the time budget,
        refused untrained or trained and found over it), in outline."""
        return [trial for trial in self.completed if not is_feasible(trial)]

    @cached_property
    def front(self) -> list[FrozenTrial]:
        """The front (automl.storage.schema.pareto_front), in outline."""
        return pareto_front(self.study, self.trained)

    @cached_property
    def front_numbers(self) -> set[int]:
        return {trial.number for trial in self.front}
