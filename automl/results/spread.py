"""What a view of a large study shows of its trials or points: the front's and others evenly
spread over the study, a fixed number in all (the report's and the dashboard's figures, the
trials importance is computed over, the trials the dashboard's page is sent)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

Spread = TypeVar("Spread")


def evenly_spread(items: Sequence[Spread], count: int) -> list[Spread]:
    """``count`` of ``items`` spread evenly over them, in order, from the first on; all of them when
    there are no more than ``count``."""
    if len(items) <= count:
        return list(items)
    return [items[index * len(items) // count] for index in range(count)]


def front_and_spread(items: Sequence[Spread], on_front: Callable[[Spread], bool], at_most: int) -> list[Spread]:
    """What a view of a large study shows of ``items``: all of them up to ``at_most``; past it,
    those ``on_front`` and others evenly spread over the rest, ``at_most`` in all (the front's
    alone when it is larger), in their order."""
    if len(items) <= at_most:
        return list(items)
    rest = [index for index, item in enumerate(items) if not on_front(item)]
    picked = set(evenly_spread(rest, max(at_most - (len(items) - len(rest)), 0)))
    return [item for index, item in enumerate(items) if index in picked or on_front(item)]
