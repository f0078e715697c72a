"""``automl.load_model``: a trial's trained model for Python callers, taking inputs as their data holds them."""

from __future__ import annotations

import logging

import optuna
from optuna.artifacts import FileSystemArtifactStore
from torch import nn

from automl.plugin.registry import registry
from automl.results.export import trained_model
from automl.results.raw_inputs import Preprocessing, raw_input_model, stored_preprocessing
from automl.results.stored import load_stored_trial
from automl.storage.artifacts import artifact_dir
from automl.storage.urls import storage_url_of

LOG = logging.getLogger(__name__)


def load_model(study: optuna.Study, trial_number: int) -> nn.Module:
    """The trained model of trial ``trial_number`` of a study automl ran, in eval mode, on the CPU.

    Inputs: ``[B, *input_shape]`` as the study's data holds them (``study.user_attrs["automl_task"]``
    gives the shape): for image, sequence and tabular data float32 values in the data's own units
    (the arrays given to ``automl.run``, digits' 0..16 pixels, an image folder's 0..255 pixels, a
    CSV's feature columns in order); int64 token ids for a tokens task. The dataset's scaling and
    the train split's standardization are the model's first layer (automl.results.raw_inputs).
    Output: ``[B, num_classes]`` logits (unnormalized; ``argmax(-1)`` is the predicted class).

    The weights are those the trial stored (trials on the front when they finished store them);
    a trial that stored none is trained again as it trained, with its seed and epochs, which can
    take as long as the trial took (a note on the ``automl`` logger says so).

    Raises:
        UsageError: no such trial, one that did not complete or never trained (over a budget),
            a study automl did not create, or weights that cannot be found or trained again (a
            trial off the front of a study whose data was given in memory).
    """
    url = storage_url_of(study)
    installed = registry()
    stored = load_stored_trial(study, trial_number, url, installed)
    store = FileSystemArtifactStore(str(artifact_dir(url, stored.config.artifacts)))
    model, _, _ = trained_model(stored, store, installed, LOG.info)
    preprocessing = stored_preprocessing(study) or Preprocessing.of(stored.data(installed))
    return raw_input_model(model, preprocessing).eval()
