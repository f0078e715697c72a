"""benchmarks/study_scale.py --quick keeps working: every table prints, with figures that make sense;
--rounds gives the medians of its runs, --trials-per-worker the study's size; --compare runs another
checkout's simulated workers, and only that checkout's."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from benchmark_runs import BENCHMARKS, run_main

REPOSITORY = BENCHMARKS.parent
NUMBER = r"\d+\.\d+"


def key_values(stdout: str) -> dict[str, float]:
    """The ``key=value`` figures a benchmark prints last."""
    return {key: float(value) for key, value in re.findall(r"^(\w+)=([-\d.e+inf]+)$", stdout, re.MULTILINE)}


@pytest.mark.slow  # processes with torch, the views as commands, PostgreSQL and Chromium where CI has them
def test_quick_run_prints_every_figure(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    stdout = run_main("study_scale", ["--quick"], capsys, monkeypatch)
    values = key_values(stdout)
    backends = ["sqlite", *(["postgresql"] if os.environ.get("AUTOML_TEST_POSTGRES_URL") else [])]
    for backend in backends:
        for size in (100, 300):
            assert values[f"overhead_ms_{backend}_{size}"] > 0, stdout
    # The views ran to their end on the 300-trial study, within the targets set for 50,000.
    assert 0 < values["show_s_300"] < 60 and 0 < values["show_mib_300"] < 1024, stdout
    assert 0 < values["report_s_300"] < 120 and 0 < values["report_mib_300"] < 1024, stdout
    assert values["dashboard_api_s_300"] > 0, stdout
    if "postgresql" in backends:  # simulated workers: every queued trial finished once, none lost
        assert values["workers_4_per_s"] > 0 and values["workers_4_connections"] >= 1, stdout
        assert values["workers_4_wrong"] == 0, stdout
        assert values["workers_4_ceiling_per_s"] > 0, stdout  # the CPU a trial cost, clients and server


@pytest.mark.slow  # two simulations of 3 workers, in processes of their own; ~20 s
def test_rounds_print_each_run_and_give_their_medians(postgres_url: str, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    stdout = run_main("study_scale", ["--parts", "workers", "--workers", "3", "--quick", "--trials-per-worker", "3",
                                      "--postgres", postgres_url, "--rounds", "2"], capsys, monkeypatch)
    assert "trials per worker: 3" in stdout, stdout
    runs = [float(per_second) for per_second in re.findall(rf"^ +3 +9 +({NUMBER}) ", stdout, re.MULTILINE)]
    assert len(runs) == 2 and all(per_second > 0 for per_second in runs), stdout
    values = key_values(stdout)
    # Printed with one decimal: the median of two runs is their mean, within rounding.
    assert values["workers_3_per_s"] == pytest.approx(statistics.mean(runs), abs=0.06), stdout
    assert values["workers_3_wrong"] == 0 and values["workers_3_connections"] >= 3, stdout


@pytest.mark.parametrize(("argv", "error"), [
    (["--workers", "0"], "argument --workers: '0': each at least 1"),
    (["--workers", "4,"], "argument --workers: '4,': expected whole numbers separated by commas"),
    (["--sizes", "100,x"], "argument --sizes: '100,x': expected whole numbers separated by commas"),
    (["--parts", "workerz"], "--parts workerz: no part 'workerz'; the parts are overhead, views, workers"),
    (["--parts", "workers", "--postgres", ""], "--parts workers: the simulated workers need a PostgreSQL server"),
    (["--rounds", "0"], "--rounds 0: at least 1"),
], ids=["no workers", "a trailing comma", "a size not a number", "no such part", "workers without a server",
        "no rounds"])
def test_bad_arguments_are_refused_before_anything_runs(argv: list[str], error: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        run_main("study_scale", argv, capsys, monkeypatch)
    assert exited.value.code == 2
    assert error in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def head_checkout(tmp_path: Path) -> Iterator[Path]:
    """This repository's HEAD checked out into a git worktree of its own (no environment), removed after."""
    tree = tmp_path / "head"
    subprocess.run(["git", "-C", str(REPOSITORY), "worktree", "add", "--detach", str(tree), "HEAD"], check=True,
                   capture_output=True)
    try:
        yield tree
    finally:
        subprocess.run(["git", "-C", str(REPOSITORY), "worktree", "remove", "--force", str(tree)], check=True,
                       capture_output=True)


@pytest.mark.slow  # four simulations of 2 workers, each in a process of its own with processes of its own; ~40 s
def test_compare_prints_both_trees_runs_and_the_ratios(postgres_url: str, head_checkout: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    stdout = run_main("study_scale", ["--parts", "workers", "--workers", "2", "--quick", "--postgres", postgres_url,
                                      "--compare", str(head_checkout)], capsys, monkeypatch)
    # Each run's row, the trees alternately, twice each (the default --rounds): 4 trials, all finished.
    runs = re.findall(rf"^ +2 +4 +({NUMBER}) .* (this|head)$", stdout, re.MULTILINE)
    assert [tree for _, tree in runs] == ["head", "this", "head", "this"], stdout
    assert all(float(per_second) > 0 for per_second, _ in runs), stdout
    # The comparison's row: each tree's median (min-max) of trials/s, client and server CPU-s per trial,
    # then the ratios this/head of trials/s, client, server and total CPU per trial.
    cell = rf"{NUMBER} \({NUMBER}-{NUMBER}\)"
    assert re.search(rf"^ +2(?: +{cell}){{6}}(?: +{NUMBER}){{4}}$", stdout, re.MULTILINE), stdout
    values = key_values(stdout)
    for figure in ("per_s", "client_cpu", "server_cpu", "cpu"):
        assert values[f"workers_2_{figure}_ratio"] > 0, stdout
    assert values["workers_2_per_s"] > 0 and values["workers_2_other_per_s"] > 0, stdout
    assert values["workers_2_wrong"] == values["workers_2_other_wrong"] == 0, stdout


@pytest.mark.parametrize(("files", "error"), [
    # A tree without automl: `import automl` finds this environment's, which is not the tree's.
    ({"benchmarks/scale/__init__.py": "", "benchmarks/scale/workers.py": "def simulate(url, name, workers, "
      "trials_per_worker, train_s): raise AssertionError"}, "imported automl from"),
    ({"automl/__init__.py": "", "benchmarks/scale/__init__.py": "",
      "benchmarks/scale/workers.py": "def simulate(url, workers): raise AssertionError"},
     "its scale.workers.simulate takes (url, workers); expected (url, name, workers, trials_per_worker, train_s, ...)"),
], ids=["without automl", "another simulate"])
def test_compare_refuses_a_tree_whose_code_is_not_what_it_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               files: dict[str, str], error: str) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from scale import compare

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    with pytest.raises(compare.TreeError) as raised:  # before its simulate runs: it would raise AssertionError
        compare.simulate_in(tmp_path, "postgresql://nowhere/none", "workers-2", 2, 2, 0.2)
    assert str(raised.value).startswith(f"{tmp_path.resolve()}: ") and error in str(raised.value)
