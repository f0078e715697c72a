"""A worker's connection to a PostgreSQL server, as automl.storage.urls.open_storage opens it."""

from __future__ import annotations

import optuna
import sqlalchemy

from automl.storage.trial_queue import Requeue
from automl.storage.urls import Heartbeat, open_storage

_PREPARED = sqlalchemy.text("SELECT statement FROM pg_prepared_statements")


def test_a_worker_prepares_each_statement_at_its_first_run(postgres_url: str) -> None:
    """The server parses and plans a worker's statement once a connection, not at each of its
    first runs (psycopg prepares at the sixth by default); other processes keep psycopg's default."""
    optuna.create_study(study_name="prepared", storage=open_storage(postgres_url))
    statement = sqlalchemy.text("SELECT count(*) FROM trials WHERE study_id = :study")
    worker = open_storage(postgres_url, Heartbeat(1, 3, Requeue(0)))
    with worker.engine.connect() as connection:
        connection.execute(statement, {"study": 1})
        assert any("FROM trials WHERE study_id" in text for text in connection.execute(_PREPARED).scalars())
    with open_storage(postgres_url).engine.connect() as connection:
        connection.execute(statement, {"study": 1})
        assert not any("FROM trials WHERE study_id" in text for text in connection.execute(_PREPARED).scalars())
    worker.engine.dispose()
