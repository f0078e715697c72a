"""Opening study storage from a SQLAlchemy URL, with errors that never show a password."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
import sqlalchemy
from sqlalchemy.engine import make_url

from automl.errors import UsageError
from automl.storage import sqlite
from automl.storage._optuna import storage_backend
from automl.storage.retry import DEFAULT_RETRY_S

URL_EXAMPLES = "sqlite:///automl.db or postgresql+psycopg://user:password@host/dbname"
# Where --storage is read from when not given: keeps a password off command lines and `ps`.
STORAGE_ENV = "AUTOML_STORAGE"


def storage_from_env(fallback: str | None = None) -> str | None:
    """The URL in ``AUTOML_STORAGE``, else ``fallback``."""
    return os.environ.get(STORAGE_ENV) or fallback


@dataclass(frozen=True)
class Heartbeat:
    """Optuna's heartbeat for workers: a trial silent for ``grace_period`` s goes to ``on_stale``;
    a worker's storage retries an unreachable database for ``retry_s`` s (automl.storage.retry)."""

    interval: int
    grace_period: int
    on_stale: Callable[[optuna.Study, optuna.trial.FrozenTrial], None]
    retry_s: float = DEFAULT_RETRY_S


def redact(url: str) -> str:
    """The URL with any password masked, safe to print or log."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return "<unparsable storage URL>"


def pasteable(command: str, url: str) -> str:
    """``command`` (an automl command line) naming the storage ``url``, for the user to paste: with
    ``--storage URL``; or, where ``url`` is AUTOML_STORAGE's (which the pasted command reads too) or
    holds a password (never printed), without it and with a shell comment saying what to set."""
    if os.environ.get(STORAGE_ENV) == url:
        return f"{command}  # with {STORAGE_ENV} set as here"
    try:
        secret = make_url(url).password is not None
    except sqlalchemy.exc.ArgumentError:
        secret = True  # redact shows none of it
    if secret:
        return f"{command}  # with {STORAGE_ENV} set to the storage URL (its password is not shown)"
    return f"{command} --storage {url}"


def open_storage(url: str, heartbeat: Heartbeat | None = None, must_exist: bool = False) -> optuna.storages.RDBStorage:
    """Connect to (and if needed create) the Optuna tables behind ``url``.

    With ``heartbeat`` the storage is for a worker (automl.storage.worker_storage wraps it):
    running trials send heartbeats, and on SQLite every transaction takes the write lock up front
    (see automl.storage.sqlite). With
    ``must_exist`` (commands that only read) an SQLite file that does not exist is refused, not
    created. Raises UsageError for an unusable URL (see sqlite.check_usable) or one that cannot
    be opened.
    """
    try:
        make_url(url)
    except sqlalchemy.exc.ArgumentError:
        # Not parsable, so redact() cannot find the password in it: never echo the string.
        raise UsageError(f"storage URL is not a SQLAlchemy URL; expected e.g. {URL_EXAMPLES}") from None
    sqlite.check_usable(url, must_exist)
    on_sqlite = sqlite.is_file_sqlite(url)
    # A long-lived process's pooled connection may have been dropped by the server since its last
    # call; pre-ping replaces it instead of failing the next query.
    engine_kwargs: dict[str, Any] = sqlite.engine_kwargs() if on_sqlite else {"pool_pre_ping": True}
    worker_on_server = heartbeat is not None and not on_sqlite
    if worker_on_server:
        # A worker holds one connection to a database server (docs/scale-out.md counts on it): its
        # storage makes one call at a time (automl.storage.retry.retried); SQLAlchemy's default pool
        # keeps up to 5 and opens up to 15. The one more allowed is for Optuna creating its tables
        # in a new database, which it does on a second connection inside its first, closed when
        # returned. No pre-ping, a round trip before each transaction: the worker's retry replaces
        # a dropped connection at once (automl.storage.retry).
        engine_kwargs = {"pool_size": 1, "max_overflow": 1}
        if make_url(url).get_driver_name() == "psycopg":
            # Each statement prepared at its first run, not its sixth (psycopg's default): a worker
            # runs each of its statements a few times a trial, and the server parsed and planned a
            # load of whole trials (automl.storage.trial_documents) anew at each of its first runs.
            engine_kwargs["connect_args"] = {"prepare_threshold": 0}
    beats: dict[str, Any] = {}
    if heartbeat is not None:
        beats = dict(heartbeat_interval=heartbeat.interval, grace_period=heartbeat.grace_period,
                     heartbeat_stale_trial_callback=heartbeat.on_stale)
    try:
        # Optuna's own schema check reads the version on a second connection while it holds a first.
        storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                             skip_compatibility_check=worker_on_server, **beats)
        if worker_on_server:
            check_schema(storage)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as exc:
        reason = str(exc).splitlines()[0]
        raise UsageError(f"cannot open storage {redact(url)}: {reason}") from None
    if on_sqlite:
        sqlite.configure_engine(storage.engine, immediate=heartbeat is not None)
    return storage


def check_schema(storage: optuna.storages.RDBStorage) -> None:
    """Raise UsageError unless the storage's tables have the schema the installed Optuna writes,
    as Optuna checks when it opens a storage, one connection at a time."""
    current, head = storage.get_current_version(), storage.get_head_version()
    if current == head:
        return
    where = redact(storage.url)
    if current in storage.get_all_versions():
        raise UsageError(f"the Optuna tables in {where} have an older schema ({current}) than Optuna "
                         f"{optuna.__version__} writes ({head}); upgrade them: optuna storage upgrade --storage URL")
    raise UsageError(f"the Optuna tables in {where} have a schema ({current}) that Optuna {optuna.__version__} does "
                     "not know: a newer Optuna created them; install that release (pip install -U optuna)")


def existing_study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    return [summary.study_name for summary in optuna.get_all_study_summaries(storage)]


def storage_url_of(study: optuna.Study) -> str:
    """The SQLAlchemy URL of the database ``study`` is stored in; UsageError for a study in memory."""
    url = getattr(storage_backend(study), "url", None)
    if not isinstance(url, str):
        raise UsageError(f"study {study.study_name!r} is not stored in a database (its storage is "
                         f"{type(storage_backend(study)).__name__}); automl's studies are: load one with "
                         "optuna.load_study(study_name=NAME, storage=URL)")
    return url


def load_study(name: str, url: str, storage: optuna.storages.BaseStorage | None = None) -> optuna.Study:
    """Load a study by name, or say which studies the storage holds; creates no storage. ``storage``:
    one already open on ``url`` to load it through (by default Optuna's)."""
    storage = storage or open_storage(url, must_exist=True)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = ", ".join(existing_study_names(storage)) or "none"
        raise UsageError(f"no study named {name!r} in {redact(url)}; studies there: {names}") from None
