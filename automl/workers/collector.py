"""The automl program's garbage collector: Python's, with its full passes a tenth as often.

CPython (3.11 to 3.13) scans every tracked object in a full pass of its cyclic collector, due
after every ``threshold2`` (default 10) passes over the middle generation once the objects added
since the last full pass reach a quarter of those it kept. An automl process imports torch,
Lightning, torchmetrics (with SciPy), Optuna and scikit-learn: about a million objects that live as
long as the process and leave next to no garbage cycles, and the full passes over that heap as
it grew took 1.5 of the 12 CPU-seconds of an `automl run` of a one-epoch trial (measured side by
side, three runs each, one thread). Cycles are still collected, later: each trial ends with a full
collection of its own (automl.training.device.free_memory), and a worker freezes what it holds
before its first trial (automl.workers.worker).
"""

from __future__ import annotations

import gc

# Middle-generation passes between full passes (Python's default: 10).
FULL_PASS_EVERY = 100


def collect_less_often() -> None:
    """Full passes of the cyclic collector a tenth as often as Python's default, for this
    process: the automl program calls it at its start (a notebook or test calling automl keeps
    its own settings)."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_PASS_EVERY)
