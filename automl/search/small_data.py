"""Training budgets for small data: more epochs where an epoch is a few optimizer steps.

On a few hundred samples an epoch is a handful of steps, and the nets that do best on small
sequence archives train for hundreds of epochs (Wang et al., 2017: FCN 2,000, ResNet 1,500). A
study that leaves ``[train] max_epochs`` out gets ``EPOCH_SAMPLES / training rows`` epochs (10 at
least, ``MAX_SCALED_EPOCHS`` at most), and one that leaves ``[search] min_epochs`` out starts its
rungs at a 30th of that, so that a first rung does not judge a slow-starting net after one
epoch. Data of ``EPOCH_SAMPLES / 10`` rows or more keeps the defaults (10 epochs, rungs from 1).
"""

from __future__ import annotations

from automl.config import StudyConfig
from automl.data.prepare import PreparedData

# Samples a trial may train on over its epochs when the study does not say: 10 epochs of 1,000
# (digits' 1,257 training rows keep the default 10 epochs).
EPOCH_SAMPLES = 10_000
MAX_SCALED_EPOCHS = 300
FIRST_RUNG_SHARE = 30


def scaled_for_data(config: StudyConfig, data: PreparedData) -> tuple[StudyConfig, list[str]]:
    """``config`` with ``max_epochs`` and ``min_epochs`` scaled to the training rows when the study
    file leaves them out, and a note saying so (none when nothing changes)."""
    rows = len(data.train.y)
    default_epochs = config.train.max_epochs
    if "max_epochs" in config.train.model_fields_set or rows * default_epochs >= EPOCH_SAMPLES:
        return config, []
    epochs = min(MAX_SCALED_EPOCHS, max(default_epochs, EPOCH_SAMPLES // rows))
    train = config.train.model_copy(update={"max_epochs": epochs})
    search = config.search
    if "min_epochs" not in search.model_fields_set:
        search = search.model_copy(update={"min_epochs": max(1, epochs // FIRST_RUNG_SHARE)})
    note = (f"small data ({rows} training rows): up to {epochs} epochs per trial, first rung at "
            f"{search.min_epochs}; [train] max_epochs and [search] min_epochs set them")
    return config.model_copy(update={"train": train, "search": search}), [note]
