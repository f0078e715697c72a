"""The Python API as a user meets it: `from automl import ...`, real digits, a real SQLite file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from conftest import SearchedStudy, run_cli
from sklearn.datasets import load_digits

import automl
from automl.data.splits import split_indices
from automl.plugin.arrays import labeled_arrays
from automl.plugin.registry import registry
from automl.results.export import trained_model
from automl.results.stored import load_stored_trial
from automl.storage.artifacts import artifact_dir, open_store


def test_the_api_is_exported_typed_and_imports_no_torch_until_asked() -> None:
    for name in automl.__all__:
        assert getattr(automl, name) is not None, name
    # A fresh interpreter: `import automl` imports neither torch nor Lightning (a second).
    probe = "import sys, automl; assert 'torch' not in sys.modules and 'lightning' not in sys.modules"
    subprocess.run([sys.executable, "-c", probe], check=True)
    assert issubclass(automl.MOASHAPruner, optuna.pruners.BasePruner)
    assert automl.run.__doc__ and "Raises" in automl.run.__doc__ and "[N, C, H, W]" in automl.run.__doc__


@pytest.mark.slow  # a fresh interpreter importing Lightning: seconds
def test_the_api_names_that_need_lightning_import_it_when_asked_and_every_name_resolves() -> None:
    probe = ("import sys, automl; assert 'lightning' not in sys.modules; "
             "from automl import load_model, suggest_model, PruningCallback; assert 'lightning' in sys.modules; "
             "missing = [n for n in automl.__all__ if not hasattr(automl, n)]; assert not missing, missing")
    subprocess.run([sys.executable, "-c", probe], check=True)


def test_load_model_takes_the_pixels_digits_holds(searched_study: SearchedStudy) -> None:
    study = optuna.load_study(study_name=searched_study.name, storage=searched_study.url)
    number = automl.pareto_front(study)[0].number
    model = automl.load_model(study, number)
    assert not model.training
    # The trained family module on the study's standardized test split gives the same logits as
    # the loaded model on digits' own 0..16 pixels of those samples.
    stored = load_stored_trial(study, number, searched_study.url, registry())
    data = stored.data(registry())
    family_module, _, _ = trained_model(stored, open_store(artifact_dir(searched_study.url)), registry(), print)
    x, _ = load_digits(return_X_y=True)
    test = split_indices(labeled_arrays(x.reshape(-1, 1, 8, 8), load_digits().target), stored.config.data,
                         stored.config.seed).test
    with torch.no_grad():
        raw = model(torch.as_tensor(x[test].reshape(-1, 1, 8, 8), dtype=torch.float32))
        expected = family_module.eval()(data.test.x)
    torch.testing.assert_close(raw, expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(automl.UsageError, match="has no trial 99"):
        automl.load_model(study, 99)


def test_load_model_of_arrays_in_memory_scores_the_trials_test_accuracy(tmp_path: Path) -> None:
    x, y = load_digits(return_X_y=True)
    config = automl.StudyConfig(name="api", storage=f"sqlite:///{tmp_path / 'api.db'}", n_trials=2,
                                search={"families": ["mlp"]}, train={"max_epochs": 2, "batch_size": [64]})
    study = automl.run(config, data=(x, y), progress=False)
    best = max(automl.pareto_front(study), key=lambda trial: trial.values[0])
    model = automl.load_model(study, best.number)
    test = split_indices(labeled_arrays(x, y), config.data, config.seed).test
    with torch.no_grad():
        predicted = model(torch.as_tensor(x[test], dtype=torch.float32)).argmax(-1).numpy()
    assert np.mean(predicted == y[test]) == pytest.approx(best.user_attrs["test_accuracy"], abs=1e-6)


def test_suggest_model_samples_automls_space_in_the_callers_trial() -> None:
    x, y = load_digits(return_X_y=True)
    task = automl.Task.from_arrays(x, y.astype(str))
    assert (task.kind, task.input_shape, task.num_classes) == ("tabular", (64,), 10)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=3))
    trial = study.ask()
    model = automl.suggest_model(trial, task)
    family = trial.params["family"]
    assert family in registry().families_for("tabular")
    assert all(key == "family" or key.startswith(f"{family}.") for key in trial.params)
    assert trial.user_attrs["family"] == family and trial.user_attrs["n_params"] > 0 and trial.user_attrs["flops"] > 0
    assert model(torch.zeros(3, 64)).shape == (3, 10)
    again = automl.suggest_model(optuna.trial.FixedTrial(trial.params), task)  # a stored trial rebuilds
    assert sum(p.numel() for p in again.parameters()) == trial.user_attrs["n_params"]
    with pytest.raises(automl.UsageError, match="suggest_model: families: unknown family 'nope'"):
        automl.suggest_model(study.ask(), task, families=["nope"])
    with pytest.raises(automl.UsageError, match=r"x has shape \[1797\]"):
        automl.Task.from_arrays(x[:, 0], y)


def test_a_pruning_callback_needs_a_logged_metric() -> None:
    import lightning

    study = optuna.create_study(directions=["maximize", "minimize"], pruner=automl.MOASHAPruner(["flops"], 4))
    trial = study.ask()

    class Module(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 2)

        def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
            return self.layer(batch[0]).sum()

        def validation_step(self, batch: list[torch.Tensor], index: int) -> None:
            self.log("val_loss", self.layer(batch[0]).sum())

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(4, 2)), batch_size=2)
    trainer = lightning.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                                enable_model_summary=False, num_sanity_val_steps=0,
                                callbacks=[automl.PruningCallback(trial, monitor="val_acc")])
    with pytest.raises(automl.UsageError, match="monitor='val_acc'.*logged: val_loss"):
        trainer.fit(Module(), loader, loader)


def test_a_study_on_arrays_in_memory_exports_taking_the_arrays_as_they_are(tmp_path: Path) -> None:
    x, y = load_digits(return_X_y=True)
    url = f"sqlite:///{tmp_path / 'mem.db'}"
    config = automl.StudyConfig(name="mem", storage=url, n_trials=1, search={"families": ["mlp"]},
                                train={"max_epochs": 1, "batch_size": [128]})
    automl.run(config, data=(x, y), progress=False)
    exported = run_cli("export", "mem", "--storage", url, "--trial", "0", "--format", "torchscript",
                       "--out", "models", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    described = json.loads(next((tmp_path / "models").glob("*.json")).read_text())
    standardize = described["preprocessing"]["in_the_model"]
    assert standardize["scale"] == 1.0 and len(standardize["mean"]) == 64
    model = torch.jit.load(str(next((tmp_path / "models").glob("*.torchscript.pt"))))
    loaded = automl.load_model(optuna.load_study(study_name="mem", storage=url), 0)
    with torch.no_grad():
        inputs = torch.as_tensor(x[:8], dtype=torch.float32)
        torch.testing.assert_close(model(inputs), loaded(inputs), rtol=1e-4, atol=1e-4)
