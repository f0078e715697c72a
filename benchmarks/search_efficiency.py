"""How fast each search strategy finds a good accuracy/FLOPs front, at equal wall-clock budgets.

Three strategies run one after the other in this process, on the same data, for the same number
of seconds, for each seed:

- random: random search, every trial trained for max_epochs;
- tpe:    Optuna's TPE sampler (its defaults), every trial trained for max_epochs;
- ours:   the study defaults (multivariate TPE, MO-ASHA early stopping) with a FLOPs budget;
- ours-SAMPLER (with --variants): the same with another sampler, to choose the default from.

Each run's front is scored by the hypervolume of (validation accuracy, log10 FLOPs per sample)
against the fixed reference point (accuracy 0, log10 of the FLOPs budget), after every completed
trial. Prints a table, writes a PNG of hypervolume against time, then times the sampler and
storage bookkeeping of new trials in an SQLite study of 1,000 finished trials, beside the same
with Optuna's own grouped TPE and beside the least that Optuna's SQL storage alone costs for the
same writes: per trial stopped where the pruner stops it, as a share of ours' median trial, and
per trial trained to the end, as a share of a full trial. The last line is
``time_to_random_hv=<fraction>``: the share of random search's budget that ``ours`` needs to reach
random search's final hypervolume (median over seeds; inf when it never does).

    .venv/bin/python benchmarks/search_efficiency.py --quick    # a few minutes on 2 cores
"""

from __future__ import annotations

import argparse
import math
import signal
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from optuna.exceptions import ExperimentalWarning  # noqa: E402
from optuna.trial import FrozenTrial, TrialState, create_trial  # noqa: E402

from automl.storage.schema import ACCURACY, FAMILY_PARAM, FLOPS, TrialAttr, is_feasible  # noqa: E402
from automl.config import StudyConfig, parse_study  # noqa: E402
from automl.data.prepare import PreparedData, prepare  # noqa: E402
from automl.errors import UsageError  # noqa: E402
from automl.search.objective import Objective, sample_training  # noqa: E402
from automl.plugin.registry import registry  # noqa: E402
from automl.search.pruners import make_pruner  # noqa: E402
from automl.storage.worker_storage import WorkerStorage  # noqa: E402
from automl.storage._optuna import compute_hypervolume  # noqa: E402
from automl.search.samplers import make_sampler  # noqa: E402
from automl.plugin.space import sample_params  # noqa: E402
from automl.storage.urls import open_storage  # noqa: E402

BASELINES = ("random", "tpe")
OBJECTIVES = (ACCURACY, FLOPS)
# Datasets tried after digits, from a torchvision root folder, when their files are there.
MNIST_LIKE = ("mnist", "fashion_mnist")


class BudgetSpent(BaseException):
    """The run's seconds are up, in the middle of a trial or not: the run ends there."""


def _spend(signum: int, frame: object) -> None:
    raise BudgetSpent()


@dataclass
class Run:
    strategy: str
    seed: int
    budget_s: float
    # (seconds since the run started, hypervolume) after each completed within-budget trial.
    history: list[tuple[float, float]] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)
    trained_s: list[float] = field(default_factory=list)  # wall time of every trial that trained

    def hypervolume_at(self, seconds: float) -> float:
        return max((hv for t, hv in self.history if t <= seconds), default=0.0)

    @property
    def final(self) -> float:
        return self.hypervolume_at(self.budget_s)

    def time_to(self, target: float) -> float:
        """Seconds until the hypervolume first reached ``target`` (inf if it never did in the budget)."""
        return next((t for t, hv in self.history if hv >= target and t <= self.budget_s), math.inf)


def hypervolume(points: list[tuple[float, float]], reference_log_flops: float) -> float:
    """Area dominated by (accuracy, log10 FLOPs) points, from accuracy 0 and the reference cost."""
    losses = np.array([(1.0 - acc, log_flops) for acc, log_flops in points
                       if acc > 0 and log_flops < reference_log_flops])
    if not len(losses):
        return 0.0
    return float(compute_hypervolume(losses, np.array([1.0, reference_log_flops])))


def families_for(data: PreparedData) -> dict[str, object]:
    return {name: r.obj for name, r in registry().families.items() if data.task.kind in r.obj.task_kinds}


def sample_config(trial: optuna.Trial, families: dict, data: PreparedData, config: StudyConfig) -> str:
    """Draw a family, its parameters and the training parameters, as the Objective does; the family name."""
    family = families[trial.suggest_categorical(FAMILY_PARAM, list(families))]
    sample_params(family, trial, data.task)
    sample_training(trial, config.train)
    return family.name


def study_config(strategy: str, dataset: str, max_epochs: int, max_flops: float) -> StudyConfig:
    """random and tpe: no budget, no pruner; ours: the defaults and the budget; ours-X: sampler X."""
    search: dict[str, object] = {"objectives": [spec.name for spec in OBJECTIVES]}
    ours = strategy.startswith("ours")
    if not ours:
        search |= {"sampler": strategy, "pruner": "none"}
    elif strategy != "ours":
        search["sampler"] = strategy.removeprefix("ours-")
    return parse_study({"name": f"bench-{strategy}", "data": {"dataset": dataset}, "search": search,
                        "budget": {"max_flops": max_flops} if ours else {},
                        "train": {"max_epochs": max_epochs, "accelerator": "cpu"}}, Path("benchmark"))


def run_strategy(strategy: str, seed: int, data: PreparedData, dataset: str, budget_s: float,
                 max_epochs: int, max_flops: float) -> Run:
    config = study_config(strategy, dataset, max_epochs, max_flops)
    families = families_for(data)
    # (b) is Optuna's TPE as it ships; ours is the study default (multivariate, grouped).
    sampler = (optuna.samplers.TPESampler(seed=seed) if strategy == "tpe"
               else make_sampler(config.search.sampler, seed))
    study = optuna.create_study(directions=[spec.direction for spec in OBJECTIVES], sampler=sampler,
                                pruner=make_pruner(config.search, max_epochs))
    objective = Objective(config.model_copy(update={"seed": seed}), families, data)
    run = Run(strategy, seed, budget_s)
    reference = math.log10(max_flops)
    points: list[tuple[float, float]] = []
    started = time.perf_counter()

    def record(study: optuna.Study, trial: FrozenTrial) -> None:
        attrs = trial.user_attrs
        if attrs.get(TrialAttr.EPOCHS):
            run.trained_s.append(attrs[TrialAttr.WALL_TIME_S])
        if trial.state == TrialState.COMPLETE and is_feasible(trial) and TrialAttr.VAL_ACCURACY in attrs:
            points.append((attrs[TrialAttr.VAL_ACCURACY], math.log10(attrs[TrialAttr.FLOPS])))
            run.history.append((time.perf_counter() - started, hypervolume(points, reference)))

    # A trial still training when the budget ends would overrun it by minutes (large models on
    # one thread); the alarm cuts it off, so every run takes its budget and no more.
    signal.signal(signal.SIGALRM, _spend)
    signal.setitimer(signal.ITIMER_REAL, budget_s)
    try:
        study.optimize(objective, callbacks=[record], catch=(Exception,))
    except BudgetSpent:
        pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    for trial in study.trials:
        kind = "over budget" if TrialAttr.OVER_BUDGET in trial.user_attrs else trial.state.name.lower()
        run.states[kind] = run.states.get(kind, 0) + 1
    return run


def synthetic_trials(data: PreparedData, count: int, max_epochs: int, pruner, seed: int) -> list[FrozenTrial]:
    """Finished trials with parameters from the real search spaces and MO-ASHA-shaped curves."""
    families = families_for(data)
    config = study_config("ours", "digits", max_epochs, 1e6)
    scratch = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    rng = np.random.default_rng(seed)
    trials = []
    for _ in range(count):
        trial = scratch.ask()
        family = sample_config(trial, families, data, config)
        # Survivors of each rung, as MO-ASHA leaves them: 1/eta of trials reach each next rung.
        reached = max_epochs if rng.random() < 1 / 9 else int(rng.choice(pruner.rungs))
        curve = list(np.round(np.sort(rng.uniform(0.1, 0.99, reached)), 5))
        flops = float(10 ** rng.uniform(3, 7))
        complete = reached == max_epochs
        trials.append(create_trial(
            state=TrialState.COMPLETE if complete else TrialState.PRUNED,
            values=[curve[-1], flops] if complete else None, params=trial.params,
            distributions=trial.distributions,
            user_attrs={TrialAttr.FAMILY: family, TrialAttr.FLOPS: flops, TrialAttr.N_PARAMS: flops / 2,
                        TrialAttr.LATENCY_MS: 0.2, TrialAttr.VAL_CURVE: [float(v) for v in curve],
                        TrialAttr.EPOCHS: reached},
            system_attrs={"constraints:max_flops": math.log10(flops / 1e6)}))
        scratch.tell(trial, 0.0)
    return trials


@dataclass(frozen=True)
class Setup:
    """What a worker's bookkeeping is timed with: ours' study for ``strategy``, parts swapped out."""
    label: str
    strategy: str = "ours"
    # Makes the sampler (called when timed: Optuna warns of experimental ones as they are made);
    # None: the strategy's own.
    sampler: Callable[[], optuna.samplers.BaseSampler] | None = None
    # The storage around an RDBStorage (None: the RDBStorage itself).
    storage: Callable[[optuna.storages.RDBStorage], optuna.storages.BaseStorage] | None = WorkerStorage
    prunes: bool = True


# ours' TPE samples only the parameter groups a trial uses (automl.search.group_tpe); Optuna's grouped
# TPE, which samples them all, is timed beside it on the same synthetic study.
OPTUNA_TPE = Setup("ours, Optuna's grouped TPE",
                   sampler=lambda: optuna.samplers.TPESampler(multivariate=True, group=True, seed=0))
# The least any study on Optuna's SQL storage pays per trial for the same writes: no model to fit,
# no pruner to consult, and the storage as Optuna ships it (on automl's SQLite settings).
OPTUNA_FLOOR = Setup("Optuna alone: its RDBStorage, random sampler, no pruner",
                     sampler=lambda: optuna.samplers.RandomSampler(seed=0), storage=None, prunes=False)


@dataclass
class Bookkeeping:
    """Mean seconds of bookkeeping per new trial, as the pruner stops it and trained to the end."""
    as_pruned: float
    full: float


def bookkeeping(data: PreparedData, max_epochs: int, folder: Path, finished: int, window: int,
                setup: Setup) -> Bookkeeping:
    """Sampler and storage work per new trial in an SQLite study of ``finished`` trials.

    Everything a real trial does besides building, measuring and training: pop it from the queue,
    sample its parameters, write its attrs and per-epoch curve, consult the pruner, tell the result,
    through the storage a worker of `automl run` uses (or ``setup``'s). Each new trial has a random
    curve and cost (the same for every setup). After ``window`` untimed trials (a worker that has
    been running), ``window`` trials stop where the pruner stops them, as in a study, and
    ``window`` more are trained to the end whatever it says. Means, not medians: the occasional
    trial that refits the sampler's model counts at its share.
    """
    config = study_config(setup.strategy, "digits", max_epochs, 1e6)
    pruner = make_pruner(config.search, max_epochs)
    url = f"sqlite:///{folder / 'bookkeeping.db'}"
    created = optuna.create_study(study_name="bookkeeping", storage=open_storage(url),
                                  directions=[spec.direction for spec in OBJECTIVES])
    created.add_trials(synthetic_trials(data, finished, max_epochs, pruner, seed=0))
    for _ in range(3 * window):
        created.enqueue_trial({})
    if not setup.prunes:
        pruner = optuna.pruners.NopPruner()
    backend = open_storage(url)
    study = optuna.load_study(study_name="bookkeeping", storage=setup.storage(backend) if setup.storage else backend,
                              sampler=setup.sampler() if setup.sampler else make_sampler(config.search.sampler, 0),
                              pruner=pruner)
    families = families_for(data)
    rng = np.random.default_rng(1)

    def one_trial(obey_pruner: bool) -> float:
        curve, flops = list(np.sort(rng.uniform(0.1, 0.99, max_epochs))), float(10 ** rng.uniform(3, 7))
        started = time.perf_counter()
        trial = study.ask()
        family = sample_config(trial, families, data, config)
        for key, value in {TrialAttr.FAMILY: family, TrialAttr.DEVICE: "cpu", TrialAttr.N_PARAMS: flops / 2,
                           TrialAttr.FLOPS: flops, TrialAttr.LATENCY_MS: 0.2, TrialAttr.WORKER: "host:1"}.items():
            trial.set_user_attr(key, value)
        trial.set_constraint("max_flops", math.log10(flops / 1e6))
        state = TrialState.COMPLETE
        for epochs in range(1, max_epochs + 1):
            trial.set_user_attr(TrialAttr.VAL_CURVE, curve[:epochs])
            if pruner.prune(study, trial) and obey_pruner:
                state = TrialState.PRUNED
                for key in (TrialAttr.EPOCHS, TrialAttr.PRUNED_AT_EPOCH, TrialAttr.RUNG):
                    trial.set_user_attr(key, epochs)
                break
        for key in (TrialAttr.EPOCHS, TrialAttr.VAL_ACCURACY, TrialAttr.TEST_ACCURACY, TrialAttr.WALL_TIME_S):
            trial.set_user_attr(key, 1.0)
        study.tell(trial, [curve[-1], flops] if state == TrialState.COMPLETE else None, state=state)
        return time.perf_counter() - started

    for _ in range(window):
        one_trial(obey_pruner=True)
    as_pruned = statistics.mean(one_trial(obey_pruner=True) for _ in range(window))
    return Bookkeeping(as_pruned=as_pruned, full=statistics.mean(one_trial(obey_pruner=False) for _ in range(window)))


def figure(runs: dict[str, list[Run]], path: Path) -> None:
    fig = Figure(figsize=(6 * len(runs), 4), layout="constrained")
    strategies = list(dict.fromkeys(run.strategy for dataset_runs in runs.values() for run in dataset_runs))
    colors = dict(zip(strategies, matplotlib.colormaps["tab10"].colors))
    for axis, (dataset, dataset_runs) in zip(np.atleast_1d(fig.subplots(1, len(runs))), runs.items()):
        for run in dataset_runs:
            times = [0.0] + [t for t, _ in run.history if t <= run.budget_s] + [run.budget_s]
            values = [0.0] + [hv for t, hv in run.history if t <= run.budget_s] + [run.final]
            label = run.strategy if run.seed == dataset_runs[0].seed else None
            axis.step(times, values, where="post", color=colors[run.strategy], alpha=0.8, label=label)
        axis.set(title=f"{dataset}: hypervolume of (val accuracy, log10 FLOPs)", xlabel="seconds",
                 ylabel="hypervolume")
        axis.legend()
    fig.savefig(path, dpi=120)


def load_datasets(quick: bool, seed: int, torchvision_root: str | None) -> dict[str, PreparedData]:
    datasets = {"digits": prepare(parse_study({"name": "d"}, Path("d")).data, registry(), seed)}
    if quick:
        return datasets
    if torchvision_root is None:
        print(f"note: digits only; --torchvision-root adds {', '.join(MNIST_LIKE)} from local files")
        return datasets
    for name in MNIST_LIKE:
        try:
            data = parse_study({"name": "d", "data": {"dataset": name, "path": torchvision_root}}, Path("d")).data
            datasets[name] = prepare(data, registry(), seed)
        except UsageError as exc:
            print(f"note: {name} skipped: {exc}")
    return datasets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="digits only, shorter budgets")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget-s", type=float, help="seconds per strategy and seed (default 60, quick 25)")
    parser.add_argument("--variants", default="", help="samplers to run 'ours' with besides the default, "
                        "e.g. nsgaii,random")
    parser.add_argument("--max-epochs", type=int, default=9)
    parser.add_argument("--max-flops", type=float, default=1e6, help="ours' budget; also the reference point")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 steadies a busy machine)")
    parser.add_argument("--bookkeeping-trials", type=int, default=1000)
    parser.add_argument("--png", default="search_efficiency.png")
    parser.add_argument("--torchvision-root", help="a folder with MNIST/ and FashionMNIST/ raw files "
                        "(as studies/mnist.toml reads them), to add those datasets")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore", ExperimentalWarning)
    budget_s = args.budget_s or (25.0 if args.quick else 60.0)
    strategies = [*BASELINES, "ours", *(f"ours-{name}" for name in filter(None, args.variants.split(",")))]
    seeds = list(range(args.seeds))
    datasets = load_datasets(args.quick, 0, args.torchvision_root)
    print(f"{len(seeds)} seeds x {len(strategies)} strategies x {budget_s:g} s on {', '.join(datasets)}; "
          f"max_epochs {args.max_epochs}, ours' budget max_flops {args.max_flops:g}, "
          f"{torch.get_num_threads()} torch thread(s)", flush=True)
    runs: dict[str, list[Run]] = {}
    for dataset, data in datasets.items():
        for seed in seeds:
            # Rotate the order per seed so no strategy always runs on the warmest (or busiest) machine.
            for strategy in strategies[seed % len(strategies):] + strategies[:seed % len(strategies)]:
                run = run_strategy(strategy, seed, data, dataset, budget_s, args.max_epochs, args.max_flops)
                runs.setdefault(dataset, []).append(run)
                print(f"  {dataset} seed {seed} {strategy:<12} hv {run.final:.3f} trials {run.states}", flush=True)
    print(f"\n{'dataset':<14} {'strategy':<12} {'final hv':>9} {'hv@1/3':>7} {'trials':>7} {'trained':>8} "
          f"{'pruned':>7} {'over':>5} {'t→random hv':>12}")
    fractions = []
    for dataset, dataset_runs in runs.items():
        for strategy in strategies:
            mine = sorted((r for r in dataset_runs if r.strategy == strategy), key=lambda r: r.seed)
            randoms = sorted((r for r in dataset_runs if r.strategy == "random"), key=lambda r: r.seed)
            to_random = [r.time_to(base.final) / base.budget_s for r, base in zip(mine, randoms)]
            if strategy == "ours":
                fractions += to_random
            median = statistics.median
            print(f"{dataset:<14} {strategy:<12} {median(r.final for r in mine):>9.3f} "
                  f"{median(r.hypervolume_at(r.budget_s / 3) for r in mine):>7.3f} "
                  f"{median(sum(r.states.values()) for r in mine):>7g} "
                  f"{median(len(r.trained_s) for r in mine):>8g} "
                  f"{median(r.states.get('pruned', 0) for r in mine):>7g} "
                  f"{median(r.states.get('over budget', 0) for r in mine):>5g} "
                  f"{median(to_random):>12.3f}")
    png = Path(args.png).resolve()
    figure(runs, png)
    print(f"hypervolume against time: {png}")
    trained = [s for dataset_runs in runs.values() for r in dataset_runs if r.strategy == "ours" for s in r.trained_s]
    full = [s for dataset_runs in runs.values() for r in dataset_runs if r.strategy == "random" for s in r.trained_s]
    bookkept = {}
    median_trial, full_trial = statistics.median(trained), statistics.median(full)
    for setup in [*(Setup(strategy, strategy) for strategy in strategies[len(BASELINES):]), OPTUNA_TPE, OPTUNA_FLOOR]:
        with tempfile.TemporaryDirectory() as folder:
            bookkept[setup.label] = spent = bookkeeping(datasets["digits"], args.max_epochs, Path(folder),
                                                        args.bookkeeping_trials, window=10 if args.quick else 60,
                                                        setup=setup)
        print(f"bookkeeping per trial of {setup.label} at {args.bookkeeping_trials} finished trials: "
              f"{spent.as_pruned * 1000:.0f} ms as the pruner stops it = {spent.as_pruned / median_trial:.1%} of "
              f"ours' median trained trial ({median_trial:.2f} s, pruned ones included); "
              f"{spent.full * 1000:.0f} ms trained to the end = {spent.full / full_trial:.1%} of a full trial "
              f"({full_trial:.2f} s)", flush=True)
    for setup in (OPTUNA_TPE, OPTUNA_FLOOR):
        theirs, ours = bookkept[setup.label], bookkept["ours"]
        print(f"bookkeeping of {setup.label} / ours: {theirs.as_pruned / ours.as_pruned:.2f} as the "
              f"pruner stops trials, {theirs.full / ours.full:.2f} trained to the end")
    print(f"time_to_random_hv={statistics.median(fractions):.3f}")


if __name__ == "__main__":
    main()
