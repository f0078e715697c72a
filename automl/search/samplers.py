"""The samplers a study file can name, built from Optuna's own."""

from __future__ import annotations

import optuna

from automl.search.group_tpe import GroupTPESampler


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """``tpe`` (multivariate, grouped for the per-family spaces), ``nsgaii``, ``random`` or ``gp``."""
    if name == "tpe":
        # Grouped multivariate TPE models each family's conditional subspace jointly, sampling only
        # the groups a trial uses (automl.search.group_tpe). No constant liar: it makes TPE re-read every
        # trial from storage for each parameter group, doubling the sampling time at 1,000 trials
        # (benchmarks/search_efficiency.py), while workers already sample apart through their seeds.
        return GroupTPESampler(seed=seed)
    if name == "nsgaii":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)
