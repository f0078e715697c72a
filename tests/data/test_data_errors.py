"""Bad data (and families that cannot build for it): one clear error naming what and where,
exit code 2, and no storage file written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from automl.cli import main
from conftest import write_study
from datafiles import labels, write_npz, write_table


def _reject(tmp_path: Path, capsys: pytest.CaptureFixture, data: str) -> str:
    """Run ``automl run`` (in this process, for speed) on a study with this ``[data]`` table."""
    storage = tmp_path / "bad.db"
    study = write_study(tmp_path, f'name = "bad"\nstorage = "sqlite:///{storage}"\n[data]\n{data}\n')
    assert main(["run", str(study), "--no-progress"]) == 2
    assert not storage.exists(), "storage was written for bad data"
    stderr = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert str(study) in stderr, "the error names the study file"
    return stderr


def _npz(tmp_path: Path, x: np.ndarray, y: np.ndarray) -> str:
    write_npz(tmp_path / "data.npz", x, y)
    return 'dataset = "npz"\npath = "data.npz"'  # relative to the study file


def test_mismatched_lengths(tmp_path: Path, capsys) -> None:
    stderr = _reject(tmp_path, capsys, _npz(tmp_path, np.zeros((50, 3)), labels(2, 30)))
    assert "data.npz" in stderr and "x has 50 samples but y has 60 labels" in stderr


def test_labels_outside_0_to_k_minus_1_are_listed(tmp_path: Path, capsys) -> None:
    stderr = _reject(tmp_path, capsys, _npz(tmp_path, np.zeros((60, 3)), labels(3, 20) * 5 + 1))
    assert "data.npz" in stderr and "labels must be 0..K-1" in stderr
    assert "[6, 11]" in stderr and "missing: [0, 2]" in stderr


def test_nan_in_npz_names_the_index(tmp_path: Path, capsys) -> None:
    x = np.zeros((60, 3), dtype=np.float32)
    x[7, 2] = np.nan
    stderr = _reject(tmp_path, capsys, _npz(tmp_path, x, labels(2, 30)))
    assert "x[7, 2] (sample 7) is nan" in stderr


def test_infinite_csv_value_names_the_column_and_line(tmp_path: Path, capsys) -> None:
    rows = [[1.0, "inf" if i == 4 else 2.0, label] for i, label in enumerate(labels(2, 30))]
    write_table(tmp_path / "t.csv", ["height", "weight", "label"], rows)
    stderr = _reject(tmp_path, capsys, 'dataset = "csv"\npath = "t.csv"')
    assert "column 'weight', line 6: 'inf' is not finite" in stderr


def test_missing_label_column_lists_the_columns(tmp_path: Path, capsys) -> None:
    write_table(tmp_path / "t.csv", ["a", "b"], [[1, 2]] * 10)
    stderr = _reject(tmp_path, capsys, 'dataset = "csv"\npath = "t.csv"\nlabel = "class"')
    assert "no column 'class' ([data] label); its columns: a, b" in stderr


@pytest.mark.parametrize(("rare", "says"), [
    # A validation split too small to hold the class: a larger one (or folds) would, a smaller one not.
    (2, "class 2 has no samples in the validation split (2 in the whole dataset); use a larger val_size, "
        "cross-validation ([data] folds) or more data"),
    # Too few for a stratified split at all: other sizes cannot help.
    (1, "class 2 has 1 sample of 81 ("),
])
def test_empty_class_in_a_split_names_the_class(tmp_path: Path, capsys, rare: int, says: str) -> None:
    y = np.concatenate([np.zeros(40, dtype=int), np.ones(40, dtype=int), [2] * rare])
    # One validation split (folds = 1): cross-validation would meet the rare class in the test split first.
    stderr = _reject(tmp_path, capsys, _npz(tmp_path, np.zeros((len(y), 3)), y) + "\nfolds = 1")
    assert says in stderr
    assert stderr.endswith("or more data" if rare > 1 else "no split sizes can help: add samples of it, or leave its "
                           "rows out")


def test_path_that_does_not_exist(tmp_path: Path, capsys) -> None:
    stderr = _reject(tmp_path, capsys, 'dataset = "text"\npath = "absent.tsv"')
    assert f"[data] path {tmp_path / 'absent.tsv'} does not exist" in stderr


def test_unknown_dataset_lists_the_available_ones(tmp_path: Path, capsys) -> None:
    stderr = _reject(tmp_path, capsys, 'dataset = "imagenet"')
    for name in ("npz", "csv", "text", "imagefolder", "mnist", "cifar10"):
        assert name in stderr


def test_missing_torchvision_root_names_path_and_flag(tmp_path: Path, capsys) -> None:
    stderr = _reject(tmp_path, capsys, 'dataset = "cifar100"\npath = "root"')
    assert f"no cifar-100-python folder under [data] path {tmp_path / 'root'}" in stderr
    assert "download = true" in stderr


def test_named_family_that_cannot_build_for_the_task(tmp_path: Path, capsys) -> None:
    write_table(tmp_path / "t.csv", ["a", "label"], [[i, label] for i, label in enumerate(labels(2, 30))])
    stderr = _reject(tmp_path, capsys, 'dataset = "csv"\npath = "t.csv"\n[search]\nfamilies = ["mlp", "rnn"]')
    assert "key 'search.families': 'rnn' cannot build for tabular tasks" in stderr
    assert "families that can: mlp" in stderr


def test_non_numeric_x_in_npz_is_one_clear_error(tmp_path: Path, capsys) -> None:
    x = np.array([["1.5", "tall"]] * 60)
    stderr = _reject(tmp_path, capsys, _npz(tmp_path, x, labels(2, 30)))
    assert "data.npz" in stderr and "x holds <U4 values; inputs must be numbers" in stderr


def test_float_labels_in_npz_that_look_continuous_are_called_so(tmp_path: Path, capsys) -> None:
    y = np.linspace(0.5, 30.5, 60)
    stderr = _reject(tmp_path, capsys, _npz(tmp_path, np.zeros((60, 3)), y))
    assert "data.npz: y: the labels look continuous (60 distinct numbers from 0.5 to 30.5" in stderr


def test_one_class_in_any_dataset_is_refused(tmp_path: Path, capsys) -> None:
    stderr = _reject(tmp_path, capsys, _npz(tmp_path, np.zeros((60, 3)), np.zeros(60, dtype=int)))
    assert "every sample has label 0; classification needs at least two classes" in stderr


def test_a_value_beyond_float32_names_the_sample(tmp_path: Path, capsys) -> None:
    x = np.ones((60, 3))
    x[9, 1] = 1e39  # finite in float64, infinite in float32
    stderr = _reject(tmp_path, capsys, _npz(tmp_path, x, labels(2, 30)))
    assert "x[9, 1] (sample 9) is 1e+39, beyond float32's range" in stderr


def test_values_whose_standardization_overflows_float32_are_refused(tmp_path: Path, capsys) -> None:
    x = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)
    x[:, 2] *= 1e25  # finite, but its squares are not
    stderr = _reject(tmp_path, capsys, _npz(tmp_path, x, labels(2, 30)))
    assert "standardizing the inputs overflows float32" in stderr and "rescale the inputs" in stderr


@pytest.mark.parametrize("missing", ["", "  "])
def test_missing_text_labels_name_their_lines(tmp_path: Path, capsys, missing: str) -> None:
    rows = [[f"text number {i}", missing if i in (3, 17) else label] for i, label in enumerate(labels(2, 30))]
    write_table(tmp_path / "t.tsv", ["text", "label"], rows)
    stderr = _reject(tmp_path, capsys, 'dataset = "text"\npath = "t.tsv"')
    assert "t.tsv: 2 of 60 rows have no label in column 'label' (line(s) 5, 19)" in stderr


def test_many_single_sample_classes_are_not_all_listed(tmp_path: Path, capsys) -> None:
    rows = [[i, f"id{i}" if i < 150 else "ab"[i % 2]] for i in range(300)]
    write_table(tmp_path / "t.csv", ["a", "label"], rows)
    stderr = _reject(tmp_path, capsys, 'dataset = "csv"\npath = "t.csv"')
    assert "has 1 sample of 300" in stderr and "Classes with too few members" not in stderr
    assert len(stderr) < 600


def test_nan_labels_in_npz_are_missing_not_continuous(tmp_path: Path, capsys) -> None:
    y = labels(2, 30).astype(np.float64)
    y[[5, 8]] = np.nan
    stderr = _reject(tmp_path, capsys, _npz(tmp_path, np.zeros((60, 3)), y))
    assert "data.npz: y: 2 label(s) are NaN, the first at index 5; a missing label is not a class" in stderr


def _npy(tmp_path: Path) -> None:
    with (tmp_path / "data.npz").open("wb") as file:  # np.save would add .npy to a name
        np.save(file, np.zeros(3))


@pytest.mark.parametrize(("data", "make", "says"), [
    ('dataset = "csv"\npath = "folder.csv"', lambda tmp: (tmp / "folder.csv").mkdir(),
     "folder.csv is a folder, not a file (dataset 'csv' reads a CSV file"),
    ('dataset = "text"\npath = "folder.tsv"', lambda tmp: (tmp / "folder.tsv").mkdir(),
     "folder.tsv is a folder, not a file (dataset 'text' reads"),
    ('dataset = "npz"\npath = "arrays"', lambda tmp: (tmp / "arrays").mkdir(),
     "arrays is a folder, not a file (dataset 'npz' reads an .npz file with arrays x and y)"),
    ('dataset = "imagefolder"\npath = "cat.png"', lambda tmp: (tmp / "cat.png").write_bytes(b"\x89PNG"),
     "cat.png is a file, not a folder (dataset 'imagefolder' reads a folder with one subfolder of images per class)"),
    ('dataset = "npz"\npath = "data.npz"', lambda tmp: (tmp / "data.npz").write_text("a,label\n1,0\n"),
     "data.npz is a text file (it starts 'a,label'), not an .npz file (a zip archive of arrays); for a CSV table "
     'use [data] dataset = "csv"'),
    ('dataset = "npz"\npath = "data.npz"', _npy, "data.npz is a single NumPy array (.npy), not an .npz file"),
    ('dataset = "npz"\npath = "data.npz"', lambda tmp: (tmp / "data.npz").write_bytes(b""), "data.npz is empty"),
], ids=["csv-folder", "text-folder", "npz-folder", "imagefolder-file", "npz-csv", "npz-npy", "npz-empty"])
def test_a_path_of_the_wrong_kind_is_one_message(tmp_path: Path, capsys, data: str, make, says: str) -> None:
    make(tmp_path)
    assert says in _reject(tmp_path, capsys, data)
