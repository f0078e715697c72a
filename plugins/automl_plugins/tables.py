"""A CSV table: one row per sample, numeric feature columns and a label column (a tabular task)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

import automl
from automl import DataPath, LabeledArrays, RawInputs, UsageError
from automl_plugins._delimited import Table, read_table
from automl_plugins._files import LabelColumnOptions, given_splits, labeled_tables, missing_rows, written_as


def _numeric(table: Table, name: str) -> np.ndarray:
    """One feature column as float64; the first bad cell is named by column and line."""
    values = table.columns[name]
    parsed = np.empty(len(values))
    for row, value in enumerate(values):
        where = f"{table.path}, column {name!r}, line {table.lines[row]}"
        try:
            parsed[row] = float(value)
        except ValueError:
            raise UsageError(f"{where}: {value!r} is not a number (features must be numeric; a column of "
                             f"IDs, names or text is left out with [data] ignored_columns = [{name!r}])") from None
        if not np.isfinite(parsed[row]):
            raise UsageError(f"{where}: {value!r} is not finite (features must be finite numbers)")
    return parsed


def _feature_columns(table: Table, options: CsvOptions) -> list[str]:
    """Every column but the label and the ignored ones; each ignored column must exist."""
    for name in options.ignored_columns:
        table.column(name, "ignored_columns")
    if options.label in options.ignored_columns:
        raise UsageError(f"{table.path}: [data] ignored_columns lists the label column {options.label!r}")
    features = [name for name in table.columns if name != options.label and name not in options.ignored_columns]
    if not features:
        raise UsageError(f"{table.path} has no feature columns besides the label {options.label!r}"
                         + (" and [data] ignored_columns" if options.ignored_columns else ""))
    return features


def _complete_rows(table: Table, features: list[str], options: CsvOptions) -> tuple[Table, tuple[str, ...]]:
    """The table less the rows that miss a feature value when ``missing_features = "skip"`` (with
    a note), else the table; an error naming the first columns and lines when rows miss one."""
    by_column = {name: missing_rows(table.columns[name], options.missing_values) for name in features}
    gaps = {name: rows for name, rows in by_column.items() if rows}
    if not gaps:
        return table, ()
    rows = sorted({row for column_rows in gaps.values() for row in column_rows})
    columns = ", ".join(f"{name!r} ({len(column_rows)}, written {written_as(table.columns[name], column_rows)})"
                        for name, column_rows in list(gaps.items())[:5])
    where = (f"{len(rows)} of {len(table.lines)} rows miss a feature value (line(s) {table.lines_of(rows)}), "
             f"in column(s) {columns} ([data] missing_values)")
    if len(rows) == len(table.lines) or options.missing_features == "error":
        raise UsageError(f"{table.path}: {where}; fill them in, set [data] missing_features = \"skip\" to leave "
                         "those rows out, or list a column that is no feature in [data] ignored_columns")
    return table.without(set(rows)), (f'{table.path}: {where}; left out ([data] missing_features = "skip")',)


class CsvOptions(LabelColumnOptions):
    path: DataPath = Field(description="a CSV file with a header row, numeric features and a label column")
    label: str = "label"  # the label column; every other column not in ignored_columns is a feature
    # Columns that are no feature (an ID, a name, free text): left out.
    ignored_columns: list[str] = Field(default_factory=list)
    # Rows missing a feature value (missing_values): "error" names their lines; "skip" leaves them out with a note.
    missing_features: Literal["error", "skip"] = "error"


class CsvTable:
    name = "csv"
    options = CsvOptions

    def load(self, seed: int, options: CsvOptions) -> LabeledArrays:
        features: list[str] = []
        feature_notes: list[str] = []

        def read(path: Path) -> Table:
            table = read_table(path)
            table.column(options.label, "label")  # a missing label column is named before the features are read
            columns = _feature_columns(table, options)
            if features and columns != features:
                raise UsageError(f"{path}: its feature columns ({', '.join(columns)}) are not those of "
                                 f"{options.path} ({', '.join(features)}); every split needs the same columns")
            features[:] = columns
            table, notes = _complete_rows(table, columns, options)
            feature_notes.extend(notes)
            return table

        tables, y, class_names, notes = labeled_tables(options, self.name, read)
        x = np.concatenate([np.stack([_numeric(table, name) for name in features], axis=1) for table in tables])
        raw = RawInputs(description=f"one row's feature columns of {tables[0].path.name}, as numbers in the order "
                        "of feature_names", feature_names=tuple(features))
        val_samples, test_samples = given_splits(options, [len(table.lines) for table in tables])
        return LabeledArrays(x.astype(np.float32), y, "tabular", class_names=class_names,
                             notes=(*feature_notes, *notes), raw=raw, val_samples=val_samples,
                             test_samples=test_samples)


@automl.hookimpl
def register_datasets(register: Callable[[automl.Dataset[Any]], None]) -> None:
    register(CsvTable())
