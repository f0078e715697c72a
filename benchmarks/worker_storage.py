"""What a worker's storage saves over Optuna's RDBStorage, side by side on one SQLite file.

- A read of the study, as the sampler, the pruner and the queue do several times per trial, while
  the rest of the run is queued: ``automl run`` queues all its trials up front.
- A trial's storage work: popped from the queue, ten parameters and twenty attributes, its result;
  and the same trial reading the study at three rungs, as the pruner does while the trial runs.

Both storages run the same calls on the same file, alternated, median of the repeats. Prints
milliseconds and the ratio (Optuna's / the worker's) for each.

    python benchmarks/worker_storage.py     # under a minute on 2 cores
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from automl.storage.schema import TrialAttr
from automl.storage.trial_queue import queue_trials
from automl.storage.urls import open_storage
from automl.storage.worker_storage import WorkerStorage

STUDY = "bench"


def median_ms(calls: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median milliseconds of each call, the calls alternated in every round."""
    timings: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            timings[name].append(time.perf_counter() - started)
    return {name: 1000 * statistics.median(values) for name, values in timings.items()}


def finished_trials(count: int) -> list[optuna.trial.FrozenTrial]:
    distributions = {f"x{i}": FloatDistribution(0, 1) for i in range(10)}
    return [create_trial(state=TrialState.COMPLETE, values=[0.5, 1e5], distributions=distributions,
                         params={name: 0.5 for name in distributions},
                         user_attrs={f"a{i}": i for i in range(20)}) for _ in range(count)]


def study_on(storage: optuna.storages.BaseStorage) -> optuna.Study:
    return optuna.load_study(study_name=STUDY, storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))


def one_trial(study: optuna.Study, rungs: int = 0) -> None:
    """A trial's storage work as a worker does it, without training: pop, params, attributes, a
    read of the study at each of ``rungs`` rungs (with the curve so far written), result."""
    trial = study.ask()
    for i in range(10):
        trial.suggest_float(f"x{i}", 0, 1)
    for i in range(20):
        trial.set_user_attr(f"a{i}", i)
    for rung in range(rungs):
        trial.set_user_attr(TrialAttr.VAL_CURVE, [0.5] * (rung + 1))
        study.get_trials(deepcopy=False)
    study.tell(trial, [0.5, 1e5])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--finished", type=int, default=200, help="finished trials in the study")
    parser.add_argument("--queued", type=int, default=1000, help="queued trials in the study")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        created = optuna.create_study(study_name=STUDY, storage=open_storage(url),
                                      directions=["maximize", "minimize"])
        created.add_trials(finished_trials(args.finished))
        queue_trials(created, args.queued + 4 * args.repeats)
        studies = {"optuna": study_on(open_storage(url)), "automl": study_on(WorkerStorage(open_storage(url)))}
        for study in studies.values():
            study.get_trials(deepcopy=False)  # the first read loads every trial, on both
        print(f"study of {args.finished} finished and {args.queued} queued trials, median of {args.repeats}")
        print(f"{'what':<44} {'optuna ms':>10} {'automl ms':>10} {'ratio':>6}")
        rows = {
            "read of the study": {name: (lambda s=study: s.get_trials(deepcopy=False))
                                  for name, study in studies.items()},
            "a trial: pop, 10 params, 20 attrs, tell": {name: (lambda s=study: one_trial(s))
                                                       for name, study in studies.items()},
            "the same, reading the study at 3 rungs": {name: (lambda s=study: one_trial(s, rungs=3))
                                                       for name, study in studies.items()},
        }
        for what, calls in rows.items():
            ms = median_ms(calls, args.repeats)
            print(f"{what:<44} {ms['optuna']:>10.2f} {ms['automl']:>10.2f} {ms['optuna'] / ms['automl']:>6.2f}")


if __name__ == "__main__":
    main()
