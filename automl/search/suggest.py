"""automl's search space inside anyone's Optuna objective: a family and its space sampled in the
caller's trial, built into a plain ``torch.nn.Module``.

The trial's parameters are named as automl's own studies name them (``family``, ``mlp.depth``,
...), and the costs known before training (FLOPs per sample, parameters) are recorded as the same
user attrs, so ``MOASHAPruner`` ranks the caller's trials as it ranks automl's.
"""

from __future__ import annotations

from collections.abc import Sequence

import optuna
import torch
from torch import nn

from automl.plugin.build import build_model, example_inputs
from automl.plugin.registry import registry
from automl.plugin.space import sample_params
from automl.plugin.task import Task
from automl.search.plan import choose_families
from automl.storage.schema import FAMILY_PARAM, TrialAttr
from automl.training.efficiency import count_parameters, flops_per_sample


def suggest_model(trial: optuna.trial.BaseTrial, task: Task, families: Sequence[str] | None = None) -> nn.Module:
    """Sample a family and its search space in ``trial`` and build the model, as automl's studies do.

    Args:
        trial: the caller's trial (``optuna.Trial``, or ``optuna.trial.FixedTrial`` to rebuild one).
        task: what the data looks like (``automl.Task.from_arrays(x, y)``).
        families: names of installed families to choose from (default: every installed family that
            builds for ``task.kind``; see ``automl plugins``).

    Returns:
        A ``torch.nn.Module`` in training mode, with fresh weights (torch's global seed decides them),
        taking ``[B, *task.input_shape]`` inputs (float32, standardized as automl's families expect:
        about zero mean and unit variance per channel or feature; int64 token ids for a tokens task)
        and returning ``[B, task.num_classes]`` logits.

    The trial gets the categorical parameter ``family`` and the family's parameters under its name
    (``mlp.depth``), and the user attrs ``family``, ``flops`` (forward FLOPs per sample) and
    ``n_params`` (parameters): the costs ``MOASHAPruner`` ranks trials by.

    Raises:
        UsageError: a family that is not installed or cannot build for ``task.kind``.
        PluginError: a family whose model does not build, or whose logits have the wrong shape.
    """
    installed = registry()
    chosen, _ = choose_families(families, installed, task.kind, "suggest_model", "families")
    family = installed.family(trial.suggest_categorical(FAMILY_PARAM, list(chosen)))
    example = example_inputs(task, 2)
    with torch.random.fork_rng():  # the caller's seed decides the model's weights, not the example's draw
        model = build_model(family, sample_params(family, trial, task), task, example)
    trial.set_user_attr(TrialAttr.FAMILY, family.name)
    trial.set_user_attr(TrialAttr.FLOPS, flops_per_sample(model, example[:1]))
    trial.set_user_attr(TrialAttr.N_PARAMS, count_parameters(model))
    return model
