"""benchmarks/gpu_trials.py --quick keeps working where CI runs it: on a CPU."""

from __future__ import annotations

import re

import pytest
from benchmark_runs import run_main


@pytest.mark.slow
def test_quick_run_prints_the_table_and_the_ratio_lines(capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # 400 CIFAR-shaped images (the quick run's 1,200 train the same code three times as long).
    stdout = run_main("gpu_trials", ["--quick", "--accelerator", "cpu", "--samples", "400"], capsys, monkeypatch)
    lines = stdout.splitlines()
    # A row per task and family, each automl trial and plain run timed.
    for task in ("cifar", "digits"):
        for family in ("cnn", "transformer", "mlp"):
            row = next(line for line in lines if line.split()[:2] == [task, family])
            assert all(float(value) > 0 for value in row.split()[2:6]), row
    values = {match[0]: float(match[1]) for match in re.findall(r"^(\w+)=([\d.]+)$", stdout, re.MULTILINE)}
    assert values.keys() == {"max_trial_ratio", "max_measure_share", "packing_speedup_k4"}, stdout
    assert values["max_trial_ratio"] > 0.5 and 0 < values["max_measure_share"] < 1
    packed = [line.split() for line in lines if line.startswith("digits ") and line.split()[1] in ("1", "4")]
    assert [row[1:4] for row in packed] == [["1", "4", "0"], ["4", "4", "0"]], stdout  # K, trials, failed
    assert lines[-1].startswith("packing_speedup_k4=") and values["packing_speedup_k4"] > 0
