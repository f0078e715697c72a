"""Pieces the file-based datasets share: the data path, and labels as written in a column or an array."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from automl import DataPath, DatasetOptions, UsageError
from automl_plugins._delimited import Table


class FileOptions(DatasetOptions):
    """Options of a dataset that reads a file or folder at ``path``; subclasses give the field a
    description of what they read there, which ``data_path``'s message quotes."""

    path: DataPath


def data_path(options: FileOptions, dataset: str) -> Path:
    """The ``path`` option, which must exist; the message says what ``dataset`` reads there (the
    field's description)."""
    path = options.path
    if not path.exists():
        expected = type(options).model_fields["path"].description
        raise UsageError(f"[data] path {path} does not exist (dataset {dataset!r} reads {expected})")
    return path


class LabelColumnOptions(FileOptions):
    """Options of a dataset that reads its labels from a column of a delimited file."""

    label: str = "label"  # the label column
    # Rows whose label is empty (or NaN): "error" names their lines; "skip" leaves them out with a note.
    missing_labels: Literal["error", "skip"] = "error"


def _is_missing(label: str) -> bool:
    # Empty is what Excel and pandas write for a missing value; "nan" what NumPy writes.
    return not label or label.lower() == "nan"


def label_column(table: Table, options: LabelColumnOptions
                 ) -> tuple[Table, np.ndarray, tuple[str, ...] | None, tuple[str, ...]]:
    """The table's labels as ``encode_labels`` makes them, with the table they label and notes.

    Labels are stripped of surrounding whitespace. A missing label is never a class: with
    ``missing_labels = "error"`` the rows without one are an error naming their lines; with "skip"
    they are left out of the returned table, and a note says how many and where. One class only
    is an error naming it: classification needs two.
    """
    name = options.label
    labels = [label.strip() for label in table.column(name, "label")]
    missing = [row for row, label in enumerate(labels) if _is_missing(label)]
    notes: tuple[str, ...] = ()
    if missing:
        where = (f"{len(missing)} of {len(labels)} rows have no label in column {name!r} "
                 f"(line(s) {table.lines_of(missing)})")
        if len(missing) == len(labels):
            raise UsageError(f"{table.path}: {where}; is {name!r} the label column ([data] label)?")
        if options.missing_labels == "error":
            raise UsageError(f"{table.path}: {where}; a missing label is not a class. Fill them in, or set "
                             '[data] missing_labels = "skip" to leave those rows out')
        table = table.without(set(missing))
        labels = [label for label in labels if not _is_missing(label)]
        notes = (f'{table.path}: {where}; left out ([data] missing_labels = "skip")',)
    y, class_names = encode_labels(labels, f"{table.path}, column {name!r}")
    if len(np.unique(y)) < 2:
        raise UsageError(f"{table.path}: column {name!r} ([data] label) holds one class, {labels[0]!r}, in all "
                         f"{len(labels)} rows; classification needs at least two classes")
    return table, y, class_names, notes


def _looks_continuous(values: list[str] | np.ndarray, where: str) -> UsageError:
    numbers = np.unique(np.asarray(values, dtype=np.float64))
    examples = ", ".join(f"{number:g}" for number in numbers[:: max(1, len(numbers) // 4)][:4])
    return UsageError(f"{where}: the labels look continuous ({len(numbers)} distinct numbers from "
                      f"{numbers[0]:g} to {numbers[-1]:g}, e.g. {examples}), not classes; automl "
                      "classifies: bin the values into classes first, or set [data] label to a column "
                      "of classes")


def encode_labels(values: list[str] | np.ndarray, where: str) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """Labels as written: integers (``3``, or ``3.0`` as pandas writes integers) stay as they are
    (automl refuses any that are not 0..K-1); other numbers are refused as continuous, naming
    ``where``; anything else names classes, numbered 0..K-1 in sorted order, the names kept."""
    try:
        numbers = np.asarray(values, dtype=np.float64)
    except ValueError:
        names, labels = np.unique(np.asarray(values, dtype=str), return_inverse=True)
        return labels.astype(np.int64), tuple(names.tolist())
    missing = np.flatnonzero(np.isnan(numbers))
    if len(missing):
        raise UsageError(f"{where}: {len(missing)} label(s) are NaN, the first at index {missing[0]}; a "
                         "missing label is not a class: leave those samples out")
    if not np.isfinite(numbers).all() or (numbers != np.round(numbers)).any():
        raise _looks_continuous(values, where)
    return numbers.astype(np.int64), None
