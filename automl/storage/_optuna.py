"""The one fence around Optuna's private names: every one automl uses is imported, read or checked here.

automl's storage layers, grouped TPE, MO-ASHA and hypervolume build on parts of Optuna that Optuna
does not promise to keep (its RDB models and sessions, the study's trial cache, TPE's internals).
Everything else in automl reaches them only through this module:

- private objects (modules, functions, attributes of a Study or FrozenTrial) are re-exported or
  read by the functions below;
- private methods that automl's subclasses override or call on ``self`` are listed in
  ``OVERRIDDEN`` with the parameters automl relies on, and checked against the installed Optuna
  at import, so a release that renames or re-shapes one fails here, naming it, instead of
  silently skipping an override (tests/storage/test_optuna_fence.py checks that the list is
  complete).

``SUPPORTED`` is the range CI tests (.ci/run runs the storage, sampler, pruner and worker tests on
its oldest release and the full suite on its newest); pyproject.toml requires the same range.
Optuna older than it lacks names listed here and is refused at import; a newer one that passes
the checks is used, with a warning that it is untested.
"""

from __future__ import annotations

import importlib.util
import inspect
import warnings
from collections.abc import Container
from types import ModuleType

import optuna
from optuna.samplers import TPESampler
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState
from packaging.version import Version

from automl.errors import AutomlError

# 5.0 brought named trial constraints (Trial.set_constraint), which the budgets and the time budget
# record; 4.9 also lacks nothing else listed here.
OLDEST, NEWEST_TESTED = "5.0.0", "5.0"
SUPPORTED = ">=5.0,<5.1"


class UnsupportedOptuna(AutomlError, ImportError):
    """The installed Optuna lacks, or changed, a private name that automl builds on."""


def _check_version(installed: str) -> None:
    version = Version(installed)
    if version < Version(OLDEST):
        raise UnsupportedOptuna(f"automl needs Optuna {SUPPORTED} (the range it is tested on); found "
                                f"Optuna {installed}. Run: pip install 'optuna{SUPPORTED}'")
    if version.release[:2] > Version(NEWEST_TESTED).release[:2]:
        warnings.warn(f"Optuna {installed} is newer than the range automl is tested on ({SUPPORTED}); "
                      "its private names passed automl's checks, but if studies misbehave, run: "
                      f"pip install 'optuna{SUPPORTED}'", stacklevel=2)


_check_version(optuna.__version__)

# The imports below need the check above: on an older Optuna they fail with a bare ImportError.
from optuna._hypervolume import compute_hypervolume  # noqa: E402
from optuna.storages import RetryHeartbeatStaleTrialCallback  # noqa: E402
from optuna.storages._rdb import models  # noqa: E402
from optuna.storages._rdb.storage import _create_scoped_session as scoped_session  # noqa: E402
from optuna.study._multi_objective import _fast_non_domination_rank as fast_non_domination_rank  # noqa: E402

# class -> private method -> the parameters (after self) automl overrides it with or calls it with.
OVERRIDDEN: dict[type, dict[str, tuple[str, ...]]] = {
    RDBStorage: {
        # The _CachedStorage around every Study reads trials, writes parameters and creates trials
        # through these, not through their public twins.
        "_get_trials": ("study_id", "states", "included_trial_ids", "trial_id_greater_than"),
        "_set_trial_param": ("trial_id", "param_name", "param_value_internal", "distribution",
                             "previous_distribution"),
        "_create_new_trial": ("study_id", "template_trial"),
        # Optuna's own checked attribute write, run inside automl's one transaction of held writes
        # on a database that has no upsert automl writes itself.
        "_set_trial_attr_without_commit": ("session", "model_cls", "trial_id", "key", "value"),
        # Optuna's fail_stale_trials fails the trials this names, then calls the stale-trial
        # callback when the trial takes no more writes; automl records the reason before.
        "_get_stale_trial_ids": ("study_id",),
    },
    TPESampler: {
        # TPE samples a space through _sample, fitting with _build_parzen_estimator; the grouped
        # TPE reuses a fit through _compute_acquisition_func and _compare.
        "_sample": ("study", "trial", "search_space"),
        "_build_parzen_estimator": ("study", "search_space", "trials", "handle_below"),
        "_compute_acquisition_func": ("samples", "mpe_below", "mpe_above"),
        "_compare": ("samples", "acquisition_func_vals"),
    },
}
# The logger of Optuna's trial loop, which logs each failed trial with its traceback (automl's
# workers log one per kind of failure instead); a module, so a renamed one fails the check below.
TRIAL_LOOP_LOGGER = "optuna.study._optimize"
# Attributes a TPESampler sets in __init__ that the grouped TPE reads.
TPE_ATTRIBUTES = ("_rng", "_n_ei_candidates")


def _parameters(cls: type, name: str) -> tuple[str, ...] | None:
    """The parameters of method ``name`` of ``cls`` after self or cls; None if it has none."""
    method = inspect.getattr_static(cls, name, None)
    if method is None:
        return None
    function = getattr(method, "__func__", method)  # a classmethod's or staticmethod's function
    names = tuple(inspect.signature(function).parameters)
    return names if isinstance(method, staticmethod) else names[1:]


def _check_private_names() -> None:
    for cls, methods in OVERRIDDEN.items():
        for name, params in methods.items():
            found = _parameters(cls, name)
            if found is None or found[:len(params)] != params:
                shape = "missing" if found is None else "(" + ", ".join(found) + ")"
                raise UnsupportedOptuna(
                    f"Optuna {optuna.__version__}'s {cls.__name__}.{name} is {shape}; automl expects "
                    f"({', '.join(params)}). automl is tested on Optuna {SUPPORTED}: "
                    f"pip install 'optuna{SUPPORTED}'")
    if importlib.util.find_spec(TRIAL_LOOP_LOGGER) is None:
        raise UnsupportedOptuna(f"Optuna {optuna.__version__} has no module {TRIAL_LOOP_LOGGER}, whose logger automl "
                                f"quiets; automl is tested on Optuna {SUPPORTED}: pip install 'optuna{SUPPORTED}'")
    sampler = TPESampler()
    missing = [name for name in TPE_ATTRIBUTES if not hasattr(sampler, name)]
    if missing:
        raise UnsupportedOptuna(f"Optuna {optuna.__version__}'s TPESampler has no {', '.join(missing)}; "
                                f"automl is tested on Optuna {SUPPORTED}: pip install 'optuna{SUPPORTED}'")


_check_private_names()

__all__ = ["OVERRIDDEN", "SUPPORTED", "TRIAL_LOOP_LOGGER", "RetryHeartbeatStaleTrialCallback", "UnsupportedOptuna",
           "cached_trials", "compute_hypervolume", "dashboard_internals", "fast_non_domination_rank", "models",
           "scoped_session", "stale_trial_ids", "storage_backend", "study_id_of", "study_storage", "trial_id_of"]


def study_id_of(study: optuna.Study) -> int:
    """The study's id in its storage (Optuna keeps it private)."""
    return int(study._study_id)


def trial_id_of(trial: FrozenTrial | optuna.Trial) -> int:
    """The trial's id in its storage, unique across studies (its number is unique within one)."""
    return int(trial._trial_id)


def study_storage(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage a Study reads and writes through: Optuna's _CachedStorage around an RDBStorage."""
    return study._storage


def storage_backend(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage inside the study's _CachedStorage (the one automl opened)."""
    storage = study._storage
    return getattr(storage, "_backend", storage)


def dashboard_internals() -> tuple[ModuleType, ModuleType]:
    """optuna-dashboard's private note and figure modules (``_note``, ``_custom_plot_data``): the key
    layout and chunking of the notes and figures it stores as study system attributes, which
    automl.results.dashboard_store writes in batches. Imported when first asked for: importing
    optuna_dashboard takes about a second."""
    from optuna_dashboard import _custom_plot_data, _note

    return _note, _custom_plot_data


def stale_trial_ids(storage: RDBStorage, study_id: int) -> list[int]:
    """The study's running trials whose last heartbeat is older than ``storage``'s grace period
    (a storage opened with heartbeats): Optuna's own test, which fail_stale_trials acts on. A
    running trial that never sent a heartbeat is not among them."""
    return storage._get_stale_trial_ids(study_id)


def cached_trials(study: optuna.Study, states: Container[TrialState]) -> list[FrozenTrial]:
    """The study's trials in ``states``, as the trial being sampled reads them (Optuna's samplers
    share this one read per trial instead of reading the storage again)."""
    trials: list[FrozenTrial] = study._get_trials(deepcopy=False, states=states, use_cache=True)
    return trials

