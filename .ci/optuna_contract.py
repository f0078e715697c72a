"""Optuna's contract, checked on the Optuna this interpreter has: prints how many private Optuna
names automl uses (automl.storage._optuna.PRIVATE_NAMES) and how many cases of Optuna's own storage
and sampler suites ran, were skipped or failed on automl's worker storage and grouped TPE
(tests/storage/test_optuna_suites.py, SQLite and PostgreSQL), beside the fence's tests.

    .venv/bin/python .ci/optuna_contract.py      # AUTOML_TEST_POSTGRES_URL set (.ci/postgres.sh)

Exits non-zero when a test fails, a suite case is skipped or the fence holds more than five names.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path

import optuna

from automl.storage._optuna import PRIVATE_NAMES

MAX_PRIVATE_NAMES = 5
REPO = Path(__file__).resolve().parent.parent


def _outcome(case: ElementTree.Element) -> str:
    for outcome in ("skipped", "failure", "error"):
        if case.find(outcome) is not None:
            return outcome
    return "passed"


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "suites.xml"
        tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                                "tests/storage/test_optuna_fence.py", "tests/storage/test_optuna_suites.py"], cwd=REPO)
        cases = list(ElementTree.parse(report).getroot().iter("testcase"))
    outcomes: dict[str, Counter[str]] = {}
    for case in cases:
        name = case.get("classname", "").rsplit(".", 1)[-1]
        suite = ("Optuna's storage suite on the worker storage" if name == "TestWorkerStorage" else
                 "Optuna's sampler suites on the grouped TPE" if name.startswith("TestGroupTPE") else
                 "the fence's tests")
        outcomes.setdefault(suite, Counter())[_outcome(case)] += 1
    print(f"\nOptuna {optuna.__version__}: {len(PRIVATE_NAMES)} private names (at most {MAX_PRIVATE_NAMES}): "
          f"{', '.join(PRIVATE_NAMES)}")
    for suite, counted in outcomes.items():
        print(f"{suite}: {counted['passed']} passed, {counted['skipped']} skipped, "
              f"{counted['failure'] + counted['error']} failed")
    skipped = sum(counted["skipped"] for counted in outcomes.values())
    return int(tests.returncode != 0 or skipped > 0 or len(PRIVATE_NAMES) > MAX_PRIVATE_NAMES)


if __name__ == "__main__":
    sys.exit(main())
