"""This tree's simulated workers (scale/workers.py) against another checkout's, side by side in one run.

``study_scale.py --parts workers --compare TREE`` runs, for each worker count, the simulation of this
tree and of TREE alternately, each on a fresh database (study_scale.py drives the runs); this module
runs one tree's simulation and prints the comparison: each tree's median (min-max) over its runs and
the ratios this/TREE of the medians, then the ``key=value`` figures.

A tree's simulation runs in a subprocess of this interpreter with ``PYTHONPATH=TREE:TREE/benchmarks``
and TREE as its working directory, so that ``import automl`` and ``from scale import workers`` load
TREE's code over this environment's packages (the workers' processes, spawned, inherit both). This
tree's runs go the same way, so that both pay the same. TREE needs no environment of its own, only
the dependencies of this one: e.g. ``git worktree add --detach /tmp/before COMMIT``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from scale.workers import WorkersResult

THIS_TREE = Path(__file__).resolve().parents[2]
# scale.workers.simulate's leading parameters, as every tree of the last weeks has them.
SIMULATE_PARAMETERS = ("url", "name", "workers", "trials_per_worker", "train_s")

# Run in the tree's subprocess: its arguments are the tree, simulate's five and SIMULATE_PARAMETERS.
# It simulates only once the modules it imported are the tree's and simulate takes what is expected;
# its last line says what it imported and found, and the WorkersResult, as JSON.
_CHILD = """
import dataclasses, inspect, json, sys, warnings
from pathlib import Path
import optuna
import automl
from scale import workers
optuna.logging.set_verbosity(optuna.logging.ERROR)
warnings.simplefilter("ignore")
tree, url, name, count, trials_per_worker, train_s = sys.argv[1:7]
reply = {"automl": automl.__file__, "workers": workers.__file__,
         "parameters": list(inspect.signature(workers.simulate).parameters)}
if all(Path(reply[module]).resolve().is_relative_to(tree) for module in ("automl", "workers")) \\
        and reply["parameters"][:5] == sys.argv[7:]:
    found = workers.simulate(url, name, int(count), int(trials_per_worker), float(train_s))
    reply["result"] = dataclasses.asdict(found)
print(json.dumps(reply))
"""


class TreeError(RuntimeError):
    """A tree's simulation could not run or is not the one this benchmark expects."""


def simulate_in(tree: Path, url: str, name: str, workers: int, trials_per_worker: int,
                train_s: float) -> WorkersResult:
    """``scale.workers.simulate(url, name, workers, trials_per_worker, train_s)`` of ``tree`` (a checkout
    of this repository), in a subprocess as the module says; its standard error passes through.

    Raises TreeError naming ``tree`` when the subprocess fails, imports automl or scale.workers from
    elsewhere, or ``tree``'s simulate or WorkersResult differs from this tree's.
    """
    tree = tree.resolve()
    completed = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tree), url, name, str(workers), str(trials_per_worker), str(train_s),
         *SIMULATE_PARAMETERS],
        cwd=tree, env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(tree / "benchmarks")])},
        stdout=subprocess.PIPE, text=True, check=False)
    lines = completed.stdout.splitlines()
    if completed.returncode or not lines:
        raise TreeError(f"{tree}: its simulated workers failed with exit status {completed.returncode} "
                        "(its error is above)")
    reply = json.loads(lines[-1])
    for module in ("automl", "workers"):
        if not Path(reply[module]).resolve().is_relative_to(tree):
            raise TreeError(f"{tree}: its subprocess imported {module} from {reply[module]}, not from {tree} "
                            f"(PYTHONPATH={tree}{os.pathsep}{tree / 'benchmarks'})")
    if reply["parameters"][:5] != list(SIMULATE_PARAMETERS):
        raise TreeError(f"{tree}: its scale.workers.simulate takes ({', '.join(reply['parameters'])}); expected "
                        f"({', '.join(SIMULATE_PARAMETERS)}, ...)")
    fields = [field.name for field in dataclasses.fields(WorkersResult)]
    missing = [field for field in fields if field not in reply["result"]]
    if missing:
        raise TreeError(f"{tree}: its scale.workers.WorkersResult has no {', '.join(missing)}; expected the fields "
                        f"{', '.join(fields)}")
    return WorkersResult(**{field: reply["result"][field] for field in fields})


def describe(tree: Path) -> str:
    """``tree``'s path and commit, and whether its tracked files differ from that commit."""
    def git(*argv: str) -> str:
        return subprocess.run(["git", "-C", str(tree), *argv], capture_output=True, text=True, check=False).stdout

    commit = git("log", "-1", "--format=%h").strip()
    changed = " with uncommitted changes" if git("status", "--porcelain", "--untracked-files=no").strip() else ""
    return f"{tree} at {commit}{changed}" if commit else f"{tree} (not a git checkout)"


# What is compared, from each run: its name in the key=value lines, how a run gives it, its digits.
FIGURES: dict[str, tuple[Callable[[WorkersResult], float], int]] = {
    "per_s": (lambda run: run.per_second, 1),
    "client_cpu": (lambda run: run.client_cpu_s, 3),
    "server_cpu": (lambda run: run.server_cpu_s, 3),
    "cpu": (lambda run: run.client_cpu_s + run.server_cpu_s, 3),
}
_CELLS = ("per_s", "client_cpu", "server_cpu")  # shown per tree; the total as a ratio only
_CELL_WIDTH = 19  # "0.041 (0.039-0.043)"


def _cell(runs: Sequence[WorkersResult], figure: str) -> str:
    """The median of a figure over ``runs``, and its min-max when there are several."""
    of, digits = FIGURES[figure]
    values = [of(run) for run in runs]
    median = f"{statistics.median(values):.{digits}f}"
    return median if len(values) == 1 else f"{median} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def ratios(ours: Sequence[WorkersResult], theirs: Sequence[WorkersResult]) -> dict[str, float]:
    """Each figure's median over ``ours`` divided by its median over ``theirs`` (nan where theirs is 0)."""
    found = {}
    for figure, (of, _) in FIGURES.items():
        divisor = statistics.median(of(run) for run in theirs)
        found[figure] = statistics.median(of(run) for run in ours) / divisor if divisor else float("nan")
    return found


def print_table(runs: dict[int, tuple[list[WorkersResult], list[WorkersResult]]], other: Path) -> dict[str, float]:
    """The comparison, one row per worker count of ``runs`` (count -> this tree's runs, ``other``'s);
    returns its ``key=value`` figures: the ratios this/other, both trees' trials/s (medians) and the
    trials each got wrong (errors, failed, lost, stuck and duplicated, over its runs)."""
    print(f"this tree against {other.name} (medians, min-max over the runs; this = {describe(THIS_TREE)}, "
          f"{other.name} = {describe(other)})")
    width = 2 * _CELL_WIDTH + 1
    print(f"{'':>7} {'trials/s':<{width}} {'client CPU-s per trial':<{width}} {'server CPU-s per trial':<{width}} "
          f"this/{other.name} (of the medians)")
    print(f"{'workers':>7}" + f" {'this':<{_CELL_WIDTH}} {other.name:<{_CELL_WIDTH}}" * len(_CELLS)
          + f" {'trials/s':>8} {'client':>6} {'server':>6} {'total':>6}")
    results: dict[str, float] = {}
    for count, (ours, theirs) in runs.items():
        found = ratios(ours, theirs)
        print(f"{count:>7}" + "".join(f" {_cell(ours, figure):<{_CELL_WIDTH}} {_cell(theirs, figure):<{_CELL_WIDTH}}"
                                      for figure in _CELLS)
              + f" {found['per_s']:>8.2f} {found['client_cpu']:>6.2f} {found['server_cpu']:>6.2f} "
              f"{found['cpu']:>6.2f}", flush=True)
        for side, side_runs in (("", ours), ("other_", theirs)):
            results[f"workers_{count}_{side}per_s"] = statistics.median(run.per_second for run in side_runs)
            results[f"workers_{count}_{side}wrong"] = sum(wrong(run) for run in side_runs)
        results.update({f"workers_{count}_{figure}_ratio": ratio for figure, ratio in found.items()})
    return results


def wrong(run: WorkersResult) -> int:
    """The trials a run got wrong: workers' errors, failed, lost, stuck and duplicated trials."""
    return run.errors + run.failed + run.lost + run.stuck + run.duplicated
