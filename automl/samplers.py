"""The samplers a study file can name, built from Optuna's own."""

from __future__ import annotations

import optuna


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """``tpe`` (multivariate, grouped for the per-family spaces), ``nsgaii``, ``random`` or ``gp``."""
    if name == "tpe":
        # group=True lets multivariate TPE model each family's conditional subspace jointly.
        return optuna.samplers.TPESampler(multivariate=True, group=True, constant_liar=True, seed=seed)
    if name == "nsgaii":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)
