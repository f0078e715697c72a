"""Pieces the file-based datasets share: the data path, delimited text files, labels as written."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from automl import DataPath, DatasetOptions, UsageError


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


def read_columns(path: Path) -> dict[str, list[str]]:
    """A CSV file (TSV when the name ends in .tsv) with a header row, as ``{column: values}``."""
    tsv = path.suffix.lower() == ".tsv"
    try:
        with path.open(newline="", encoding="utf-8") as file:
            rows = list(csv.reader(file, delimiter="\t" if tsv else ","))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"{path} is not a readable UTF-8 {'TSV' if tsv else 'CSV'} file: {exc}") from None
    if len(rows) < 2:
        raise UsageError(f"{path}: expected a header row and at least one data row")
    header, body = rows[0], rows[1:]
    ragged = next((number for number, row in enumerate(body, start=2) if len(row) != len(header)), None)
    if ragged is not None:
        raise UsageError(f"{path}, line {ragged}: {len(body[ragged - 2])} fields, but the header has "
                         f"{len(header)}")
    return {name: [row[index] for row in body] for index, name in enumerate(header)}


def column(columns: dict[str, list[str]], name: str, key: str, path: Path) -> list[str]:
    """The column ``name`` that ``[data] key`` asks for, or an error listing the columns."""
    if name not in columns:
        raise UsageError(f"{path} has no column {name!r} ([data] {key}); its columns: "
                         f"{', '.join(columns)}")
    return columns[name]


def encode_labels(values: list[str] | np.ndarray) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """Labels as written: integers stay as they are (automl refuses any that are not 0..K-1);
    anything else names classes, numbered 0..K-1 in sorted order, the names kept."""
    try:
        return np.array([int(value) for value in values], dtype=np.int64), None
    except ValueError:
        names, labels = np.unique(np.asarray(values, dtype=str), return_inverse=True)
        return labels.astype(np.int64), tuple(names.tolist())
