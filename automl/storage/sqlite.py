"""SQLite for several local workers and a dashboard at once, without "database is locked".

Two settings carry it, chosen because the multi-worker tests fail without them:

- WAL journal: readers (the dashboard, ``automl show``) read a snapshot and never block the
  writers, and writers never block them.
- ``BEGIN IMMEDIATE`` with a busy timeout for the workers: Optuna reads a row and then writes it in
  one transaction (popping a queued trial, recording a heartbeat). A deferred transaction that
  upgrades from reading to writing after another process committed fails at once with
  SQLITE_BUSY, whatever the busy timeout; taking the write lock up front makes such transactions
  wait their turn instead.

A WAL database is the file plus its ``-wal`` file until a checkpoint moves the log into the file,
which SQLite does when the last connection closes. Every engine this module configured is closed
when the process exits (close_engines), after a checkpoint that does not wait for other processes'
readers: once ``automl run``, ``automl worker`` or the dashboard has exited, the ``.db`` file alone
holds the study, and a copy of it (a backup, scp to a laptop) is the whole study.

SQLite stays a one-machine store: WAL needs shared memory, so not over a network file system.
Use PostgreSQL for workers on several machines.
"""

from __future__ import annotations

import atexit
import contextlib
import sqlite3
import weakref
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy.engine import Engine, make_url

from automl.errors import UsageError

# Long enough to outwait any other worker's transaction; a stuck writer still surfaces as an error.
BUSY_TIMEOUT_S = 60
# The engines configure_engine set up, closed at exit; weak, so a storage dropped earlier is not kept.
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def is_file_sqlite(url: str) -> bool:
    """Whether ``url`` names an SQLite database file (not an in-memory one)."""
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")


def is_memory_sqlite(url: str) -> bool:
    """Whether ``url`` names an in-memory SQLite database (``sqlite://``, ``sqlite:///:memory:``,
    a ``mode=memory`` URI)."""
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and (
        not is_file_sqlite(url) or parsed.query.get("mode") == "memory" or ":memory:" in str(parsed.database))


def check_usable(url: str, must_exist: bool) -> None:
    """Refuse, with what to do instead, an SQLite URL that would lose the study or cannot be opened.

    An in-memory database lives in one connection of one process: the study ``automl run`` creates
    in it is gone before its workers (other processes) look for it. A folder cannot be a database
    file. With ``must_exist`` (commands that only read a study) a missing file is refused instead of
    created empty. Raises UsageError (exit code 2) before anything is created.
    """
    if make_url(url).get_backend_name() != "sqlite":
        return
    if is_memory_sqlite(url):
        raise UsageError("storage sqlite:///:memory: (an in-memory database) cannot hold a study: each process "
                         "(the run, each worker, the dashboard) opens its own empty one, so the study would "
                         "be lost. Use a file, e.g. storage = \"sqlite:///automl.db\" or --storage "
                         "sqlite:///automl.db")
    path = Path(make_url(url).database or "")
    if path.is_dir():
        raise UsageError(f"storage {url}: {path} is a directory, not an SQLite file; name a file in it, "
                         f"e.g. sqlite:///{path / 'automl.db'}")
    if must_exist and not path.exists():
        raise UsageError(f"no storage at {path}: the file does not exist (nothing was created). Pass the "
                         "study's storage with --storage or AUTOML_STORAGE, or create the study first "
                         "with automl run STUDY.toml")


def engine_kwargs() -> dict[str, Any]:
    """Arguments for ``create_engine``: the busy timeout of the DB-API connection."""
    return {"connect_args": {"timeout": BUSY_TIMEOUT_S}}


def configure_engine(engine: Engine, immediate: bool) -> None:
    """Switch ``engine`` to WAL and, for writers (``immediate``), to ``BEGIN IMMEDIATE``.

    Optuna creates the engine itself, so the listeners go on afterwards and the connections it
    pooled meanwhile are dropped.
    """

    @sqlalchemy.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        if immediate:
            # Stop the sqlite3 module from issuing its own deferred BEGIN; "begin" below does it.
            dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL is still safe against corruption and saves an fsync per commit.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    if immediate:
        @sqlalchemy.event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()
    _ENGINES.add(engine)


@atexit.register
def close_engines() -> None:
    """Checkpoint the WAL of every SQLite file this process opened into the file, and close the
    engines' connections (the last connection to a file to close removes its ``-wal`` file).

    The checkpoint is PASSIVE: it copies what no other process is still reading and never waits,
    so a dashboard left open cannot hold up an exit. Run at exit; an error (a file deleted, a
    disk full) leaves the WAL as it is, which SQLite reads back on the next open.
    """
    for engine in list(_ENGINES):
        with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError, sqlite3.Error):
            # The DB-API connection itself: a PRAGMA inside the engine's BEGIN IMMEDIATE could not checkpoint.
            connection = engine.raw_connection()
            try:
                connection.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                connection.close()
            engine.dispose()
