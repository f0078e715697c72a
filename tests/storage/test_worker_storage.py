"""The worker's storage on a real SQLite file: held trial writes, and trials reloaded only when changed."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from conftest import trial_id_of, worker_storage_of, worker_study
from optuna.trial import TrialState

from automl.search.moasha import RANKED_STATES
from automl.storage.optuna_tables import OptunaTables
from automl.storage.schema import CONFIG_ATTR
from automl.storage.trial_queue import QUEUED, count, queue_trials
from automl.storage.urls import open_storage
from automl.storage.worker_storage import WorkerStorage, commit_trial_writes

STUDY = "held"


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.simplefilter("ignore")  # Optuna warns that heartbeats belong to Study.optimize
    optuna.logging.set_verbosity(optuna.logging.ERROR)



def _counting_loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ids of the trials the worker's storage loads in full from now on."""
    loaded: list[int] = []
    load = OptunaTables._load

    def counting(self: OptunaTables, *args: object) -> list:
        stored = load(self, *args)  # type: ignore[arg-type]
        loaded.extend(trial.trial_id for trial in stored)
        return stored

    monkeypatch.setattr(OptunaTables, "_load", counting)
    return loaded


def _stored(url: str, number: int) -> optuna.trial.FrozenTrial:
    """The trial as another process (a dashboard) reads it now."""
    return optuna.load_study(study_name=STUDY, storage=open_storage(url)).trials[number]


def _count_commits(storage: WorkerStorage) -> list[int]:
    commits = [0]
    sqlalchemy.event.listen(storage.backend.engine, "commit", lambda connection: commits.__setitem__(0, commits[0] + 1))
    return commits


def test_a_trials_writes_are_committed_together_and_read_back_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'held.db'}"
    queue_trials(optuna.create_study(study_name=STUDY, storage=open_storage(url)), 1)
    study = worker_study(url, STUDY)
    commits = _count_commits(worker_storage_of(study))
    trial = study.ask()
    trial_id = trial_id_of(study, trial.number)
    before = commits[0]
    for i in range(10):
        trial.suggest_float(f"x{i}", 0, 1)
    for i in range(20):
        trial.set_user_attr(f"a{i}", i)
    trial.set_user_attr("curve", [0.1])
    trial.set_user_attr("curve", [0.1, 0.2])  # written twice while held: the last value is stored
    assert commits[0] == before, "a held write reached the database"
    assert _stored(url, 0).user_attrs == {}, "another process saw a held write"

    # This process reads its own writes at once, from its copy of the trial.
    read = worker_storage_of(study).get_trial(trial_id)
    assert read.user_attrs["a19"] == 19 and read.user_attrs["curve"] == [0.1, 0.2] and len(read.params) == 10
    assert commits[0] == before, "reading this process's own running trial committed"
    worker_storage_of(study).commit_held()
    assert commits[0] == before + 1, "31 writes took more than one transaction"
    assert _stored(url, 0).user_attrs["curve"] == [0.1, 0.2] and len(_stored(url, 0).params) == 10

    trial.set_user_attr("wall_time_s", 1.5)
    study.tell(trial, 0.5)
    stored = _stored(url, 0)
    assert stored.state == TrialState.COMPLETE and stored.user_attrs["wall_time_s"] == 1.5


def test_the_heartbeat_commits_held_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'held.db'}"
    queue_trials(optuna.create_study(study_name=STUDY, storage=open_storage(url)), 1)
    study = worker_study(url, STUDY)
    trial = study.ask()
    trial.set_user_attr("flops", 1000)
    assert "flops" not in _stored(url, 0).user_attrs
    # What the heartbeat thread calls every interval:
    worker_storage_of(study).record_heartbeat(trial_id_of(study, trial.number))
    assert _stored(url, 0).user_attrs["flops"] == 1000


def test_a_read_commits_held_writes_once_held_a_heartbeat_interval(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'held.db'}"
    queue_trials(optuna.create_study(study_name=STUDY, storage=open_storage(url)), 2)
    study = worker_study(url, STUDY)  # a heartbeat every second
    trial = study.ask()
    trial.set_user_attr("curve", [0.1])
    ranked = study.get_trials(deepcopy=False, states=RANKED_STATES)  # MO-ASHA's read at a rung
    assert ranked[0].user_attrs["curve"] == [0.1], "this process did not read its own held write"
    assert "curve" not in _stored(url, 0).user_attrs, "a read committed a write held less than a heartbeat interval"
    with monkeypatch.context() as later:
        at = time.monotonic() + 1  # the heartbeat interval of _worker_study: the heartbeat thread may have missed it
        later.setattr(time, "monotonic", lambda: at)
        study.get_trials(deepcopy=False, states=RANKED_STATES)
    assert _stored(url, 0).user_attrs["curve"] == [0.1]

    # Without a heartbeat nothing else commits what is held: every read does.
    plain = optuna.load_study(study_name=STUDY, storage=WorkerStorage(open_storage(url)))
    other = plain.ask()
    other.set_user_attr("curve", [0.2])
    plain.get_trials(deepcopy=False, states=RANKED_STATES)
    assert _stored(url, other.number).user_attrs["curve"] == [0.2]


def test_commit_trial_writes_commits_what_the_worker_holds_and_leaves_other_storages_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'held.db'}"
    plain = optuna.create_study(study_name=STUDY, storage=open_storage(url))
    queue_trials(plain, 2)
    study = worker_study(url, STUDY)
    trial = study.ask()
    trial.set_user_attr("worker", "host:1")
    commit_trial_writes(plain.ask())  # not a worker's storage: nothing held there, nothing to do
    assert "worker" not in _stored(url, 0).user_attrs
    commit_trial_writes(trial)
    assert _stored(url, 0).user_attrs["worker"] == "host:1"


def test_a_param_that_contradicts_an_earlier_trial_fails_where_it_is_suggested(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'held.db'}"
    queue_trials(optuna.create_study(study_name=STUDY, storage=open_storage(url)), 2)
    study = worker_study(url, STUDY)
    first = study.ask()
    first.suggest_int("layers", 1, 3)
    study.tell(first, 0.5)
    second = study.ask()
    with pytest.raises(ValueError, match="different distribution kind"):
        second.suggest_float("layers", 0.0, 1.0)


def test_queued_trials_are_read_in_full_once_and_seen_when_popped_elsewhere(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    created = optuna.create_study(study_name=STUDY, storage=open_storage(url))
    for _ in range(3):  # 300 queued at once (queue_trials queues a window of 100 at a time)
        queue_trials(created, 100)
    study = worker_study(url, STUDY)
    built = _counting_loads(monkeypatch)
    assert len(study.get_trials(deepcopy=False)) == 300
    assert len(built) == 300
    built.clear()
    assert len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,))) == 300
    assert built == [], "queued trials were loaded again although none changed"

    # Another worker (here in this process) pops one: this one sees it running, from its start,
    # without loading it; then, a heartbeat interval later, with what that worker committed.
    other = worker_study(url, STUDY)
    popped = other.ask()
    popped.set_user_attr("by", "other")
    commit_trial_writes(popped)
    built.clear()  # the other worker's own reads
    running = study.get_trials(deepcopy=False)[popped.number]
    assert (running.state, running.datetime_start) == (TrialState.RUNNING, _stored(url, popped.number).datetime_start)
    assert running.user_attrs == {} and built == [], "a trial popped elsewhere was loaded at its pop"
    with monkeypatch.context() as later:
        at = time.monotonic() + 1  # the heartbeat interval of _worker_study
        later.setattr(time, "monotonic", lambda: at)
        assert study.get_trials(deepcopy=False)[popped.number].user_attrs == {"by": "other"}
    assert built == [trial_id_of(study, popped.number)]

    # That worker finishes it: this one sees it finished, loading only that trial.
    other.tell(popped, 0.9)
    built.clear()  # the other worker's own reads
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials].count(TrialState.WAITING) == 299
    finished = trials[popped.number]
    assert finished.state == TrialState.COMPLETE and finished.user_attrs == {"by": "other"}
    assert built == [trial_id_of(study, popped.number)]


def test_a_queue_only_study_is_popped_and_counted_without_loading_a_queued_trial(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'outline.db'}"
    created = optuna.create_study(study_name=STUDY, storage=open_storage(url))
    created.set_user_attr(CONFIG_ATTR, {"name": STUDY})  # an automl study: its workers run queued trials only
    for index in range(5):
        created.enqueue_trial({}, user_attrs={"index": index})
    ids = [trial_id_of(created, number) for number in range(5)]
    study, other = worker_study(url, STUDY), worker_study(url, STUDY)
    built = _counting_loads(monkeypatch)
    assert count(study, QUEUED) == 5 and built == [], "counting the queued trials loaded them"
    study.ask()  # lists the queued trials (in outline) and pops the first
    assert built == [ids[0]], "the pop loaded queued trials it did not run"
    popped = other.ask()
    popped.set_user_attr("by", "other")
    commit_trial_writes(popped)
    built.clear()

    # MO-ASHA's read: the other worker's trial, first seen running, in outline until a heartbeat
    # interval later; the queued ones are not listed, so not loaded.
    ranked = study.get_trials(deepcopy=False, states=RANKED_STATES)
    assert [(trial.number, trial.state) for trial in ranked] == [(0, TrialState.RUNNING), (1, TrialState.RUNNING)]
    assert ranked[1].datetime_start == _stored(url, 1).datetime_start and ranked[1].user_attrs == {}
    assert built == []
    with monkeypatch.context() as later:
        at = time.monotonic() + 1  # the heartbeat interval of _worker_study
        later.setattr(time, "monotonic", lambda: at)
        assert study.get_trials(deepcopy=False, states=RANKED_STATES)[1].user_attrs == {"by": "other", "index": 1}
    assert built == [ids[1]]

    # Listed with every state, the queued trials are whole.
    built.clear()
    queued = [trial for trial in study.get_trials(deepcopy=False) if trial.state == QUEUED]
    assert [trial.user_attrs for trial in queued] == [{"index": index} for index in (2, 3, 4)]
    assert built == ids[2:]


def test_the_running_trial_is_read_from_memory_with_its_writes_until_another_worker_fails_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'running.db'}"
    queue_trials(optuna.create_study(study_name=STUDY, storage=open_storage(url)), 2)
    study = worker_study(url, STUDY)
    trial = study.ask()
    built = _counting_loads(monkeypatch)
    study.get_trials(deepcopy=False)
    built.clear()
    trial.suggest_int("layers", 1, 3)
    trial.set_user_attr("curve", [0.5])
    trial.report(0.5, step=1)
    trial_id = trial_id_of(study, trial.number)
    trial.storage.set_trial_system_attr(trial_id, "note", "x")
    mine = study.get_trials(deepcopy=False)[trial.number]
    assert built == [], "the study read loaded this process's running trial again"
    assert (mine.state, mine.params, mine.user_attrs["curve"], mine.intermediate_values, mine.system_attrs["note"]) \
        == (TrialState.RUNNING, {"layers": trial.params["layers"]}, [0.5], {1: 0.5}, "x")

    # Another worker finds the trial's heartbeat stale and fails it: this worker's next read says so.
    open_storage(url).set_trial_state_values(trial_id, TrialState.FAIL)
    trial.set_user_attr("late", 1)  # held: it cannot land on a finished trial, and is dropped
    assert study.get_trials(deepcopy=False)[trial.number].state == TrialState.FAIL
    assert built == [trial_id]
    assert "late" not in _stored(url, 0).user_attrs


def test_a_trial_this_worker_pops_and_tells_is_moved_along_in_memory_as_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'moved.db'}"
    queue_trials(optuna.create_study(study_name=STUDY, storage=open_storage(url)), 2)
    study = worker_study(url, STUDY)
    study.get_trials(deepcopy=False)  # the worker has read the queue, as its pop does
    built = _counting_loads(monkeypatch)
    trial = study.ask()
    trial.suggest_int("layers", 1, 3)
    trial.set_user_attr("curve", [0.5])
    trial_id = trial_id_of(study, trial.number)
    running = worker_storage_of(study).get_trial(trial_id)
    assert built == [], "the popped trial was loaded again in full"
    worker_storage_of(study).commit_held()
    assert running == _stored(url, 0) and running.datetime_start is not None

    built.clear()
    study.tell(trial, 0.5)
    finished = worker_storage_of(study).get_trial(trial_id)
    assert study.get_trials(deepcopy=False)[0] == finished
    assert built == [], "the told trial was loaded again in full"
    assert finished == _stored(url, 0) and finished.datetime_complete is not None
    assert (finished.state, finished.values) == (TrialState.COMPLETE, [0.5])


def test_a_pop_that_finds_its_trial_taken_pops_the_next_queued_one_in_the_same_transaction(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pops.db'}"
    queue_trials(optuna.create_study(study_name=STUDY, storage=open_storage(url)), 3)
    study, other = worker_study(url, STUDY), worker_study(url, STUDY)
    storage = worker_storage_of(study)
    listing = storage.get_all_trials
    # Read once per study: whether the study runs queued trials only (its pop listing is then in outline).
    listing(storage.get_study_id_from_name(STUDY), deepcopy=False, states=(TrialState.WAITING,))

    def taken_meanwhile(*args: object, **kwargs: object) -> list:
        listed = listing(*args, **kwargs)  # type: ignore[arg-type]
        if len(listed) == 3:
            other.ask()  # another worker pops the first queued trial between this one's listing and its pop
        return listed

    storage.get_all_trials = taken_meanwhile  # type: ignore[method-assign]
    commits = _count_commits(storage)
    trial = study.ask()
    assert commits == [1], "the pop took more than one transaction"
    assert trial.number == 1 and _stored(url, 1).state == TrialState.RUNNING
    assert [_stored(url, number).state for number in range(3)] == [TrialState.RUNNING] * 2 + [TrialState.WAITING]
    assert storage.get_trial(trial_id_of(study, 1)).state == TrialState.RUNNING


def test_a_trial_put_back_in_the_queue_is_seen_queued_again_by_the_other_workers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'requeued.db'}"
    queue_trials(optuna.create_study(study_name=STUDY, storage=open_storage(url)), 3)
    study, other = worker_study(url, STUDY), worker_study(url, STUDY)
    storage = worker_storage_of(other)
    study_id = storage.get_study_id_from_name(STUDY)
    storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,))
    assert count(study, QUEUED) == 3
    study.ask()  # pops trial 0 first: the other worker's pop of it pops trial 1 ahead
    assert not storage.set_trial_state_values(trial_id_of(study, 0), TrialState.RUNNING)
    running = [trial.number for trial in study.get_trials(deepcopy=False, states=RANKED_STATES)]
    assert running == [0, 1]
    storage.get_all_trials(study_id, deepcopy=False)  # a listing first: trial 1 goes back to the queue
    # Its state query leaves out the queued trials this worker knows; trial 1 it knew running.
    assert [trial.number for trial in study.get_trials(deepcopy=False, states=RANKED_STATES)] == [0]
    assert count(study, QUEUED) == 2 and study.ask().number == 1


def test_a_trial_popped_ahead_and_not_taken_goes_back_to_the_queue(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'unpop.db'}"
    queue_trials(optuna.create_study(study_name=STUDY, storage=open_storage(url)), 3)
    study, other = worker_study(url, STUDY), worker_study(url, STUDY)
    storage = worker_storage_of(study)
    study_id = storage.get_study_id_from_name(STUDY)
    first, second = (trial_id_of(study, number) for number in (0, 1))
    storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,))
    other.ask()
    assert not storage.set_trial_state_values(first, TrialState.RUNNING)
    assert _stored(url, 1).state == TrialState.RUNNING, "the next queued trial was not popped ahead"
    # The loop that would take it never asks (another listing comes first): it is queued again, as it was.
    assert [t.state for t in storage.get_all_trials(study_id, deepcopy=False)] == [
        TrialState.RUNNING, TrialState.WAITING, TrialState.WAITING]
    assert _stored(url, 1).state == TrialState.WAITING and _stored(url, 1).datetime_start is None
    with sqlalchemy.create_engine(url).connect() as connection:
        assert connection.execute(sqlalchemy.text("SELECT count(*) FROM trial_heartbeats WHERE trial_id = :id"),
                                  {"id": second}).scalar_one() == 0


def test_another_workers_trial_loaded_in_full_stays_whole_through_listings_of_other_states(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'whole.db'}"
    created = optuna.create_study(study_name=STUDY, storage=open_storage(url))
    created.set_user_attr(CONFIG_ATTR, {"name": STUDY})
    created.enqueue_trial({}, user_attrs={"index": 0})
    study, other = worker_study(url, STUDY), worker_study(url, STUDY)
    popped = other.ask()
    popped.set_user_attr("by", "other")
    commit_trial_writes(popped)
    whole = {"by": "other", "index": 0}
    clock = [time.monotonic()]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    assert study.get_trials(deepcopy=False, states=RANKED_STATES)[0].user_attrs == {}  # first seen: in outline
    clock[0] += 1  # the heartbeat interval of _worker_study: loaded in full
    assert study.get_trials(deepcopy=False, states=RANKED_STATES)[0].user_attrs == whole
    clock[0] += 1
    # The workers' count of the queued trials, a heartbeat interval later, does not list it ...
    assert count(study, QUEUED) == 0
    # ... and leaves it as it was loaded, not in outline again.
    assert study.get_trials(deepcopy=False, states=RANKED_STATES)[0].user_attrs == whole


def test_a_finished_trial_kept_in_outline_is_not_read_again_by_every_listing(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'failed.db'}"
    created = optuna.create_study(study_name=STUDY, storage=open_storage(url))
    created.set_user_attr(CONFIG_ATTR, {"name": STUDY})
    for _ in range(4):
        created.enqueue_trial({})
    study, other = worker_study(url, STUDY), worker_study(url, STUDY)
    failed = other.ask()
    other.tell(failed, state=TrialState.FAIL)
    assert count(study, TrialState.RUNNING) == 0  # sees it failed: kept in outline, not listed
    for _ in range(2):
        other.tell(other.ask(), 0.5)
    rows: list[int] = []  # how many trials each read of the states found
    states = OptunaTables.trial_states

    def counting(self: OptunaTables, *args: object) -> list | None:
        found = states(self, *args)  # type: ignore[arg-type]
        rows.append(len(found or []))
        return found

    monkeypatch.setattr(OptunaTables, "trial_states", counting)
    assert len(study.get_trials(deepcopy=False, states=RANKED_STATES)) == 2
    assert count(study, TrialState.RUNNING) == 0
    assert rows[-1] == 0, "the trials finished and known here were read again"
    built = _counting_loads(monkeypatch)
    failures = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))  # listed: loaded in full
    assert [(trial.number, trial.datetime_complete is not None) for trial in failures] == [(failed.number, True)]
    assert built == [trial_id_of(study, failed.number)]


def test_a_config_popped_by_another_worker_is_not_queued_again_by_optunas_skip_if_exists(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'skip.db'}"
    created = optuna.create_study(study_name=STUDY, storage=open_storage(url))
    created.set_user_attr(CONFIG_ATTR, {"name": STUDY})
    created.enqueue_trial({"x": 1.0})
    study, other = worker_study(url, STUDY), worker_study(url, STUDY)
    assert count(study, QUEUED) == 1  # the queued trial, in outline
    other.ask()
    study.enqueue_trial({"x": 1.0}, skip_if_exists=True)  # Optuna reads every trial's fixed params
    assert len(study.get_trials(deepcopy=False)) == 1
