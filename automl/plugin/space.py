"""Family search spaces inside one study: parameter namespacing and replay from stored params."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalChoiceType, CategoricalDistribution, IntDistribution

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
        self._namespace = namespace
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
        return namespaced_params(self._trial.params, self._namespace)


def sample_params(family: Family, trial: optuna.trial.BaseTrial, task: Task) -> dict[str, Any]:
    """Run ``family.search_space`` on ``trial`` under the family's namespace."""
    params = family.search_space(NamespacedTrial(trial, family.name), task)
    if not isinstance(params, dict):
        raise PluginError(f"family {family.name}: search_space returned {type(params).__name__}, "
                          "expected a dict of the parameters build() takes.")
    return params


def describe_distribution(distribution: BaseDistribution) -> str:
    """A distribution in words: "one of [32, 64]", "an integer in [1, 4]", "a number in [0.0001, 0.01] (log)"."""
    if isinstance(distribution, CategoricalDistribution):
        return f"one of {list(distribution.choices)}"
    kind = "an integer" if isinstance(distribution, IntDistribution) else "a number"
    step = getattr(distribution, "step", None)
    extras = [*(["log scale"] if getattr(distribution, "log", False) else []),
              *([f"step {step:g}"] if step not in (None, 1) else [])]
    low, high = getattr(distribution, "low", None), getattr(distribution, "high", None)
    return f"{kind} in [{low:g}, {high:g}]" + (f" ({', '.join(extras)})" if extras else "")


def _within(distribution: BaseDistribution, value: Any) -> bool:
    # Optuna's own containment test (BaseDistribution._contains) is private, and FixedTrial only
    # warns when it fails; this is its definition, with the value's type checked too.
    if isinstance(distribution, CategoricalDistribution):
        return any(value == choice and isinstance(value, bool) == isinstance(choice, bool)
                   for choice in distribution.choices)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    if isinstance(distribution, IntDistribution) and not float(value).is_integer():
        return False
    low, high, step = distribution.low, distribution.high, distribution.step  # type: ignore[attr-defined]
    if not low <= value <= high:
        return False
    return step is None or math.isclose((value - low) / step, round((value - low) / step), abs_tol=1e-8)


class OutsideSpace(ValueError):
    """Fixed values that lie outside the distributions their space gives them."""

    def __init__(self, problems: Sequence[str], names: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)
        self.names = list(names)  # the parameters, in the order of ``problems``


class CheckedFixedTrial(optuna.trial.FixedTrial):
    """Optuna's ``FixedTrial`` (replays stored params through a space) that records each value
    outside the distribution the space asks for; ``check()`` then raises OutsideSpace naming them.

    Optuna's ``FixedTrial`` only warns and uses such a value (or fails with a bare ValueError for
    a categorical one): a warm-start config or a retrained trial would run outside its space.
    """

    def __init__(self, params: dict[str, Any], number: int = 0) -> None:
        super().__init__(params, number)
        self.given = dict(params)
        self.outside: list[str] = []
        self.outside_names: list[str] = []

    def _fits(self, name: str, distribution: BaseDistribution) -> bool:
        if name not in self.given:
            # A value outside its range can lead the space to ask for this one (a depth too large
            # asks for more layers' widths): that value is the error to name first.
            self.check()
            raise ValueError(f"it has no value for {name!r}, which the space asks for")
        if _within(distribution, self.given[name]):
            return True
        self.outside.append(f"{name} = {self.given[name]!r} is not {describe_distribution(distribution)}")
        self.outside_names.append(name)
        return False

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float:
        if self._fits(name, optuna.distributions.FloatDistribution(low, high, step=step, log=log)):
            return super().suggest_float(name, low, high, step=step, log=log)
        return self.given[name]

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        if self._fits(name, IntDistribution(low, high, step=step, log=log)):
            return super().suggest_int(name, low, high, step=step, log=log)
        return self.given[name]

    def suggest_categorical(self, name: str, choices: Sequence[CategoricalChoiceType]  # type: ignore[override]
                            ) -> CategoricalChoiceType:
        if self._fits(name, CategoricalDistribution(choices)):
            return super().suggest_categorical(name, choices)
        return self.given[name]

    def check(self) -> None:
        """Raise OutsideSpace if a value replayed so far lies outside its distribution."""
        if self.outside:
            raise OutsideSpace(self.outside, self.outside_names)


def replay_params(family: Family, stored_params: dict[str, Any], task: Task) -> dict[str, Any]:
    """Rebuild the dict ``build`` received from a trial's stored (prefixed) params.

    Raises OutsideSpace when a stored value lies outside the family's space, ValueError when the
    space asks for a value ``stored_params`` lacks.
    """
    fixed = CheckedFixedTrial(stored_params)
    params = sample_params(family, fixed, task)
    fixed.check()
    return params


def in_namespace(key: str, *namespaces: str) -> bool:
    """Whether the stored parameter ``key`` belongs to one of ``namespaces`` (``cnn.depth`` to ``cnn``)."""
    return key.startswith(tuple(f"{namespace}." for namespace in namespaces))


def namespaced_params(stored_params: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The stored params of one namespace (a family, or the training's), without the prefix."""
    prefix = f"{namespace}."
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
