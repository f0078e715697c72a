"""The value the samplers and the pruner rank a trial by: validation accuracy, ties broken by loss.

Accuracy on a few tens of validation samples moves in steps of several points, and many models
reach 100%: nothing then tells them apart, and a cost objective keeps the cheapest one that got
lucky. The ranked value is the accuracy less a tie-break below half a validation sample's step,
``loss / (1 + loss) / (2 * samples)`` with ``loss`` the mean validation cross-entropy: models
whose accuracies differ keep their order, and models that tie are ordered by how sure they are of
the right classes, a measure that keeps moving after accuracy has stopped. The trial's
``val_accuracy`` attr, and every view of the front, still report the accuracy itself.
"""

from __future__ import annotations

import math


def ranked_accuracy(accuracy: float, val_loss: float | None, samples: int | None) -> float:
    """``accuracy`` (in [0, 1]) less the tie-break of ``val_loss`` (nats per sample) over
    ``samples`` validation samples; ``accuracy`` itself when either is unknown."""
    if val_loss is None or not samples or not math.isfinite(val_loss):
        return accuracy
    loss = max(val_loss, 0.0)
    return accuracy - loss / (1.0 + loss) / (2 * samples)
