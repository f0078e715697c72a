"""Trials as Optuna stores them, read back exactly as Optuna's RDBStorage reads them.

Two stored conventions of Optuna's are read as Optuna reads them: trial times are naive UTC (shown
in local time), and an infinite or NaN value is stored as a type beside a NULL value. The rows
themselves are read by automl.storage.optuna_tables; here they become Optuna's FrozenTrial.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, overload

from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.trial import FrozenTrial, TrialState

_STORED_FLOATS = {"FINITE": None, "INF_POS": math.inf, "INF_NEG": -math.inf, "NAN": math.nan}


class StoredTrial(NamedTuple):
    study_id: int
    trial_id: int
    trial: FrozenTrial


class TrialStateRow(NamedTuple):
    """A trial's id, number, state and start time as stored (naive UTC: see local_time; None before it
    started)."""

    trial_id: int
    number: int
    state: TrialState
    stored_start: datetime.datetime | None


# A parameter's distribution per stored JSON text, parsed once a process (a worker reads the same
# few thousand texts again and again; a distribution is not changed once made, so trials share it).
_distribution = functools.lru_cache(maxsize=4096)(json_to_distribution)
STATE_OF = dict(TrialState.__members__)  # a stored state's name -> the state


# The local time's offset per quarter hour of UTC (see Decoded), per time zone the process had
# (time.tzset changes it): found once a process, not once a read (a worker reads a trial or two at
# a time, and converting its times again was a seventh of what decoding it cost).
_OFFSETS: dict[tuple[Any, ...], dict[tuple[int, int, int, int, int], datetime.timedelta]] = {}


class Decoded:
    """What one read decodes, each once: stored JSON per distinct text (distributions, once a
    process, and values that are no list or dict: a trial may change its own list, a string or
    number is shared safely), and the local time's offset per quarter hour of the stored UTC times
    (every time zone's offset is a multiple of 15 minutes and changes at a quarter hour of UTC;
    once a process)."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._offsets = _OFFSETS.setdefault((time.timezone, time.altzone, time.daylight, time.tzname), {})

    def local(self, stored: datetime.datetime | None) -> datetime.datetime | None:
        """A stored (naive UTC) time as Optuna shows it: naive local time."""
        if stored is None:
            return None
        quarter = (stored.year, stored.month, stored.day, stored.hour, stored.minute // 15)
        offset = self._offsets.get(quarter)
        if offset is None:
            offset = local_time(stored) - stored
            self._offsets[quarter] = offset
        return stored + offset

    @staticmethod
    def distribution(stored: str) -> BaseDistribution:
        return _distribution(stored)

    def value(self, stored: str) -> Any:
        found = self._values.get(stored, self)
        if found is self:
            found = json.loads(stored)
            if not isinstance(found, list | dict):
                self._values[stored] = found
        return found


@overload
def local_time(stored: datetime.datetime) -> datetime.datetime: ...
@overload
def local_time(stored: None) -> None: ...
def local_time(stored: datetime.datetime | None) -> datetime.datetime | None:
    """A stored trial time (naive UTC) as Optuna's storage returns it: naive local time (None: a
    time not stamped yet)."""
    return None if stored is None else stored.replace(tzinfo=datetime.UTC).astimezone().replace(tzinfo=None)


def stored_value(value: float) -> dict[str, float | str | None]:
    """An objective value as Optuna stores it (``stored_float`` reads it back): an infinity as its type
    beside a NULL value."""
    if math.isinf(value):
        return {"value": None, "value_type": "INF_POS" if value > 0 else "INF_NEG"}
    return {"value": value, "value_type": "FINITE"}


def stored_float(value: float | None, stored_type: str) -> float:
    special = _STORED_FLOATS[stored_type]
    if special is not None:
        return special
    assert value is not None, "a finite value stored as NULL"
    return float(value)


def trial_from_rows(row: Any, children: list[list[Any]], decoded: Decoded) -> StoredTrial:
    """A trial from its row of the trials table and its rows of the others (parameters, values,
    intermediate values, user attrs, system attrs: each a list of the columns read, see
    automl.storage.optuna_tables)."""
    params, values, steps, user, system = children
    own = {name: decoded.distribution(stored) for name, _, stored in params}
    trial = FrozenTrial(
        number=row.number, state=TrialState[row.state], value=None,
        values=[stored_float(value, stored_type) for value, stored_type in values] if values else None,
        datetime_start=decoded.local(row.datetime_start), datetime_complete=decoded.local(row.datetime_complete),
        params={name: own[name].to_external_repr(float(value)) for name, value, _ in params},
        distributions=own, user_attrs={key: decoded.value(stored) for key, stored in user},
        system_attrs={key: decoded.value(stored) for key, stored in system},
        intermediate_values={step: stored_float(value, stored_type) for step, value, stored_type in steps},
        trial_id=row.trial_id)
    return StoredTrial(row.study_id, row.trial_id, trial)


def trials_from_documents(documents: Sequence[list[Any]],
                          distributions: Mapping[str, BaseDistribution]) -> list[StoredTrial]:
    """The trials of parsed JSON documents, a trial's fields and rows in the order
    automl.storage.trial_documents reads them, each parameter's distribution looked up in
    ``distributions`` by its digest. Raises KeyError for a digest not in ``distributions``."""
    decoded = Decoded()
    loaded = []
    for trial_id, number, study_id, state, start, complete, params, values, steps, user, system in documents:
        own, external = {}, {}
        for name, value, digest in zip(params[::3], params[1::3], params[2::3], strict=True):
            own[name] = distribution = distributions[digest]
            external[name] = distribution.to_external_repr(float(value))
        trial = FrozenTrial(
            number=number, state=STATE_OF[state], value=None,
            values=[stored_float(*value) for value in zip(values[::2], values[1::2], strict=True)] or None,
            datetime_start=decoded.local(start and datetime.datetime.fromisoformat(start)),
            datetime_complete=decoded.local(complete and datetime.datetime.fromisoformat(complete)),
            params=external, distributions=own, user_attrs=user, system_attrs=system,
            intermediate_values={step: stored_float(value, stored_type) for step, value, stored_type in zip(
                steps[::3], steps[1::3], steps[2::3], strict=True)},
            trial_id=trial_id)
        loaded.append(StoredTrial(study_id, trial_id, trial))
    return loaded
