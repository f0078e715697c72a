"""The one fence around Optuna's private names: every one automl uses is imported, read or checked here.

automl builds on Optuna's public API, and on five names Optuna does not promise to keep, each
because the public API has nothing that does the job:

1. ``optuna.storages._heartbeat.BaseHeartbeat``: the interface a storage implements for Optuna's
   heartbeat thread and ``fail_stale_trials`` to beat and check its trials; the worker's storage
   (automl.storage.worker_storage) implements it, delegating to its RDBStorage, as Optuna's own
   _CachedStorage does.
2. ``_get_stale_trial_ids``: the method of that interface that finds the stale trials; the worker's
   storage implements it with one query (automl.storage.trial_states) and records why each trial failed.
3. ``Study._storage``: the storage a Study reads and writes through; the artifacts of a stored
   trial and the dashboard's notes are read and written through it.
4. ``_CachedStorage._backend``: the RDBStorage inside the cache Optuna puts around it in every
   Study opened on a database (a study a user loaded by URL): its URL locates the study's artifacts
   (``automl.load_model``), its engine takes the dashboard's notes in one transaction.
5. ``optuna._hypervolume.compute_hypervolume``: Optuna's exact hypervolume (WFG, any number of
   objectives), for the hypervolume history of a study.

optuna-dashboard, another package, keeps the key layout and chunking of the notes and figures it
stores in two private modules (``_note``, ``_custom_plot_data``); they come through here too
(``dashboard_internals``), imported at the first dashboard update, and are checked by the same test.

``PRIVATE_NAMES`` lists Optuna's; each is checked at import (a missing or re-shaped one raises
UnsupportedOptuna, naming it) and by tests/storage/test_optuna_fence.py, which also checks that no
other module uses a private Optuna name and prints the count.

``SUPPORTED`` is the range pyproject.toml requires and CI tests (.ci/run runs the full suite on the
newest release and the storage, sampler, pruner and worker tests on ``OLDEST``). Optuna older than
it lacks what automl uses (5.0 brought named trial constraints, which the budgets record) and is
refused; a release past it is used, with a warning, if these names pass their checks.
"""

from __future__ import annotations

import inspect
import warnings
from types import ModuleType

import optuna
from optuna.storages import BaseStorage, RDBStorage
from packaging.version import Version

from automl.errors import AutomlError

OLDEST, SUPPORTED = "5.0.0", ">=5.0,<6"
_FIRST_UNSUPPORTED = Version("6")
PRIVATE_NAMES = ("optuna.storages._heartbeat.BaseHeartbeat", "BaseHeartbeat._get_stale_trial_ids",
                 "optuna.Study._storage", "optuna.storages._CachedStorage._backend",
                 "optuna._hypervolume.compute_hypervolume")


class UnsupportedOptuna(AutomlError, ImportError):
    """The installed Optuna lacks, or changed, a private name that automl builds on."""


def _unsupported(what: str) -> UnsupportedOptuna:
    return UnsupportedOptuna(f"Optuna {optuna.__version__} {what}; automl is tested on Optuna {SUPPORTED}: "
                             f"pip install 'optuna{SUPPORTED}'")


def _check_version(installed: str) -> None:
    version = Version(installed)
    if version < Version(OLDEST):
        raise _unsupported(f"is older than automl supports (Optuna {OLDEST} brought named trial constraints)")
    if version >= _FIRST_UNSUPPORTED:
        warnings.warn(f"Optuna {installed} is newer than the range automl is tested on ({SUPPORTED}); the "
                      "private names automl uses passed their checks, but if studies misbehave, run: "
                      f"pip install 'optuna{SUPPORTED}'", stacklevel=2)


_check_version(optuna.__version__)

try:
    from optuna._hypervolume import compute_hypervolume
    from optuna.storages._heartbeat import BaseHeartbeat
except ImportError as error:
    raise _unsupported(f"has no {error.name or error}") from None


def _check_private_names() -> None:
    if not (issubclass(RDBStorage, BaseHeartbeat) and "_get_stale_trial_ids" in BaseHeartbeat.__abstractmethods__):
        raise _unsupported("no longer finds stale trials through BaseHeartbeat._get_stale_trial_ids")
    if tuple(inspect.signature(RDBStorage._get_stale_trial_ids).parameters) != ("self", "study_id"):
        raise _unsupported("changed RDBStorage._get_stale_trial_ids(study_id)")


_check_private_names()

__all__ = ["OLDEST", "PRIVATE_NAMES", "SUPPORTED", "BaseHeartbeat", "UnsupportedOptuna", "compute_hypervolume",
           "dashboard_internals", "storage_backend", "study_storage"]


def study_storage(study: optuna.Study) -> BaseStorage:
    """The storage a Study reads and writes through (for an RDBStorage, Optuna's cache around it)."""
    storage = getattr(study, "_storage", None)
    if not isinstance(storage, BaseStorage):
        raise _unsupported("keeps a Study's storage elsewhere than Study._storage")
    return storage


def storage_backend(study: optuna.Study) -> BaseStorage:
    """The storage under the study's: the RDBStorage inside Optuna's cache, or inside a worker's
    storage (its public ``backend``); else the study's storage itself (one in memory, a journal)."""
    storage = study_storage(study)
    wrapped = getattr(storage, "backend", None)
    if isinstance(wrapped, BaseStorage):
        return wrapped
    backend = getattr(storage, "_backend", None)
    if backend is None:
        return storage  # a storage Optuna does not wrap
    if not isinstance(backend, BaseStorage):
        raise _unsupported("keeps the storage inside its cache elsewhere than _CachedStorage._backend")
    return backend


def dashboard_internals() -> tuple[ModuleType, ModuleType]:
    """optuna-dashboard's private note and figure modules (``_note``, ``_custom_plot_data``): the key
    layout and chunking of the notes and figures it stores as study system attributes, which
    automl.results.dashboard_store writes in batches. Imported when first asked for: importing
    optuna_dashboard takes about a second."""
    from optuna_dashboard import _custom_plot_data, _note

    return _note, _custom_plot_data
