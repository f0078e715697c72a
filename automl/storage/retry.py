"""A worker's storage calls that ride out a database outage: retried with backoff for a while.

A shared database has outages a worker should outlive: a PostgreSQL restart, a network blip,
SQLite's "database is locked" past its busy timeout. Optuna's RDBStorage raises on the first
failed query (its heartbeat thread then dies with a traceback, and its trial loop with an
UnboundLocalError). A worker's storage retries every call that fails with a connection error,
waiting 0.5 s, 1 s, 2 s, ... (at most 10 s) between tries, for ``retry_s`` seconds in all (the
study file's ``[workers] storage_retry_s``). A pooled connection the server dropped (a restart, an
idle timeout) is replaced by the pool: the first such failure of a call is retried at once and
quietly, as the engine's pre-ping would have, without its round trip before every transaction.
Past ``retry_s`` the call raises StorageUnreachable, and
every later call at once: the worker exits with one message, and its trial, left running without
heartbeats, is failed as stale and queued again by the other workers or the next run. The worker's
storage (automl.storage.worker_storage) runs each of its calls through one ``Retry``.

Only connection errors are retried: an error in what was asked (a missing trial, a finished one,
a constraint) is raised at once. SQLAlchemy tells them apart (``OperationalError``,
``InterfaceError``, a dropped connection); Optuna wraps a failed commit in StorageInternalError,
whose cause is looked at.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import sqlalchemy.exc

from automl.storage.lost import StorageLost

LOG = logging.getLogger(__name__)
T = TypeVar("T")
P = ParamSpec("P")
DEFAULT_RETRY_S = 120.0
FIRST_WAIT_S, LONGEST_WAIT_S = 0.5, 10.0


class StorageUnreachable(StorageLost):
    """The database stayed unreachable for longer than the worker's ``storage_retry_s``."""


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


def _dropped(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) is a connection SQLAlchemy found closed
    and took out of its pool."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, sqlalchemy.exc.DBAPIError) and seen.connection_invalidated:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class Retry:
    """Runs storage calls, retrying connection errors for ``retry_s`` seconds (see module).

    Once a call found the storage lost (automl.storage.lost: unreachable past ``retry_s``, the
    study or its file deleted), every later call raises that again at once: a worker stops on it,
    and Optuna's trial loop, which tells a failed trial before it lets the error through, must not
    log the trial as failed meanwhile.
    """

    def __init__(self, retry_s: float = DEFAULT_RETRY_S) -> None:
        self.retry_s = retry_s
        self._lost: StorageLost | None = None
        self._calls = threading.local()  # the depth of retried calls in this thread

    def __getstate__(self) -> dict[str, Any]:
        return {"retry_s": self.retry_s, "_lost": self._lost}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._calls = threading.local()

    def run(self, call: Callable[[], T]) -> T:
        """``call()``, retried; a call made inside another is retried by the outer one, as a whole."""
        if getattr(self._calls, "depth", 0):
            return call()
        if self._lost is not None:
            raise type(self._lost)(*self._lost.args)
        self._calls.depth = 1
        try:
            return self._retry(call)
        except StorageLost as lost:
            self._lost = lost
            raise
        finally:
            self._calls.depth = 0

    def _retry(self, call: Callable[[], T]) -> T:
        started, wait, warned, first = time.monotonic(), FIRST_WAIT_S, False, True
        while True:
            try:
                result = call()
            except Exception as error:
                reason = transient_cause(error)
                if reason is None:
                    raise
                if first and _dropped(error):
                    first = False
                    continue
                first = False
                waited = time.monotonic() - started
                if waited + wait > self.retry_s:
                    raise StorageUnreachable(
                        f"the study's database stayed unreachable for {waited:.0f} s ([workers] storage_retry_s "
                        f"= {self.retry_s:g}): {reason}. This worker stops; its running trial is queued again "
                        "once its heartbeat is stale. Run again when the database is back: the queued trials "
                        "resume") from None
                if not warned:
                    LOG.warning(f"database unreachable ({reason}); retrying for up to {self.retry_s:g} s")
                    warned = True
                time.sleep(wait)
                wait = min(2 * wait, LONGEST_WAIT_S)
                continue
            if warned:
                LOG.warning(f"database reachable again after {time.monotonic() - started:.0f} s")
            return result


class _Retrying(Protocol):
    retry: Retry

    @property
    def lock(self) -> AbstractContextManager[Any]: ...


S = TypeVar("S", bound=_Retrying)


def retried(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
    """The method, run through its object's ``retry`` and holding its ``lock``: its calls from
    several threads (a worker's trial loop and its heartbeat thread) run one at a time, so a
    worker's storage needs one database connection, not one per thread."""

    def call(storage: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        with storage.lock:
            return storage.retry.run(lambda: method(storage, *args, **kwargs))

    functools.update_wrapper(call, method)
    return call
