"""What a worker's storage keeps in outline of the trials other workers run, on a real SQLite file
(automl.storage.read_once): made a trial only when a listing shows it, and then as stored."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import optuna
import pytest
from conftest import trial_id_of, worker_study
from optuna.trial import FrozenTrial, TrialState

from automl.search.moasha import RANKED_STATES
from automl.storage.schema import CONFIG_ATTR
from automl.storage.trial_queue import QUEUED, count
from automl.storage.urls import open_storage
from automl.storage.worker_storage import commit_trial_writes

STUDY = "outline"


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.simplefilter("ignore")  # Optuna warns that heartbeats belong to Study.optimize
    optuna.logging.set_verbosity(optuna.logging.ERROR)


def _queue_only_study(url: str, queued: int) -> None:
    created = optuna.create_study(study_name=STUDY, storage=open_storage(url))
    created.set_user_attr(CONFIG_ATTR, {"name": STUDY})  # an automl study: its workers run queued trials only
    for index in range(queued):
        created.enqueue_trial({}, user_attrs={"index": index})



def _counting_trials_made(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The numbers of the FrozenTrials made from now on (loaded, or in outline)."""
    made: list[int] = []
    init = FrozenTrial.__init__

    def counting(self: FrozenTrial, *args: object, **kwargs: object) -> None:
        init(self, *args, **kwargs)  # type: ignore[arg-type]
        made.append(self.number)

    monkeypatch.setattr(FrozenTrial, "__init__", counting)
    return made


def _stored_start(url: str, number: int) -> object:
    return optuna.load_study(study_name=STUDY, storage=open_storage(url)).trials[number].datetime_start


def test_a_trial_in_outline_is_made_only_when_a_listing_shows_it_and_then_as_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'lazy.db'}"
    _queue_only_study(url, 5)
    study, other = worker_study(url, STUDY), worker_study(url, STUDY)
    assert count(study, QUEUED) == 5  # the queued trials, listed in outline
    ended = other.ask()
    other.tell(ended, 0.5)
    running = other.ask()
    running.set_user_attr("by", "other")
    commit_trial_writes(running)
    started = _stored_start(url, 1)

    # The workers' count of the queued trials finds one trial finished and one running: neither is
    # listed, so neither is made a trial (nor loaded).
    made = _counting_trials_made(monkeypatch)
    assert count(study, QUEUED) == 3
    assert made == [], "a listing of the queued trials made the trials it does not list"

    # MO-ASHA's read shows both: the finished one loaded in full, the running one in outline, with
    # the start it was popped with; made once, the same trial at the next read.
    ranked = study.get_trials(deepcopy=False, states=RANKED_STATES)
    assert [(trial.number, trial.state) for trial in ranked] == [(0, TrialState.COMPLETE), (1, TrialState.RUNNING)]
    assert (ranked[0].values, ranked[0].user_attrs) == ([0.5], {"index": 0})
    assert (ranked[1].datetime_start, ranked[1].user_attrs) == (started, {})
    assert sorted(made) == [0, 1]
    made.clear()
    assert study.get_trials(deepcopy=False, states=RANKED_STATES)[1] is ranked[1]
    assert made == []


def test_a_trial_in_outline_changed_again_before_any_listing_shows_it_is_shown_as_it_is_now(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'again.db'}"
    _queue_only_study(url, 4)
    study, other = worker_study(url, STUDY), worker_study(url, STUDY)
    assert count(study, QUEUED) == 4
    popped = [other.ask() for _ in range(3)]
    assert count(study, QUEUED) == 1  # the three popped: in outline, running
    clock = [time.monotonic()]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    other.tell(popped[0], 0.5)
    other.tell(popped[1], state=TrialState.FAIL)
    assert count(study, QUEUED) == 1  # seen finished: kept in outline, not listed
    clock[0] += 0.5

    # A listing of the running trials shows the one still running, as its row said; a listing of
    # every state the others as they finished, loaded in full.
    assert [(trial.number, trial.datetime_start) for trial in study.get_trials(
        deepcopy=False, states=(TrialState.RUNNING,))] == [(2, _stored_start(url, 2))]
    listed = study.get_trials(deepcopy=False)
    assert [(trial.number, trial.state) for trial in listed] == [
        (0, TrialState.COMPLETE), (1, TrialState.FAIL), (2, TrialState.RUNNING), (3, TrialState.WAITING)]
    assert listed[0].values == [0.5] and listed[1].datetime_complete is not None
    assert [trial.user_attrs for trial in listed] == [{"index": index} for index in range(4)]


def test_a_listing_of_some_states_lists_them_by_number_and_this_workers_trial_as_a_copy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'order.db'}"
    _queue_only_study(url, 6)
    study, other = worker_study(url, STUDY), worker_study(url, STUDY)
    first, second = other.ask(), study.ask()
    third, fourth = other.ask(), study.ask()
    other.tell(third, 0.5)  # finished before the trials popped ahead of it
    study.tell(second, 0.5)
    listed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    assert [(trial.number, trial.state) for trial in listed] == [
        (first.number, TrialState.RUNNING), (second.number, TrialState.COMPLETE),
        (third.number, TrialState.COMPLETE), (fourth.number, TrialState.RUNNING)]
    listed[3].user_attrs["changed"] = "by the caller"  # this worker's running trial: a copy
    assert "changed" not in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))[1].user_attrs
    assert [trial.number for trial in study.get_trials(deepcopy=False, states=(QUEUED,))] == [4, 5]
    assert trial_id_of(study, 4) > trial_id_of(study, 3)
