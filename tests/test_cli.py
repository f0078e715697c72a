"""The command line as a user meets it: help, quickstart-shaped runs, show, plugins."""

from __future__ import annotations

import gc
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SearchedStudy, run_cli, spawn_cli, write_study
from datafiles import labels, write_npz

from automl.cli import main
from automl.workers.collector import FULL_PASS_EVERY


@pytest.mark.parametrize("command", [[], ["run"], ["show"], ["plugins"], ["dashboard"]])
def test_help_everywhere(command: list[str], tmp_path: Path) -> None:
    result = run_cli(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "usage: automl" in result.stdout


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run_cli("frobnicate", cwd=tmp_path).returncode == 2
    assert run_cli("run", cwd=tmp_path).returncode == 2
    missing = run_cli("run", "nope.toml", cwd=tmp_path)
    assert missing.returncode == 2 and "nope.toml does not exist" in missing.stderr
    for flag, value, message in [("--n-trials", "0", "must be at least 1, found 0"),
                                 ("--timeout", "-3", "must be a number of seconds above 0, found -3"),
                                 ("--threads", "0", "must be at least 1, found 0"),
                                 ("--workers", "two", "expected a whole number, found 'two'")]:
        wrong = run_cli("run", "x.toml", flag, value, cwd=tmp_path)
        assert wrong.returncode == 2 and f"automl run: error: argument {flag}: {message}" in wrong.stderr
    assert not list(tmp_path.iterdir()), "a usage error wrote something"


def test_the_command_in_a_fresh_process_prints_and_exits_as_in_process(tmp_path: Path) -> None:
    # The other tests run the CLI in-process (conftest.run_cli); this one is the process a user starts.
    fresh = spawn_cli("run", "nope.toml", cwd=tmp_path)
    in_process = run_cli("run", "nope.toml", cwd=tmp_path)
    assert (fresh.returncode, fresh.stdout, fresh.stderr) == (in_process.returncode, in_process.stdout,
                                                              in_process.stderr)
    assert fresh.returncode == 2 and "nope.toml does not exist" in fresh.stderr


def test_the_program_makes_full_collections_a_tenth_as_often_and_a_call_keeps_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    before = gc.get_threshold()
    monkeypatch.chdir(tmp_path)
    assert main(["run", "nope.toml"]) == 2 and gc.get_threshold() == before  # a call, as from a notebook
    monkeypatch.setattr(sys, "argv", ["automl", "run", "nope.toml"])
    try:
        assert main() == 2  # the program: `automl` or `python -m automl`
        assert gc.get_threshold() == (*before[:2], FULL_PASS_EVERY) and FULL_PASS_EVERY > before[2]
    finally:
        gc.set_threshold(*before)
    assert capsys.readouterr().err.count("nope.toml does not exist") == 2


@pytest.mark.slow  # a real study through the CLI
def test_run_then_show_prints_the_front_with_test_accuracy(tiny_study: Path, tmp_path: Path) -> None:
    run = run_cli("run", str(tiny_study), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "Pareto front of 'tiny'" in run.stdout
    storage = f"sqlite:///{tmp_path / 'tiny.db'}"
    show = run_cli("show", "tiny", "--storage", storage, cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    for column in ("trial", "family", "val acc", "test acc", "FLOPs", "params", "hyperparameters"):
        assert column in show.stdout
    assert "lr=" in show.stdout


def test_show_unknown_study_lists_existing(searched_study: SearchedStudy, tmp_path: Path) -> None:
    result = run_cli("show", "nope", "--storage", searched_study.url, cwd=tmp_path)
    assert result.returncode == 2
    assert "no study named 'nope'" in result.stderr and f"studies there: {searched_study.name}" in result.stderr


def test_show_takes_the_study_file_that_names_the_study_and_its_storage(searched_study: SearchedStudy,
                                                                        tmp_path: Path) -> None:
    # `automl run study.toml`, then `automl show study.toml`: the file's name and storage keys say where it is.
    study_file = str(searched_study.folder / "study.toml")
    shown = run_cli("show", study_file, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"Pareto front of '{searched_study.name}'" in shown.stdout
    # A storage given (flag or $AUTOML_STORAGE) wins over the file's, as for `automl run`.
    other = f"sqlite:///{tmp_path / 'other.db'}"
    for flag, env in ((["--storage", other], None), ([], {"AUTOML_STORAGE": other})):
        elsewhere = run_cli("show", study_file, *flag, cwd=tmp_path, env=env)
        assert elsewhere.returncode == 2 and "other.db: the file does not exist" in elsewhere.stderr
    # A study file that does not validate gets `automl run`'s error, and nothing is written.
    (tmp_path / "bad.toml").write_text('name = "x"\nfrobnicate = 1\n')
    bad = run_cli("show", "bad.toml", cwd=tmp_path)
    assert bad.returncode == 2 and "frobnicate" in bad.stderr
    assert [path.name for path in tmp_path.iterdir()] == ["bad.toml"]


def test_storage_password_is_never_printed(tmp_path: Path) -> None:
    result = run_cli("show", "x", "--storage", "postgresql+psycopg://bob:s3cret@127.0.0.1:1/db", cwd=tmp_path)
    assert result.returncode == 2
    assert "s3cret" not in result.stderr + result.stdout
    assert "bob:***@127.0.0.1" in result.stderr


@pytest.mark.slow
def test_default_storage_is_a_sqlite_file_in_the_working_directory(tmp_path: Path) -> None:
    study = tmp_path / "study.toml"
    study.write_text('name = "here"\nn_trials = 1\n[search]\nfamilies = ["mlp"]\n[train]\nmax_epochs = 1\n')
    assert run_cli("run", str(study), cwd=tmp_path).returncode == 0
    assert (tmp_path / "automl.db").exists()
    assert run_cli("show", "here", cwd=tmp_path).returncode == 0


@pytest.mark.slow  # a real cross-validated study through the CLI
def test_a_small_dataset_cross_validates_says_so_and_shows_the_spread(tmp_path: Path) -> None:
    y = labels(2, 30)
    x = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32) + y[:, None]
    write_npz(tmp_path / "small.npz", x, y)
    study = write_study(tmp_path, f"""
        name = "small"
        n_trials = 1
        storage = "sqlite:///{tmp_path / 'small.db'}"
        [data]
        dataset = "npz"
        path = "small.npz"
        [search]
        families = ["mlp"]
        [train]
        max_epochs = 1
    """)
    run = run_cli("run", str(study), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "note: cross-validating: 3 stratified folds over the 51 non-test rows" in " ".join(run.stderr.split())
    show = run_cli("show", "small", "--storage", f"sqlite:///{tmp_path / 'small.db'}", cwd=tmp_path)
    for printed in (run.stdout, show.stdout):  # the run ends with the front, as show prints it
        assert re.search(r"\d\.\d{4} ± \d\.\d{3}", printed), printed
        assert "val acc: the mean over 3 cross-validation folds ± their standard deviation" in printed
