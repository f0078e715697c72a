"""Text classification from a CSV or TSV file with a text column and a label column (a tokens task).

Texts are split into characters or words; the vocabulary is fitted on the train split only
(automl.plugin.tokenizer), so validation and test words unseen in training count as unknown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from pydantic import Field, PositiveInt

import automl
from automl import DataPath, LabeledArrays, Tokenizer
from automl_plugins._files import FileOptions, column, data_path, encode_labels, read_columns


class TextOptions(FileOptions):
    path: DataPath = Field(description="a CSV or TSV file with a header row, a text and a label column")
    text: str = "text"  # the text column
    label: str = "label"  # the label column
    # "words": lowercased and split on whitespace; "chars": one token per character.
    tokenizer: Literal["chars", "words"] = "words"
    max_length: PositiveInt = 64  # tokens per sample, padded or truncated
    min_freq: PositiveInt = 1  # rarer tokens become the unknown token


class TextFile:
    name = "text"
    options = TextOptions

    def load(self, seed: int, options: TextOptions) -> LabeledArrays:
        path = data_path(options, self.name)
        columns = read_columns(path)
        texts = np.array(column(columns, options.text, "text", path), dtype=object)
        y, class_names = encode_labels(column(columns, options.label, "label", path))
        tokenizer = Tokenizer(options.tokenizer, options.max_length, options.min_freq)
        return LabeledArrays(texts, y, "tokens", class_names=class_names, tokenizer=tokenizer)


@automl.hookimpl
def register_datasets(register: Callable[[automl.Dataset[Any]], None]) -> None:
    register(TextFile())
