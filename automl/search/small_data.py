"""Training budgets for small data: more epochs, smaller batches, and a decaying learning rate.

On a few hundred samples an epoch is a handful of steps, and the nets that do best on small
sequence archives train for hundreds of epochs (Wang et al., 2017: FCN 2,000, ResNet 1,500, with
batches of 16 and a learning rate that falls when the loss stops falling). A study on fewer than
``SMALL_ROWS`` training rows gets, for each key its study file leaves out:

- ``[train] max_epochs``: ``EPOCH_SAMPLES / training rows`` (10 at least, ``MAX_SCALED_EPOCHS`` at
  most), and ``[search] min_epochs`` a 30th of that, so that a first rung does not judge a
  slow-starting net after one epoch;
- ``[train] batch_size``: ``SMALL_BATCH_SIZES``, so that an epoch is several steps (with 28
  training rows every default batch size, 32 to 128, was one full-batch step), and ``[train] lr``
  ``SMALL_LR``, whose centre a new study's first trials train at;
- ``[train] lr_schedule = "cosine"``: the last epoch's model, the one kept and retrained, is not
  the luck of one noisy step.

Measured on the benchmark's archive tasks (benchmarks/real_tasks.py, one FCN of 32 channels trained
on the training rows, official test rows): PickupGestureWiimoteZ 0.68 with batches of 16 at a
constant lr 1e-3 for 100 epochs, 0.82 with batches of 8; with batches of 8 for 100 epochs,
ArrowHead 0.67-0.69 at a constant lr 1e-3 and 0.70 with a cosine decay from it (0.78 from 1e-2,
0.82 from 3e-3 over 200 epochs), Coffee 0.93 constant and 1.00 with the cosine. Over 166
epochs with the cosine from 3e-3: batches of 8 gave 0.81, 0.88 and 1.00 on ArrowHead,
PickupGestureWiimoteZ and Coffee, batches of 16 gave 0.70, 0.84 and 1.00; 83 epochs 0.72 and 0.74.
``EPOCH_SAMPLES`` was 4,000: on ACSF1 (3 folds of 66 rows, 60 epochs) the pooled FCN, retrained on
the 100 training rows as the search had trained it, scored 0.82 and 0.83 (seeds 0 and 1) over 60
epochs and 0.88 and 0.89 over 120, the curve still rising where the budget had stopped it.
Data of ``SMALL_ROWS`` rows or more keeps the defaults (10 epochs, rungs from 1, batches of 32 to 128).
"""

from __future__ import annotations

from typing import Any

from automl.config import StudyConfig
from automl.data.prepare import PreparedData

SMALL_ROWS = 1_000
# Samples a trial may train on over its epochs when the study does not say.
EPOCH_SAMPLES = 8_000
MAX_SCALED_EPOCHS = 200
FIRST_RUNG_SHARE = 30
SMALL_BATCH_SIZES = [8, 16]
# The learning rate's range: its centre (3.2e-3), where a new study's first trials train, suits
# the fewer epochs a run's budget allows on small data, with the cosine decay after it.
SMALL_LR = (1e-3, 1e-2)


def scaled_for_data(config: StudyConfig, data: PreparedData) -> tuple[StudyConfig, list[str]]:
    """``config`` with the training budget above scaled to the training rows, for each key the
    study file leaves out, and a note saying so (none when nothing changes)."""
    rows = len(data.train.y)
    if rows >= SMALL_ROWS:
        return config, []
    train, search = config.train, config.search
    chosen: dict[str, Any] = {}
    if "max_epochs" not in train.model_fields_set:
        chosen["max_epochs"] = min(MAX_SCALED_EPOCHS, max(train.max_epochs, EPOCH_SAMPLES // rows))
    if "batch_size" not in train.model_fields_set:
        chosen["batch_size"] = SMALL_BATCH_SIZES
    if "lr" not in train.model_fields_set:
        chosen["lr"] = SMALL_LR
    if "lr_schedule" not in train.model_fields_set:
        chosen["lr_schedule"] = "cosine"
    if not chosen:
        return config, []
    train = train.model_copy(update=chosen)
    said = [f"up to {train.max_epochs} epochs per trial"] if "max_epochs" in chosen else []
    if "max_epochs" in chosen and "min_epochs" not in search.model_fields_set:
        search = search.model_copy(update={"min_epochs": max(1, train.max_epochs // FIRST_RUNG_SHARE)})
        said.append(f"first rung at {search.min_epochs}")
    if "batch_size" in chosen:
        said.append(f"batches of {' or '.join(map(str, SMALL_BATCH_SIZES))}")
    if "lr" in chosen:
        said.append(f"lr in [{SMALL_LR[0]:g}, {SMALL_LR[1]:g}]")
    if "lr_schedule" in chosen:
        said.append("a cosine learning-rate decay")
    keys = ", ".join(f"[train] {key}" for key in chosen) + (
        ", [search] min_epochs" if search is not config.search else "")
    note = f"small data ({rows} training rows): {', '.join(said)}; {keys} set them"
    return config.model_copy(update={"train": train, "search": search}), [note]
