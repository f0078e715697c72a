"""Missing values as spreadsheets, R, pandas, databases and UCI files write them are never a class or a
number, and a table's columns that are no feature can be left out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from automl import UsageError
from automl_plugins.npz import NpzFile, NpzOptions
from automl_plugins.tables import CsvOptions, CsvTable
from automl_plugins.text import TextFile, TextOptions
from datafiles import labels, write_npz, write_table

SPELLINGS = ["NA", "N/A", "n/a", "NULL", "null", "None", "#N/A", "?", "nan", "NaN", "", " NA "]


def _patients(tmp_path: Path, missing: str, rows: tuple[int, ...] = (2, 7)) -> Path:
    table = [[i, i % 5, missing if i in rows else label] for i, label in enumerate(labels(2, 15))]
    return write_table(tmp_path / "patients.csv", ["age", "dose", "outcome"], table)


@pytest.mark.parametrize("missing", SPELLINGS)
def test_a_missing_label_however_written_is_no_class(tmp_path: Path, missing: str) -> None:
    path = _patients(tmp_path, missing)
    with pytest.raises(UsageError, match=r"2 of 30 rows have no label in column 'outcome' \(line\(s\) 4, 9\), "
                                         rf"written '{missing.strip()}'.*missing_labels = \"skip\""):
        CsvTable().load(0, CsvOptions(path=path, label="outcome"))
    arrays = CsvTable().load(0, CsvOptions(path=path, label="outcome", missing_labels="skip"))
    assert len(arrays.y) == 28 and arrays.class_names is None and set(arrays.y.tolist()) == {0, 1}


def test_missing_values_can_be_told_so_that_none_is_a_class(tmp_path: Path) -> None:
    rows = [[i, ["None", "Mild", "Severe"][i % 3]] for i in range(30)]
    path = write_table(tmp_path / "symptoms.csv", ["score", "label"], rows)
    with pytest.raises(UsageError, match="written 'None'"):
        CsvTable().load(0, CsvOptions(path=path))
    arrays = CsvTable().load(0, CsvOptions(path=path, missing_values=[""]))
    assert arrays.class_names == ("Mild", "None", "Severe")


def test_a_missing_text_label_is_no_class(tmp_path: Path) -> None:
    rows = [[f"text {i}", "N/A" if i == 3 else label] for i, label in enumerate(labels(2, 10))]
    path = write_table(tmp_path / "reviews.tsv", ["text", "label"], rows)
    with pytest.raises(UsageError, match=r"1 of 20 rows have no label .*\(line\(s\) 5\), written 'N/A'"):
        TextFile().load(0, TextOptions(path=path))


def test_missing_string_labels_in_an_npz_are_no_class(tmp_path: Path) -> None:
    y = np.array(["cat", "dog"] * 15, dtype=str)
    y[[4, 9]] = "NA"
    path = write_npz(tmp_path / "data.npz", np.zeros((30, 2)), y)
    with pytest.raises(UsageError, match=r"data\.npz: y: 2 label\(s\) are missing \(written 'NA'\), the first at "
                                         r"index 4; a missing label is not a class"):
        NpzFile().load(0, NpzOptions(path=path))


def _measurements(tmp_path: Path) -> Path:
    rows = [[f"p{i}", f"Patient {i}", "NA" if i == 4 else i, "" if i in (4, 11) else i % 3, label]
            for i, label in enumerate(labels(2, 10))]
    return write_table(tmp_path / "m.csv", ["id", "name", "height", "weight", "label"], rows)


def test_columns_that_are_no_feature_are_left_out(tmp_path: Path) -> None:
    path = _measurements(tmp_path)
    with pytest.raises(UsageError, match=r"column 'id', line 2: 'p0' is not a number \(features must be numeric; "
                                         r"a column of IDs, names or text is left out with \[data\] "
                                         r"ignored_columns = \['id'\]\)"):
        CsvTable().load(0, CsvOptions(path=path, missing_features="skip"))
    arrays = CsvTable().load(0, CsvOptions(path=path, ignored_columns=["id", "name"], missing_features="skip"))
    assert arrays.x.shape == (18, 2)
    assert arrays.x[:, 0].tolist() == [i for i in range(20) if i not in (4, 11)], "height, then weight"


@pytest.mark.parametrize(("ignored", "says"), [
    (["id", "nickname"], r"m\.csv has no column 'nickname' \(\[data\] ignored_columns\); its columns: id, name"),
    (["label"], r"\[data\] ignored_columns lists the label column 'label'"),
    (["id", "name", "height", "weight"], r"no feature columns besides the label 'label' and \[data\] ignored_columns"),
])
def test_ignored_columns_must_name_feature_columns(tmp_path: Path, ignored: list[str], says: str) -> None:
    with pytest.raises(UsageError, match=says):
        CsvTable().load(0, CsvOptions(path=_measurements(tmp_path), ignored_columns=ignored))


def test_rows_missing_a_feature_are_named_or_skipped_with_a_note(tmp_path: Path) -> None:
    path = _measurements(tmp_path)
    options = {"path": path, "ignored_columns": ["id", "name"]}
    with pytest.raises(UsageError, match=r"m\.csv: 2 of 20 rows miss a feature value \(line\(s\) 6, 13\), in "
                                         r"column\(s\) 'height' \(1, written 'NA'\), 'weight' \(2, written ''\)"
                                         r" \(\[data\] missing_values\); fill them in, set \[data\] "
                                         r"missing_features = \"skip\""):
        CsvTable().load(0, CsvOptions(**options))
    arrays = CsvTable().load(0, CsvOptions(**options, missing_features="skip"))
    (note,) = arrays.notes
    assert note.startswith(f"{path}: 2 of 20 rows miss a feature value (line(s) 6, 13)")
    assert note.endswith('left out ([data] missing_features = "skip")')


def test_rows_missing_a_label_and_a_feature_are_both_left_out(tmp_path: Path) -> None:
    rows = [[i, "?" if i == 3 else i, "" if i == 5 else label] for i, label in enumerate(labels(2, 10))]
    path = write_table(tmp_path / "t.csv", ["a", "b", "label"], rows)
    arrays = CsvTable().load(0, CsvOptions(path=path, missing_features="skip", missing_labels="skip"))
    assert len(arrays.y) == 18 and len(arrays.notes) == 2
    assert 3.0 not in arrays.x[:, 0] and 5.0 not in arrays.x[:, 0]
