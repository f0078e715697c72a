"""benchmarks/startup.py --quick keeps working: its three measurements and their closing lines."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.slow
def test_quick_run_prints_each_measurement_and_the_closing_lines() -> None:
    run = subprocess.run([sys.executable, "startup.py", "--quick", "--trials", "2"], cwd=BENCHMARKS,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    # Both sides reached a training step, each error case ended in its message.
    assert any(line.strip().startswith("plain script") for line in lines), run.stdout
    assert any(line.strip().startswith("automl run, 1-trial study") for line in lines), run.stdout
    for case in ("misspelled key", "unknown dataset", "data file not there"):
        row = next(line for line in lines if line.strip().startswith(case))
        assert "error" in row, row
    values = {name: float(value) for name, value in re.findall(r"^(\w+)=(-?[\d.]+)$", run.stdout, re.MULTILINE)}
    assert list(values) == ["startup_ratio", "error_cpu_s", "run_overhead_s"], run.stdout
    assert values["startup_ratio"] > 0.5 and values["error_cpu_s"] > 0
