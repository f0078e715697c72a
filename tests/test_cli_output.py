"""What the commands print, read at 80 columns: nothing cut, no markup, no stray lines or folders."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from conftest import run_cli, write_study
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from automl.config import load_study_file
from automl.plugin.registry import registry
from automl.search.plan import plan_study
from automl.storage.schema import CONFIG_ATTR, TASK_ATTR
from automl.workers.interrupts import Interrupted

NARROW = {"COLUMNS": "80"}
HYPERPARAMETERS = {"family": "mlp", "mlp.depth": 3, "mlp.width": 128, "mlp.activation": "gelu", "mlp.norm": "layer",
                   "mlp.dropout": 0.25, "train.optimizer": "adamw", "train.lr": 0.00347,
                   "train.weight_decay": 2.5e-05, "train.batch_size": 64}


def _fits(text: str, width: int = 80) -> None:
    too_wide = [line for line in text.splitlines() if len(line) > width]
    assert too_wide == [], "\n".join(too_wide)
    assert "…" not in text  # rich's ellipsis: something was cropped


@pytest.fixture
def stored(tmp_path: Path) -> str:
    """A stored two-objective study: one trained trial with many hyperparameters, one pruned."""
    url = f"sqlite:///{tmp_path / 'shown.db'}"
    path = write_study(tmp_path, f'name = "shown"\nstorage = "{url}"\n')
    plan = plan_study(load_study_file(path), path, registry())
    study = optuna.create_study(study_name="shown", storage=url, directions=["maximize", "minimize"])
    study.set_metric_names(["val_accuracy", "flops"])
    study.set_user_attr(CONFIG_ATTR, {**plan.config.to_dict(), "families": ["mlp"],
                                      "objectives": ["val_accuracy", "flops"]})
    study.set_user_attr(TASK_ATTR, plan.data.task.to_dict())
    distributions = {key: CategoricalDistribution([value]) for key, value in HYPERPARAMETERS.items()}
    attrs = {"family": "mlp", "flops": 34_000, "n_params": 17_000, "latency_ms": 0.08, "epochs": 8,
             "val_accuracy": 0.97, "test_accuracy": 0.96}
    study.add_trial(create_trial(values=[0.97, 34_000], params=HYPERPARAMETERS, distributions=distributions,
                                 user_attrs=attrs))
    study.add_trial(create_trial(state=TrialState.PRUNED, params=HYPERPARAMETERS, distributions=distributions,
                                 user_attrs={"family": "mlp", "pruned_at_epoch": 1}))
    return url


def test_show_keeps_every_hyperparameter_at_80_columns(stored: str, tmp_path: Path) -> None:
    result = run_cli("show", "shown", "--storage", stored, cwd=tmp_path, env=NARROW)
    assert result.returncode == 0, result.stderr
    _fits(result.stdout)
    words = result.stdout.split()
    for key, value in HYPERPARAMETERS.items():
        if key != "family":
            assert f"{key.split('.')[1]}={value:.3g}" in words if isinstance(value, float) else \
                f"{key.split('.')[1]}={value}" in words
    assert "val acc" in result.stdout and "0.9700" in result.stdout
    wide = run_cli("show", "shown", "--storage", stored, cwd=tmp_path)  # 200 columns: one table, as before
    assert "hyperparameters, by trial" not in wide.stdout and "depth=3 width=128" in wide.stdout


def test_plugins_keeps_module_names_whole_at_80_columns(tmp_path: Path) -> None:
    result = run_cli("plugins", cwd=tmp_path, env=NARROW)
    assert result.returncode == 0, result.stderr
    _fits(result.stdout)
    assert "automl_plugins.tables" in result.stdout


def test_help_is_plain_text() -> None:
    result = run_cli("--help", cwd=Path.cwd(), env=NARROW)
    assert result.returncode == 0
    assert "``" not in result.stdout and "Pareto front" in result.stdout
    run_help = run_cli("run", "--help", cwd=Path.cwd(), env=NARROW)
    assert "--threads T" in run_help.stdout


def test_plugins_check_prints_only_its_table(tmp_path: Path) -> None:
    result = run_cli("plugins", "check", "mlp", cwd=tmp_path, env=NARROW)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "A new study created" not in result.stdout + result.stderr


def test_a_missing_study_file_is_named_with_where_it_was_looked_for(tmp_path: Path) -> None:
    result = run_cli("run", "studies/nothing.toml", cwd=tmp_path)
    assert result.returncode == 2
    message, = result.stderr.splitlines()  # one line, not wrapped at 80 columns though stderr is a pipe
    assert message.startswith("error: ") and len(message) > 80
    assert f"study file studies/nothing.toml does not exist (looked in {tmp_path})" in message
    assert "studies/quickstart.toml in automl's repository is a commented example" in message


@pytest.mark.parametrize(("trial", "expected"), [("1", "was pruned"), ("7", "has no trial 7")])
def test_export_of_a_pruned_or_missing_trial_leaves_no_folder(stored: str, tmp_path: Path, trial: str,
                                                              expected: str) -> None:
    result = run_cli("export", "shown", "--storage", stored, "--trial", trial, "--format", "state_dict",
                     "--out", "models/", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert expected in " ".join(result.stderr.split())
    assert not (tmp_path / "models").exists()


def test_an_interrupt_says_what_it_did() -> None:
    between = Interrupted(2)
    assert between.explain() == "interrupted (SIGINT) while no trial was running here"
    between.worker = "host:17"
    assert between.explain() == "worker host:17: interrupted (SIGINT) while no trial was running here"
    finished = Interrupted(2)
    finished.queued_after_workers = 0
    assert finished.explain() == ("interrupted (SIGINT): the workers stopped; every trial had finished, so "
                                  "nothing is left to resume")
    queued = Interrupted(15)
    queued.queued_after_workers = 3
    assert queued.explain() == ("interrupted (SIGTERM): the workers stopped; 3 trials are queued (the "
                                "interrupted ones among them); run again to resume them")
