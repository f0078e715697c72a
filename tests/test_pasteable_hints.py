"""The commands automl prints for the user to paste (start workers, inspect, browse, queue first)
work as pasted: they name the study's storage with --storage, or, where its URL is AUTOML_STORAGE's
or holds a password, leave it to AUTOML_STORAGE and say so; a password is never printed, masked or not."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli, write_study
from sqlalchemy import make_url

from automl.storage.urls import STORAGE_ENV, pasteable

STUDY = """
    name = "hints"
    n_trials = 2
    [search]
    families = ["mlp"]
    [train]
    max_epochs = 1
"""


def test_a_url_without_a_password_is_named_with_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    assert pasteable("automl show s", "sqlite:///a.db") == "automl show s --storage sqlite:///a.db"
    assert pasteable("automl show s", "postgresql+psycopg://u@h/db") == "automl show s --storage postgresql+psycopg://u@h/db"


@pytest.mark.parametrize("url", ["postgresql+psycopg://u:secret@h/db", "not a url"])
def test_a_url_with_a_password_is_left_to_the_environment(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    shown = pasteable("automl show s", url)
    assert shown == f"automl show s  # with {STORAGE_ENV} set to the storage URL (its password is not shown)"


def test_the_environments_url_is_read_again_from_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STORAGE_ENV, "sqlite:///a.db")
    assert pasteable("automl show s", "sqlite:///a.db") == f"automl show s  # with {STORAGE_ENV} set as here"
    assert pasteable("automl show s", "sqlite:///b.db") == "automl show s --storage sqlite:///b.db"


def _queued_hint(stderr: str) -> str:
    [line] = [line for line in stderr.splitlines() if line.startswith("queued; start workers anywhere: ")]
    return line.removeprefix("queued; start workers anywhere: ")


def test_queueing_on_a_server_with_a_password_prints_a_worker_command_without_it(postgres_url: str,
                                                                                   tmp_path: Path) -> None:
    study = write_study(tmp_path, STUDY)
    password = make_url(postgres_url).password  # the suite's server's: the printed lines must not hold it
    assert password
    given = run_cli("run", str(study), "--workers", "0", "--storage", postgres_url, cwd=tmp_path,
                    env={STORAGE_ENV: ""})
    assert given.returncode == 0, given.stderr
    assert _queued_hint(given.stderr) == \
        f"automl worker {study}  # with {STORAGE_ENV} set to the storage URL (its password is not shown)"
    from_env = run_cli("run", str(study), "--workers", "0", cwd=tmp_path, env={STORAGE_ENV: postgres_url})
    assert from_env.returncode == 0, from_env.stderr
    assert _queued_hint(from_env.stderr) == f"automl worker {study}  # with {STORAGE_ENV} set as here"
    for stderr in (given.stderr, from_env.stderr):
        assert f":{password}@" not in stderr, stderr  # shown elsewhere masked, as where the study is


def test_a_worker_on_a_study_not_created_yet_prints_the_command_that_queues_it(postgres_url: str,
                                                                               tmp_path: Path) -> None:
    study = write_study(tmp_path, STUDY)
    result = run_cli("worker", str(study), cwd=tmp_path, env={STORAGE_ENV: postgres_url})
    assert result.returncode == 2, result.stderr
    # Where the study was looked for, masked; the command to paste, without the URL.
    assert "create it and queue its trials first: automl run STUDY.toml --workers 0  # with " \
        f"{STORAGE_ENV} set as here" in result.stderr, result.stderr
