"""Early stopping for a plain ``lightning.Trainer`` in any Optuna study, multi-objective included.

Optuna's own Lightning callback reports the monitored value with ``trial.report``, which a
multi-objective study refuses (NotImplementedError), so it cannot stop anything there. This one
stores the value of each validation epoch as the trial's ``val_curve`` user attr, where automl's
``MOASHAPruner`` reads it, in this process and in any other working on the study, and asks the
study's pruner, exactly as automl's own trials do (automl.search.pruners.EpochPruning); in a
single-objective study it reports as Optuna's callback does, so Optuna's pruners work as well.
"""

from __future__ import annotations

import lightning.pytorch as pl
import optuna

from automl.errors import UsageError
from automl.search.pruners import EpochPruning


class PruningCallback(pl.Callback):
    """Stop a ``lightning.Trainer``'s fit when the study's pruner prunes the trial.

    Args:
        trial: the trial the objective is running.
        monitor: the metric the module logs once per validation epoch (``self.log("val_acc", ...)``).
            ``MOASHAPruner`` ranks it as an accuracy: higher is better.

    After each validation epoch (not the sanity check) the monitored value is appended to the
    trial's ``val_curve`` user attr and the pruner decides: ``MOASHAPruner`` in a multi-objective
    study, at its rungs, among the trials of the same family (the ``family`` user attr that
    ``suggest_model`` sets) by the value and their costs (its ``cost_objectives`` read as user
    attrs, which ``suggest_model`` records); any Optuna pruner in a single-objective study. A
    pruned trial raises ``optuna.TrialPruned`` out of ``trainer.fit``, which ``study.optimize``
    records as PRUNED, with the ``pruned_at_epoch`` user attr. The last epoch (``max_epochs``) is
    never judged.

    Raises:
        UsageError: ``monitor`` was not logged in a validation epoch (naming the metrics that were).
    """

    def __init__(self, trial: optuna.Trial, monitor: str) -> None:
        super().__init__()
        self.trial, self.monitor = trial, monitor
        self._pruning: EpochPruning | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            raise UsageError(f"PruningCallback(monitor={self.monitor!r}): no such metric was logged in the validation "
                             f"epoch; logged: {', '.join(sorted(trainer.callback_metrics)) or 'none'}")
        if self._pruning is None:
            # max_epochs -1 (or None) trains until stopped: no last epoch to leave alone.
            last = trainer.max_epochs if trainer.max_epochs is not None and trainer.max_epochs > 0 else None
            self._pruning = EpochPruning(self.trial, max_epochs=last)
        self._pruning.on_validation_epoch_end(trainer.current_epoch, float(value))
