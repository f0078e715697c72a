"""The pruners a study file can name, and the Lightning Fabric callback that consults them each epoch."""

from __future__ import annotations

import optuna

from automl.config import SearchConfig
from automl.search.moasha import MOASHAPruner, rungs
from automl.search.signal import ranked_accuracy
from automl.storage.schema import OBJECTIVES, TrialAttr


def make_pruner(search: SearchConfig, max_epochs: int) -> optuna.pruners.BasePruner:
    """``none``, Optuna's ``median``, ``sha`` or ``hyperband`` (single objective), or ``moasha``.

    Steps are epochs done (1-based), so every pruner first judges a trial after ``min_epochs``.
    """
    if search.pruner == "median":
        return optuna.pruners.MedianPruner(n_warmup_steps=search.min_epochs)
    if search.pruner == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=search.min_epochs,
                                                      reduction_factor=search.reduction_factor)
    if search.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=search.min_epochs, max_resource=max_epochs,
                                              reduction_factor=search.reduction_factor)
    if search.pruner == "moasha":
        costs = [name for name in search.objectives if OBJECTIVES[name].is_cost]
        return MOASHAPruner(costs, max_epochs, search.min_epochs, search.reduction_factor)
    return optuna.pruners.NopPruner()


def decision_epochs(search: SearchConfig, max_epochs: int) -> list[int]:
    """The epoch counts at which a trial is judged, the end of its training last: the rungs
    ``min_epochs * reduction_factor**k`` with a pruner, only the end without one."""
    if search.pruner == "none":
        return [max_epochs]
    return [*rungs(search.min_epochs, search.reduction_factor, max_epochs), max_epochs]


class EpochPruning:
    """A Fabric callback: after each validation, store the curve on the trial and ask the pruner.

    With a pruner, the curve is written every epoch so that other workers' MO-ASHA, and the
    dashboard, see running trials; multi-objective trials cannot ``report``, so their pruner reads
    the curve instead. Without one, nothing reads it before the trial ends, and the objective
    stores it then: a write per epoch would cost a small trial several percent of its time.
    """

    def __init__(self, trial: optuna.Trial, curve: list[float] | None = None, max_epochs: int | None = None,
                 loss_curve: list[float] | None = None) -> None:
        self.trial = trial
        # The last epoch is never judged: a trial that trained to the end has cost all it will
        # cost, and pruning it would only throw its result away (Optuna's pruners would).
        self.max_epochs = max_epochs
        # A resumed trial goes on from the curves it had validated.
        self.curve: list[float] = [round(value, 5) for value in curve or []]
        self.loss_curve: list[float] = [round(value, 5) for value in loss_curve or []]
        # A warm-start config is left alone before the epochs at which its source reached its accuracy.
        self.protected = int(trial.user_attrs.get(TrialAttr.PROTECTED_EPOCHS) or 0)

    def on_validation_loss(self, epoch: int, val_loss: float) -> None:
        self.loss_curve.append(round(val_loss, 5))

    def on_validation_epoch_end(self, epoch: int, val_accuracy: float) -> None:
        trial = self.trial
        self.curve.append(round(val_accuracy, 5))
        if isinstance(trial.study.pruner, optuna.pruners.NopPruner):
            return
        trial.set_user_attr(TrialAttr.VAL_CURVE, list(self.curve))  # a copy: the storage may keep the object
        trial.set_user_attr(TrialAttr.VAL_LOSS_CURVE, list(self.loss_curve))
        epochs = len(self.curve)
        if epochs < self.protected:
            return
        single = len(trial.study.directions) == 1
        if single:
            loss = self.loss_curve[-1] if len(self.loss_curve) == epochs else None
            trial.report(ranked_accuracy(val_accuracy, loss, trial.user_attrs.get(TrialAttr.VAL_SAMPLES)), epochs)
        if self.max_epochs is not None and epochs >= self.max_epochs:
            return
        # MO-ASHA reads a running optuna.Trial as it reads a FrozenTrial (its number and user attrs).
        stop = trial.should_prune() if single else trial.study.pruner.prune(trial.study, trial)  # type: ignore[arg-type]
        if stop:
            trial.set_user_attr(TrialAttr.EPOCHS, epochs)
            trial.set_user_attr(TrialAttr.PRUNED_AT_EPOCH, epochs)
            pruner = trial.study.pruner
            if isinstance(pruner, MOASHAPruner):
                trial.set_user_attr(TrialAttr.RUNG, pruner.rung_of(epochs))
            raise optuna.TrialPruned(f"pruned after epoch {epochs} with validation accuracy {val_accuracy:.4f}")
