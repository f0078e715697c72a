"""A worker's client work per read of a study with 128 workers, without the database: what
automl.storage.read_once does with the rows of each read (the trials kept, in outline or whole,
and listed), replayed on two versions of the module side by side.

One worker's reads are replayed as the simulated workers (benchmarks/scale/workers.py) make them,
on a study of ``workers * per_worker`` trials queued up front that ``workers`` workers pop in turn:
before each pop it counts the queued trials and lists them for the pop (both in outline), and it
reads the ranked trials twice while its trial runs (MO-ASHA's rungs), while the other workers end a
trial and pop the next one at random times (each trial runs ``workers`` steps of the study on
average, one trial ending a step). The database is a Python stand-in: its rows are built and its
trials loaded outside the time measured, which is the rest of TrialCache.refresh and the listing.
Both modules replay the same reads, alternately, ``--repeats`` times; prints each one's median
microseconds per read and per trial the study finishes (the worker's share times the workers),
the ratio, and checks both listed the same trials each time.

    python benchmarks/read_once.py --against /path/to/other/automl/storage/read_once.py
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import heapq
import importlib.util
import random
import statistics
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

import automl.storage.read_once
from automl.search.moasha import RANKED_STATES
from automl.storage.stored_trials import StoredTrial, TrialStateRow

STUDY_ID = 1
EPOCH = datetime.datetime(2026, 1, 1)


class Tables:
    """The stored trials' states, start times and full copies (OptunaTables' reads, in memory); the
    time spent in them is summed in ``spent_s`` (left out of what is measured)."""

    def __init__(self, trials: int) -> None:
        self.states = [TrialState.WAITING] * trials
        self.starts: list[datetime.datetime | None] = [None] * trials
        self.engine = None
        self.spent_s = 0.0

    def trial_states(self, connection: Any, study_id: int, lowest: int, queued_after: int = -1) -> list[TrialStateRow]:
        started = time.thread_time()
        rows = [TrialStateRow(trial_id, trial_id, state, self.starts[trial_id])
                for trial_id, state in enumerate(self.states[lowest:], lowest)
                if state != TrialState.WAITING or trial_id > queued_after]
        self.spent_s += time.thread_time() - started
        return rows

    def load(self, connection: Any, study_id: int, trial_ids: Any = ()) -> list[StoredTrial]:
        started = time.thread_time()
        loaded = [StoredTrial(study_id, trial_id, self._trial(trial_id))
                  for trial_id in (trial_ids or range(len(self.states)))]
        self.spent_s += time.thread_time() - started
        return loaded

    def _trial(self, trial_id: int) -> FrozenTrial:
        state = self.states[trial_id]
        params = {f"x{index}": 0.5 for index in range(10)}
        return FrozenTrial(number=trial_id, state=state, value=None, datetime_start=self.starts[trial_id],
                           datetime_complete=None, params=params,
                           distributions={name: FloatDistribution(0, 1) for name in params},
                           user_attrs={"worker": "sim", "flops": 2000.0}, system_attrs={}, intermediate_values={},
                           trial_id=trial_id, values=[0.5, 2000.0] if state == TrialState.COMPLETE else None)


def replay(module: ModuleType, workers: int, per_worker: int, seed: int) -> tuple[float, int, list[list[int]]]:
    """One worker's reads of the study (see module) through ``module``'s TrialCache: the seconds its
    reads and listings took (the stand-in database's aside), how many reads, and what each listed."""
    rng = random.Random(seed)
    total = workers * per_worker
    tables = Tables(total)
    cache = module.TrialCache(fresh_s=5.0)  # the simulated workers' heartbeat interval
    listed: list[list[int]] = []
    spent = [0.0]

    def read(states: tuple[TrialState, ...] | None, in_outline: bool = False) -> None:
        started, outside = time.thread_time(), tables.spent_s
        known = cache.refresh(tables, STUDY_ID, states, in_outline)
        trials = known.listing(states)
        spent[0] += time.thread_time() - started - (tables.spent_s - outside)
        listed.append([trial.number for trial in trials])

    next_queued, step = 0, 0
    ending: list[tuple[int, int, bool]] = []  # a heap: (the step it ends at, trial id, whether this worker's)

    def pop(ours: bool) -> int | None:
        nonlocal next_queued
        if next_queued == total:
            return None
        trial_id, next_queued = next_queued, next_queued + 1
        tables.states[trial_id], tables.starts[trial_id] = TrialState.RUNNING, EPOCH + datetime.timedelta(seconds=step)
        heapq.heappush(ending, (step + rng.randint(workers // 2, 3 * workers // 2), trial_id, ours))
        return trial_id

    for _ in range(workers - 1):
        pop(False)
    with _without_connections(module):
        while True:  # this worker: count the queued trials, pop one, read twice while it runs
            read((TrialState.WAITING,), in_outline=True)
            read((TrialState.WAITING,), in_outline=True)
            ours = pop(True)
            if ours is None:
                break
            started = time.thread_time()
            cache.known(STUDY_ID).ours.add(ours)
            cache.study_of[ours] = STUDY_ID
            cache.known(STUDY_ID).move(ours, TrialState.RUNNING, None, tables.starts[ours], None)
            spent[0] += time.thread_time() - started
            ours_ends = next(end for end, _, mine in ending if mine)
            rungs = [step + (ours_ends - step) * part // 3 for part in (1, 2)]
            while True:  # the study goes on until this worker's trial ends
                end, trial_id, mine = heapq.heappop(ending)
                while rungs and rungs[0] <= end:
                    step = rungs.pop(0)
                    read(RANKED_STATES)
                step = end
                tables.states[trial_id] = TrialState.COMPLETE
                if mine:
                    started = time.thread_time()
                    cache.known(STUDY_ID).move(trial_id, TrialState.COMPLETE, [0.5, 2000.0],
                                               tables.starts[trial_id], None)
                    spent[0] += time.thread_time() - started
                    break
                pop(False)
    return spent[0], len(listed), listed


@contextlib.contextmanager
def _without_connections(module: ModuleType) -> Any:
    reading = module.reading
    module.reading = lambda engine: contextlib.nullcontext()
    try:
        yield
    finally:
        module.reading = reading


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("read_once_against", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", type=Path, required=True, help="another version of read_once.py")
    parser.add_argument("--workers", type=int, default=128)
    parser.add_argument("--per-worker", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    modules = {"this": automl.storage.read_once, "against": load_module(args.against)}
    timings: dict[str, list[float]] = {name: [] for name in modules}
    listings: dict[str, list[list[int]]] = {}
    reads = 0
    for repeat in range(args.repeats):
        for name, module in modules.items():
            spent, reads, listings[name] = replay(module, args.workers, args.per_worker, seed=repeat)
            timings[name].append(spent)
        assert listings["this"] == listings["against"], "the two versions listed different trials"
    finished = args.workers * args.per_worker
    for name, values in timings.items():
        spent = statistics.median(values)
        print(f"{name:8s} {1e6 * spent / reads:8.1f} us/read ({reads} reads), "
              f"{1e6 * spent * args.workers / finished:8.1f} us per finished trial (x{args.workers} workers)")
    print(f"this/against: {statistics.median(timings['this']) / statistics.median(timings['against']):.3f}")


if __name__ == "__main__":
    main()
