"""Counts in messages read as English: one trial, two trials, and the verb that agrees."""

import pytest

from automl.errors import is_or_are, noun_form, plural


@pytest.mark.parametrize(("count", "expected"), [(0, "0 trials"), (1, "1 trial"), (2, "2 trials"),
                                                 (1200, "1,200 trials")])
def test_plural_counts_a_noun(count: int, expected: str) -> None:
    assert plural(count, "trial") == expected


def test_plural_takes_an_irregular_form() -> None:
    assert plural(1, "family", "families") == "1 family"
    assert plural(3, "family", "families") == "3 families"


def test_the_noun_alone_and_its_verb_agree_with_the_count() -> None:
    assert f"{noun_form(1, 'trial')} {{7}} {is_or_are(1)}" == "trial {7} is"
    assert f"{noun_form(2, 'trial')} {{7, 9}} {is_or_are(2)}" == "trials {7, 9} are"
    assert is_or_are(0) == "are"
