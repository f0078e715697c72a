"""automl's search inside your own Optuna study: its families and its multi-objective early stopping
with your own objective and a plain lightning.Trainer (what Optuna's own pruning callback cannot
do: Trial.report raises NotImplementedError in a multi-objective study).

Run it: python examples/own_optuna_study.py
"""

import logging

import lightning
import optuna
import torch
from sklearn.datasets import load_digits
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

import automl

MAX_EPOCHS = 3

x, y = load_digits(return_X_y=True)
x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-8)  # your preprocessing: automl's families expect standardized inputs
inputs, labels = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y)
train = DataLoader(TensorDataset(inputs[:1400], labels[:1400]), batch_size=64, shuffle=True)
val = DataLoader(TensorDataset(inputs[1400:], labels[1400:]), batch_size=256)
task = automl.Task.from_arrays(x, y)  # tabular, input [64], 10 classes


class Classifier(lightning.LightningModule):
    def __init__(self, model: torch.nn.Module, lr: float) -> None:
        super().__init__()
        self.model, self.lr = model, lr

    def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
        features, targets = batch
        return F.cross_entropy(self.model(features), targets)

    def validation_step(self, batch: list[torch.Tensor], index: int) -> None:
        features, targets = batch
        self.log("val_acc", (self.model(features).argmax(-1) == targets).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def objective(trial: optuna.Trial) -> tuple[float, float]:
    model = automl.suggest_model(trial, task, families=["mlp"])  # records the trial's FLOPs and parameters
    lr = trial.suggest_float("lr", 1e-3, 3e-2, log=True)
    trainer = lightning.Trainer(max_epochs=MAX_EPOCHS, accelerator="cpu", logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False,
                                callbacks=[automl.PruningCallback(trial, monitor="val_acc")])
    trainer.fit(Classifier(model, lr), train, val)  # a pruned trial raises optuna.TrialPruned here
    return trainer.callback_metrics["val_acc"].item(), trial.user_attrs["flops"]


optuna.logging.set_verbosity(optuna.logging.WARNING)
logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no accelerator announcement per trial
torch.manual_seed(0)
study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.TPESampler(seed=0),
                            pruner=automl.MOASHAPruner(["flops"], max_epochs=MAX_EPOCHS))
study.optimize(objective, n_trials=12)

states = [trial.state for trial in study.trials]
pruned, complete = states.count(optuna.trial.TrialState.PRUNED), states.count(optuna.trial.TrialState.COMPLETE)
print(f"{complete} trials complete, {pruned} pruned by MO-ASHA at epoch "
      f"{sorted({t.user_attrs['pruned_at_epoch'] for t in study.trials if 'pruned_at_epoch' in t.user_attrs})}")
for trial in study.best_trials:
    print(f"trial {trial.number}: validation accuracy {trial.values[0]:.3f}, {trial.values[1]:,.0f} FLOPs per sample")
