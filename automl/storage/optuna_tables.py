"""Optuna's database tables, read and written in batches with SQLAlchemy Core.

Optuna's public storage API reads a study's trials all at once or one at a time, and writes each
parameter and attribute in a transaction of its own. A worker needs what it lacks: the state of
every trial in one query (to reload only the trials that changed, automl.storage.read_once), the
trials that changed in one batch, and a trial's held writes in one transaction
(automl.storage.held_writes); the views need every trial with a few of its rows (in outline,
automl.storage.outline) and which trials hold an attribute. So those statements are written here,
against the tables Optuna's RDBStorage creates, declared below with the columns automl touches,
never through Optuna's own (private) model classes. ``OptunaTables`` checks on first use of a
database that its tables have those columns and the unique keys the upserts rely on, and refuses a
database that has not, naming what is missing (tests/storage/test_optuna_tables.py runs the check
and compares every trial read here with Optuna's own reading, on SQLite and PostgreSQL).

Two stored conventions of Optuna's are read as Optuna reads them: trial times are naive UTC (shown
in local time), and an infinite or NaN value is stored as a type beside a NULL value.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, overload

import sqlalchemy
from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import Column, DateTime, Enum, Float, Integer, MetaData, String, Table, Text
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Connection, Engine

from automl.errors import UsageError

_METADATA = MetaData()  # never created: Optuna creates the tables, automl only uses them
STUDIES = Table("studies", _METADATA, Column("study_id", Integer, primary_key=True), Column("study_name", String))
# The enumerations Optuna stores by name (PostgreSQL and MySQL as enum types of their own, which a
# string compared or written must not be cast away from): TrialState, and a value's type.
_TRIAL_STATE = Enum(*TrialState.__members__, name="trialstate", create_constraint=False)
_VALUE_TYPE = Enum("FINITE", "INF_POS", "INF_NEG", name="trialvaluetype", create_constraint=False)
TRIALS = Table("trials", _METADATA, Column("trial_id", Integer, primary_key=True), Column("number", Integer),
               Column("study_id", Integer), Column("state", _TRIAL_STATE),
               Column("datetime_start", DateTime), Column("datetime_complete", DateTime))
PARAMS = Table("trial_params", _METADATA, Column("param_id", Integer, primary_key=True), Column("trial_id", Integer),
               Column("param_name", String), Column("param_value", Float), Column("distribution_json", Text))
VALUES = Table("trial_values", _METADATA, Column("trial_value_id", Integer, primary_key=True),
               Column("trial_id", Integer), Column("objective", Integer), Column("value", Float),
               Column("value_type", _VALUE_TYPE))
INTERMEDIATE = Table("trial_intermediate_values", _METADATA,
                     Column("trial_intermediate_value_id", Integer, primary_key=True), Column("trial_id", Integer),
                     Column("step", Integer), Column("intermediate_value", Float),
                     Column("intermediate_value_type", String))  # the same, or NAN
USER_ATTRS, SYSTEM_ATTRS = (
    Table(f"trial_{kind}_attributes", _METADATA, Column(f"trial_{kind}_attribute_id", Integer, primary_key=True),
          Column("trial_id", Integer), Column("key", String), Column("value_json", Text))
    for kind in ("user", "system"))
STUDY_SYSTEM_ATTRS = Table("study_system_attributes", _METADATA,
                           Column("study_system_attribute_id", Integer, primary_key=True), Column("study_id", Integer),
                           Column("key", String), Column("value_json", Text))
HEARTBEATS = Table("trial_heartbeats", _METADATA, Column("trial_heartbeat_id", Integer, primary_key=True),
                   Column("trial_id", Integer), Column("heartbeat", DateTime))
# The unique keys the upserts conflict on: for an attribute the owner's id (trial or study) and the key.
UNIQUE_KEYS = {USER_ATTRS.name: ("trial_id", "key"), SYSTEM_ATTRS.name: ("trial_id", "key"),
               STUDY_SYSTEM_ATTRS.name: ("study_id", "key"), VALUES.name: ("trial_id", "objective"),
               HEARTBEATS.name: ("trial_id",)}
_STORED_FLOATS = {"FINITE": None, "INF_POS": math.inf, "INF_NEG": -math.inf, "NAN": math.nan}
# The dialects whose insert can update on conflict, as Optuna's own attribute writes do.
_UPSERTS: dict[str, Callable[[Table], Any]] = {
    "sqlite": lambda table: sqlite.insert(table), "postgresql": lambda table: postgresql.insert(table),
    "mysql": lambda table: mysql.insert(table)}
# SQLite's default cap on bound variables is 32766 (999 before 3.32): ids go in chunks well below,
# and the rows an insert or upsert writes (five values at most) in statements of 300.
_CHUNK = 500
_STUDY_CHUNK = 5000
_ROWS_PER_STATEMENT = 300
# A trial's rows in the other tables, as a load reads them: the table, the column they are ordered
# by, and the columns read (parameters, values, intermediate values, user attrs, system attrs).
_CHILDREN = ((PARAMS, "param_id", "param_name", "param_value", "distribution_json"),
             (VALUES, "objective", "value", "value_type"),
             (INTERMEDIATE, "trial_intermediate_value_id", "step", "intermediate_value", "intermediate_value_type"),
             (USER_ATTRS, "trial_user_attribute_id", "key", "value_json"),
             (SYSTEM_ATTRS, "trial_system_attribute_id", "key", "value_json"))
# PostgreSQL: each trial's row, and beside it one JSON array (one parse) of its rows of each of
# _CHILDREN, each an array of arrays (of the columns read), in order. Built once: building and
# keying a statement of this size took a millisecond of a worker's CPU, more than reading a trial.
_AGGREGATED = sqlalchemy.select(TRIALS, sqlalchemy.func.json_build_array(*(
    sqlalchemy.select(sqlalchemy.func.json_agg(aggregate_order_by(
        sqlalchemy.func.json_build_array(*(table.c[name] for name in columns)), table.c[order])))
    .where(table.c.trial_id == TRIALS.c.trial_id).scalar_subquery() for table, order, *columns in _CHILDREN)))
_LOAD_BY_IDS = _AGGREGATED.where(TRIALS.c.trial_id == sqlalchemy.any_(
    sqlalchemy.bindparam("ids", type_=postgresql.ARRAY(Integer)))).order_by(TRIALS.c.trial_id)
# The study's row joined to its trials from an id on (OptunaTables.trial_states), built once.
_STATES = sqlalchemy.select(STUDIES.c.study_id, TRIALS.c.trial_id, TRIALS.c.state, TRIALS.c.datetime_start).select_from(
    STUDIES.outerjoin(TRIALS, sqlalchemy.and_(TRIALS.c.study_id == STUDIES.c.study_id,
                                              TRIALS.c.trial_id >= sqlalchemy.bindparam("lowest")))).where(
    STUDIES.c.study_id == sqlalchemy.bindparam("study_id"))
_CHECKED: set[str] = set()  # the databases (rendered URLs) whose layout this process has checked


class UnknownOptunaTables(UsageError):
    """The database's Optuna tables lack a column or key automl reads or writes."""


class StoredTrial(NamedTuple):
    study_id: int
    trial_id: int
    trial: FrozenTrial


class TrialStateRow(NamedTuple):
    """A trial's id, state and start time as stored (naive UTC: see local_time; None before it started)."""

    trial_id: int
    state: TrialState
    stored_start: datetime.datetime | None


class Decoded:
    """What one read decodes, each once: stored JSON per distinct text (distributions, and values
    that are no list or dict: a trial may change its own list, a string or number is shared
    safely), and the local time's offset per quarter hour of the stored UTC times (every time
    zone's offset is a multiple of 15 minutes and changes at a quarter hour of UTC)."""

    def __init__(self) -> None:
        self._distributions: dict[str, BaseDistribution] = {}
        self._values: dict[str, Any] = {}
        self._offsets: dict[tuple[int, int, int, int, int], datetime.timedelta] = {}

    def local(self, stored: datetime.datetime | None) -> datetime.datetime | None:
        """A stored (naive UTC) time as Optuna shows it: naive local time."""
        if stored is None:
            return None
        quarter = (stored.year, stored.month, stored.day, stored.hour, stored.minute // 15)
        offset = self._offsets.get(quarter)
        if offset is None:
            offset = local_time(stored) - stored
            self._offsets[quarter] = offset
        return stored + offset

    def distribution(self, stored: str) -> BaseDistribution:
        if stored not in self._distributions:
            self._distributions[stored] = json_to_distribution(stored)
        return self._distributions[stored]

    def value(self, stored: str) -> Any:
        found = self._values.get(stored, self)
        if found is self:
            found = json.loads(stored)
            if not isinstance(found, list | dict):
                self._values[stored] = found
        return found


@overload
def local_time(stored: datetime.datetime) -> datetime.datetime: ...
@overload
def local_time(stored: None) -> None: ...
def local_time(stored: datetime.datetime | None) -> datetime.datetime | None:
    """A stored trial time (naive UTC) as Optuna's storage returns it: naive local time (None: a
    time not stamped yet)."""
    return None if stored is None else stored.replace(tzinfo=datetime.UTC).astimezone().replace(tzinfo=None)


def stored_value(value: float) -> dict[str, float | str | None]:
    """An objective value as Optuna stores it (``stored_float`` reads it back): an infinity as its type
    beside a NULL value."""
    if math.isinf(value):
        return {"value": None, "value_type": "INF_POS" if value > 0 else "INF_NEG"}
    return {"value": value, "value_type": "FINITE"}


def stored_float(value: float | None, stored_type: str) -> float:
    special = _STORED_FLOATS[stored_type]
    if special is not None:
        return special
    assert value is not None, "a finite value stored as NULL"
    return float(value)


class OptunaTables:
    """Batched reads and writes of one database's Optuna tables (see module)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        key = engine.url.render_as_string(hide_password=False)
        if key not in _CHECKED:
            check_layout(engine)
            _CHECKED.add(key)

    def trial_states(self, connection: Connection, study_id: int, lowest: int) -> list[TrialStateRow] | None:
        """Each trial of the study with an id from ``lowest`` on, its state and start time (as
        stored); None if the study is gone. One query: the study's row joined to those trials."""
        rows = connection.execute(_STATES, {"lowest": lowest, "study_id": study_id}).all()
        if not rows:
            return None
        return [TrialStateRow(trial_id, TrialState[state], started) for _, trial_id, state, started in rows
                if trial_id is not None]

    def study_exists(self, connection: Connection, study_id: int) -> bool:
        return connection.execute(sqlalchemy.select(STUDIES.c.study_id).where(STUDIES.c.study_id == study_id)
                                  ).first() is not None

    def trial_rows(self, connection: Connection, trial_ids: Collection[int]) -> dict[int, tuple[int, TrialState]]:
        """The study id and state of each of the trials that exist."""
        found = {}
        for chunk in _chunks(trial_ids):
            rows = connection.execute(sqlalchemy.select(TRIALS.c.trial_id, TRIALS.c.study_id, TRIALS.c.state)
                                      .where(TRIALS.c.trial_id.in_(chunk)))
            found.update({trial_id: (study_id, TrialState[state]) for trial_id, study_id, state in rows})
        return found

    def study_distribution(self, connection: Connection, study_id: int, name: str) -> BaseDistribution | None:
        """The distribution some trial of the study stored for parameter ``name``, if any."""
        stored = connection.execute(
            sqlalchemy.select(PARAMS.c.distribution_json).join(TRIALS, TRIALS.c.trial_id == PARAMS.c.trial_id)
            .where(TRIALS.c.study_id == study_id, PARAMS.c.param_name == name).limit(1)).scalar()
        return None if stored is None else json_to_distribution(stored)

    def trials_with_user_attr(self, connection: Connection, study_id: int, key: str,
                              unless: Collection[str] = ()) -> list[int]:
        """The ids of the study's trials whose user attr ``key`` is set to a value other than the
        stored JSON texts ``unless`` (``"[]"``: an empty list), in id order; their values unread."""
        attrs = USER_ATTRS.c
        return list(connection.execute(
            sqlalchemy.select(attrs.trial_id).join(TRIALS, TRIALS.c.trial_id == attrs.trial_id)
            .where(TRIALS.c.study_id == study_id, attrs.key == key, attrs.value_json.not_in(unless))
            .order_by(attrs.trial_id)).scalars())

    def load(self, connection: Connection, study_id: int | None = None,
             trial_ids: Collection[int] = ()) -> list[StoredTrial]:
        """Whole trials, by id or (with ``study_id`` and no ids) every trial of a study, in id order.

        A whole study is read _STUDY_CHUNK trials at a time: the rows of a chunk are let go before
        the next is read, so a study of 50,000 trials never holds its million rows at once.
        """
        loaded: list[StoredTrial] = []
        if study_id is not None and not trial_ids:
            ids = connection.execute(sqlalchemy.select(TRIALS.c.trial_id).where(TRIALS.c.study_id == study_id)
                                     .order_by(TRIALS.c.trial_id)).scalars().all()
            for start in range(0, len(ids), _STUDY_CHUNK):
                within = TRIALS.c.trial_id.between(ids[start], ids[min(start + _STUDY_CHUNK, len(ids)) - 1])
                mine = sqlalchemy.select(TRIALS.c.trial_id).where(TRIALS.c.study_id == study_id, within)
                loaded += self._load(connection, sqlalchemy.and_(TRIALS.c.study_id == study_id, within),
                                     lambda table, mine=mine: table.c.trial_id.in_(mine))  # type: ignore[misc]
            return loaded
        for chunk in _chunks(sorted(trial_ids)):
            if self.engine.dialect.name == "postgresql":  # one statement, built once (_LOAD_BY_IDS)
                loaded += self._trials(connection.execute(_LOAD_BY_IDS, {"ids": chunk}).all())
                continue
            loaded += self._load(connection, TRIALS.c.trial_id.in_(chunk),
                                 lambda table, chunk=chunk: table.c.trial_id.in_(chunk))  # type: ignore[misc]
        return loaded

    def _load(self, connection: Connection, which: Any, children: Callable[[Table], Any]) -> list[StoredTrial]:
        """The trials ``which`` selects, with their rows of the other tables (``children`` selects
        those): on PostgreSQL in one statement, each trial's rows aggregated beside it into JSON
        arrays (a statement per load, not six: with many workers, each loading every trial the
        others finish, those round trips were most of what a read cost); elsewhere a statement per
        table. A trial's rows of each table in the order of their ids (its values: of objectives)."""
        if self.engine.dialect.name == "postgresql":
            return self._trials(connection.execute(_AGGREGATED.where(which).order_by(TRIALS.c.trial_id)).all())
        rows = connection.execute(sqlalchemy.select(TRIALS).where(which).order_by(TRIALS.c.trial_id)).all()
        if not rows:
            return []
        children_of: list[dict[int, list[Any]]] = []
        decoded = Decoded()
        for table, order, *columns in _CHILDREN:
            found: dict[int, list[Any]] = {}
            # all(): fetched at once, a row each costs a third of what iterating the result does.
            for trial_id, *fields in connection.execute(sqlalchemy.select(
                    table.c.trial_id, *(table.c[name] for name in columns)).where(children(table))
                    .order_by(table.c[order])).all():
                found.setdefault(trial_id, []).append(fields)
            children_of.append(found)
        return [_trial(row, [found.get(row.trial_id, []) for found in children_of], decoded) for row in rows]

    @staticmethod
    def _trials(rows: Sequence[Any]) -> list[StoredTrial]:
        """The trials of rows of _AGGREGATED (PostgreSQL)."""
        decoded = Decoded()
        return [_trial(row, [aggregated or [] for aggregated in row[-1]], decoded) for row in rows]

    def insert(self, connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert ``rows`` (dicts of column values) into ``table``: a statement per _ROWS_PER_STATEMENT
        rows (an executemany is a statement per row on psycopg)."""
        for start in range(0, len(rows), _ROWS_PER_STATEMENT):
            connection.execute(sqlalchemy.insert(table).values(rows[start:start + _ROWS_PER_STATEMENT]))

    def set_study_system_attrs(self, study_id: int, attrs: Mapping[str, Any]) -> bool:
        """Upsert ``attrs`` (key -> JSON-serializable value) on the study, in one transaction;
        False, writing nothing, if there is no such study."""
        with self.engine.begin() as connection:
            if not self.study_exists(connection, study_id):
                return False
            self.upsert_attrs(connection, STUDY_SYSTEM_ATTRS,
                              [(study_id, key, json.dumps(value)) for key, value in attrs.items()])
        return True

    def upsert_attrs(self, connection: Connection, table: Table, rows: list[tuple[int, str, str]]) -> None:
        """Insert or overwrite attributes of a trial or a study (``table``), each row the owner's id,
        the key and the value as JSON."""
        owner = UNIQUE_KEYS[table.name][0]
        self.upsert(connection, table, [{owner: owner_id, "key": key, "value_json": value}
                                        for owner_id, key, value in rows], ("value_json",))

    def upsert(self, connection: Connection, table: Table, rows: list[dict[str, Any]], updated: tuple[str, ...]
               ) -> None:
        """Insert ``rows`` (dicts of column values, SQL expressions allowed) into ``table``; a row
        whose unique key (UNIQUE_KEYS) is taken overwrites the ``updated`` columns of the one there.
        A statement per 300 rows on SQLite, PostgreSQL and MySQL, else an update (and an insert) per row."""
        key = UNIQUE_KEYS[table.name]
        if self.engine.dialect.name not in _UPSERTS:
            for row in rows:
                where = sqlalchemy.and_(*(table.c[column] == row[column] for column in key))
                if not connection.execute(sqlalchemy.update(table).where(where).values(
                        {column: row[column] for column in updated})).rowcount:
                    connection.execute(sqlalchemy.insert(table).values(row))
            return
        for start in range(0, len(rows), _ROWS_PER_STATEMENT):
            statement = _UPSERTS[self.engine.dialect.name](table).values(rows[start:start + _ROWS_PER_STATEMENT])
            if self.engine.dialect.name == "mysql":
                statement = statement.on_duplicate_key_update({name: statement.inserted[name] for name in updated})
            else:
                statement = statement.on_conflict_do_update(
                    index_elements=list(key), set_={name: statement.excluded[name] for name in updated})
            connection.execute(statement)

def _trial(row: Any, children: list[list[Any]], decoded: Decoded) -> StoredTrial:
    """A trial from its row and its rows of the _CHILDREN tables (each a list of their columns)."""
    params, values, steps, user, system = children
    own = {name: decoded.distribution(stored) for name, _, stored in params}
    trial = FrozenTrial(
        number=row.number, state=TrialState[row.state], value=None,
        values=[stored_float(value, stored_type) for value, stored_type in values] if values else None,
        datetime_start=decoded.local(row.datetime_start), datetime_complete=decoded.local(row.datetime_complete),
        params={name: own[name].to_external_repr(float(value)) for name, value, _ in params},
        distributions=own, user_attrs={key: decoded.value(stored) for key, stored in user},
        system_attrs={key: decoded.value(stored) for key, stored in system},
        intermediate_values={step: stored_float(value, stored_type) for step, value, stored_type in steps},
        trial_id=row.trial_id)
    return StoredTrial(row.study_id, row.trial_id, trial)


def _chunks(ids: Iterable[int]) -> list[list[int]]:
    listed = list(ids)
    return [listed[start:start + _CHUNK] for start in range(0, len(listed), _CHUNK)]


def check_layout(engine: Engine) -> None:
    """Raise UnknownOptunaTables unless every table above exists with its columns and unique keys."""
    inspector = sqlalchemy.inspect(engine)
    problems = []
    for table in _METADATA.sorted_tables:
        if not inspector.has_table(table.name):
            problems.append(f"no table {table.name}")
            continue
        columns = {column["name"] for column in inspector.get_columns(table.name)}
        problems += [f"table {table.name} has no column {name}" for name in table.c.keys() if name not in columns]
        key = UNIQUE_KEYS.get(table.name)
        if key and not any(tuple(unique["column_names"]) == key for unique in inspector.get_unique_constraints(
                table.name)):
            problems.append(f"table {table.name} has no unique key ({', '.join(key)})")
    if problems:
        where = engine.url.render_as_string(hide_password=True)
        raise UnknownOptunaTables(
            f"the Optuna tables in {where} are not laid out as automl reads and writes them: {'; '.join(problems)}. "
            "They were created by an Optuna release automl does not support, or changed by hand; automl "
            "supports the Optuna releases its package requires (pip show automl-pareto), and `optuna storage "
            f"upgrade --storage {where}` brings older tables up to date")
