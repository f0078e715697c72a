"""The finished trials TPE fits on: all of them up to the cap, then the best, the latest and a sample."""

from __future__ import annotations

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from automl.search.group_tpe import GroupTPESampler
from automl.search.tpe_history import BEST_SHARE, TPEHistory
from automl.storage.pareto import non_domination_ranks

DIRECTIONS = [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]


def _trials(count: int, seed: int = 0) -> list[FrozenTrial]:
    """Every third pruned, every seventh infeasible; values on a coarse grid, so ranks tie."""
    rng = np.random.default_rng(seed)
    trials = []
    for number in range(count):
        pruned = number % 3 == 0
        trial = create_trial(state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
                             values=None if pruned else list(rng.integers(0, 30, 2) / 30),
                             params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)},
                             constraints={"budget": 1.0 if number % 7 == 0 else -1.0})
        trial.number = number
        trials.append(trial)
    return trials


def _best_ranked(trials: list[FrozenTrial], count: int) -> set[int]:
    """The numbers of the complete feasible trials of the best ranks that hold ``count`` of them."""
    ranked = [t for t in trials if t.state == TrialState.COMPLETE and t.constraints["budget"] <= 0]
    ranks = non_domination_ranks(np.array([[-t.values[0], t.values[1]] for t in ranked]))
    last = np.sort(ranks)[count - 1]
    return {t.number for t, rank in zip(ranked, ranks, strict=True) if rank <= last}


def test_up_to_the_cap_tpe_fits_every_finished_trial_in_order() -> None:
    history, trials = TPEHistory(DIRECTIONS, 300), _trials(300)
    for trial in trials:
        history.add(trial)
    assert [t.number for t in history.trials()] == list(range(300))


def test_past_the_cap_it_fits_the_best_the_latest_and_a_sample_of_the_rest() -> None:
    history, trials = TPEHistory(DIRECTIONS, 100), _trials(1500)
    sizes = []
    for trial in trials:
        history.add(trial)
        sizes.append(len(history.trials()))
    kept = [t.number for t in history.trials()]
    assert max(sizes) <= 100 and min(sizes[100:]) >= 50, "at most the cap, never less than half"
    assert kept == sorted(kept) and len(set(kept)) == len(kept)
    assert _best_ranked(trials, int(BEST_SHARE * 100)) <= set(kept), "the best, whole ranks"
    assert set(range(1490, 1500)) <= set(kept), "the latest"
    older = [number for number in kept if number < 1000]
    assert len(older) > 30 and np.std(np.diff(older)) < np.mean(np.diff(older)), "an even sample of the older ones"


def test_tpe_puts_the_studys_best_tenth_below_while_the_best_kept_hold_it() -> None:
    history = TPEHistory(DIRECTIONS, 100)
    for trial in _trials(1500):
        history.add(trial)
        if history.added <= 100:
            assert history.below(len(history.trials())) == -(-history.added // 10), "Optuna's gamma"
        else:
            best = len(history._best)
            assert history.below(len(history.trials())) == min(-(-history.added // 10), best) and best >= 50
    single = TPEHistory(DIRECTIONS[:1], 100)
    assert single.below(100) == 10 and single.below(400) == 25, "Optuna's single-objective gamma"


def test_the_sampler_fits_tpe_on_the_capped_history() -> None:
    def objective(trial: optuna.Trial) -> tuple[float, float]:
        return trial.suggest_float("x", 0, 1), trial.suggest_float("y", 0, 1)

    sampler = GroupTPESampler(seed=0, max_trials_fitted=30, n_startup_trials=10)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=70)
    fitted = {t.number for t in sampler._groups.finished.get_trials(deepcopy=False)}
    assert len(fitted) <= 30
    assert {t.number for t in study.best_trials} <= fitted
    assert 68 in fitted, "the latest, up to the last trial's sample"
