"""benchmarks/study_scale.py --quick keeps working: every table prints, with figures that make sense."""

from __future__ import annotations

import os
import re

import pytest
from benchmark_runs import run_main


@pytest.mark.slow  # processes with torch, the views as commands, PostgreSQL and Chromium where CI has them
def test_quick_run_prints_every_figure(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    stdout = run_main("study_scale", ["--quick"], capsys, monkeypatch)
    values = {key: float(value) for key, value in re.findall(r"^(\w+)=([-\d.e+inf]+)$", stdout, re.MULTILINE)}
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
