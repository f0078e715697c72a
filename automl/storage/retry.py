"""A worker's storage calls that ride out a database outage: retried with backoff for a while.

A shared database has outages a worker should outlive: a PostgreSQL restart, a network blip,
SQLite's "database is locked" past its busy timeout. Optuna's RDBStorage raises on the first
failed query (its heartbeat thread then dies with a traceback, and its trial loop with an
UnboundLocalError). This layer retries every storage call that fails with a connection error,
waiting 0.5 s, 1 s, 2 s, ... (at most 10 s) between tries, for ``retry_s`` seconds in all (the
study file's ``[workers] storage_retry_s``). A pooled connection the server dropped is replaced on
the next try (the engine pre-pings). Past ``retry_s`` the call raises StorageUnreachable, and
every later call at once: the worker exits with one message, and its trial, left running without
heartbeats, is failed as stale and queued again by the other workers or the next run.

Only connection errors are retried: an error in what was asked (a missing trial, a finished one,
a constraint) is raised at once. SQLAlchemy tells them apart (``OperationalError``,
``InterfaceError``, a dropped connection); Optuna wraps a failed commit in StorageInternalError,
whose cause is looked at.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import optuna
import sqlalchemy.exc

from automl.errors import AutomlError

LOG = logging.getLogger(__name__)
T = TypeVar("T")
DEFAULT_RETRY_S = 120.0
FIRST_WAIT_S, LONGEST_WAIT_S = 0.5, 10.0

# The storage methods a worker calls (through Optuna's Study, trial loop and heartbeat thread).
RETRIED = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
    "get_study_id_from_name", "get_study_name_from_id", "get_study_directions", "get_study_user_attrs",
    "get_study_system_attrs", "get_all_studies", "create_new_trial", "_create_new_trial",
    "set_trial_param", "_set_trial_param", "get_trial_id_from_study_id_trial_number",
    "get_trial_number_from_id", "get_trial_param", "set_trial_state_values", "set_trial_intermediate_value",
    "set_trial_user_attr", "set_trial_system_attr", "get_trial", "get_all_trials", "_get_trials",
    "get_n_trials", "get_best_trial", "get_trial_params", "get_trial_user_attrs", "get_trial_system_attrs",
    "record_heartbeat", "_get_stale_trial_ids", "commit_held",
)


class StorageUnreachable(AutomlError):
    """The database stayed unreachable for longer than the worker's ``storage_retry_s``."""


def unreachable_in(error: BaseException) -> StorageUnreachable | None:
    """The StorageUnreachable that ``error`` was raised from or while handling, if any.

    Optuna's trial loop turns a storage error in its tell into an UnboundLocalError raised while
    handling it; the worker reports the outage, not that.
    """
    seen: BaseException | None = error
    while seen is not None and not isinstance(seen, StorageUnreachable):
        seen = seen.__cause__ or seen.__context__
    return seen


def transient_cause(error: BaseException) -> str | None:
    """Why the database could not be reached, if ``error`` or an error it was raised from is a lost,
    refused or locked connection; else None."""
    seen: BaseException | None = error
    while seen is not None:
        driver = str(getattr(seen, "orig", None) or seen).strip().splitlines()
        reason = driver[0][:200] if driver else type(seen).__name__
        if isinstance(seen, sqlalchemy.exc.DBAPIError) and seen.connection_invalidated:
            return reason
        if isinstance(seen, sqlalchemy.exc.OperationalError) and isinstance(seen.orig, sqlite3.Error):
            # SQLite's OperationalError also means a missing table or a bad file: only a lock is passing.
            return reason if "locked" in reason or "busy" in reason else None
        if isinstance(seen, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError,
                             sqlalchemy.exc.DisconnectionError)):
            return reason
        seen = seen.__cause__ or seen.__context__
    return None


class RetryingStorage(optuna.storages.RDBStorage):
    """An RDBStorage whose calls retry connection errors for ``retry_s`` seconds (see module)."""

    def __init__(self, *args: Any, retry_s: float = DEFAULT_RETRY_S, **kwargs: Any) -> None:
        self.retry_s = retry_s
        self._gave_up: str | None = None
        self._calls = threading.local()  # the depth of retried calls in this thread
        super().__init__(*args, **kwargs)

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        del state["_calls"]
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self._calls = threading.local()

    def _retrying(self, name: str, call: Callable[[], T]) -> T:
        # A call made inside another is retried by the outer one, as a whole.
        depth = getattr(self._calls, "depth", 0)
        if depth:
            return call()
        if self._gave_up is not None:
            raise StorageUnreachable(self._gave_up)
        self._calls.depth = 1
        try:
            return self._retry(name, call)
        finally:
            self._calls.depth = 0

    def _retry(self, name: str, call: Callable[[], T]) -> T:
        started, wait, warned = time.monotonic(), FIRST_WAIT_S, False
        while True:
            try:
                result = call()
            except Exception as error:
                reason = transient_cause(error)
                if reason is None:
                    raise
                waited = time.monotonic() - started
                if waited + wait > self.retry_s:
                    self._gave_up = (f"the study's database stayed unreachable for {waited:.0f} s "
                                     f"([workers] storage_retry_s = {self.retry_s:g}): {reason}. This worker "
                                     "stops; its running trial is queued again once its heartbeat is "
                                     "stale. Run again when the database is back: the queued trials resume")
                    raise StorageUnreachable(self._gave_up) from None
                if not warned:
                    LOG.warning(f"database unreachable ({reason}); retrying for up to {self.retry_s:g} s")
                    warned = True
                time.sleep(wait)
                wait = min(2 * wait, LONGEST_WAIT_S)
                continue
            if warned:
                LOG.warning(f"database reachable again after {time.monotonic() - started:.0f} s")
            return result

    def record_heartbeat(self, trial_id: int) -> None:
        # Optuna's heartbeat thread would die with a traceback; a missed beat is enough, as the
        # worker's own next call reports the outage.
        try:
            self._retrying("record_heartbeat", lambda: super(RetryingStorage, self).record_heartbeat(trial_id))
        except StorageUnreachable:
            pass


def _retried(name: str) -> Callable[..., Any]:
    def method(self: RetryingStorage, *args: Any, **kwargs: Any) -> Any:
        parent = getattr(super(RetryingStorage, self), name)
        return self._retrying(name, lambda: parent(*args, **kwargs))

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"{name}, retried on connection errors (see automl.storage.retry)."
    return method


for _name in RETRIED:
    if _name not in RetryingStorage.__dict__:
        setattr(RetryingStorage, _name, _retried(_name))
