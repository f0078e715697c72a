"""Storage URLs that would lose a study, or that name no storage, are refused with exit 2 and a hint,
before anything is created: the real CLI in a fresh interpreter, as a user runs it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli, write_study

from automl.errors import UsageError
from automl.storage.urls import open_storage


def test_an_in_memory_sqlite_study_is_refused_before_anything_runs(tmp_path: Path) -> None:
    study = write_study(tmp_path, """
        name = "in-memory"
        n_trials = 1
        storage = "sqlite:///:memory:"
        [train]
        max_epochs = 1
    """)
    result = run_cli("run", str(study), "--no-progress", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "in-memory database" in result.stderr and "sqlite:///automl.db" in result.stderr
    assert "A new study created" not in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["study.toml"]


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:x?mode=memory&uri=true"])
def test_every_spelling_of_an_in_memory_database_is_refused(url: str) -> None:
    with pytest.raises(UsageError, match="in-memory database"):
        open_storage(url)


@pytest.mark.parametrize("command", [["show", "x"], ["report", "x", "--out", "report"],
                                     ["export", "x", "--trial", "0", "--format", "state_dict", "--out", "model"],
                                     ["dashboard"]])
def test_reading_commands_on_a_missing_file_say_so_and_create_nothing(command: list[str], tmp_path: Path) -> None:
    result = run_cli(*command, cwd=tmp_path)  # the default storage, sqlite:///automl.db
    assert result.returncode == 2, result.stderr
    assert "no storage at automl.db: the file does not exist" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_folder_as_the_sqlite_file_is_named_as_a_folder(tmp_path: Path) -> None:
    result = run_cli("show", "x", "--storage", f"sqlite:///{tmp_path}", cwd=tmp_path)
    assert result.returncode == 2
    assert f"{tmp_path} is a directory, not an SQLite file" in result.stderr
    assert f"sqlite:///{tmp_path / 'automl.db'}" in result.stderr
