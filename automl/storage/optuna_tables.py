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
The rows read become Optuna's trials in automl.storage.stored_trials (whose names this module
exports too, as the one place the tables are read from); on PostgreSQL a load reads each trial as
one document (automl.storage.trial_documents).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import sqlalchemy
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState
from sqlalchemy import Column, DateTime, Enum, Float, Integer, MetaData, String, Table, Text
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from automl.errors import UsageError
from automl.storage.stored_trials import (
    STATE_OF,
    Decoded,
    StoredTrial,
    TrialStateRow,
    local_time,
    stored_float,
    stored_value,
    trial_from_rows,
)
from automl.storage.trial_documents import documents_by_ids, documents_of_study

__all__ = ["HEARTBEATS", "INTERMEDIATE", "PARAMS", "STUDIES", "STUDY_SYSTEM_ATTRS", "SYSTEM_ATTRS", "TRIALS",
           "UNIQUE_KEYS", "USER_ATTRS", "VALUES", "Decoded", "OptunaTables", "StoredTrial", "TrialStateRow",
           "UnknownOptunaTables", "check_layout", "local_time", "reading", "stored_float", "stored_value"]

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
# The dialects whose insert can update on conflict, as Optuna's own attribute writes do.
_UPSERTS: dict[str, Callable[[Table], Any]] = {
    "sqlite": lambda table: sqlite.insert(table), "postgresql": lambda table: postgresql.insert(table),
    "mysql": lambda table: mysql.insert(table)}
# SQLite's default cap on bound variables is 32766 (999 before 3.32): ids go in chunks well below.
_CHUNK = 500
_STUDY_CHUNK = 5000
# A trial's rows in the other tables, as a load reads them (on PostgreSQL in the same order, in one
# statement: automl.storage.trial_documents): the table, the column they are ordered by, and the
# columns read (parameters, values, intermediate values, user attrs, system attrs).
_CHILDREN = ((PARAMS, "param_id", "param_name", "param_value", "distribution_json"),
             (VALUES, "objective", "value", "value_type"),
             (INTERMEDIATE, "trial_intermediate_value_id", "step", "intermediate_value", "intermediate_value_type"),
             (USER_ATTRS, "trial_user_attribute_id", "key", "value_json"),
             (SYSTEM_ATTRS, "trial_system_attribute_id", "key", "value_json"))
# The study's row joined to its trials from an id on, but the queued ones up to another id
# (OptunaTables.trial_states), built once; the state read as the string it is (SQLAlchemy's Enum
# checks each against its names, a third of the CPU of a listing of thousands of trials) and looked
# up in STATE_OF.
_STATE_TEXT = sqlalchemy.type_coerce(TRIALS.c.state, String)
_STATES = sqlalchemy.select(STUDIES.c.study_id, TRIALS.c.trial_id, TRIALS.c.number, _STATE_TEXT,
                            TRIALS.c.datetime_start).select_from(
    STUDIES.outerjoin(TRIALS, sqlalchemy.and_(
        TRIALS.c.study_id == STUDIES.c.study_id, TRIALS.c.trial_id >= sqlalchemy.bindparam("lowest"),
        sqlalchemy.or_(TRIALS.c.state != TrialState.WAITING.name,
                       TRIALS.c.trial_id > sqlalchemy.bindparam("queued_after"))))).where(
    STUDIES.c.study_id == sqlalchemy.bindparam("study_id"))
_STATE_ROW = functools.partial(tuple.__new__, TrialStateRow)  # a TrialStateRow of a tuple, in C
# Statements a worker makes several times a trial, built once (see automl.storage.trial_states).
_STUDY = sqlalchemy.select(STUDIES.c.study_id).where(STUDIES.c.study_id == sqlalchemy.bindparam("study"))
_TRIAL_ROWS = sqlalchemy.select(TRIALS.c.trial_id, TRIALS.c.study_id, _STATE_TEXT).where(
    TRIALS.c.trial_id.in_(sqlalchemy.bindparam("ids", expanding=True)))
_STUDY_DISTRIBUTION = sqlalchemy.select(PARAMS.c.distribution_json).join(
    TRIALS, TRIALS.c.trial_id == PARAMS.c.trial_id).where(
    TRIALS.c.study_id == sqlalchemy.bindparam("study"), PARAMS.c.param_name == sqlalchemy.bindparam("name")).limit(1)
_CHECKED: set[str] = set()  # the databases (rendered URLs) whose layout this process has checked


class UnknownOptunaTables(UsageError):
    """The database's Optuna tables lack a column or key automl reads or writes."""


class OptunaTables:
    """Batched reads and writes of one database's Optuna tables (see module)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        key = engine.url.render_as_string(hide_password=False)
        if key not in _CHECKED:
            check_layout(engine)
            _CHECKED.add(key)

    def trial_states(self, connection: Connection, study_id: int, lowest: int,
                     queued_after: int = -1) -> list[TrialStateRow] | None:
        """Each trial of the study with an id from ``lowest`` on, but the queued ones with an id up
        to ``queued_after``: its number, state and start time (as stored); None if the study is
        gone. One query: the study's row joined to those trials."""
        rows = connection.execute(_STATES, {"lowest": lowest, "queued_after": queued_after,
                                            "study_id": study_id}).all()
        if not rows:
            return None
        if rows[0][1] is None:  # the study's row alone: no trial matched
            return []
        # Transposed and zipped back together without a Python call a row: a named tuple's own
        # constructor was half of what a listing (hundreds of rows, several times a trial) cost.
        _, trial_ids, numbers, states, starts = zip(*rows, strict=True)
        return list(map(_STATE_ROW, zip(trial_ids, numbers, map(STATE_OF.__getitem__, states), starts, strict=True)))

    def study_exists(self, connection: Connection, study_id: int) -> bool:
        return connection.execute(_STUDY, {"study": study_id}).first() is not None

    def trial_rows(self, connection: Connection, trial_ids: Collection[int]) -> dict[int, tuple[int, TrialState]]:
        """The study id and state of each of the trials that exist."""
        found = {}
        for chunk in _chunks(trial_ids):
            rows = connection.execute(_TRIAL_ROWS, {"ids": chunk})
            found.update({trial_id: (study_id, STATE_OF[state]) for trial_id, study_id, state in rows})
        return found

    def study_distribution(self, connection: Connection, study_id: int, name: str) -> BaseDistribution | None:
        """The distribution some trial of the study stored for parameter ``name``, if any."""
        stored = connection.execute(_STUDY_DISTRIBUTION, {"study": study_id, "name": name}).scalar()
        return None if stored is None else Decoded.distribution(stored)

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
        documents = self.engine.dialect.name == "postgresql"  # one statement a chunk (trial_documents)
        if study_id is not None and not trial_ids:
            ids = connection.execute(sqlalchemy.select(TRIALS.c.trial_id).where(TRIALS.c.study_id == study_id)
                                     .order_by(TRIALS.c.trial_id)).scalars().all()
            for start in range(0, len(ids), _STUDY_CHUNK):
                low, high = ids[start], ids[min(start + _STUDY_CHUNK, len(ids)) - 1]
                if documents:
                    loaded += documents_of_study(connection, study_id, low, high)
                    continue
                within = TRIALS.c.trial_id.between(low, high)
                mine = sqlalchemy.select(TRIALS.c.trial_id).where(TRIALS.c.study_id == study_id, within)
                loaded += self._load(connection, sqlalchemy.and_(TRIALS.c.study_id == study_id, within),
                                     lambda table, mine=mine: table.c.trial_id.in_(mine))  # type: ignore[misc]
            return loaded
        for chunk in _chunks(sorted(trial_ids)):
            if documents:
                loaded += documents_by_ids(connection, chunk)
                continue
            loaded += self._load(connection, TRIALS.c.trial_id.in_(chunk),
                                 lambda table, chunk=chunk: table.c.trial_id.in_(chunk))  # type: ignore[misc]
        return loaded

    def _load(self, connection: Connection, which: Any, children: Callable[[Table], Any]) -> list[StoredTrial]:
        """The trials ``which`` selects, with their rows of the other tables (``children`` selects
        those), a statement per table (PostgreSQL reads them in one: automl.storage.trial_documents). A
        trial's rows of each table in the order of their ids (its values: of objectives)."""
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
        return [trial_from_rows(row, [found.get(row.trial_id, []) for found in children_of], decoded) for row in rows]

    def insert(self, connection: Connection, table: Table, rows: list[dict[str, Any]],
               server_now: tuple[str, ...] = ()) -> None:
        """Insert ``rows`` (dicts of the same columns' values) into ``table``, with the ``server_now``
        columns stamped with the database's clock: one statement (see _writing)."""
        self._write(connection, table, rows, None, server_now)

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

    def upsert(self, connection: Connection, table: Table, rows: list[dict[str, Any]], updated: tuple[str, ...],
               server_now: tuple[str, ...] = ()) -> None:
        """Insert ``rows`` (dicts of the same columns' values) into ``table``, with the ``server_now``
        columns stamped with the database's clock; a row whose unique key (UNIQUE_KEYS) is taken
        overwrites the ``updated`` columns of the one there. One statement on SQLite, PostgreSQL and
        MySQL (see _writing), else an update (and an insert) per row."""
        self._write(connection, table, rows, updated, server_now)

    def _write(self, connection: Connection, table: Table, rows: list[dict[str, Any]],
               updated: tuple[str, ...] | None, server_now: tuple[str, ...]) -> None:
        if not rows:
            return
        dialect, now = self.engine.dialect.name, {column: sqlalchemy.func.now() for column in server_now}
        if updated is not None and dialect not in _UPSERTS:
            key = UNIQUE_KEYS[table.name]
            for row in rows:
                where = sqlalchemy.and_(*(table.c[column] == row[column] for column in key))
                if not connection.execute(sqlalchemy.update(table).where(where).values(
                        {column: ({**row, **now})[column] for column in updated})).rowcount:
                    connection.execute(sqlalchemy.insert(table).values({**row, **now}))
            return
        columns = tuple(rows[0])
        statement = _writing(dialect, table.name, columns, updated, server_now)
        if dialect == "postgresql":  # an array holds one type: a float column's ints become floats
            connection.execute(statement, {column: [row[column] for row in rows] if not isinstance(
                table.c[column].type, Float) else [None if row[column] is None else float(row[column]) for row in rows]
                for column in columns})
        else:
            connection.execute(statement, rows)  # one statement, run for each row by the driver


@functools.cache
def _writing(dialect: str, table_name: str, columns: tuple[str, ...], updated: tuple[str, ...] | None,
             server_now: tuple[str, ...]) -> Any:
    """The statement that inserts (or, with ``updated``, upserts) rows of ``columns`` into a table,
    built once: SQLAlchemy compiles a statement again for every call whose rows are in its VALUES
    (a statement of them has no cache key): 7-9% of the CPU of 128 workers. On PostgreSQL the rows go as
    one array per column, unnested: one statement whatever their number, which the driver prepares
    (psycopg runs an executemany as a statement per row); elsewhere the driver runs it per row."""
    table = _METADATA.tables[table_name]
    statement: Any  # a dialect's own insert (its upsert clauses), or the generic one
    if dialect == "postgresql":
        rows = sqlalchemy.select(*(sqlalchemy.func.unnest(sqlalchemy.bindparam(
            column, type_=postgresql.ARRAY(table.c[column].type))) for column in columns),
            *(sqlalchemy.func.now() for _ in server_now))
        statement = postgresql.insert(table).from_select([*columns, *server_now], rows)
    else:
        statement = (sqlalchemy.insert(table) if updated is None else _UPSERTS[dialect](table)).values(
            {column: sqlalchemy.func.now() for column in server_now})
    if updated is None:
        return statement
    if dialect == "mysql":
        return statement.on_duplicate_key_update({name: statement.inserted[name] for name in updated})
    return statement.on_conflict_do_update(index_elements=list(UNIQUE_KEYS[table_name]),
                                           set_={name: statement.excluded[name] for name in updated})


def reading(engine: Engine) -> Connection:
    """A connection to read with, not to write: on PostgreSQL in autocommit, without the BEGIN and
    ROLLBACK a transaction costs (a read of a few trials' states took 0.29 ms of client and 0.24 ms
    of server CPU in a transaction, 0.24 and 0.15 without). Each statement reads a snapshot of its
    own, as it does in a transaction of PostgreSQL's default isolation (READ COMMITTED)."""
    connection = engine.connect()
    if engine.dialect.name == "postgresql":
        return connection.execution_options(isolation_level="AUTOCOMMIT")
    return connection


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
