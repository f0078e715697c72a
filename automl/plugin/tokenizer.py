"""A simple text tokenizer: characters, words and punctuation marks, or whitespace-separated words; a
vocabulary fitted on the train split.

Token id 0 pads and id 1 stands for any token outside the vocabulary; the vocabulary starts at 2.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

PAD, UNKNOWN = 0, 1
RESERVED = 2
# Runs of word characters and runs of other non-space characters, as NLTK's wordpunct_tokenize:
# "Great!" is "great" and "!", so the word is the one the training texts taught, whatever follows it.
WORDPUNCT = r"\w+|[^\w\s]+"
SPLITS = {"wordpunct": f"into runs of word characters and of punctuation (regex {WORDPUNCT})",
          "words": "on whitespace", "chars": "into characters"}


@dataclass(frozen=True)
class Tokenizer:
    """How texts become tokens: ``"wordpunct"`` (lowercased, runs of word characters and runs of
    punctuation: ``"Great film!"`` is ``great``, ``film``, ``!``), ``"words"`` (lowercased, split on
    whitespace: ``film!`` is one token) or ``"chars"`` (every character); ``max_length`` tokens per
    text; tokens seen fewer than ``min_freq`` times in the train split count as unknown."""

    unit: Literal["chars", "words", "wordpunct"]
    max_length: int
    min_freq: int = 1

    def tokens(self, text: str) -> list[str]:
        if self.unit == "chars":
            return list(text)
        return re.findall(WORDPUNCT, text.lower()) if self.unit == "wordpunct" else text.lower().split()

    def fit(self, texts: Iterable[str]) -> Vocabulary:
        """The vocabulary of ``texts`` (the train split), most frequent first, ties alphabetical."""
        counts = Counter(token for text in texts for token in self.tokens(text))
        kept = sorted((token for token, n in counts.items() if n >= self.min_freq),
                      key=lambda token: (-counts[token], token))
        return Vocabulary(self, {token: RESERVED + index for index, token in enumerate(kept)})


@dataclass(frozen=True)
class Vocabulary:
    tokenizer: Tokenizer
    ids: dict[str, int]

    @property
    def size(self) -> int:
        """Embedding rows a model needs: the tokens plus padding and unknown."""
        return RESERVED + len(self.ids)

    def to_dict(self) -> dict[str, Any]:
        """What an application needs to encode texts as the model was trained on (JSON)."""
        unit = self.tokenizer.unit
        pattern = {"pattern": WORDPUNCT} if unit == "wordpunct" else {}
        return {"unit": unit, "lowercase": unit != "chars", "split": SPLITS[unit], **pattern,
                "max_length": self.tokenizer.max_length, "pad_id": PAD, "unknown_id": UNKNOWN,
                "padding": "left", "truncation": "keep the first max_length tokens", "vocabulary": self.ids}

    def encode(self, texts: Collection[str]) -> np.ndarray:
        """Token ids ``[N, max_length]``: the first ``max_length`` tokens of each text, padded on
        the left, so that a recurrent model's last step is the text's last token."""
        length = self.tokenizer.max_length
        encoded = np.full((len(texts), length), PAD, dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.ids.get(token, UNKNOWN) for token in self.tokenizer.tokens(text)[:length]]
            if ids:
                encoded[row, length - len(ids):] = ids
        return encoded
