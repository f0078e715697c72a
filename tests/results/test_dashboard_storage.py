"""`automl dashboard` sends the page of a large study its front and others evenly spread over it,
and every trial not finished or begun since; optuna-dashboard's own study API serves that sample."""

from __future__ import annotations

import json
from wsgiref.util import setup_testing_defaults

import optuna
from conftest import trial_id_of
from optuna.storages import InMemoryStorage
from optuna.trial import TrialState, create_trial
from optuna_dashboard import wsgi

from automl.results.dashboard_storage import DashboardStorage
from automl.storage.schema import pareto_front

FRONT = (10, 33)  # the trials no other trial dominates


def _study(storage: InMemoryStorage, name: str = "large") -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=storage, directions=["maximize", "minimize"])
    for number in range(60):
        values = {FRONT[0]: [0.9, 1000.0], FRONT[1]: [0.95, 2000.0]}.get(number, [0.5, 3000.0])
        study.add_trial(create_trial(values=values))
    study.add_trial(create_trial(state=TrialState.RUNNING))  # number 60
    return study


def _study_api(storage: DashboardStorage, study_id: int) -> dict:
    """optuna-dashboard's study API, as the page calls it first, answered in-process."""
    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update(PATH_INFO=f"/api/studies/{study_id}", QUERY_STRING="after=0")
    body = b"".join(wsgi(storage)(environ, lambda status, headers, exc_info=None: None))
    return json.loads(body)


def test_a_large_study_is_served_as_its_front_those_running_and_others_spread_over_it() -> None:
    inner = InMemoryStorage()
    study = _study(inner)
    _study(inner, "other")
    storage = DashboardStorage(inner)
    study_id, other_id = inner.get_study_id_from_name("large"), inner.get_study_id_from_name("other")
    assert storage.sample(study, at_most=20) == 41
    served = [trial.number for trial in storage.get_all_trials(study_id)]
    assert len(served) == 20 and served == sorted(served) and {*FRONT, 60} <= set(served)
    assert served[0] < 5 and served[-2] > 50  # spread from the first trials to the last
    assert [trial.number for trial in pareto_front(study, storage.get_all_trials(study_id))] == list(FRONT)
    study.add_trial(create_trial(values=[0.1, 5000.0]))  # begun after the sample: served after the rest
    assert [trial.number for trial in storage.get_all_trials(study_id)] == [*served, 61]
    left_out = next(number for number in range(60) if number not in served)
    assert storage.get_trial(trial_id_of(study, left_out)).number == left_out  # read by its id
    assert len(storage.get_all_trials(other_id)) == 61  # a study not sampled is served whole
    page = _study_api(storage, study_id)
    assert [trial["number"] for trial in page["trials"]] == [*served, 61]
    assert sorted(trial["number"] for trial in page["best_trials"]) == list(FRONT)


def test_a_study_within_the_limit_is_served_whole() -> None:
    inner = InMemoryStorage()
    study = _study(inner)
    storage = DashboardStorage(inner)
    assert storage.sample(study, at_most=61) == 0
    study_id = inner.get_study_id_from_name("large")
    assert [trial.number for trial in storage.get_all_trials(study_id)] == list(range(61))
