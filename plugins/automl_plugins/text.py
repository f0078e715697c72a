"""Text classification from a CSV or TSV file with a text column and a label column (a tokens task).

Texts are split into words and punctuation marks (the default), whitespace-separated words or
characters; the vocabulary is fitted on the train split only (automl.plugin.tokenizer), so
validation and test words unseen in training count as unknown.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, PositiveInt

import automl
from automl import DataPath, LabeledArrays, Tokenizer
from automl_plugins._delimited import Table, read_table
from automl_plugins._files import LabelColumnOptions, given_splits, labeled_tables


class TextOptions(LabelColumnOptions):
    path: DataPath = Field(description="a CSV or TSV file with a header row, a text and a label column")
    text: str = "text"  # the text column
    # "wordpunct": lowercased words and punctuation marks ("great!" is "great" and "!"); "words":
    # lowercased and split on whitespace ("great!" is one token); "chars": one token per character.
    tokenizer: Literal["chars", "words", "wordpunct"] = "wordpunct"
    max_length: PositiveInt = 64  # tokens per sample, padded or truncated
    min_freq: PositiveInt = 1  # rarer tokens become the unknown token


class TextFile:
    name = "text"
    options = TextOptions

    def load(self, seed: int, options: TextOptions) -> LabeledArrays:
        def read(path: Path) -> Table:
            table = read_table(path)
            table.column(options.text, "text")  # a missing text column is named before the labels are read
            return table

        tables, y, class_names, notes = labeled_tables(options, self.name, read)
        texts = np.array([text for table in tables for text in table.columns[options.text]], dtype=object)
        tokenizer = Tokenizer(options.tokenizer, options.max_length, options.min_freq)
        val_samples, test_samples = given_splits(options, [len(table.lines) for table in tables])
        return LabeledArrays(texts, y, "tokens", class_names=class_names, tokenizer=tokenizer, notes=notes,
                             val_samples=val_samples, test_samples=test_samples)


@automl.hookimpl
def register_datasets(register: Callable[[automl.Dataset[Any]], None]) -> None:
    register(TextFile())
