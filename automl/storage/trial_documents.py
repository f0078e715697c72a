"""PostgreSQL: whole trials read as JSON documents, a parameter's distribution as a digest.

A load reads its trials as one JSON text, a document per trial (_trial_documents), parsed once by
the client (automl.storage.stored_trials.trials_from_documents). A trial's parameters are most of
it if their distributions are in it: each distribution's stored JSON (~110 bytes, escaped as a
JSON string) was two thirds of a document, the same few texts again in every trial. So a document
holds each distribution as a 128-bit digest of its stored text (_DIGEST), and the process keeps
the distribution of every digest it has read (a text is parsed once a process, as before); the
digests it has not seen are read in a second statement on the same connection, with the texts of
the parameters of trials that hold them (DISTRIBUTION_TEXTS): once per distinct distribution a
process. A digest stands for its text's bytes wherever it was read, so what a process keeps holds
for any database; a digest not kept is always read, never guessed.

The digest is PostgreSQL's 64-bit hash of the text's bytes under two seeds (hashtextextended, as
hash partitioning uses; in the "C" collation, whose hash is of the bytes). Measured side by side,
reading documents of 60 trials (11 parameters each): the server spent 38 µs a trial escaping the
texts, 42 on their md5s, 35 on these hashes.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy
from optuna.distributions import BaseDistribution
from sqlalchemy import Integer
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from automl.storage.stored_trials import Decoded, StoredTrial, trials_from_documents

# A parameter's distribution in a document: two 64-bit hashes of its stored JSON's bytes, "hash.hash".
_DIGEST = " || '.' || ".join(f"hashtextextended(c.distribution_json COLLATE \"C\", {seed})::text" for seed in (0, 1))
# A trial's rows in the other tables, in a document's order: the table, the column they are ordered
# by (as automl.storage.optuna_tables reads them from other databases) and, for each row, the
# comma-separated JSON of its columns (or ``key: value`` for an attr). A parameter's name, value and
# distribution (_DIGEST; '' for a NULL distribution, which no digest names: its read fails, as
# Optuna's does); a value and its type; an intermediate value's step, value and type; a
# user or a system attr.
_NUMBER = "coalesce({}::text, 'null')"
_TYPED = _NUMBER + " || ',\"' || {} || '\"'"  # a float beside its type (stored_trials.stored_float)
_ATTR = "to_json(c.key)::text || ':' || coalesce(c.value_json, 'null')"
_ROWS = (("trial_params", "param_id", "to_json(c.param_name)::text || ',' || " + _NUMBER.format("c.param_value")
          + f" || ',\"' || coalesce({_DIGEST}, '') || '\"'"),
         ("trial_values", "objective", _TYPED.format("c.value", "c.value_type")),
         ("trial_intermediate_values", "trial_intermediate_value_id",
          "c.step::text || ',' || " + _TYPED.format("c.intermediate_value", "c.intermediate_value_type")),
         ("trial_user_attributes", "trial_user_attribute_id", _ATTR),
         ("trial_system_attributes", "trial_system_attribute_id", _ATTR))


# The trials as one JSON text, a list in id order (NULL if none), each trial [trial_id, number,
# study_id, state, start, complete, params, values, intermediate values, user attrs, system attrs],
# the params and values flat lists of their columns (name, value, digest of the distribution; value,
# type; step, value, type), the attrs objects. The server concatenates text (a stored attribute's
# JSON as it is) and the client parses it once: aggregating into PostgreSQL's json type cost more of
# both (the server escaping every stored JSON into a string, the client parsing it twice), a
# trial's row beside it cost a column description and a conversion per column, and a row per trial
# a fifth more of the client's CPU than one row (a row and a parse each). Floats are read as the
# server prints them (its float8 output, as the driver reads a float column; NaN and infinities
# too, which Python's json reads); a parameter or attribute whose name or key is NULL (Optuna never
# writes one) is left out.
def _trial_documents(where: str) -> str:
    parts = [f"'[' || {_NUMBER.format('t.trial_id')} || ',' || {_NUMBER.format('t.number')} || ',' "
             f"|| {_NUMBER.format('t.study_id')} || ',\"' || t.state || '\",' "
             "|| coalesce(to_json(t.datetime_start)::text, 'null') || ',' "
             "|| coalesce(to_json(t.datetime_complete)::text, 'null')"]
    for table, order, row in _ROWS:
        opening, closing = "{}" if row == _ATTR else "[]"
        parts.append(f"',{opening}' || coalesce((SELECT string_agg({row}, ',' ORDER BY c.{order}) "
                     f"FROM {table} c WHERE c.trial_id = t.trial_id), '') || '{closing}'")
    documents = f"SELECT t.trial_id, {' || '.join(parts)} || ']' AS document FROM trials t WHERE {where}"
    return f"SELECT '[' || string_agg(d.document, ',' ORDER BY d.trial_id) || ']' FROM ({documents}) d"


_IDS = sqlalchemy.bindparam("ids", type_=postgresql.ARRAY(Integer))


# Trials by id. A few ids go as a list of parameters, padded to a power of two with the last id
# again: PostgreSQL plans `= ANY(array)` for an array of ten, so a read of a few trials was planned
# anew each time (half its server time); a list's plan is kept (after five reads of a length), and
# the padding keeps the lengths, each a statement built once and prepared by the connection, to
# five. More go as one array: a plan then costs little a trial, and the driver converts a long
# list's statement and each of its parameters again at each read (past 50 it caches none).
LISTED_IDS = 16


@functools.cache
def _documents_by_ids(length: int) -> sqlalchemy.TextClause:
    ids = ", ".join(f":id{index}" for index in range(length))
    return sqlalchemy.text(_trial_documents(f"t.trial_id IN ({ids})"))


_DOCUMENTS_BY_ID_ARRAY = sqlalchemy.text(_trial_documents("t.trial_id = ANY(:ids)")).bindparams(_IDS)
_DOCUMENTS_OF_STUDY = sqlalchemy.text(_trial_documents(
    "t.study_id = :study_id AND t.trial_id BETWEEN :low AND :high"))
# The distinct distributions of the trials' parameters, as (digest, stored JSON).
DISTRIBUTION_TEXTS = sqlalchemy.text(f"SELECT DISTINCT {_DIGEST}, c.distribution_json FROM trial_params c "
                                     "WHERE c.trial_id = ANY(:ids)").bindparams(_IDS)
# The distribution per digest of its stored JSON, of every document this process read; emptied at
# _KNOWN_LIMIT (a process reading many studies' spaces), to be read again as needed.
_KNOWN: dict[str, BaseDistribution] = {}
_KNOWN_LIMIT = 4096


def documents_by_ids(connection: Connection, ids: list[int]) -> list[StoredTrial]:
    """The trials of ``ids`` (sorted, at most a few hundred) that exist, in id order."""
    if len(ids) > LISTED_IDS:
        return _read(connection, _DOCUMENTS_BY_ID_ARRAY, {"ids": ids})
    length = 1 << (len(ids) - 1).bit_length()
    return _read(connection, _documents_by_ids(length),
                 {f"id{index}": ids[min(index, len(ids) - 1)] for index in range(length)})


def documents_of_study(connection: Connection, study_id: int, low: int, high: int) -> list[StoredTrial]:
    """The study's trials with an id from ``low`` to ``high``, in id order."""
    return _read(connection, _DOCUMENTS_OF_STUDY, {"study_id": study_id, "low": low, "high": high})


def _read(connection: Connection, statement: Any, parameters: Mapping[str, Any]) -> list[StoredTrial]:
    def parsed() -> list[list[Any]]:
        return json.loads(connection.execute(statement, parameters).scalar() or "[]")

    documents = parsed()
    try:
        return trials_from_documents(documents, _KNOWN)  # every digest kept, as at most reads
    except KeyError:
        pass  # a digest not kept (or let go by another thread meanwhile)
    while True:
        # The read's own distributions, taken from _KNOWN once: another thread of the process may
        # learn a digest or let _KNOWN go meanwhile, and neither changes what this read looks up.
        distributions: dict[str, BaseDistribution] = {}
        holders: dict[str, int] = {}  # a trial holding each digest not kept (a parameter: name, value, digest)
        for trial in documents:
            for digest in trial[6][2::3]:
                if (distribution := _KNOWN.get(digest)) is None:
                    holders.setdefault(digest, trial[0])
                else:
                    distributions[digest] = distribution
        if not holders or _learn(connection, holders, distributions):
            return trials_from_documents(documents, distributions)
        documents = parsed()  # a trial's parameters went since (its study deleted): read them again


def _learn(connection: Connection, holders: Mapping[str, int], distributions: dict[str, BaseDistribution]) -> bool:
    """Keep, in ``distributions`` and the process's _KNOWN, the distributions of the trials of
    ``holders`` (digest -> id of a trial with a parameter of it); False if a trial no longer holds
    its digest."""
    found = connection.execute(DISTRIBUTION_TEXTS, {"ids": sorted(set(holders.values()))}).all()
    learnt = {digest: Decoded.distribution(stored) for digest, stored in found}
    if len(_KNOWN) + len(learnt) > _KNOWN_LIMIT:
        _KNOWN.clear()
    _KNOWN.update(learnt)
    distributions.update(learnt)
    return all(digest in distributions for digest in holders)
