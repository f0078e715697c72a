"""``automl.load_model``: a trial's trained model for Python callers, taking inputs as their data holds them."""

from __future__ import annotations

import logging

import numpy as np
import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore
from torch import nn

from automl.config import IN_MEMORY_DATASET
from automl.errors import UsageError
from automl.plugin.registry import registry
from automl.plugin.task import Task
from automl.results.export import trained_model
from automl.results.raw_inputs import RawInputModel, Standardize, raw_input_model
from automl.results.stored import load_stored_trial
from automl.storage.artifacts import artifact_dir, load_weights
from automl.storage.schema import PREPROCESSING_ATTR, pareto_front
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
            a study automl did not create, or weights that cannot be found or rebuilt.
    """
    url = storage_url_of(study)
    installed = registry()
    stored = load_stored_trial(study, trial_number, url, installed)
    store = FileSystemArtifactStore(str(artifact_dir(url, stored.config.artifacts)))
    in_memory = stored.config.data.dataset == IN_MEMORY_DATASET
    if in_memory and load_weights(store, study, stored.trial) is None:
        raise UsageError(f"{stored.label} stored no weights (only trials on the Pareto front when they finished do) "
                         "and its data was given in memory, so it cannot be trained again here; load a trial "
                         f"of the front: {', '.join(str(t.number) for t in pareto_front(study))}")
    model, _ = trained_model(stored, store, installed, LOG.info)
    preprocessing = study.user_attrs.get(PREPROCESSING_ATTR)
    if preprocessing is None:  # a study created before automl stored it: made again from its dataset
        return raw_input_model(model, stored.data(installed)).eval()
    return RawInputModel(_first_layer(preprocessing, stored.task), model.cpu()).eval()


def _first_layer(preprocessing: dict[str, object], task: Task) -> nn.Module:
    """The stored preprocessing as the first layer: ``(inputs * scale - mean) / std``, its statistics
    shaped to broadcast per channel (images) or feature; none for token ids."""
    standardization = preprocessing.get("standardization")
    if not isinstance(standardization, dict):
        return nn.Identity()
    shape = [1] * (1 + len(task.input_shape))
    shape[1 if task.kind == "image" else -1] = -1
    mean, std = (torch.from_numpy(np.asarray(standardization[key], dtype=np.float32)).reshape(shape)
                 for key in ("mean", "std"))
    return Standardize(float(preprocessing["scale"]), mean, std)  # type: ignore[arg-type]
