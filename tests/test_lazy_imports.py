"""Nothing heavy is imported before a study file is valid, nor by loading the built-in plugins.

Every process that reads a study file (`automl run`, each packed `automl worker`) loads every
installed plugin module; a study file's typo must reach its one-line error in about a CPU-second,
not after torch, Lightning or scikit-learn have loaded. A fresh interpreter is the point here:
this test process has all of them loaded already.
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

# Runs automl's command line (as `automl ARGS` does), then prints its exit code and the heavy modules loaded.
PROBE = """
import json, sys
from automl.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "heavy": sorted({name.split(".")[0] for name in sys.modules} & set(HEAVY))}))
"""


def imported_by(code: str, *args: str, cwd: Path) -> dict[str, object]:
    """The exit code of ``code`` run with ``args`` in a fresh interpreter, and the heavy modules it loaded."""
    script = f"HEAVY = {HEAVY!r}\n{code}"
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "NO_COLOR": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return {**json.loads(done.stdout.splitlines()[-1]), "stderr": done.stderr}


def test_the_built_in_plugins_load_without_torch(tmp_path: Path) -> None:
    loaded = imported_by("import sys\nfrom automl.plugin.registry import registry\nregistry()\n"
                         "print(__import__('json').dumps({'heavy': sorted({n.split('.')[0] for n in sys.modules} "
                         "& set(HEAVY))}))", cwd=tmp_path)
    assert loaded["heavy"] == []


@pytest.mark.parametrize(("case", "data", "expected"), [
    ("misspelled key", '[data]\ndataset = "digits"\n[train]\nmax_epoch = 3', "unknown key 'train.max_epoch'"),
    ("unknown dataset", '[data]\ndataset = "digitz"', "unknown dataset 'digitz'"),
    ("data file not there", '[data]\ndataset = "csv"\npath = "gone.csv"\nlabel = "label"',
     "gone.csv does not exist"),
    ("data file without its label column", '[data]\ndataset = "csv"\npath = "rows.csv"\nlabel = "label"',
     "has no column 'label'"),
], ids=["misspelled-key", "unknown-dataset", "missing-data-file", "missing-label-column"])
def test_a_study_file_or_data_error_comes_before_any_heavy_import(tmp_path: Path, case: str, data: str,
                                                                  expected: str) -> None:
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n3,4\n")
    study = write_study(tmp_path, f'name = "lazy"\nstorage = "sqlite:///{tmp_path / "lazy.db"}"\n{data}\n')
    before = sorted(tmp_path.iterdir())
    ran = imported_by(PROBE, "run", str(study), cwd=tmp_path)
    assert ran["code"] == 2 and expected in " ".join(str(ran["stderr"]).split()), ran
    assert ran["heavy"] == [], f"{case}: imported before the error: {ran['heavy']}"
    assert sorted(tmp_path.iterdir()) == before  # nothing written either
