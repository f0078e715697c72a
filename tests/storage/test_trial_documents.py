"""PostgreSQL's reads of whole trials as documents: a parameter's distribution goes as a digest of its
stored JSON, read from the database the first time a process meets it, and never taken for another."""

from __future__ import annotations

import threading
from typing import Any

import optuna
import pytest
import sqlalchemy
from conftest import postgres_database
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import RDBStorage
from optuna.trial import TrialState, create_trial

from automl.storage import trial_documents
from automl.storage.optuna_tables import OptunaTables, StoredTrial, reading
from automl.storage.urls import open_storage


@pytest.fixture(autouse=True)
def _nothing_known(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that has read no distribution yet."""
    monkeypatch.setattr(trial_documents, "_KNOWN", {})


def _study(url: str, name: str, distributions: dict[str, BaseDistribution],
           trials: int) -> tuple[RDBStorage, int]:
    """A study of ``trials`` complete trials, each with a parameter of each distribution."""
    storage = open_storage(url)
    assert isinstance(storage, RDBStorage)
    study = optuna.create_study(storage=storage, study_name=name)
    params = {name: distribution.choices[-1] if isinstance(distribution, CategoricalDistribution)
              else distribution.high for name, distribution in distributions.items()}
    study.add_trials([create_trial(state=TrialState.COMPLETE, value=float(index), params=params,
                                   distributions=distributions) for index in range(trials)])
    return storage, storage.get_study_id_from_name(name)


def _statements(engine: sqlalchemy.engine.Engine) -> list[str]:
    """The statements run on ``engine`` from now on (a list that grows)."""
    found: list[str] = []
    sqlalchemy.event.listen(engine, "before_cursor_execute", lambda *args: found.append(args[2]))
    return found


def _trial_ids(engine: sqlalchemy.engine.Engine, study_id: int) -> list[int]:
    with engine.connect() as connection:
        return list(connection.execute(sqlalchemy.text(
            "SELECT trial_id FROM trials WHERE study_id = :study ORDER BY trial_id"), {"study": study_id}).scalars())


def _load(tables: OptunaTables, ids: list[int]) -> list[StoredTrial]:
    with reading(tables.engine) as connection:
        return tables.load(connection, trial_ids=ids)


def _fetches(statements: list[str]) -> int:
    """How many of ``statements`` read distributions' texts (trial_documents.DISTRIBUTION_TEXTS)."""
    texts = trial_documents.DISTRIBUTION_TEXTS.text.split(" WHERE ")[0]
    return sum(statement.startswith(texts) for statement in statements)


def test_a_distribution_not_read_yet_is_read_from_the_database_once_a_process(postgres_url: str) -> None:
    distributions = {"x": FloatDistribution(0, 1), "n": IntDistribution(1, 8, log=True),
                     "act": CategoricalDistribution(["relu", None, 0.5, "it's \"quoted\" \\"])}
    storage, study_id = _study(postgres_url, "spaces", distributions, trials=4)
    theirs = [repr(trial) for trial in storage.get_all_trials(study_id)]
    ids, tables = _trial_ids(storage.engine, study_id), OptunaTables(storage.engine)
    found = _statements(storage.engine)
    first = _load(tables, ids[:2])
    assert (_fetches(found), len(found)) == (1, 2), "the trials, then the texts of their three distributions"
    found.clear()
    rest = _load(tables, ids[2:])
    assert found and not _fetches(found), "every distribution is known: the trials alone"
    assert [repr(stored.trial) for stored in first + rest] == theirs
    assert sorted(map(repr, trial_documents._KNOWN.values())) == sorted(map(repr, distributions.values()))
    assert _load(tables, [max(ids) + 1]) == [], "no such trial"


def test_what_a_process_keeps_is_let_go_at_its_limit_and_read_again(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trial_documents, "_KNOWN_LIMIT", 1)
    storage, floats = _study(postgres_url, "floats", {"x": FloatDistribution(0, 1), "y": FloatDistribution(0, 2)}, 1)
    ints = _study(postgres_url, "ints", {"x": IntDistribution(0, 3)}, trials=1)[1]
    tables = OptunaTables(storage.engine)
    found = _statements(storage.engine)
    for study_id in (floats, ints, floats):
        loaded = _load(tables, _trial_ids(storage.engine, study_id))
        assert [repr(stored.trial) for stored in loaded] == [repr(trial) for trial in storage.get_all_trials(study_id)]
        assert len(trial_documents._KNOWN) == len(loaded[0].trial.distributions)
    assert _fetches(found) == 3


def test_a_parameter_of_the_same_name_reads_as_its_own_database_stores_it() -> None:
    with postgres_database("automl_float") as floats, postgres_database("automl_ints") as ints:
        read = []
        for url, distribution in ((floats, FloatDistribution(1, 8)), (ints, IntDistribution(1, 8))):
            storage, study_id = _study(url, "same", {"width": distribution}, trials=2)
            with reading(storage.engine) as connection:
                loaded = OptunaTables(storage.engine).load(connection, study_id)
            assert [repr(stored.trial) for stored in loaded] == [repr(trial) for trial in storage.get_all_trials(
                study_id)]
            read.append(loaded[0].trial)
            storage.engine.dispose()
    assert [trial.distributions["width"] for trial in read] == [FloatDistribution(1, 8), IntDistribution(1, 8)]
    assert [type(trial.params["width"]) for trial in read] == [float, int]


def test_trials_deleted_before_their_distributions_are_read_are_read_as_gone(postgres_url: str) -> None:
    """A study deleted between the read of its trials and of their distributions' texts: the
    trials are read again, without it (as a read after the deletion)."""
    kept_storage, kept = _study(postgres_url, "kept", {"x": FloatDistribution(0, 1)}, trials=2)
    storage, deleted = _study(postgres_url, "deleted", {"x": IntDistribution(0, 3)}, trials=2)
    theirs = [repr(trial) for trial in kept_storage.get_all_trials(kept)]
    ids, tables = _trial_ids(storage.engine, kept) + _trial_ids(storage.engine, deleted), OptunaTables(storage.engine)
    found = _statements(storage.engine)

    def delete_before_the_texts(*args: object) -> None:
        if len(found) == 2 and _fetches(found) == 1:  # the trials read, their distributions' texts next
            open_storage(postgres_url).delete_study(deleted)

    sqlalchemy.event.listen(storage.engine, "before_cursor_execute", delete_before_the_texts)
    loaded = _load(tables, ids)
    assert [repr(stored.trial) for stored in loaded] == theirs
    assert _fetches(found) == 1 and len(found) == 3, "the trials, the texts (of one alone, then), the trials again"



def test_a_distribution_another_thread_learns_meanwhile_is_no_error(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The threads of one process share what it keeps: a thread that misses a digest while another
    thread reads the same trials (and learns the digest first) reads its trials, never a KeyError."""
    storage, study_id = _study(postgres_url, "space", {"x": FloatDistribution(0, 1)}, trials=2)
    ids, tables = _trial_ids(storage.engine, study_id), OptunaTables(storage.engine)
    theirs = [repr(trial) for trial in storage.get_all_trials(study_id)]
    unpatched = trial_documents.trials_from_documents
    others: list[list[StoredTrial]] = []  # what the other thread read
    started: list[threading.Thread] = []

    def another_thread_reads_first(*args: Any) -> list[StoredTrial]:
        try:
            return unpatched(*args)
        except KeyError:
            if not started:  # the first miss: another thread reads the same trials before this one goes on
                started.append(threading.Thread(target=lambda: others.append(_load(tables, ids))))
                started[0].start()
                started[0].join()
            raise

    monkeypatch.setattr(trial_documents, "trials_from_documents", another_thread_reads_first)
    assert [repr(stored.trial) for stored in _load(tables, ids)] == theirs
    assert all([repr(stored.trial) for stored in other] == theirs for other in others)


def test_a_parameter_without_a_stored_distribution_fails_the_read_as_optunas_does(postgres_url: str) -> None:
    """Optuna's column of a parameter's distribution may be NULL (Optuna never writes one): Optuna's
    read of its trial fails; a document's read must not return the trial without the parameter."""
    storage, study_id = _study(postgres_url, "null", {"x": FloatDistribution(0, 1)}, trials=1)
    with storage.engine.begin() as connection:
        connection.execute(sqlalchemy.text("UPDATE trial_params SET distribution_json = NULL"))
    with pytest.raises(TypeError):
        storage.get_all_trials(study_id)
    with pytest.raises(TypeError):
        _load(OptunaTables(storage.engine), _trial_ids(storage.engine, study_id))
