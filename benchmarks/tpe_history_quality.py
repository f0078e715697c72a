"""Does capping TPE's history cost search quality? The grouped TPE with its history capped
(automl.search.tpe_history) beside the same sampler fitting every finished trial, side by side in
one run, same seeds.

The problem is cheap, so thousands of trials are affordable, and shaped like automl's studies: a
family (four, each with parameters of its own, one conditional on another), shared training
parameters, two objectives (an accuracy to maximize, log10 FLOPs to minimize) that trade off
within each family, and about 60% of the trials pruned on a noisy first-epoch accuracy (below the
60th percentile of those before: what MO-ASHA leaves).

For each seed both samplers run the same number of trials; the hypervolume of each front of
complete trials (accuracy, log10 FLOPs, against accuracy 0 and log10 FLOPs 9) is printed at
checkpoints, with the capped/uncapped ratio, and the sampler's seconds per trial over the last
checkpoint's stretch. The last lines are ``key=value`` figures: the median ratios over seeds.

    .venv/bin/python benchmarks/tpe_history_quality.py --quick          # a few minutes
    .venv/bin/python benchmarks/tpe_history_quality.py --seeds 2 --cap 500   # 2,500 trials: an hour on 2 busy cores
"""

from __future__ import annotations

import argparse
import bisect
import math
import statistics
import time
import warnings

import numpy as np
import optuna

from automl.search.group_tpe import GroupTPESampler
from automl.search.tpe_history import MAX_TRIALS_FITTED
from automl.storage._optuna import compute_hypervolume

FAMILIES = ("mlp", "cnn", "rnn", "transformer")
PRUNED_SHARE = 0.6
REFERENCE = np.array([0.0, 9.0])  # (-accuracy, log10 FLOPs) of the hypervolume's reference point


def objective(trial: optuna.Trial, rng: np.random.Generator) -> tuple[float, float, float]:
    """(accuracy in [0, 1], log10 FLOPs per sample, a noisy first-epoch accuracy)."""
    family = trial.suggest_categorical("family", FAMILIES)
    lr = trial.suggest_float("train.lr", 1e-5, 1e-1, log=True)
    decay = trial.suggest_float("train.weight_decay", 1e-6, 1e-2, log=True)
    skill = -0.15 * (math.log10(lr) + 3) ** 2 - 0.02 * abs(math.log10(decay) + 4)
    if family == "mlp":
        depth = trial.suggest_int("mlp.depth", 1, 4)
        width = trial.suggest_int("mlp.width", 16, 1024, log=True)
        dropout = trial.suggest_float("mlp.dropout", 0.0, 0.5)
        capacity, log_flops = math.log2(width) * depth ** 0.5 / 10, math.log10(2 * depth * width ** 2)
        skill += 0.55 - 0.3 * (dropout - 0.2) ** 2
    elif family == "cnn":
        blocks = trial.suggest_int("cnn.blocks", 1, 3)
        channels = [trial.suggest_int(f"cnn.channels{i}", 8, 256, log=True) for i in range(blocks)]
        kernel = trial.suggest_categorical("cnn.kernel", [3, 5, 7])
        capacity = sum(math.log2(c) for c in channels) / 8 + 0.05 * (kernel == 5)
        log_flops = math.log10(sum(64 * kernel * c * c for c in channels))
        skill += 0.65
    elif family == "rnn":
        cell = trial.suggest_categorical("rnn.cell", ["lstm", "gru"])
        hidden = trial.suggest_int("rnn.hidden", 16, 512, log=True)
        layers = trial.suggest_int("rnn.layers", 1, 3)
        capacity, log_flops = math.log2(hidden) * layers ** 0.3 / 9, math.log10(32 * layers * 4 * hidden ** 2)
        skill += 0.6 + 0.03 * (cell == "gru")
    else:
        heads = trial.suggest_categorical("transformer.heads", [1, 2, 4, 8])
        d_model = trial.suggest_int("transformer.d_model", 16, 512, log=True)
        layers = trial.suggest_int("transformer.layers", 1, 4)
        capacity = math.log2(d_model) * layers ** 0.4 / 9 + 0.02 * math.log2(heads)
        log_flops = math.log10(32 * layers * (12 * d_model ** 2 + 64 * d_model))
        skill += 0.62
    accuracy = float(np.clip(skill + 0.35 * (1 - math.exp(-capacity)) + rng.normal(0, 0.01), 0.0, 1.0))
    return accuracy, log_flops, accuracy - 0.1 + rng.normal(0, 0.03)


def hypervolume(study: optuna.Study) -> float:
    points = np.array([[-t.values[0], t.values[1]] for t in study.best_trials])
    points = points[np.all(points < REFERENCE, axis=1)]
    return float(compute_hypervolume(points, REFERENCE)) if len(points) else 0.0


def run(seed: int, trials: int, max_trials_fitted: int | None, checkpoints: list[int]) -> tuple[list[float], float]:
    """The hypervolume at each checkpoint, and the sampler's seconds per trial after the first checkpoint."""
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=GroupTPESampler(seed=seed, max_trials_fitted=max_trials_fitted))
    rng, first_epochs = np.random.default_rng(seed), []
    volumes, started = [], 0.0
    for number in range(1, trials + 1):
        if number == checkpoints[0] + 1:
            started = time.process_time()
        trial = study.ask()
        accuracy, log_flops, first_epoch = objective(trial, rng)
        # Pruned as MO-ASHA would, on the first epoch's accuracy (Optuna's multi-objective trials
        # report no intermediate values: TPE puts the pruned ones above, as automl's).
        index = bisect.bisect(first_epochs, first_epoch)
        bisect.insort(first_epochs, first_epoch)
        if len(first_epochs) > 20 and index < PRUNED_SHARE * len(first_epochs):
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, [accuracy, log_flops])
        if number in checkpoints:
            volumes.append(hypervolume(study))
    return volumes, (time.process_time() - started) / (trials - checkpoints[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,200 trials, cap 300, 2 seeds")
    parser.add_argument("--trials", type=int, default=2500)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cap", type=int, default=MAX_TRIALS_FITTED, help="max_trials_fitted of the capped sampler")
    args = parser.parse_args()
    trials, seeds, cap = (1200, 2, 300) if args.quick else (args.trials, args.seeds, args.cap)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    checkpoints = sorted({min(trials, n) for n in (cap, 2 * cap, 3 * cap, 5 * cap, trials)})
    print(f"hypervolume of the front at {', '.join(map(str, checkpoints))} trials; capped at {cap} trials vs uncapped")
    ratios: list[list[float]] = []
    cost: list[float] = []
    for seed in range(seeds):
        capped, capped_s = run(seed, trials, cap, checkpoints)
        uncapped, uncapped_s = run(seed, trials, None, checkpoints)
        ratios.append([mine / theirs for mine, theirs in zip(capped, uncapped, strict=True)])
        cost.append(capped_s / uncapped_s)
        print(f"seed {seed}: capped {' '.join(f'{v:.4f}' for v in capped)} | uncapped "
              f"{' '.join(f'{v:.4f}' for v in uncapped)} | ratio {' '.join(f'{r:.4f}' for r in ratios[-1])} | "
              f"sampler s/trial after {checkpoints[0]}: {capped_s:.4f} vs {uncapped_s:.4f}", flush=True)
    for index, checkpoint in enumerate(checkpoints):
        print(f"hv_ratio_{checkpoint}={statistics.median(r[index] for r in ratios):.4f}")
    print(f"hv_ratio_min_final={min(r[-1] for r in ratios):.4f}")
    print(f"sampler_cost_ratio={statistics.median(cost):.3f}")


if __name__ == "__main__":
    main()
