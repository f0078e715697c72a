"""SQLite for several local workers and a dashboard at once, without "database is locked".

Two settings carry it, chosen because the multi-worker tests fail without them:

- WAL journal: readers (the dashboard, ``automl show``) read a snapshot and never block the
  writers, and writers never block them.
- ``BEGIN IMMEDIATE`` with a busy timeout for the workers: Optuna reads a row and then writes it in
  one transaction (popping a queued trial, recording a heartbeat). A deferred transaction that
  upgrades from reading to writing after another process committed fails at once with
  SQLITE_BUSY, whatever the busy timeout; taking the write lock up front makes such transactions
  wait their turn instead.

SQLite stays a one-machine store: WAL needs shared memory, so not over a network file system.
Use PostgreSQL for workers on several machines.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy
from sqlalchemy.engine import Engine, make_url

# Long enough to outwait any other worker's transaction; a stuck writer still surfaces as an error.
BUSY_TIMEOUT_S = 60


def is_file_sqlite(url: str) -> bool:
    """Whether ``url`` names an SQLite database file (not an in-memory one)."""
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")


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
