"""The storage ``automl dashboard`` serves optuna-dashboard: the stored studies as they are, except
that the page of an automl study of more than DASHBOARD_TRIALS trials is sent a sample of them.

optuna-dashboard's study page asks for every trial of the study in full at its first call: at
50,000 trials that is some 215 MB of JSON (4.3 kB a trial, most of it each parameter's
distribution), half a minute of the server's CPU to write it and minutes for the browser to take
it in (the page becomes unusable past about 10,000 trials, as optuna-dashboard#385 reports). So,
as the report's figures do (automl.results.spread), the page of a large study shows its front and
others evenly spread over it, DASHBOARD_TRIALS in all, and every trial that was not finished when
the sample was drawn or began after. The sample is drawn
once (``sample``), so that the list the page holds only grows at its end, as the page expects
when it asks for the trials after those it has. Every other call, a trial read by its id
included, reaches the wrapped storage unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Container, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from automl.results.spread import front_and_spread
from automl.storage.schema import pareto_front

# The most trials the page of one study is sent. Headless Chromium loading the page of a 50,000-trial
# study sent 1,000, 2,000 or 5,000 of them took 10.6, 16.3 and 25.8 s on a 2-core machine at load 11
# (the server's answer 1.8, 4.1 and 10.2 s of that); all 50,000, minutes.
DASHBOARD_TRIALS = 2000


class DashboardStorage(BaseStorage):
    """``storage`` as optuna-dashboard reads it, with the studies ``sample`` was given served as a
    sample (see module). Holds ``storage`` and implements Optuna's public ``BaseStorage`` around it,
    as Optuna's own _CachedStorage does."""

    def __init__(self, storage: BaseStorage) -> None:
        self.storage = storage
        self._left_out: dict[int, frozenset[int]] = {}  # study id -> numbers of the trials not served

    def sample(self, study: optuna.Study, at_most: int) -> int:
        """Serve ``study`` (read through the wrapped storage) as its front's trials, the trials not
        finished and others evenly spread over it, ``at_most`` in all where the front allows; how
        many of its trials are left out (0 when it has ``at_most`` or fewer)."""
        trials = study.get_trials(deepcopy=False)
        kept = {trial.number for trial in pareto_front(study, trials)} | {
            trial.number for trial in trials if not trial.state.is_finished()}
        served = {trial.number for trial in front_and_spread(trials, lambda trial: trial.number in kept, at_most)}
        left_out = frozenset(trial.number for trial in trials if trial.number not in served)
        self._left_out[self.storage.get_study_id_from_name(study.study_name)] = left_out
        return len(left_out)

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        trials = self.storage.get_all_trials(study_id, deepcopy=False, states=states)
        left_out = self._left_out.get(study_id)
        if left_out:
            trials = [trial for trial in trials if trial.number not in left_out]
        return copy.deepcopy(trials) if deepcopy else trials

    # The rest is the wrapped storage's.

    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        return self.storage.create_new_study(directions, study_name)

    def delete_study(self, study_id: int) -> None:
        self._left_out.pop(study_id, None)
        self.storage.delete_study(study_id)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self.storage.set_study_user_attr(study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self.storage.set_study_system_attr(study_id, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        return self.storage.get_study_id_from_name(study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self.storage.get_study_name_from_id(study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self.storage.get_study_directions(study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self.storage.get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self.storage.get_study_system_attrs(study_id)

    def get_all_studies(self) -> list[Any]:  # Optuna's FrozenStudy, which it keeps in a private module
        return self.storage.get_all_studies()

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        return self.storage.create_new_trial(study_id, template_trial)

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                        distribution: BaseDistribution) -> None:
        self.storage.set_trial_param(trial_id, param_name, param_value_internal, distribution)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(study_id, trial_number)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        return self.storage.set_trial_state_values(trial_id, state, values)

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self.storage.set_trial_intermediate_value(trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.storage.set_trial_user_attr(trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.storage.set_trial_system_attr(trial_id, key, value)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self.storage.get_trial(trial_id)

    def remove_session(self) -> None:
        self.storage.remove_session()

