"""Pieces the file-based datasets share: the data path, and labels as written in a column or an array."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from automl import DataPath, DatasetOptions, UsageError
from automl_plugins._delimited import Table


class FileOptions(DatasetOptions):
    """Options of a dataset that reads a file or folder at ``path``; subclasses give the field a
    description of what they read there, which ``data_path``'s message quotes.

    ``test_path`` and ``val_path`` name the user's own test and validation splits, read as
    ``path`` is: a given test split is only reported, never searched on (``test_size`` is then
    not used), and a given validation split replaces ``val_size`` and cross-validation.
    """

    path: DataPath
    test_path: DataPath | None = None
    val_path: DataPath | None = None

    @model_validator(mode="after")
    def _splits_apart(self) -> FileOptions:
        # One file as two splits would score the model on rows it trained or was selected on.
        named = {"path": self.path, **self.split_paths()}
        for key, given in self.split_paths().items():
            same = next(other for other, path in named.items() if path.resolve() == given.resolve())
            if same != key:
                role = "training rows" if same == "path" else "validation rows the search selects on"
                kind = "folder" if given.is_dir() else "file"
                raise ValueError(f"{key} names the same {kind} as {same} ({given}): that split would be the {role}, "
                                 f"not held out; give {key} its own rows, or leave it out and automl cuts that split "
                                 "from path")
        return self

    def split_paths(self) -> dict[str, Path]:
        """The given split files or folders by key (``val_path``, ``test_path``), validation first."""
        return {key: path for key, path in (("val_path", self.val_path), ("test_path", self.test_path))
                if path is not None}


def data_path(options: FileOptions, dataset: str, kind: Literal["file", "folder"] = "file", key: str = "path"
              ) -> Path:
    """The ``key`` option (``path``, ``test_path``, ``val_path``), which must be an existing,
    readable ``kind``; the message says what ``dataset`` reads there (the ``path`` field's description)."""
    path = getattr(options, key)
    expected = f"dataset {dataset!r} reads {type(options).model_fields['path'].description}"
    if not path.exists():
        raise UsageError(f"[data] {key} {path} does not exist ({expected})")
    if path.is_dir() != (kind == "folder"):
        found = "a folder" if path.is_dir() else "a file"
        raise UsageError(f"[data] {key} {path} is {found}, not a {kind} ({expected})")
    if not os.access(path, os.R_OK | (os.X_OK if kind == "folder" else 0)):
        raise UsageError(f"[data] {key} {path} cannot be read: permission denied ({expected})")
    return path


# How a missing value is written: pandas' read_csv default na_values (what Excel, R, databases and
# NumPy write: empty, NA, N/A, NULL, None, #N/A, NaN, ...) and UCI's "?"; compared without case.
MISSING_VALUES = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "1.#IND", "1.#QNAN", "<NA>",
                  "N/A", "NA", "NULL", "NaN", "None", "?")


class LabelColumnOptions(FileOptions):
    """Options of a dataset that reads its labels from a column of a delimited file."""

    label: str = "label"  # the label column
    # Rows without a label: "error" names their lines; "skip" leaves them out with a note.
    missing_labels: Literal["error", "skip"] = "error"
    # The cells that mean "no value" (surrounding spaces dropped, case ignored); [] for none.
    missing_values: list[str] = Field(default_factory=lambda: list(MISSING_VALUES))


def missing_rows(values: Sequence[str], spellings: Sequence[str] = MISSING_VALUES) -> list[int]:
    """The indices of ``values`` that are one of ``spellings`` of a missing value (spaces and case aside)."""
    missing = {spelling.strip().casefold() for spelling in spellings}
    return [row for row, value in enumerate(values) if value.strip().casefold() in missing]


def written_as(values: Sequence[str], rows: list[int]) -> str:
    """How the missing values at ``rows`` are written, for a message."""
    spellings = sorted({values[row].strip() for row in rows})
    return ", ".join(map(repr, spellings[:5])) + (", ..." if len(spellings) > 5 else "")


def label_column(table: Table, options: LabelColumnOptions, whole: bool = True
                 ) -> tuple[Table, np.ndarray, tuple[str, ...] | None, tuple[str, ...]]:
    """The table's labels as ``encode_labels`` makes them, with the table they label and notes.

    Labels are stripped of surrounding whitespace. A missing label is never a class: with
    ``missing_labels = "error"`` the rows without one are an error naming their lines; with "skip"
    they are left out of the returned table, and a note says how many and where. One class only
    is an error naming it, unless the table is not the ``whole`` dataset (a given test split may
    hold one class): classification needs two.
    """
    name = options.label
    labels = [label.strip() for label in table.column(name, "label")]
    missing = missing_rows(labels, options.missing_values)
    notes: tuple[str, ...] = ()
    if missing:
        where = (f"{len(missing)} of {len(labels)} rows have no label in column {name!r} (line(s) "
                 f"{table.lines_of(missing)}), written {written_as(labels, missing)} ([data] missing_values)")
        if len(missing) == len(labels):
            raise UsageError(f"{table.path}: {where}; is {name!r} the label column ([data] label)?")
        if options.missing_labels == "error":
            raise UsageError(f"{table.path}: {where}; a missing label is not a class. Fill them in, or set "
                             '[data] missing_labels = "skip" to leave those rows out')
        skipped = set(missing)
        table = table.without(skipped)
        labels = [label for row, label in enumerate(labels) if row not in skipped]
        notes = (f'{table.path}: {where}; left out ([data] missing_labels = "skip")',)
    y, class_names = encode_labels(labels, f"{table.path}, column {name!r}", options.missing_values)
    if whole and len(np.unique(y)) < 2:
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


def encode_labels(values: list[str] | np.ndarray, where: str, missing_values: Sequence[str] = MISSING_VALUES
                  ) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """Labels as written: integers (``3``, or ``3.0`` as pandas writes integers) stay as they are
    (automl refuses any that are not 0..K-1); other numbers are refused as continuous, naming
    ``where``; anything else names classes, numbered 0..K-1 in sorted order, the names kept.
    A missing value (NaN, or a string among ``missing_values``) is refused: it is no class."""
    strings = np.asarray(values, dtype=str)
    cells = strings.tolist()
    written = missing_rows(cells, missing_values) if np.asarray(values).dtype.kind in "US" else []
    if written:
        raise UsageError(f"{where}: {len(written)} label(s) are missing (written {written_as(cells, written)}), the "
                         f"first at index {written[0]}; a missing label is not a class: leave those samples out")
    try:
        numbers = np.asarray(values, dtype=np.float64)
    except ValueError:
        names, labels = np.unique(strings, return_inverse=True)
        return labels.astype(np.int64), tuple(names.tolist())
    missing = np.flatnonzero(np.isnan(numbers))
    if len(missing):
        raise UsageError(f"{where}: {len(missing)} label(s) are NaN, the first at index {missing[0]}; a "
                         "missing label is not a class: leave those samples out")
    if not np.isfinite(numbers).all() or (numbers != np.round(numbers)).any():
        raise _looks_continuous(values, where)
    return numbers.astype(np.int64), None


def merge_labels(parts: list[tuple[np.ndarray, tuple[str, ...] | None]], where: str
                 ) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """The labels of a dataset's files (``encode_labels``'s, one pair per file) as one array.

    Class names are numbered again over every file's names together, so a class is one label in
    every split; files that name classes and files of integer labels do not mix (``where`` says
    which data).
    """
    named = [names is not None for _, names in parts]
    if not any(named):
        return np.concatenate([labels for labels, _ in parts]), None
    if not all(named):
        raise UsageError(f"{where}: some files name their classes and others number them; label every "
                         "split the same way")
    every = tuple(sorted({name for _, names in parts for name in names or ()}))
    position = {name: index for index, name in enumerate(every)}
    return np.concatenate([np.array([position[names[label]] for label in labels], dtype=np.int64)
                           for labels, names in parts if names is not None]), every


def labeled_tables(options: LabelColumnOptions, dataset: str, read: Callable[[Path], Table]
                   ) -> tuple[list[Table], np.ndarray, tuple[str, ...] | None, tuple[str, ...]]:
    """The tables at ``path`` and the given split paths (validation, then test), each with its
    rows that have labels, and their labels as one array (``merge_labels``), with the notes."""
    paths = [data_path(options, dataset), *(data_path(options, dataset, key=key) for key in options.split_paths())]
    tables, parts, notes = [], [], list[str]()
    for index, path in enumerate(paths):
        table, y, class_names, table_notes = label_column(read(path), options, whole=index == 0)
        tables.append(table)
        parts.append((y, class_names))
        notes.extend(table_notes)
    y, class_names = merge_labels(parts, f"{paths[0]}, column {options.label!r}")
    return tables, y, class_names, tuple(notes)


def given_splits(options: FileOptions, sizes: list[int]) -> tuple[int, int]:
    """``LabeledArrays``' ``val_samples`` and ``test_samples`` for data read from ``path`` and then
    the given split paths, whose sample counts are ``sizes`` in that order."""
    counts = dict(zip(options.split_paths(), sizes[1:], strict=True))
    return counts.get("val_path", 0), counts.get("test_path", 0)
