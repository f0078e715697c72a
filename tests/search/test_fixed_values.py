"""Every fixed value (a warm-start config, a stored trial rebuilt by retrain or export) is checked
against the distribution its space gives it; Optuna's FixedTrial and enqueue_trial only warn."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
from conftest import MLP_CONFIG, has_study, run_cli, write_study
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from automl.cli import main
from automl.config import load_study_file
from automl.errors import UsageError
from automl.plugin.registry import registry
from automl.plugin.space import CheckedFixedTrial, OutsideSpace
from automl.results.stored import load_stored_trial
from automl.search.plan import StudyPlan, plan_study
from automl.search.study import create_or_resume
from automl.search.warm_start import load_warm_start

CONFIG = {**MLP_CONFIG, "train.lr": 1e-3}


def plan_of(tmp_path: Path, warm: list[dict[str, Any]]) -> StudyPlan:
    (tmp_path / "configs.json").write_text(json.dumps(warm))
    path = write_study(tmp_path, f"""
        name = "fixed"
        storage = "sqlite:///{tmp_path / 'fixed.db'}"
        [search]
        families = ["mlp"]
        warm_start = ["{tmp_path / 'configs.json'}"]
        [train]
        lr = [1e-4, 1e-2]
        batch_size = [32, 64]
    """)
    return plan_study(load_study_file(path), path, registry())


FAMILY_RANGE = "fix the config (family 'mlp' sets its ranges in its code)"


@pytest.mark.parametrize(("changed", "expected"), [
    ({"mlp.depth": 9}, f"mlp.depth = 9 is not an integer in [1, 4]; {FAMILY_RANGE}"),
    ({"mlp.depth": 2.5}, "mlp.depth = 2.5 is not an integer in [1, 4]"),
    ({"train.lr": 5.0}, "train.lr = 5.0 is not a number in [0.0001, 0.01] (log scale); fix the config, or widen "
                        "[train] lr in the study file"),
    ({"train.batch_size": 128}, "train.batch_size = 128 is not one of [32, 64]"),
    ({"mlp.activation": "swish"}, "mlp.activation = 'swish' is not one of ["),
    ({"train.optimizer": True}, "train.optimizer = True is not one of ['adam', 'adamw']"),
])
def test_a_warm_start_value_outside_its_space_stops_the_run_naming_file_parameter_and_range(
        tmp_path: Path, changed: dict[str, Any], expected: str) -> None:
    plan = plan_of(tmp_path, [CONFIG, {**CONFIG, **changed}])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clear error, not Optuna's warning
        with pytest.raises(UsageError) as caught:
            load_warm_start(plan)
    message = str(caught.value)
    assert f"warm start {tmp_path / 'configs.json'}: config 2 (mlp) does not fit" in message
    assert expected in message


def test_every_value_outside_the_space_is_named_at_once(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, [{**CONFIG, "mlp.depth": 9, "train.lr": 5.0}])
    with pytest.raises(UsageError, match=r"mlp.depth = 9 is not .*; train.lr = 5.0 is not") as caught:
        load_warm_start(plan)
    assert str(caught.value).endswith(f"{FAMILY_RANGE}, or widen [train] lr in the study file")


def test_a_warm_start_key_the_space_does_not_have_is_refused(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, [{**CONFIG, "mlp.widht": 64}])
    with pytest.raises(UsageError, match=r"config 1 \(mlp\) gives mlp.widht, which this study's space does not have"):
        load_warm_start(plan)


def test_a_warm_start_config_missing_a_value_is_named_after_a_value_outside_its_range(tmp_path: Path) -> None:
    lacking = {key: value for key, value in CONFIG.items() if key != "mlp.width"}
    plan = plan_of(tmp_path, [{**lacking, "mlp.depth": 9}])
    with pytest.raises(UsageError, match=r"config 1 \(mlp\) does not fit this study's space: mlp.depth = 9 is not an "
                                         r"integer in \[1, 4\]"):
        load_warm_start(plan)
    plan = plan_of(tmp_path, [lacking])
    with pytest.raises(UsageError, match=r"config 1 \(mlp\) .* does not fit this study's space: it has no value for "
                                         r"'mlp.width', which the space asks for$"):
        load_warm_start(plan)


def test_values_inside_the_space_replay_as_given(tmp_path: Path) -> None:
    assert load_warm_start(plan_of(tmp_path, [CONFIG])).configs == [CONFIG]


def test_checked_fixed_trial_follows_each_distribution_kind() -> None:
    trial = CheckedFixedTrial({"a": 3, "b": 0.25, "c": "x", "d": 4, "e": 1})
    assert trial.suggest_int("a", 1, 5, step=2) == 3
    assert trial.suggest_float("b", 0.0, 1.0, step=0.25) == 0.25
    assert trial.suggest_categorical("c", ["x", "y"]) == "x"
    trial.suggest_int("d", 1, 5, step=2)  # 4 is off the step
    trial.suggest_categorical("e", [1.0, 2.0])  # 1 equals the choice 1.0, as JSON gives it
    with pytest.raises(OutsideSpace) as caught:
        trial.check()
    assert caught.value.problems == ["d = 4 is not an integer in [1, 5] (step 2)"]


@pytest.mark.slow  # a fresh automl process plans the study: tens of seconds on a busy machine
def test_cli_warm_start_out_of_range_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    plan_of(tmp_path, [{**CONFIG, "mlp.depth": 9}])
    result = run_cli("run", "study.toml", "--no-progress", cwd=tmp_path)
    assert result.returncode == 2 and "mlp.depth = 9 is not an integer in [1, 4]" in " ".join(result.stderr.split())
    assert not has_study(tmp_path / "fixed.db")


def stored_study(tmp_path: Path, **changed: Any) -> tuple[optuna.Study, str]:
    """A study made by automl with one completed trial whose stored values are ``changed``, as a
    trial of a wider space (another plugin release, a study file edited by hand) would have them."""
    plan = plan_of(tmp_path, [])
    study = create_or_resume(plan)
    params = {**CONFIG, **changed}
    distributions = {
        "family": CategoricalDistribution(["mlp"]), "mlp.depth": IntDistribution(1, 9),
        "mlp.width": CategoricalDistribution([4, 8, 16, 32, 64, 128, 256]),
        "mlp.activation": CategoricalDistribution(["relu", "gelu", "silu"]),
        "mlp.norm": CategoricalDistribution(["none", "batch", "layer"]), "mlp.dropout": FloatDistribution(0.0, 0.5),
        "train.optimizer": CategoricalDistribution(["adam", "adamw", "rmsprop"]),
        "train.lr": FloatDistribution(1e-5, 1.0, log=True),
        "train.weight_decay": FloatDistribution(1e-6, 1e-2, log=True),
        "train.batch_size": CategoricalDistribution([32, 64]),
    }
    study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, values=[0.9, 1000.0],
                                              user_attrs={"family": "mlp", "epochs": 1}))
    return study, plan.storage_url


@pytest.mark.parametrize(("changed", "expected"), [
    ({"train.optimizer": "rmsprop"}, "train.optimizer = 'rmsprop' is not one of ['adam', 'adamw']"),
    ({"mlp.depth": 9}, "mlp.depth = 9 is not an integer in [1, 4]"),
])
def test_retrain_and_export_refuse_a_stored_trial_outside_its_space(
        tmp_path: Path, changed: dict[str, Any], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    study, url = stored_study(tmp_path, **changed)
    with pytest.raises(UsageError) as caught:
        load_stored_trial(study, 0, url, registry())
    assert f"trial 0 of study 'fixed' in {url} does not fit the space it is rebuilt in: {expected}" in str(caught.value)
    for command in (["export", "--format", "state_dict", "--out", str(tmp_path / "out")],
                    ["retrain", "--out", str(tmp_path / "out")]):
        assert main([command[0], "fixed", "--storage", url, "--trial", "0", *command[1:]]) == 2
        assert expected in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "out").exists()
