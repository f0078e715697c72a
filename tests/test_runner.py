"""One orchestration: `automl run`, `automl worker` and `automl.run` are one code path, on real
digits, a real SQLite file and the real plugins, in this process."""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from conftest import run_cli, write_study
from sklearn.datasets import load_digits

import automl
import automl.runner
import automl.search.fingerprint
from automl.cli import invoked_as
from automl.plugin.registry import Registry, registry
from automl.runner import run_plan
from automl.search.plan import plan_study
from automl.storage.schema import CONFIG_ATTR, TASK_ATTR
from automl.storage.trial_queue import QUEUED, count
from automl.workers.progress_bar import ProgressBar

STUDY = """
    name = "one"
    n_trials = {n_trials}
    storage = "sqlite:///{db}"
    [search]
    families = ["mlp"]
    [train]
    max_epochs = 1
    batch_size = [128]
"""


def _study_file(tmp_path: Path, n_trials: int = 1) -> Path:
    return write_study(tmp_path, STUDY.format(n_trials=n_trials, db=tmp_path / "one.db"))


def _digits(samples: int = 400) -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return x[:samples], y[:samples]


def test_the_command_line_runs_through_automl_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    real = automl.runner.run

    def spy(config: automl.StudyConfig, **kwargs: Any) -> optuna.Study:
        calls.append({"config": config, **kwargs})
        return real(config, **kwargs)

    monkeypatch.setattr(automl.runner, "run", spy)
    study_file = _study_file(tmp_path, n_trials=3)
    result = run_cli("run", str(study_file), "--workers", "0", "--timeout", "90", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [call] = calls
    assert call["config"].name == "one" and call["config"].source == study_file
    assert call["workers"] == 0 and call["timeout"] == 90 and call["n_trials"] is None
    assert f"queued; start workers anywhere: automl worker {study_file} --storage" in result.stderr
    assert count(optuna.load_study(study_name="one", storage=f"sqlite:///{tmp_path / 'one.db'}"), QUEUED) == 3


def test_a_resumed_run_checks_its_study_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = automl.load_study_file(_study_file(tmp_path))
    automl.run(config, progress=False)
    drawn: list[int] = []
    real = automl.search.fingerprint.searched_space
    monkeypatch.setattr(automl.search.fingerprint, "searched_space", lambda plan: drawn.append(1) or real(plan))
    study = automl.run(config, n_trials=1, progress=False)
    assert drawn == [1]  # create_or_resume checks; the worker in this process does not check again
    assert [trial.state for trial in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2


def test_automl_run_prints_nothing_unless_asked(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        study = automl.run(automl.load_study_file(_study_file(tmp_path)), progress=False)
    assert (out.getvalue(), err.getvalue()) == ("", "")
    assert [trial.number for trial in automl.pareto_front(study)] == [0]


def test_in_memory_arrays_run_and_another_array_is_refused(tmp_path: Path) -> None:
    x, y = _digits()
    config = automl.StudyConfig(name="arrays", storage=f"sqlite:///{tmp_path / 'a.db'}", n_trials=1,
                                search={"families": ["mlp"]}, train={"max_epochs": 1, "batch_size": [128]})
    study = automl.run(config, data=(x, y), progress=False)
    assert study.user_attrs[TASK_ATTR]["input_shape"] == [64]
    assert study.user_attrs[CONFIG_ATTR]["data"]["dataset"] == "arrays"
    assert len(automl.pareto_front(study)) == 1
    with pytest.raises(automl.UsageError, match="the data as loaded and split"):
        automl.run(config, data=(x[::-1].copy(), y[::-1].copy()), progress=False)
    assert len(optuna.load_study(study_name="arrays", storage=f"sqlite:///{tmp_path / 'a.db'}").trials) == 1
    with pytest.raises(automl.UsageError, match="workers=1"):
        automl.run(config, data=(x, y), workers=2)
    named = automl.StudyConfig(name="arrays", data={"dataset": "digits"})
    with pytest.raises(automl.UsageError, match="names dataset 'digits' and data=\\(x, y\\) were given"):
        automl.run(named, data=(x, y))
    with pytest.raises(automl.UsageError, match=r"x has shape \[400, 8, 8, 1, 1\]"):
        automl.run(config, data=(x.reshape(400, 8, 8, 1, 1), y))


def test_a_config_in_python_is_checked_as_a_study_file_is(tmp_path: Path) -> None:
    path = write_study(tmp_path, 'name = "x"\n[trian]\nmax_epochs = 2\n[data]\ndataset = "csv"\n')
    with pytest.raises(automl.UsageError) as from_file:
        automl.load_study_file(path)
    with pytest.raises(automl.UsageError) as from_python:
        automl.StudyConfig(name="x", trian={"max_epochs": 2}, data={"dataset": "csv"})
    assert str(from_python.value) == str(from_file.value).replace(f"{path}: ", "").replace("study file", "study config")
    assert "unknown key 'trian'" in str(from_python.value) and "needs key 'data.path'" in str(from_python.value)
    assert automl.StudyConfig.from_dict({"name": "x", "train": {"max_epochs": 2}}).train.max_epochs == 2


def test_a_worker_says_which_release_made_the_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    study_file = _study_file(tmp_path)
    assert run_cli("run", str(study_file), "--workers", "0", cwd=tmp_path).returncode == 0
    monkeypatch.setattr(automl.search.fingerprint, "AUTOML_VERSION", "0.2.0")
    worker = run_cli("worker", str(study_file), "--no-progress", cwd=tmp_path)
    assert worker.returncode == 0, worker.stderr
    note = f"study 'one' in sqlite:///{tmp_path / 'one.db'} was created by automl {automl.__version__}, this is automl 0.2.0"
    assert note in worker.stderr
    assert worker.stderr.index(note) < worker.stderr.index("no trial left to run; 1 finished")


def test_no_optuna_line_leaks_and_one_family_is_one(tmp_path: Path) -> None:
    study_file = _study_file(tmp_path)
    result = run_cli("run", str(study_file), "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1 family (mlp)" in result.stderr
    assert "A new study created" not in result.stderr and "Trial 0 finished" not in result.stderr
    study_file.write_text(study_file.read_text().replace('["mlp"]', '["cnn"]'))
    refused = run_cli("run", str(study_file), "--no-progress", cwd=tmp_path)
    assert refused.returncode == 2 and "cannot be resumed" in refused.stderr
    assert "Using an existing study" not in refused.stderr


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_trials_running_elsewhere_are_said_to_be_of_a_run_going_on_or_of_one_that_stopped(tmp_path: Path) -> None:
    study_file = _study_file(tmp_path, n_trials=4)
    assert run_cli("run", str(study_file), "--workers", "0", cwd=tmp_path).returncode == 0
    url = f"sqlite:///{tmp_path / 'one.db'}"
    storage = optuna.storages.RDBStorage(url, heartbeat_interval=10)
    study = optuna.load_study(study_name="one", storage=storage)
    study_id = storage.get_study_id_from_name("one")
    trial = study.ask()  # another run's worker pops a queued trial, beats and trains it
    storage.record_heartbeat(storage.get_trial_id_from_study_id_trial_number(study_id, trial.number))
    again = run_cli("run", str(study_file), "--workers", "0", cwd=tmp_path)
    assert ("resuming: 3 trials still queued by a run going on now: 1 running in another process, its heartbeat "
            "fresh ([workers] grace_period 60 s); this run works through the same queue beside it") in again.stderr
    assert "earlier run" not in again.stderr
    # That worker stops sending heartbeats (killed) and a second one pops a trial: one live, one gone.
    with sqlite3.connect(tmp_path / "one.db") as connection:
        connection.execute("UPDATE trial_heartbeats SET heartbeat = '2000-01-01 00:00:00'")
    storage.record_heartbeat(storage.get_trial_id_from_study_id_trial_number(study_id, study.ask().number))
    again = run_cli("run", str(study_file), "--workers", "0", cwd=tmp_path)
    assert ("resuming: 2 trials still queued by a run going on now: 1 running in another process, its heartbeat "
            "fresh ([workers] grace_period 60 s); this run works through the same queue beside it; the 1 trial "
            "left running by a process that stopped (no heartbeat for over 60 s) will be queued again when a "
            "worker next starts a trial") in again.stderr
    storage.remove_session()


def test_the_hints_name_the_command_as_it_was_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    script = venv_bin / "automl"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setattr("sys.argv", [str(script), "run"])
    assert invoked_as() == ".venv/bin/automl"
    monkeypatch.setenv("PATH", str(venv_bin))
    assert invoked_as() == "automl"
    monkeypatch.setattr("sys.argv", [str(Path(automl.__file__).parent / "__main__.py")])
    assert invoked_as().endswith(" -m automl")


@pytest.mark.parametrize("deadline", [None, 47.36171817779541])
def test_the_progress_bar_shows_the_time_budget_without_an_eta(tmp_path: Path, deadline: float | None) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'bar.db'}")
    for _ in range(3):
        study.enqueue_trial({})
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        bar = ProgressBar(study, None if deadline is None else time.time() + deadline)
        study.optimize(lambda trial: 0.0, n_trials=2, callbacks=[bar])
        bar.close()
    shown = err.getvalue()
    if deadline is None:
        assert "2/3" in shown and "left" in shown
    else:
        assert "/47 s" in shown and "trials 2" in shown
        assert "47.36" not in shown and "left" not in shown and "2/3" not in shown


def test_plugins_help_says_check_is_optional(tmp_path: Path) -> None:
    result = run_cli("plugins", "--help", cwd=tmp_path)
    assert "usage: automl plugins [-h] [check [NAME ...]]" in result.stdout
    assert "Without a command: list the installed families" in " ".join(result.stdout.split())


def test_a_resumed_run_speaks_of_the_families_the_study_searches(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    # The study file leaves the families out: the study searches those installed when it was created.
    path = write_study(tmp_path, f'name = "kept"\nstorage = "sqlite:///{tmp_path / "kept.db"}"\n'
                                 '[train]\nmax_epochs = 1\n')
    installed = registry()
    mlp_only = Registry({"mlp": installed.families["mlp"]}, installed.datasets)
    run_plan(plan_study(automl.load_study_file(path), path, mlp_only), workers=0)
    with caplog.at_level(logging.INFO, logger="automl"):
        run_plan(plan_study(automl.load_study_file(path), path, installed), workers=0)
    summary = next(record.getMessage() for record in caplog.records if record.getMessage().startswith("study 'kept'"))
    assert "1 family (mlp)" in summary
    assert any("cnn" in record.getMessage() and record.getMessage().startswith("note:") for record in caplog.records)


@pytest.mark.parametrize(("argument", "message"), [({"n_trials": 0}, "n_trials must be a whole number of at least 1"),
                                                   ({"timeout": -3.0}, "timeout must be a number of seconds above 0"),
                                                   ({"workers": -1}, "workers must be a whole number of at least 0"),
                                                   ({"threads": True}, "threads must be a number, found True")])
def test_automl_run_checks_its_arguments_as_the_command_line_does(tmp_path: Path, argument: dict[str, Any],
                                                                   message: str) -> None:
    with pytest.raises(automl.UsageError, match=message):
        automl.run(_study_file(tmp_path), **argument)
    assert not list(tmp_path.glob("*.db"))


def test_the_start_up_checks_and_draws_stop_at_a_share_of_the_time_budget(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from automl.search import plan, preflight, startup

    given: dict[str, float | None] = {}

    def recorded(name: str, function: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            given[name] = inspect.signature(function).bind(*args, **kwargs).arguments["deadline"]
            return function(*args, **kwargs)
        return call

    monkeypatch.setattr(preflight, "check_training_step", recorded("checks", preflight.check_training_step))
    monkeypatch.setattr(startup, "startup_configs", recorded("draws", startup.startup_configs))
    x, y = _digits()
    config = automl.StudyConfig(name="share", storage=f"sqlite:///{tmp_path / 's.db'}", n_trials=1,
                                search={"families": ["mlp"]}, train={"max_epochs": 1, "batch_size": [128]})
    started = time.time()
    automl.run(config, data=(x, y), timeout=200, progress=False, started=started)
    assert plan.STARTUP_SHARE * 200 == 20
    assert given == {"checks": pytest.approx(started + 20), "draws": pytest.approx(started + 20)}
    assert plan.startup_deadline(started, None) is None
