"""Bad study files: one clear error naming file and key, exit code 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from automl.config import load_study_file
from automl.errors import UsageError
from conftest import run_cli, write_study


def _reject(tmp_path: Path, body: str) -> str:
    study = write_study(tmp_path, f"""
        name = "bad"
        storage = "sqlite:///{tmp_path / 'bad.db'}"
    """ + body)
    result = run_cli("run", str(study), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert not (tmp_path / "bad.db").exists(), "storage was written for a bad study file"
    assert str(study) in result.stderr
    return result.stderr


def test_unknown_key_names_file_key_and_allowed_keys(tmp_path: Path) -> None:
    stderr = _reject(tmp_path, "[train]\nmax_epoch = 3\n")
    assert "unknown key 'train.max_epoch'" in stderr
    assert "max_epochs" in stderr and "batch_size" in stderr


def test_unknown_data_key_points_to_the_options_of_other_datasets(tmp_path: Path) -> None:
    stderr = _reject(tmp_path, "[data]\ncenters = 4\n")
    assert "unknown key 'data.centers'" in stderr and "[data.options]" in stderr


def test_options_for_a_builtin_dataset_are_refused(tmp_path: Path) -> None:
    stderr = " ".join(_reject(tmp_path, "[data.options]\ncenters = 4\n").split())
    assert "[data.options] centers: dataset 'digits'" in stderr and "reads no options there" in stderr


def test_wrong_type_names_key_expected_and_found(tmp_path: Path) -> None:
    stderr = _reject(tmp_path, "[train]\nmax_epochs = \"many\"\n")
    assert "key 'train.max_epochs'" in stderr
    assert "integer" in stderr and "'many'" in stderr


def test_unknown_family_lists_installed_families(tmp_path: Path) -> None:
    stderr = _reject(tmp_path, "[search]\nfamilies = [\"cnn\", \"resnet\"]\n")
    assert "search.families" in stderr and "'resnet'" in stderr
    for family in ("cnn", "mlp", "rnn", "transformer"):
        assert family in stderr


def test_unknown_objective_lists_allowed(tmp_path: Path) -> None:
    stderr = _reject(tmp_path, "[search]\nobjectives = [\"val_accuracy\", \"energy\"]\n")
    assert "search.objectives" in stderr and "'flops'" in stderr and "'energy'" in stderr


def test_unknown_dataset_lists_installed_datasets(tmp_path: Path) -> None:
    result = run_cli("run", str(write_study(tmp_path, f"""
        name = "bad"
        storage = "sqlite:///{tmp_path / 'bad.db'}"
        [data]
        dataset = "imagenet"
    """)), cwd=tmp_path)
    assert result.returncode == 2
    assert "'imagenet'" in result.stderr and "digits" in result.stderr and "waveforms" in result.stderr
    assert not (tmp_path / "bad.db").exists()


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    broken = write_study(tmp_path, "name = \n")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_study_file(broken)
    with pytest.raises(UsageError, match="does not exist"):
        load_study_file(tmp_path / "absent.toml")


def test_ranges_are_checked(tmp_path: Path) -> None:
    study = write_study(tmp_path, 'name = "x"\n[train]\nlr = [0.1, 0.001]\n')
    with pytest.raises(UsageError, match=r"key 'train.lr'.*0 < low <= high"):
        load_study_file(study)


def test_shipped_study_files_are_valid() -> None:
    for path in sorted((Path(__file__).parents[1] / "studies").glob("*.toml")):
        assert load_study_file(path).name
