"""Text classification from a CSV or TSV file with a text column and a label column (a tokens task).

Texts are split into characters or words; the vocabulary is fitted on the train split only
(automl.plugin.tokenizer), so validation and test words unseen in training count as unknown.
"""

from __future__ import annotations

import numpy as np

import automl
from automl.plugin.arrays import LabeledArrays
from automl.config import DataConfig
from automl.plugin.tokenizer import Tokenizer
from automl_plugins._files import column, data_path, encode_labels, read_columns


class TextFile:
    name = "text"
    option_keys = ()

    def load(self, seed: int, config: DataConfig) -> LabeledArrays:
        path = data_path(config, "a CSV or TSV file with a header row, a text and a label column")
        columns = read_columns(path)
        texts = np.array(column(columns, config.text, "text", path), dtype=object)
        y, class_names = encode_labels(column(columns, config.label, "label", path))
        tokenizer = Tokenizer(config.tokenizer, config.max_length, config.min_freq)
        return LabeledArrays(texts, y, "tokens", class_names=class_names, tokenizer=tokenizer)


@automl.hookimpl
def register_datasets(register):
    register(TextFile())
