"""A worker's writes to its trials, held in memory and committed together.

Optuna's RDBStorage commits each parameter and attribute in a transaction of its own; a trial
records about ten parameters and twenty attributes. Optuna has no batched write, so a worker's
storage (automl.storage.worker_storage) holds the writes to the trials it runs and commits them in
one transaction (automl.storage.optuna_tables): before it changes a trial's state, at each
heartbeat, when asked (automl.search.objective does before a trial trains), and before it reads
trials from the database once the oldest has been held a heartbeat interval (at every read, without
a heartbeat). benchmarks/worker_storage.py times a trial's storage work against Optuna's. This
process always reads its own writes (the worker's copy of a running trial carries them), other
processes (other workers, the dashboard) see them within a heartbeat interval, and a trial's end
commits them before its state changes. A worker killed meanwhile loses what it held since the last
commit, as it loses the trial. A read commits no sooner: a worker reads the study several times a
trial (MO-ASHA at each rung), and committing the running curve at each read cost a transaction a
read that MO-ASHA in no other worker saw sooner (its listing loads another worker's running trial
once a heartbeat interval, automl.storage.read_once).

Each write is checked as Optuna's would be where it is made (a value that is not JSON, a parameter
whose distribution contradicts the study's), not at the commit. A trial another worker ended
meanwhile takes no more writes: the commit drops them with a warning rather than fail, and with it
whatever read or heartbeat asked for it. A commit that fails (the database unreachable) holds its
writes again; the next commit retries them (automl.storage.retry retries the call itself).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.engine import Connection

from automl.errors import noun_form
from automl.storage.optuna_tables import PARAMS, SYSTEM_ATTRS, USER_ATTRS, OptunaTables

LOG = logging.getLogger(__name__)
PARAM, USER, SYSTEM = "param", "user", "system"
_TABLES = {USER: USER_ATTRS, SYSTEM: SYSTEM_ATTRS}
T = TypeVar("T")


class HeldWrites:
    """Parameters and attributes of running trials, waiting for one commit (see module).

    Not thread-safe by itself: the worker's storage calls it under its lock, which it holds
    through a commit, so a later value of a key never reaches the database before an earlier one.
    """

    def __init__(self) -> None:
        # (PARAM, USER or SYSTEM, trial id, key) -> the value to store: for a parameter its internal
        # value and distribution JSON, for an attribute its JSON. A key written again keeps its last.
        self._held: dict[tuple[str, int, str], Any] = {}
        self._since = 0.0  # when the oldest write held now was made (time.monotonic)

    def __bool__(self) -> bool:
        return bool(self._held)

    def hold(self, kind: str, trial_id: int, key: str, value: Any) -> None:
        if not self._held:
            self._since = time.monotonic()
        self._held[(kind, trial_id, key)] = value

    def commit(self, tables: OptunaTables, then: Callable[[Connection], T] | None = None,
               held_s: float = 0.0) -> tuple[set[int], T | None]:
        """Commit every held write in one transaction, and in it, after them, ``then`` (a state change,
        a heartbeat); if that fails, hold them again and raise. Without ``then``, writes held for less
        than ``held_s`` seconds (the oldest of them) are left held.

        Returns the ids of the trials written to that no longer exist (their study was deleted),
        whose writes are dropped, and what ``then`` returned.
        """
        if then is None and (not self._held or time.monotonic() - self._since < held_s):
            return set(), None
        held, since, self._held = self._held, self._since, {}
        try:
            with tables.engine.begin() as connection:
                trial_ids = {trial_id for _, trial_id, _ in held}
                found = tables.trial_rows(connection, trial_ids) if trial_ids else {}
                finished = {trial_id: state.name for trial_id, (_, state) in found.items() if state.is_finished()}
                if finished:
                    LOG.warning(f"writes to {noun_form(len(finished), 'trial')} {finished} dropped: another worker "
                                "ended them (a heartbeat gone stale?) while this one was running them")
                params: list[dict[str, Any]] = []
                attrs: dict[str, list[tuple[int, str, str]]] = {USER: [], SYSTEM: []}
                for (kind, trial_id, key), value in held.items():
                    if trial_id not in found or trial_id in finished:
                        continue
                    if kind == PARAM:
                        params.append({"trial_id": trial_id, "param_name": key, "param_value": value[0],
                                       "distribution_json": value[1]})
                    else:
                        attrs[kind].append((trial_id, key, value))
                tables.insert(connection, PARAMS, params)
                for kind, rows in attrs.items():
                    tables.upsert_attrs(connection, _TABLES[kind], rows)
                done = None if then is None else then(connection)
        except BaseException:
            # Never dropped: the next commit retries them, as held since they first were.
            self._held, self._since = {**held, **self._held}, since
            raise
        return trial_ids - set(found), done
