"""The user's own test and validation splits in every file dataset, test_size = 0, and cross-validation folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from automl.config import DataConfig
from automl.data.prepare import fold_data, prepare
from automl.data.splits import MIN_VALIDATION_SAMPLES
from automl.errors import UsageError
from automl.plugin.registry import registry
from datafiles import labels, write_pngs, write_table


def _prepare(dataset: str, path: Path, **options):
    return prepare(DataConfig(dataset=dataset, path=str(path), **options), registry(), 0)


def _series(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, 12, 2)).astype(np.float32)


def test_npz_test_arrays_are_the_test_split_and_never_train(tmp_path: Path) -> None:
    y, y_test = labels(3, 20), np.array([0, 1, 2, 2, 1])
    x_test = np.full((5, 12, 2), 7.0, dtype=np.float32)  # told apart from the training rows by value
    np.savez(tmp_path / "d.npz", x=_series(60), y=y, x_test=x_test, y_test=y_test)
    data = _prepare("npz", tmp_path / "d.npz", folds=1)
    assert data.test.y.tolist() == y_test.tolist() and len(data.train.y) + len(data.val.y) == 60
    # The standardization comes from the training rows: the test rows stand far out.
    assert float(data.test.x.mean()) > 5 and abs(float(data.train.x.mean())) < 0.2


def test_npz_validation_and_test_files_with_class_names(tmp_path: Path) -> None:
    names = np.array(["cat", "dog"])
    np.savez(tmp_path / "train.npz", x=_series(40), y=names[labels(2, 20)])
    np.savez(tmp_path / "val.npz", x=_series(6, 1), y=np.array(["dog"] * 6))
    np.savez(tmp_path / "test.npz", x=_series(4, 2), y=np.array(["cat", "dog", "dog", "cat"]))
    data = _prepare("npz", tmp_path / "train.npz", val_path=str(tmp_path / "val.npz"),
                    test_path=str(tmp_path / "test.npz"), test_size=0.3)
    assert data.task.class_names == ("cat", "dog") and not data.folds
    assert data.val.y.tolist() == [1] * 6 and data.test.y.tolist() == [0, 1, 1, 0] and len(data.train.y) == 40


def test_csv_and_text_test_files_share_one_numbering_of_class_names(tmp_path: Path) -> None:
    rows = [[float(i), ["low", "mid", "high"][i % 3]] for i in range(60)]
    write_table(tmp_path / "train.csv", ["a", "label"], rows)
    write_table(tmp_path / "test.csv", ["a", "label"], [[1.0, "high"], [2.0, "mid"]])
    data = _prepare("csv", tmp_path / "train.csv", test_path=str(tmp_path / "test.csv"), folds=1)
    # The test file's two classes are numbered with the training file's three.
    assert data.task.class_names == ("high", "low", "mid") and data.test.y.tolist() == [0, 2]
    write_table(tmp_path / "new.csv", ["a", "label"], [[1.0, "unseen"]])
    # A class only the test file has: the error says where it is, not to shrink val_size/test_size.
    with pytest.raises(UsageError, match=r"class 3 \('unseen'\) has no training samples: its 1 are all in the "
                                         r"dataset's own test or validation split \(test_path/val_path"):
        _prepare("csv", tmp_path / "train.csv", test_path=str(tmp_path / "new.csv"), folds=1)
    write_table(tmp_path / "texts.tsv", ["text", "label"], [[f"word{i % 2} x", i % 2] for i in range(40)])
    write_table(tmp_path / "more.tsv", ["text", "label"], [["word1 y", 1]])
    text = _prepare("text", tmp_path / "texts.tsv", test_path=str(tmp_path / "more.tsv"))
    assert text.test.y.tolist() == [1] and len(text.train.y) + len(text.val.y) == 40


def test_npz_test_labels_outside_the_training_labels_name_the_test_split(tmp_path: Path) -> None:
    np.savez(tmp_path / "train.npz", x=_series(40), y=labels(2, 20))
    np.savez(tmp_path / "test.npz", x=_series(3, 1), y=np.array([0, 5, 6]))
    with pytest.raises(UsageError, match=r"these are not: \[5, 6\] \(missing: \[2, 3\]\); they are only in the "
                                         r"dataset's own test or validation split \(its last 3 samples"):
        _prepare("npz", tmp_path / "train.npz", test_path=str(tmp_path / "test.npz"))


def test_an_empty_given_split_is_refused_naming_its_key(tmp_path: Path) -> None:
    """Not ignored (automl would cut a test split of its own, unsaid), and named as the key it came from."""
    np.savez(tmp_path / "train.npz", x=_series(40), y=labels(2, 20))
    np.savez(tmp_path / "test.npz", x=_series(0), y=labels(2, 0))
    with pytest.raises(UsageError, match=r"test.npz: the given test split has no samples; give it some, or leave"):
        _prepare("npz", tmp_path / "train.npz", test_path=str(tmp_path / "test.npz"))
    write_pngs(tmp_path / "train", {"a": 4, "b": 4})
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match=r"\[data\] test_path .*empty has no class folders"):
        _prepare("imagefolder", tmp_path / "train", test_path=str(tmp_path / "empty"))


def test_npz_of_the_wrong_kind_gives_its_own_shape_not_the_splits_together(tmp_path: Path) -> None:
    np.savez(tmp_path / "train.npz", x=_series(40), y=labels(2, 20))
    np.savez(tmp_path / "test.npz", x=_series(6, 1), y=labels(2, 3))
    with pytest.raises(UsageError, match=r"train.npz: x has shape \[40, 12, 2\]; expected .* for kind 'tokens'"):
        _prepare("npz", tmp_path / "train.npz", test_path=str(tmp_path / "test.npz"), kind="tokens")


def test_csv_test_file_with_other_columns_is_refused(tmp_path: Path) -> None:
    write_table(tmp_path / "train.csv", ["a", "label"], [[float(i), i % 2] for i in range(20)])
    write_table(tmp_path / "test.csv", ["b", "label"], [[1.0, 0]])
    with pytest.raises(UsageError, match=r"test.csv: its feature columns \(b\) are not those of .*train.csv \(a\)"):
        _prepare("csv", tmp_path / "train.csv", test_path=str(tmp_path / "test.csv"))


def test_one_file_or_folder_as_two_splits_is_refused(tmp_path: Path) -> None:
    """A split given another's file would score the model on rows it trained or was selected on."""
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    for path in (train, test):
        write_table(path, ["a", "label"], [[float(i), i % 2] for i in range(20)])
    (tmp_path / "sub").mkdir()
    for options, says in (({"test_path": str(tmp_path / "sub" / ".." / "train.csv")},
                           "test_path names the same file as path .*: that split would be the training rows"),
                          ({"val_path": str(test), "test_path": str(test)},
                           "test_path names the same file as val_path .*: that split would be the validation rows")):
        with pytest.raises(UsageError, match=says):
            _prepare("csv", train, **options)
    write_pngs(tmp_path / "images", {"a": 4, "b": 4})
    with pytest.raises(UsageError, match="val_path names the same folder as path"):
        _prepare("imagefolder", tmp_path / "images", val_path=str(tmp_path / "images"))


def test_imagefolder_test_folder_of_some_classes(tmp_path: Path) -> None:
    write_pngs(tmp_path / "train", {"a": 12, "b": 12})
    write_pngs(tmp_path / "test", {"b": 3})
    data = _prepare("imagefolder", tmp_path / "train", test_path=str(tmp_path / "test"), folds=1)
    assert data.task.class_names == ("a", "b") and data.test.y.tolist() == [1, 1, 1]
    write_pngs(tmp_path / "odd", {"c": 1})
    with pytest.raises(UsageError, match=r"test_path .*odd: class folder\(s\) c are not classes"):
        _prepare("imagefolder", tmp_path / "train", test_path=str(tmp_path / "odd"))


def test_test_size_zero_leaves_no_test_split(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=_series(60), y=labels(3, 20))
    data = _prepare("npz", tmp_path / "d.npz", test_size=0, folds=1)
    assert len(data.test.y) == 0 and len(data.train.y) + len(data.val.y) == 60


def test_small_data_cross_validates_by_itself_and_says_so(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=_series(60), y=labels(3, 20))
    data = _prepare("npz", tmp_path / "d.npz")
    assert len(data.folds) == 3 and any("cross-validating: 3 stratified folds" in note for note in data.notes)
    non_test = len(data.train.y) + len(data.val.y)
    # Every non-test row validates in exactly one fold, and the first fold is the validation split.
    rows = torch.cat(list(data.folds))
    assert sorted(rows.tolist()) == list(range(non_test))
    assert data.folds[0].tolist() == list(range(len(data.train.y), non_test))
    folds = fold_data(data)
    assert [len(part.train.y) + len(part.val.y) for part in folds] == [non_test] * 3
    assert all(set(part.val.y.tolist()) == {0, 1, 2} for part in folds)  # stratified


def test_enough_validation_samples_keep_one_split(tmp_path: Path) -> None:
    count = int(MIN_VALIDATION_SAMPLES / 0.15) + 60
    np.savez(tmp_path / "d.npz", x=_series(count), y=np.arange(count) % 2)
    data = _prepare("npz", tmp_path / "d.npz")
    assert not data.folds and len(data.val.y) >= MIN_VALIDATION_SAMPLES and not data.notes


@pytest.mark.parametrize(("options", "says"), [
    ({"folds": 7}, "class 0 has 5 non-test samples, so some fold would not validate it; use folds = 5"),
    ({"folds": 3, "val_path": "val.npz"}, "gives its own validation split, so [data] folds = 3 cannot cross-validate"),
])
def test_folds_that_cannot_work_are_refused(tmp_path: Path, options, says: str) -> None:
    y = np.concatenate([np.zeros(6, dtype=int), np.ones(30, dtype=int)])
    np.savez(tmp_path / "d.npz", x=_series(36), y=y)
    np.savez(tmp_path / "val.npz", x=_series(4), y=np.array([0, 1, 0, 1]))
    options = {key: str(tmp_path / value) if key == "val_path" else value for key, value in options.items()}
    with pytest.raises(UsageError) as error:
        _prepare("npz", tmp_path / "d.npz", **options)
    assert says in str(error.value)
