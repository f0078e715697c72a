"""Family search spaces inside one study: parameter namespacing and replay from stored params."""

from __future__ import annotations

from typing import Any

import optuna

from automl.errors import PluginError
from automl.plugin.contract import Family
from automl.plugin.task import Task


class NamespacedTrial:
    """A view of an Optuna trial that prefixes every parameter name with ``namespace.``: the
    ``automl.Trial`` a family's search space receives.

    Families call ``trial.suggest_int("depth", ...)``; the study stores ``cnn.depth``, so two
    families never clash over a name and an author never writes a prefix.
    """

    def __init__(self, trial: optuna.trial.BaseTrial, namespace: str) -> None:
        self._trial = trial
        self._prefix = f"{namespace}."

    def suggest_int(self, name: str, *args: Any, **kwargs: Any) -> int:
        return self._trial.suggest_int(self._prefix + name, *args, **kwargs)

    def suggest_float(self, name: str, *args: Any, **kwargs: Any) -> float:
        return self._trial.suggest_float(self._prefix + name, *args, **kwargs)

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self._trial.suggest_categorical(self._prefix + name, choices)

    @property
    def number(self) -> int:
        return self._trial.number

    @property
    def params(self) -> dict[str, Any]:
        """This family's parameters sampled so far, without the prefix."""
        return {key[len(self._prefix):]: value for key, value in self._trial.params.items()
                if key.startswith(self._prefix)}


def sample_params(family: Family, trial: optuna.trial.BaseTrial, task: Task) -> dict[str, Any]:
    """Run ``family.search_space`` on ``trial`` under the family's namespace."""
    params = family.search_space(NamespacedTrial(trial, family.name), task)
    if not isinstance(params, dict):
        raise PluginError(f"family {family.name}: search_space returned {type(params).__name__}, "
                          "expected a dict of the parameters build() takes.")
    return params


def replay_params(family: Family, stored_params: dict[str, Any], task: Task) -> dict[str, Any]:
    """Rebuild the dict ``build`` received from a trial's stored (prefixed) params."""
    return sample_params(family, optuna.trial.FixedTrial(stored_params), task)


def family_params(stored_params: dict[str, Any], family_name: str) -> dict[str, Any]:
    """The stored params of one family, without the prefix (for display)."""
    prefix = f"{family_name}."
    return {key[len(prefix):]: value for key, value in stored_params.items() if key.startswith(prefix)}


def random_study(seed: int) -> optuna.Study:
    """An in-memory study with a random sampler, to draw configurations from the families' spaces
    (surveys, a study's first configurations, conformance checks); it logs nothing."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a throwaway study, not worth a log line
    try:
        return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    finally:
        optuna.logging.set_verbosity(verbosity)
