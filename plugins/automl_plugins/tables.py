"""A CSV table: one row per sample, numeric feature columns and a label column (a tabular task)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import Field

import automl
from automl import DataPath, LabeledArrays, RawInputs, UsageError
from automl_plugins._delimited import Table, read_table
from automl_plugins._files import LabelColumnOptions, data_path, label_column


def _numeric(table: Table, name: str) -> np.ndarray:
    """One feature column as float64; the first bad cell is named by column and line."""
    values = table.columns[name]
    parsed = np.empty(len(values))
    for row, value in enumerate(values):
        where = f"{table.path}, column {name!r}, line {table.lines[row]}"
        try:
            parsed[row] = float(value)
        except ValueError:
            raise UsageError(f"{where}: {value!r} is not a number (features must be numeric)") from None
        if not np.isfinite(parsed[row]):
            raise UsageError(f"{where}: {value!r} is not finite (features must be finite numbers)")
    return parsed


class CsvOptions(LabelColumnOptions):
    path: DataPath = Field(description="a CSV file with a header row, numeric features and a label column")
    label: str = "label"  # the label column; every other column is a feature


class CsvTable:
    name = "csv"
    options = CsvOptions

    def load(self, seed: int, options: CsvOptions) -> LabeledArrays:
        path = data_path(options, self.name)
        table, y, class_names, notes = label_column(read_table(path), options)
        features = [name for name in table.columns if name != options.label]
        if not features:
            raise UsageError(f"{path} has no feature columns besides the label {options.label!r}")
        x = np.stack([_numeric(table, name) for name in features], axis=1)
        raw = RawInputs(description=f"one row's feature columns of {path.name}, as numbers in the order of "
                        "feature_names", feature_names=tuple(features))
        return LabeledArrays(x.astype(np.float32), y, "tabular", class_names=class_names, notes=notes, raw=raw)


@automl.hookimpl
def register_datasets(register: Callable[[automl.Dataset[Any]], None]) -> None:
    register(CsvTable())
