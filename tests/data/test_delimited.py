"""CSV and TSV files as people's tools write them: every data line a sample, none lost, merged or
invented, and every refusal naming the file and line."""

from __future__ import annotations

import codecs
from pathlib import Path

import numpy as np
import pytest

from automl import UsageError
from automl.config import load_study_file
from automl.plugin.registry import registry
from automl.search.plan import plan_study
from automl_plugins._delimited import read_table
from automl_plugins.tables import CsvOptions, CsvTable
from automl_plugins.text import TextFile, TextOptions
from conftest import write_study

ROWS = "label,a,b\ncat,1,2\ndog,3,4\ncat,5,6\n"


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_a_byte_order_mark_picks_the_encoding_and_is_dropped(tmp_path: Path, encoding: str) -> None:
    # Python's utf-16 and utf-32 codecs write a mark; the -le/-be ones do not, so add it as Excel does.
    marks = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}
    path = tmp_path / "excel.csv"
    path.write_bytes(marks.get(encoding, b"") + (ROWS + "bird,7,8\n").encode(encoding))
    table = read_table(path)
    assert list(table.columns) == ["label", "a", "b"]
    assert table.columns["label"] == ["cat", "dog", "cat", "bird"]


def test_a_tsv_reads_quotes_as_characters_so_one_line_is_one_sample(tmp_path: Path) -> None:
    lines = ["text\tlabel"] + [f"review {i} was fine\t{i % 2}" for i in range(40)]
    lines[6] = '"unclosed quote opens this review\t1'
    lines[30] = 'a "quoted" word and a lone " mark\t0'
    path = tmp_path / "reviews.tsv"
    path.write_text("\n".join(lines) + "\n")
    table = read_table(path)
    assert len(table.lines) == 40 and table.lines[:2] == [2, 3]
    assert table.columns["text"][5] == '"unclosed quote opens this review'
    assert table.columns["text"][29] == 'a "quoted" word and a lone " mark'
    arrays = TextFile().load(0, TextOptions(path=path))
    assert len(arrays.y) == 40


def test_a_csv_quoted_field_over_two_lines_is_one_value_and_later_lines_keep_their_numbers(tmp_path: Path) -> None:
    path = tmp_path / "texts.csv"
    path.write_text('text,label\n"first line\nsecond line",pos\nplain,neg\n"x, y",pos\nbad,\n')
    with pytest.raises(UsageError, match=r"line\(s\) 6\)"):
        TextFile().load(0, TextOptions(path=path))
    table = read_table(path)
    assert table.columns["text"][0] == "first line\nsecond line" and table.lines == [2, 4, 5, 6]


def test_a_stray_quote_in_a_csv_is_refused_at_its_line_not_merged(tmp_path: Path) -> None:
    path = tmp_path / "stray.csv"
    path.write_text('text,label\nfine,1\n"oops,0\nmore,1\nthen "quoted",0\n')
    with pytest.raises(UsageError, match=r"stray\.csv, line 3: .*opened on line 3 runs on to line 5"):
        read_table(path)
    path.write_text('text,label\nfine,1\n"never closed,0\nmore,1\n')
    with pytest.raises(UsageError, match=r"stray\.csv, line 3: unexpected end of data"):
        read_table(path)


def test_blank_lines_are_skipped_a_trailing_one_too(tmp_path: Path) -> None:
    path = tmp_path / "blank.csv"
    path.write_text("label,a\n\ncat,1\n   \ndog,2\n,\n\n")
    table = read_table(path)
    assert table.columns == {"label": ["cat", "dog"], "a": ["1", "2"]} and table.lines == [3, 5]


@pytest.mark.parametrize(("header", "message"), [
    ("label,a,a", "columns 2, 3 are all named 'a'; the header must name each column once"),
    ("label, a ,a", "columns 2, 3 are all named 'a'"),
    ("label,,b", "column 2 has no name"),
])
def test_the_header_names_each_column_once(tmp_path: Path, header: str, message: str) -> None:
    path = tmp_path / "header.csv"
    path.write_text(f"{header}\ncat,1,2\n")
    with pytest.raises(UsageError, match=f"header.csv, line 1: {message}"):
        read_table(path)


def test_a_row_with_other_fields_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "ragged.tsv"
    path.write_text("text\tlabel\n\nok\t1\ntab\tinside\t0\n")
    with pytest.raises(UsageError, match=r"ragged\.tsv, line 4: 3 fields, but the header has 2 \(a tab inside"):
        read_table(path)


def test_a_file_not_in_its_encoding_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"label,a\n" + "caf\xe9,1\n".encode("latin-1"))
    with pytest.raises(UsageError, match=r"latin\.csv is not a readable UTF-8 CSV file .*save it as UTF-8"):
        read_table(path)


def _csv(tmp_path: Path, labels: list[str]) -> Path:
    path = tmp_path / "t.csv"
    path.write_text("x,label\n" + "".join(f"{i},{label}\n" for i, label in enumerate(labels)))
    return path


@pytest.mark.parametrize("missing", ["", "   ", "NaN"])
def test_missing_labels_are_an_error_naming_their_lines(tmp_path: Path, missing: str) -> None:
    path = _csv(tmp_path, ["a", missing, "b", "a", missing] * 3)
    with pytest.raises(UsageError) as refused:
        CsvTable().load(0, CsvOptions(path=path))
    message = str(refused.value)
    assert "t.csv: 6 of 15 rows have no label in column 'label' (line(s) 3, 6, 8, 11, 13, 16)" in message
    assert "a missing label is not a class" in message and 'missing_labels = "skip"' in message


def test_missing_labels_can_be_left_out_with_a_note(tmp_path: Path) -> None:
    path = _csv(tmp_path, [" a", "", "b ", "a", "\t"] * 3)
    arrays = CsvTable().load(0, CsvOptions(path=path, missing_labels="skip"))
    assert arrays.class_names == ("a", "b"), "labels are stripped; none is empty"
    assert len(arrays.y) == 9 and arrays.x[:3, 0].tolist() == [0, 2, 3]
    assert len(arrays.notes) == 1 and "6 of 15 rows have no label" in arrays.notes[0]
    assert 'left out ([data] missing_labels = "skip")' in arrays.notes[0]


def test_one_class_is_refused_naming_the_column_and_the_class(tmp_path: Path) -> None:
    path = _csv(tmp_path, ["healthy"] * 12)
    with pytest.raises(UsageError, match="column 'label' .* holds one class, 'healthy', in all 12 rows; "
                                         "classification needs at least two classes"):
        CsvTable().load(0, CsvOptions(path=path))


def test_continuous_labels_are_called_continuous_not_listed(tmp_path: Path) -> None:
    prices = [f"{value:.2f}" for value in np.random.default_rng(0).uniform(1, 100, 190)]
    with pytest.raises(UsageError) as refused:
        CsvTable().load(0, CsvOptions(path=_csv(tmp_path, prices)))
    message = str(refused.value)
    assert "the labels look continuous (18" in message and "distinct numbers from" in message
    assert len(message) < 400, "a short message, not every value"


def test_integers_written_as_floats_are_integer_labels(tmp_path: Path) -> None:
    arrays = CsvTable().load(0, CsvOptions(path=_csv(tmp_path, ["0.0", "1.0", "2", "1"])))
    assert arrays.y.tolist() == [0, 1, 2, 1] and arrays.class_names is None


def test_rows_left_out_are_a_note_of_the_study_plan(tmp_path: Path) -> None:
    rows = "".join(f"{i},{i % 3},{'' if i % 10 == 4 else 'ab'[i % 2]}\n" for i in range(60))
    (tmp_path / "t.csv").write_text("x,z,label\n" + rows)
    study = write_study(tmp_path, 'name = "skip"\n[data]\ndataset = "csv"\npath = "t.csv"\n'
                                  'missing_labels = "skip"\n[search]\nfamilies = ["mlp"]\n')
    plan = plan_study(load_study_file(study), study, registry())
    assert any("6 of 60 rows have no label in column 'label' (line(s) 6, 16, 26, 36, 46, 56), written '' "
               "([data] missing_values); left out" in note
               for note in plan.notes), plan.notes
    assert plan.data.task.class_names == ("a", "b")


def test_a_column_without_any_label_asks_whether_it_is_the_label_column(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"3 of 3 rows have no label .*is 'label' the label column"):
        CsvTable().load(0, CsvOptions(path=_csv(tmp_path, ["", " ", ""]), missing_labels="skip"))


def test_a_file_separated_by_semicolons_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "excel_de.csv"
    path.write_text("label;a\ncat;1,5\ndog;2,5\n")
    with pytest.raises(UsageError, match=r"excel_de\.csv, line 1: one column, named 'label;a': the file "
                                         r"looks separated by ';'"):
        CsvTable().load(0, CsvOptions(path=path))
