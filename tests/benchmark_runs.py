"""A benchmark's ``main`` run in the test process, for the tests that check its ``--quick`` run.

The test process has torch, Lightning and automl loaded already, as every test session has from its
other modules; a process of the benchmark's own would load them again (about 7 CPU-s), and the process
boundary is not what those tests check. The processes a benchmark starts itself (its `automl run`s,
workers, views) still run as processes.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import optuna
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_main(module: str, argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    """Run ``benchmarks/MODULE.py ARGV`` in this process; what it printed to its standard output."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the processes it starts train with one thread, as here
    verbosity = optuna.logging.get_verbosity()  # a benchmark quiets Optuna for its own process
    try:
        importlib.import_module(module).main(argv)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return capsys.readouterr().out
