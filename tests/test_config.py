"""Bad study files: one clear error naming file and key, exit code 2, nothing written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import optuna

from automl.config import load_study_file
from automl.data.prepare import prepare
from automl.errors import UsageError
from automl.plugin.registry import registry
from automl.storage.schema import CONFIG_ATTR, TASK_ATTR
from conftest import make_distribution, run_cli, with_path, write_study
from datafiles import labels, write_table


def _reject(tmp_path: Path, body: str, env: dict[str, str] | None = None) -> str:
    study = write_study(tmp_path, f"""
        name = "bad"
        storage = "sqlite:///{tmp_path / 'bad.db'}"
    """ + body)
    result = run_cli("run", str(study), cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    assert not (tmp_path / "bad.db").exists(), "storage was written for a bad study file"
    assert str(study) in result.stderr
    return result.stderr


def test_unknown_key_names_file_key_and_allowed_keys(tmp_path: Path) -> None:
    stderr = _reject(tmp_path, "[train]\nmax_epoch = 3\n")
    assert "unknown key 'train.max_epoch'" in stderr
    assert "max_epochs" in stderr and "batch_size" in stderr


def test_unknown_data_key_lists_the_keys_of_the_dataset(tmp_path: Path) -> None:
    stderr = " ".join(_reject(tmp_path, "[data]\ndataset = \"text\"\npath = \"r.tsv\"\ncentres = 4\n").split())
    assert ("unknown key 'data.centres'; allowed in [data] for dataset 'text': dataset, val_size, test_size, "
            "folds, path, test_path, val_path, label, missing_labels, missing_values, text, tokenizer, max_length, "
            "min_freq") in stderr


def test_options_for_a_dataset_that_reads_none_are_refused(tmp_path: Path) -> None:
    stderr = " ".join(_reject(tmp_path, "[data.options]\ncenters = 4\n").split())
    assert ("unknown key 'data.options.centers'; allowed in [data] for dataset 'digits': dataset, val_size, "
            "test_size") in stderr


@pytest.mark.parametrize(("data", "says"), [
    ('dataset = "text"\npath = "r.tsv"\nmax_length = -1', "key 'data.max_length': Input should be greater than 0 (found -1)"),
    ('dataset = "csv"', "dataset 'csv' needs key 'data.path': a CSV file with a header row"),
    ('dataset = "csv"\npath = "a.csv"\n[data.options]\npath = "b.csv"', "'path' given both in [data] and in [data.options]"),
], ids=["bad-value", "missing-path", "given-twice"])
def test_dataset_options_are_checked_with_the_study_file(tmp_path: Path, data: str, says: str) -> None:
    study = write_study(tmp_path, f'name = "x"\n[data]\n{data}\n')
    with pytest.raises(UsageError, match=re.escape(f"{study}: ") + ".*" + re.escape(says)):
        load_study_file(study)


def test_options_table_sets_a_builtin_dataset_key(tmp_path: Path) -> None:
    rows = [[f"w{i} {'good' if label else 'bad'}", label] for i, label in enumerate(labels(2, 30))]
    write_table(tmp_path / "reviews.tsv", ["text", "label"], rows)
    study = write_study(tmp_path, 'name = "t"\n[data]\ndataset = "text"\n[data.options]\n'
                                  'path = "reviews.tsv"\nmax_length = 3\n')
    data = load_study_file(study).data
    assert data.options["max_length"] == 3 and data.options["path"] == str(tmp_path / "reviews.tsv")
    assert prepare(data, registry(), 0).task.input_shape == (3,)


def test_relative_path_is_relative_to_the_study_file(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "studies").mkdir()
    study = write_study(tmp_path / "studies", 'name = "t"\n[data]\ndataset = "npz"\npath = "../data/x.npz"\n')
    monkeypatch.chdir(tmp_path / "studies")
    from_beside = load_study_file("study.toml").data.options["path"]
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert load_study_file(study).data.options["path"] == from_beside == str(tmp_path / "data" / "x.npz")


def test_old_style_data_keys_run_from_another_folder(tmp_path: Path) -> None:
    """A study file written before datasets declared their options: ``path`` and ``label`` at the
    top of ``[data]``, the path relative to the study file, run through the CLI from elsewhere."""
    (tmp_path / "study").mkdir()
    (tmp_path / "elsewhere").mkdir()
    rows = [[i % 7, (i * 3) % 5, ["no", "yes"][label]] for i, label in enumerate(labels(2, 30))]
    write_table(tmp_path / "study" / "t.csv", ["a", "b", "answer"], rows)
    database = tmp_path / "old.db"
    study = write_study(tmp_path / "study", f"""
        name = "old"
        n_trials = 1
        storage = "sqlite:///{database}"
        [data]
        dataset = "csv"
        path = "t.csv"
        label = "answer"
        [search]
        families = ["mlp"]
        [train]
        max_epochs = 1
    """)
    result = run_cli("run", str(study), "--no-progress", cwd=tmp_path / "elsewhere")
    assert result.returncode == 0, result.stderr
    attrs = optuna.load_study(study_name="old", storage=f"sqlite:///{database}").user_attrs
    options = attrs[CONFIG_ATTR]["data"]["options"]
    assert {key: options[key] for key in ("path", "label", "missing_labels", "test_path", "val_path")} == {
        "path": str(tmp_path / "study" / "t.csv"), "label": "answer", "missing_labels": "error", "test_path": None,
        "val_path": None}
    assert list(attrs[TASK_ATTR]["class_names"]) == ["no", "yes"]


BLOBS = """
    import numpy as np
    from pydantic import PositiveInt

    import automl
    from automl import DatasetOptions, LabeledArrays


    class BlobsOptions(DatasetOptions):
        centers: PositiveInt = 3


    class Blobs:
        name = "blobs"
        options = BlobsOptions

        def load(self, seed, options):
            rng = np.random.default_rng(seed)
            y = np.repeat(np.arange(options.centers), 30)
            return LabeledArrays(rng.normal(size=(len(y), 2)) + y[:, None], y, "tabular")


    @automl.hookimpl
    def register_datasets(register):
        register(Blobs())
"""


def test_third_party_dataset_validates_its_own_options(tmp_path: Path) -> None:
    site = make_distribution(tmp_path / "site", "automl-blobs", {"automl_blobs": BLOBS}, {"blobs": "automl_blobs"})
    stderr = _reject(tmp_path, "[data]\ndataset = \"blobs\"\ncenters = 0\n", env=with_path(site))
    assert "key 'data.centers': Input should be greater than 0 (found 0)" in stderr
    stderr = " ".join(_reject(tmp_path, "[data]\ndataset = \"blobs\"\n[data.options]\ncentres = 4\n",
                              env=with_path(site)).split())
    assert "unknown key 'data.options.centres'; allowed in [data] for dataset 'blobs': dataset, val_size, " \
           "test_size, folds, centers" in stderr


def test_wrong_type_names_key_expected_and_found(tmp_path: Path) -> None:
    stderr = _reject(tmp_path, "[train]\nmax_epochs = \"many\"\n")
    assert "key 'train.max_epochs'" in stderr
    assert "integer" in stderr and "'many'" in stderr


@pytest.mark.parametrize(("body", "key"), [
    ("n_trials = true", "n_trials"), ("timeout = false", "timeout"), ("[train]\nmax_epochs = true", "train.max_epochs"),
    ('[data]\ndataset = "text"\npath = "r.tsv"\nmax_length = true', "data.max_length"),
], ids=["study", "optional-float", "section", "dataset-option"])
def test_true_or_false_is_not_taken_for_a_number(tmp_path: Path, body: str, key: str) -> None:
    """TOML's booleans would pass pydantic's lax mode as 1 and 0: `n_trials = true` ran one trial."""
    study = write_study(tmp_path, f'name = "x"\n{body}\n')
    with pytest.raises(UsageError, match=re.escape(f"key '{key}': expected a number, found ")):
        load_study_file(study)


@pytest.mark.parametrize(("folds", "found"), [("0", "0"), ('"three"', "'three'"), ("2.5", "2.5")])
def test_folds_out_of_range_is_one_error_saying_what_folds_takes(tmp_path: Path, folds: str, found: str) -> None:
    """One line for the key, not one per member of its type's union with pydantic's names for them."""
    study = write_study(tmp_path, f'name = "x"\n[data]\nfolds = {folds}\n')
    with pytest.raises(UsageError) as error:
        load_study_file(study)
    assert str(error.value).splitlines()[1:] == [
        f"  {study}: key 'data.folds': expected \"auto\" or a whole number of folds, at least 1 "
        f"(1: one validation split; k >= 2: k-fold cross-validation) (found {found})"]


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
