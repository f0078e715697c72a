"""Nothing heavy is imported before a study file is valid, nor by loading the built-in plugins.

Every process that reads a study file (`automl run`, each packed `automl worker`) loads every
installed plugin module; a study file's typo must reach its one-line error in about a CPU-second,
not after torch, Lightning or scikit-learn have loaded. A fresh interpreter is the point here:
this test process has all of them loaded already. One interpreter serves every case, one after
the other (a second of start-up each would be spent otherwise): the heavy modules loaded after a
case are those it and every case before it loaded, so none after the last means none in any.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_study

# Libraries that take a second or more to import, and what needs them comes after the checks.
HEAVY = ("torch", "lightning", "torchmetrics", "sklearn", "scipy", "matplotlib", "plotly", "optuna_dashboard",
         "onnx", "onnxruntime", "onnxscript")

# The study files' data parts and the error each must end in.
CASES = {
    "misspelled-key": ('[data]\ndataset = "digits"\n[train]\nmax_epoch = 3', "unknown key 'train.max_epoch'"),
    "unknown-dataset": ('[data]\ndataset = "digitz"', "unknown dataset 'digitz'"),
    "missing-data-file": ('[data]\ndataset = "csv"\npath = "gone.csv"\nlabel = "label"', "gone.csv does not exist"),
    "missing-label-column": ('[data]\ndataset = "csv"\npath = "rows.csv"\nlabel = "label"', "has no column 'label'"),
}

# Builds the plugin registry, then runs automl's command line (as `automl run study.toml` does) in
# each folder given, in turn; prints a JSON line after each: its exit code, what it wrote to
# stderr, and the heavy modules loaded so far.
PROBE = """
import contextlib, io, json, os, sys
def heavy():
    return sorted({name.split(".")[0] for name in sys.modules} & set(HEAVY))
from automl.plugin.registry import registry
registry()
print(json.dumps({"heavy": heavy()}))
from automl.cli import main
for folder in sys.argv[1:]:
    os.chdir(folder)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["run", "study.toml"])
    print(json.dumps({"code": code, "stderr": err.getvalue(), "heavy": heavy()}))
"""


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """What the fresh interpreter found: under "plugins" after building the registry, under each
    case's name after its run (with "before" and "after", its folder's files)."""
    folders = {}
    for case, (data, _) in CASES.items():
        folder = tmp_path_factory.mktemp(case)
        (folder / "rows.csv").write_text("a,b\n1,2\n3,4\n")
        write_study(folder, f'name = "lazy"\nstorage = "sqlite:///{folder / "lazy.db"}"\n{data}\n')
        folders[case] = folder
    before = {case: sorted(folder.iterdir()) for case, folder in folders.items()}
    done = subprocess.run([sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{PROBE}", *map(str, folders.values())],
                          cwd=tmp_path_factory.getbasetemp(), capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NO_COLOR": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    plugins, *runs = (json.loads(line) for line in done.stdout.splitlines())
    assert len(runs) == len(CASES), done.stdout
    return {"plugins": plugins, **{case: {**run, "before": before[case], "after": sorted(folders[case].iterdir())}
                                   for case, run in zip(CASES, runs, strict=True)}}


def test_the_built_in_plugins_load_without_torch(probed: dict[str, dict[str, object]]) -> None:
    assert probed["plugins"]["heavy"] == []


@pytest.mark.parametrize("case", CASES)
def test_a_study_file_or_data_error_comes_before_any_heavy_import(probed: dict[str, dict[str, object]],
                                                                  case: str) -> None:
    ran, expected = probed[case], CASES[case][1]
    assert ran["code"] == 2 and expected in " ".join(str(ran["stderr"]).split()), ran
    assert ran["heavy"] == [], f"{case}: imported before the error: {ran['heavy']}"
    assert ran["after"] == ran["before"]  # nothing written either
