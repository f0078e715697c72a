"""Training a stored trial's config again: as the trial did, or on train+validation for a final model."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn

from automl.data.prepare import PreparedData
from automl.results.stored import StoredTrial
from automl.storage.schema import TrialAttr
from automl.training.device import resolve_device
from automl.training.loop import train


@dataclass(frozen=True)
class Retrained:
    model: nn.Module
    epochs: int
    train_samples: int
    test_accuracy: float | None  # None without a test split


def _merged(data: PreparedData) -> PreparedData:
    """Train on every non-test row (train+validation; with cross-validation every fold's). The loop
    still validates each epoch; on the validation split, now part of the training data, so nothing
    selects on those numbers and they are not reported."""
    return dataclasses.replace(data, train=data.non_test, folds=())


def retrain(stored: StoredTrial, data: PreparedData, epochs: int | None = None,
            with_validation: bool = True) -> Retrained:
    """Train the trial's model from its initial weights for ``epochs`` (default: as many as the trial).

    ``with_validation`` adds the validation split to the training data (with cross-validation:
    trains one model on every non-test row); without it the trial's own training is repeated, with
    its seed (with cross-validation: the first fold's model).
    """
    epochs = epochs or int(stored.trial.user_attrs.get(TrialAttr.EPOCHS) or stored.config.train.max_epochs)
    data = _merged(data) if with_validation else data
    train_config = stored.config.train
    model = stored.build()
    result = train(model, data, stored.training, resolve_device(train_config.accelerator), train_config.precision,
                   epochs, stored.seed, augment=train_config.augment, data_on_device=train_config.data_on_device,
                   loader_workers=train_config.loader_workers, lr_schedule=train_config.lr_schedule)
    # Trained without a deadline: the test pass ran, unless there is no test split (test_size = 0).
    assert result.test_accuracy is not None or not len(data.test.y)
    return Retrained(model.cpu().eval(), result.epochs, len(data.train.y), result.test_accuracy)
