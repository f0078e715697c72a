"""The Optuna tables automl reads and writes with SQLAlchemy Core: laid out as the installed Optuna
creates them, checked at start-up, and read exactly as Optuna's own storage reads them."""

from __future__ import annotations

import copy
import datetime
import math
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from automl.errors import UsageError
from automl.storage import trial_documents
from automl.storage.optuna_tables import OptunaTables, UnknownOptunaTables, check_layout, local_time
from automl.storage.outline import Outline, read_outlines
from automl.storage.trial_queue import WINDOW, queue_trials
from automl.storage.urls import open_storage
from automl.storage.worker_storage import WorkerStorage


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'tables.db'}"


@pytest.fixture
def _far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A local time zone far from UTC: Optuna stores trial times in UTC and shows them in local time."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _trials() -> list[optuna.trial.FrozenTrial]:
    """Trials with every kind of stored value: infinities, NaN steps and attrs, categorical and log
    params, quotes and backslashes (in attrs and in a distribution's choices)."""
    started = datetime.datetime(2024, 3, 1, 12, 30, 15, 123456)
    distributions = {"x": FloatDistribution(0, 1), "lr": FloatDistribution(1e-4, 1, log=True),
                     "n": IntDistribution(1, 8),
                     "act": CategoricalDistribution(["relu", None, 0.5, "it's \"quoted\" \\"])}
    params = {"x": 0.25, "lr": 0.001, "n": 3, "act": None}
    return [
        create_trial(state=TrialState.COMPLETE, values=[0.5, math.inf], params=params, distributions=distributions,
                     user_attrs={"curve": [0.1, 0.2], "family": "mlp", "loss": [math.nan, -math.inf],
                                 "note": 'a "quoted" \\ text'},
                     system_attrs={"constraints:max_flops": -1.0, "constraints_seen": 1},
                     intermediate_values={0: 0.1, 1: math.nan, 2: -math.inf}),
        create_trial(state=TrialState.PRUNED, params={"x": 0.75}, distributions={"x": distributions["x"]},
                     intermediate_values={0: 0.3}, user_attrs={"curve": []}),
        create_trial(state=TrialState.FAIL, user_attrs={"fail_reason": "RuntimeError: kaboom"}),
        create_trial(state=TrialState.WAITING, user_attrs={"queue_window": 0}),
        create_trial(state=TrialState.COMPLETE, values=[-math.inf, 2.0]),
    ] + [optuna.trial.FrozenTrial(number=0, state=TrialState.RUNNING, value=None, datetime_start=started,
                                  datetime_complete=None, params={}, distributions={}, user_attrs={},
                                  system_attrs={}, intermediate_values={}, trial_id=0)]


@pytest.mark.usefixtures("_far_from_utc")
def test_trials_read_through_the_tables_equal_optunas_own_reading(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    study.add_trials(_trials())
    study_id = storage.get_study_id_from_name(study.study_name)
    check_layout(storage.engine)
    tables = OptunaTables(storage.engine)
    with storage.engine.connect() as connection:
        everything = tables.load(connection, study_id)
        # Three ids: on PostgreSQL read as four, the last again (a list of ids is padded).
        some = tables.load(connection, trial_ids=[trial.trial_id for trial in everything[4:0:-2] + everything[3:4]])
        monkeypatch.setattr(trial_documents, "LISTED_IDS", 2)  # on PostgreSQL more ids go as one array
        as_array = tables.load(connection, trial_ids=[trial.trial_id for trial in everything[2:5]])
        states = tables.trial_states(connection, study_id, lowest=everything[3].trial_id)
        outlined = read_outlines(connection, study_id, Outline(("family", "fail_reason"), ("x", "n"),
                                                                 ("constraints",)), objectives=2)
        curved = tables.trials_with_user_attr(connection, study_id, "curve", unless=("[]",))
    # Every field, NaN included (which compares unequal to itself): the trials' reprs.
    theirs = [repr(trial) for trial in storage.get_all_trials(study_id)]
    assert [repr(stored.trial) for stored in everything] == theirs and len(theirs) == 6
    assert all(stored.study_id == study_id for stored in everything)
    assert [repr(stored.trial) for stored in some] == [repr(stored.trial) for stored in as_array] == theirs[2:5]
    assert [(state.trial_id, state.number, state.state, state.stored_start and local_time(state.stored_start))
            for state in states] == [(stored.trial_id, stored.trial.number, stored.trial.state,
                                      stored.trial.datetime_start) for stored in everything[3:]]
    # In outline: the named attrs and params alone (a constraint's too), no intermediate values.
    expected = []
    for stored in everything:
        trial = copy.copy(stored.trial)
        trial.params = {key: value for key, value in trial.params.items() if key in ("x", "n")}
        trial.distributions = {key: value for key, value in trial.distributions.items() if key in ("x", "n")}
        trial.user_attrs = {key: value for key, value in trial.user_attrs.items() if key in ("family", "fail_reason")}
        trial.system_attrs = {"constraints:max_flops": -1.0} if trial.system_attrs else {}
        trial.intermediate_values = {}
        expected.append(repr(trial))
    assert [repr(stored.trial) for stored in outlined] == expected
    assert curved == [everything[0].trial_id]  # the other curve is empty


def test_a_window_queued_in_one_transaction_is_what_optunas_enqueue_trial_stores(url: str) -> None:
    worker = WorkerStorage(open_storage(url))
    inserts: dict[str, list[str]] = {}
    for name, storage in (("ours", worker), ("theirs", open_storage(url))):
        study = optuna.create_study(study_name=name, storage=storage)
        study.enqueue_trial({"x": 1})  # a trial before the window: the window's numbers follow it
        engine = worker.backend.engine if storage is worker else storage.engine  # type: ignore[attr-defined]
        found = inserts[name] = []
        sqlalchemy.event.listen(engine, "before_cursor_execute", lambda *args, found=found: found.append(args[2]))
        queue_trials(study, WINDOW + 3, window=2)
    trial_rows = {name: sum(sql.startswith("INSERT INTO trials ") for sql in found) for name, found in inserts.items()}
    assert trial_rows == {"ours": 1, "theirs": WINDOW}, "Optuna's enqueue_trial inserts a trial a transaction"

    def fields(trial: optuna.trial.FrozenTrial) -> tuple:
        return (trial.number, trial.state, trial.params, trial.user_attrs, trial.system_attrs, trial.datetime_start,
                trial.values)

    queued = [[fields(trial) for trial in optuna.load_study(study_name=name, storage=open_storage(url)).trials]
              for name in ("ours", "theirs")]  # as Optuna reads them
    assert queued[0] == queued[1] and len(queued[0]) == WINDOW + 1


def test_trial_times_across_daylight_saving_changes_read_as_optuna_reads_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Local times, in a zone whose offset (-3:30 / -2:30) changes at half past an hour of UTC: a
    read converts once per quarter hour (automl.storage.optuna_tables.Decoded)."""
    monkeypatch.setenv("TZ", "America/St_Johns")
    time.tzset()
    try:
        storage = open_storage(f"sqlite:///{tmp_path / 'times.db'}")
        study = optuna.create_study(storage=storage)
        changes = [datetime.datetime(2024, 3, 10, 5, 30, tzinfo=datetime.UTC),  # summer time starts
                   datetime.datetime(2024, 11, 3, 4, 30, tzinfo=datetime.UTC)]  # and ends
        moments = [change + datetime.timedelta(microseconds=step) for change in changes for step in (-1, 0, 1)]
        for start, end in zip(moments, moments[1:] + moments[:1], strict=True):
            trial = create_trial(state=TrialState.COMPLETE, value=1.0)
            trial.datetime_start, trial.datetime_complete = start, end
            study.add_trial(trial)
        study_id = storage.get_study_id_from_name(study.study_name)
        tables = OptunaTables(storage.engine)
        with storage.engine.connect() as connection:
            ours = [tables.load(connection, study_id), read_outlines(connection, study_id, Outline((), (), ()), 1)]
        theirs = [(trial.datetime_start, trial.datetime_complete) for trial in storage.get_all_trials(study_id)]
        for read in ours:
            assert [(stored.trial.datetime_start, stored.trial.datetime_complete) for stored in read] == theirs
        # The local clock jumps an hour at each change (a read converting once an hour would miss it).
        assert theirs[1][0] - theirs[0][0] == datetime.timedelta(hours=1, microseconds=1)
        assert theirs[4][0] - theirs[3][0] == datetime.timedelta(hours=-1, microseconds=1)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_database_missing_a_column_automl_reads_is_refused_at_start_up_naming_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'changed.db'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backend = open_storage(url)
    with backend.engine.begin() as connection:
        connection.execute(sqlalchemy.text("ALTER TABLE trial_params DROP COLUMN distribution_json"))
    with pytest.raises(UnknownOptunaTables, match="table trial_params has no column distribution_json") as refused:
        WorkerStorage(backend)
    assert isinstance(refused.value, UsageError) and f"optuna storage upgrade --storage {url}" in str(refused.value)
