"""The trial-record schema is the one place the stored names live: what real studies store is named
there, its objectives are what study files accept, and its budget keys are the [budget] section's."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution

from automl.config import BudgetConfig, load_study_file, parse_study
from automl.errors import UsageError
from automl.plugin.registry import Registered, Registry, registry
from automl.plugin.task import Task
from automl.search.plan import plan_study
from automl.search.signal import ranked_accuracy
from automl.runner import run_plan
from automl.storage.schema import (CONFIG_ATTR, FAMILY_PARAM, FINGERPRINT_ATTR, OBJECTIVE_NAMES, OBJECTIVES,
                                   PREPROCESSING_ATTR, TASK_ATTR, TrialAttr, family_of, is_feasible)
from automl.workers.failures import TooManyFailures

NAMED = {attr.value for attr in TrialAttr}


def _stored(study_file: Path) -> optuna.Study:
    """The study as a fresh reader of its SQLite file sees it."""
    config = load_study_file(study_file)
    return optuna.load_study(study_name=config.name, storage=config.storage)


def _run_one_trial(study_file: Path, families: Registry) -> None:
    config = load_study_file(study_file)
    one_failure_stops = config.workers.model_copy(update={"max_failures_in_row": 1})
    config = config.model_copy(update={"n_trials": 1, "workers": one_failure_stops})
    run_plan(plan_study(config, study_file, families), progress=False)


def _assert_only_schema_names(study: optuna.Study) -> None:
    assert set(study.user_attrs) == {CONFIG_ATTR, TASK_ATTR, FINGERPRINT_ATTR, PREPROCESSING_ATTR}
    finished = [t for t in study.trials if t.state.is_finished()]
    assert finished
    for trial in finished:
        unnamed = set(trial.user_attrs) - NAMED
        assert not unnamed, f"trial {trial.number} stores user attrs the schema does not name: {unnamed}"
        assert family_of(trial) == trial.user_attrs[TrialAttr.FAMILY] == trial.params[FAMILY_PARAM]


def test_a_trained_trial_stores_schema_names_and_each_objective_in_its_attr(tiny_study: Path) -> None:
    names = ", ".join(f'"{name}"' for name in OBJECTIVES)
    tiny_study.write_text(tiny_study.read_text() + f"[search]\nobjectives = [{names}]\n")
    _run_one_trial(tiny_study, registry())
    study = _stored(tiny_study)
    _assert_only_schema_names(study)
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE and is_feasible(trial)
    assert {TrialAttr.VAL_CURVE, TrialAttr.TIME_TRAIN_S, TrialAttr.WORKER} <= set(trial.user_attrs)
    assert study.metric_names == list(OBJECTIVES)
    assert [d.name.lower() for d in study.directions] == [spec.direction for spec in OBJECTIVES.values()]
    attrs = trial.user_attrs
    stored = {spec.attr: attrs[spec.attr] for spec in OBJECTIVES.values()}
    # Accuracy is ranked with its loss tie-break (automl.search.signal); the stored loss is rounded.
    stored[TrialAttr.VAL_ACCURACY] = ranked_accuracy(attrs[TrialAttr.VAL_ACCURACY], attrs[TrialAttr.VAL_LOSS],
                                                     attrs[TrialAttr.VAL_SAMPLES])
    for value, spec in zip(trial.values, OBJECTIVES.values()):
        # The stored latency is rounded to 0.1 microseconds; the objective value is not.
        assert value == pytest.approx(stored[spec.attr], abs=1e-4), spec.name


def test_an_over_budget_trial_stores_schema_names(tiny_study: Path) -> None:
    tiny_study.write_text(tiny_study.read_text() + "[budget]\nmax_flops = 1\n")
    _run_one_trial(tiny_study, registry())
    study = _stored(tiny_study)
    _assert_only_schema_names(study)
    (trial,) = study.trials
    assert not is_feasible(trial)
    assert trial.user_attrs[TrialAttr.OVER_BUDGET].startswith("flops ")
    assert trial.user_attrs[TrialAttr.EPOCHS] == 0


class NoModuleFamily:
    """Builds something that is no torch module: every trial of it fails."""

    name = "nomodule"
    task_kinds = ("image",)

    def search_space(self, trial: optuna.Trial, task: Task) -> dict:
        return {}

    def build(self, params: dict, task: Task) -> object:
        return object()


def test_a_failed_trial_stores_schema_names(tiny_study: Path) -> None:
    real = registry()
    # Beside a family that trains (else the plan-time check refuses the study), its first trial
    # is the failing family's (automl.search.startup): the one failure stops the study.
    failing = Registry({"nomodule": Registered(NoModuleFamily(), real.families["mlp"].source),
                        "mlp": real.families["mlp"]}, real.datasets)
    with pytest.raises(TooManyFailures):
        _run_one_trial(tiny_study, failing)
    study = _stored(tiny_study)
    _assert_only_schema_names(study)
    failed = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert len(failed) == 1 and "expected a torch.nn.Module" in failed[0].user_attrs[TrialAttr.FAIL_REASON]


@pytest.mark.parametrize("name", OBJECTIVE_NAMES)
def test_study_files_accept_every_objective_in_the_table(name: str) -> None:
    config = parse_study({"name": "one", "search": {"objectives": [name]}}, Path("one.toml"))
    assert config.search.objectives == [name]


def test_study_files_refuse_other_objectives_listing_the_table() -> None:
    with pytest.raises(UsageError) as refused:
        parse_study({"name": "bad", "search": {"objectives": ["val_accuracy", "energy"]}}, Path("bad.toml"))
    message = str(refused.value)
    assert "bad.toml: key 'search.objectives.1'" in message and "(found 'energy')" in message
    assert all(f"'{name}'" in message for name in OBJECTIVE_NAMES), message


def test_the_budget_keys_are_the_tables() -> None:
    limited = {spec.budget_key for spec in OBJECTIVES.values() if spec.budget_key}
    every_key_set = BudgetConfig(**dict.fromkeys(BudgetConfig.model_fields, 1))
    assert set(every_key_set.limits()) == limited


def test_family_of_a_trial_queued_again_comes_from_its_params() -> None:
    # A retried trial is queued with the original's params and no user attrs yet.
    distributions = {FAMILY_PARAM: CategoricalDistribution(["mlp", "cnn"])}
    queued = optuna.trial.create_trial(state=optuna.trial.TrialState.WAITING, params={FAMILY_PARAM: "cnn"},
                                       distributions=distributions)
    assert family_of(queued) == "cnn"
    assert family_of(optuna.trial.create_trial(value=0.5)) is None
