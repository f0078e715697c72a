"""A study's system attributes written many at a time, in one transaction.

Optuna writes each study system attribute in a transaction of its own (a few milliseconds on
SQLite), and optuna-dashboard keeps every note and figure as such attributes, in chunks of about
2 kB: a study of thousands of trials holds tens of thousands of them. Optuna has no batched write,
so on SQLite and PostgreSQL this module upserts them in one transaction (statements of a few
hundred rows); on any other storage it writes them one by one through Optuna, which is slower
but still one write per attribute.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import optuna
from optuna.storages import RDBStorage
from sqlalchemy.dialects import postgresql, sqlite

from automl.storage._optuna import models, scoped_session, storage_backend, study_id_of

# The dialects whose insert statement can update on conflict, as Optuna's own attribute writes do.
_UPSERTS: dict[str, Callable[[Any], sqlite.Insert | postgresql.Insert]] = {
    "sqlite": sqlite.insert, "postgresql": postgresql.insert}
# Rows per statement: 3 bound values each stays under SQLite's oldest limit of 999.
ROWS_PER_STATEMENT = 300


def set_study_system_attrs(study: optuna.Study, attrs: Mapping[str, Any]) -> None:
    """Set each of ``attrs`` (key -> JSON-serializable value) on ``study``, in one transaction
    where the storage allows it (see module)."""
    if not attrs:
        return
    backend, study_id = storage_backend(study), study_id_of(study)
    insert = _UPSERTS.get(backend.engine.name) if isinstance(backend, RDBStorage) else None
    if insert is None:
        for key, value in attrs.items():
            backend.set_study_system_attr(study_id, key, value)
        return
    assert isinstance(backend, RDBStorage)
    model = models.StudySystemAttributeModel
    rows = [{"study_id": study_id, "key": key, "value_json": json.dumps(value)} for key, value in attrs.items()]
    with scoped_session(backend.scoped_session, True) as session:
        models.StudyModel.find_or_raise_by_id(study_id, session)
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            statement = insert(model).values(rows[start:start + ROWS_PER_STATEMENT])
            session.execute(statement.on_conflict_do_update(index_elements=[model.study_id, model.key],
                                                            set_={"value_json": statement.excluded.value_json}))
