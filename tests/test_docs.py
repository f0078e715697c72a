"""docs/plugins.md is followed literally: its files are written, installed, checked and searched."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from automl.plugin import hookspecs
from conftest import REPO, make_distribution, run_cli, with_path

DOC = (REPO / "docs" / "plugins.md").read_text()
HOOKS = {name: function for name, function in vars(hookspecs).items()
         if callable(function) and hasattr(function, f"{hookspecs.PROJECT_NAME}_spec")}


def doc_files() -> dict[str, str]:
    """Code blocks whose first line is a comment naming a file: {path: contents}."""
    blocks = re.findall(r"```(?:python|toml)\n(.*?)```", DOC, flags=re.DOTALL)
    files = {}
    for block in blocks:
        first = block.splitlines()[0].strip()
        if first.startswith("# ") and first.endswith((".py", ".toml")):
            files[first[2:]] = block
    return files


def test_every_hook_is_documented_with_its_exact_signature() -> None:
    assert HOOKS, "no hookspecs found"
    for name, function in HOOKS.items():
        parameters = ", ".join(inspect.signature(function).parameters)
        assert f"### `{name}({parameters})`" in DOC, f"{name} is missing from the hooks reference"


def test_every_hook_is_implemented_by_a_documented_example_this_file_runs() -> None:
    examples = "\n".join(doc_files().values())
    for name, function in HOOKS.items():
        parameters = ", ".join(inspect.signature(function).parameters)
        assert f"def {name}({parameters}):" in examples, f"no runnable example implements {name}"


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tutorial's files, written where it says, and its package installed with pip."""
    root = tmp_path_factory.mktemp("tutorial")
    for relative, text in doc_files().items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(root / "site"), str(root / "automl-widemlp")], check=True)
    blobs = (root / "automl-blobs" / "automl_blobs.py").read_text()
    make_distribution(root / "site", "automl-blobs", {"automl_blobs": blobs}, {"blobs": "automl_blobs"})
    return root


def test_tutorial_family_is_listed_checked_tested_and_searched(tutorial: Path) -> None:
    env = with_path(tutorial / "site")
    listed = run_cli("plugins", cwd=tutorial, env=env)
    assert listed.returncode == 0, listed.stderr
    assert any("widemlp" in line and "automl-widemlp 0.1.0" in line for line in listed.stdout.splitlines())

    checked = run_cli("plugins", "check", "widemlp", cwd=tutorial, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    suite = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            str(tutorial / "automl-widemlp" / "tests")], cwd=tutorial, capture_output=True,
                           text=True, env={**os.environ, **env}, timeout=300)
    assert suite.returncode == 0, suite.stdout + suite.stderr

    searched = run_cli("run", "widemlp.toml", "--n-trials", "3", cwd=tutorial, env=env)
    assert searched.returncode == 0, searched.stderr
    shown = run_cli("show", "widemlp-vs-cnn", cwd=tutorial, env=env)
    assert shown.returncode == 0 and "Pareto front of 'widemlp-vs-cnn' (3 trials)" in shown.stdout


def test_tutorial_dataset_is_searched_with_its_own_option(tutorial: Path) -> None:
    env = with_path(tutorial / "site")

    def run(options: str, db: str) -> subprocess.CompletedProcess:
        study = tutorial / "blobs.toml"
        study.write_text(f'name = "blobs"\nn_trials = 2\nstorage = "sqlite:///{tutorial / db}"\n[data]\n'
                         f'dataset = "blobs"\n[data.options]\n{options}\n[search]\nfamilies = ["mlp"]\n'
                         '[train]\nmax_epochs = 2\n')
        return run_cli("run", str(study), cwd=tutorial, env=env)

    searched = run("classes = 4", "blobs.db")
    assert searched.returncode == 0, searched.stderr
    assert "blobs (tabular, input [8], 4 classes)" in " ".join(searched.stderr.split())

    bad_value, typo = run('classes = "many"', "bad_value.db"), run("clases = 4", "typo.db")
    assert bad_value.returncode == typo.returncode == 2
    bad_value_error, typo_error = (" ".join(result.stderr.split()) for result in (bad_value, typo))
    assert "[data.options] classes: expected an integer of at least 2, found 'many'" in bad_value_error
    assert "[data.options] clases: dataset 'blobs'" in typo_error and "reads only classes there" in typo_error
    assert not (tutorial / "bad_value.db").exists() and not (tutorial / "typo.db").exists()
