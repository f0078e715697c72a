"""Hyperparameter importance for each objective (Optuna's fANOVA), over the trials and parameters
that can explain it.

Accuracy is explained over the trained trials (automl.storage.schema.is_trained: a trial refused
over budget never trained, and its accuracy of 0 says nothing of its parameters) and every
parameter they all have. A cost (FLOPs, parameters, latency) is measured on the built model, so
the architecture alone decides it: it is explained over every completed trial (costs are
measured before the budget refuses one) and only the parameters that build the model, the family
and its parameters. A training parameter such as ``train.lr`` cannot change a model's FLOPs;
fANOVA would still hand it a share of the variance that the trees fail to fit.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import matplotlib
import optuna
from matplotlib.figure import Figure
from optuna.importance import FanovaImportanceEvaluator
from optuna.search_space import intersection_search_space

from automl.plugin.space import in_namespace
from automl.results.spread import evenly_spread
from automl.storage.outline import StudyOutline
from automl.storage.schema import OBJECTIVES, TRAINING_NAMESPACE

# The most trials an objective's importance is computed over: fANOVA's marginal variances cost
# seconds per hundred trials (an accuracy explained by continuous training parameters: 6.5 CPU-s
# over 500 trials, 2.9 over 250, on a loaded 2-core machine), most of `automl report`'s time on a
# large study; a sample spread over the study ranks the parameters.
IMPORTANCE_TRIALS = 200
# fANOVA's forest, smaller than Optuna's default (64 trees of depth up to 64): half the trees and a
# depth of 8 cost a quarter as much (0.9 CPU-s of 3.1 over 200 trials of 5 parameters, where
# most of the forest's time goes on the marginal variances of leaves deeper than 8) and rank the
# parameters the same; the shares move by a few hundredths.
IMPORTANCE_TREES, IMPORTANCE_DEPTH = 32, 8


@dataclass(frozen=True)
class Explained:
    """What an objective's importance is computed over: the trials (as a study of their own) and
    the parameter names; ``why`` says which, for the report."""

    study: optuna.Study
    params: list[str]
    why: str


def explained(outline: StudyOutline, name: str) -> Explained:
    """The trials and parameters that can explain objective ``name`` (see the module docstring);
    only the trials chosen are read in full.

    Raises ValueError when no trial or no parameter is left to explain it.
    """
    spec = OBJECTIVES.get(name)
    is_cost = spec is not None and spec.is_cost
    chosen = outline.completed if is_cost else outline.trained
    if not chosen:
        raise ValueError(f"no {'completed' if is_cost else 'trained'} trial to explain {name} with")
    sampled = ""
    if len(chosen) > IMPORTANCE_TRIALS:  # evenly spread over the study's numbers
        chosen = evenly_spread(chosen, IMPORTANCE_TRIALS)
        sampled = f" ({IMPORTANCE_TRIALS:,} of them, evenly spread over the study)"
    chosen = outline.full(chosen)
    shared = list(intersection_search_space(chosen, include_pruned=False))
    params = [key for key in shared if not (is_cost and in_namespace(key, TRAINING_NAMESPACE))]
    if not params:
        raise ValueError(f"no parameter that builds the model is shared by every trial to explain {name} with")
    subset = optuna.create_study(directions=outline.study.directions)
    subset.add_trials(chosen)
    why = (f"over every completed trial{sampled} and the parameters that build the model (the family and its "
           "parameters, those every trial has): the training parameters cannot change a model's cost"
           if is_cost else f"over the trained trials{sampled} and the parameters every one of them has (with "
           "several families: the family and the training parameters)")
    return Explained(subset, params, why)


def importance_figure(outline: StudyOutline, index: int, name: str) -> tuple[Figure, str]:
    """Optuna's importance plot for objective ``index`` (called ``name``), by fANOVA, and what it
    is computed over (a sentence).

    fANOVA splits the variance of the objective, so it reads the same for maximized and minimized
    objectives (Optuna's default, PED-ANOVA, assumes lower is better), and a seed fixes it.
    Raises ValueError when nothing is left to explain the objective with (see ``explained``).
    """
    chosen = explained(outline, name)
    # Optuna's matplotlib plots switch the global style; keep that inside this figure.
    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        evaluator = FanovaImportanceEvaluator(n_trees=IMPORTANCE_TREES, max_depth=IMPORTANCE_DEPTH, seed=0)
        axis = optuna.visualization.matplotlib.plot_param_importances(
            chosen.study, evaluator=evaluator, params=chosen.params, target=lambda trial: trial.values[index],
            target_name=name)
    # Optuna titles the plot on the left ("Hyperparameter Importances"); one title, ours, in its place.
    axis.set_title(f"Hyperparameter importance for {name}", loc="left")
    figure = axis.figure
    if not isinstance(figure, Figure):  # Optuna draws on a pyplot figure of its own, never a subfigure
        raise RuntimeError(f"Optuna drew the importance plot on a {type(figure).__name__}, expected a Figure")
    figure.set_size_inches(8, 0.45 * len(axis.patches) + 1.6)
    figure.set_layout_engine("constrained")
    return figure, chosen.why
