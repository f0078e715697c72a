"""What a trial uploads to the artifact store (automl.storage.artifacts), for the dashboard to show.

Every completed trial uploads its architecture summary and learning curve (PNG and JSON). Weights
go up only for a trial that is on the Pareto front when it finishes: a trial on the final front
is never dominated, so it was on the front when it finished too, and every final front trial has
its weights; trials that only looked good early cost some disk, the others nothing.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from torch import nn

from automl.search.curve_image import draw_curve
from automl.storage.artifacts import CHECKPOINT, CURVE_JSON, CURVE_PNG, SUMMARY, WEIGHTS, load_artifact, upload
from automl.storage.schema import TrialAttr, is_trained
from automl.training.loop import TrainResult
from automl.training.progress import Checkpoint

# The cost attrs the summary lists, in its order.
SUMMARY_COSTS = (TrialAttr.N_PARAMS, TrialAttr.FLOPS, TrialAttr.LATENCY_MS)


def dominated(values: Sequence[float], others: Sequence[Sequence[float]],
              directions: Sequence[StudyDirection]) -> bool:
    """Whether some vector in ``others`` is at least as good everywhere and better somewhere."""
    # Optuna's dominance test is private (optuna.study._multi_objective); this is the definition.
    signs = [1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in directions]
    mine = [s * v for s, v in zip(signs, values, strict=True)]
    for other in others:
        theirs = [s * v for s, v in zip(signs, other, strict=True)]
        pairs = list(zip(theirs, mine, strict=True))
        if all(t <= m for t, m in pairs) and any(t < m for t, m in pairs):
            return True
    return False


class FrontSoFar:
    """The front of a study's within-budget completed trials, kept as they complete: each is read
    once, and a trial once dominated stays so, so only the front is kept (re-reading every
    completed trial at each trial cost 75 ms a trial at 10,000 trials)."""

    def __init__(self) -> None:
        self._study: str | None = None
        self._seen: set[int] = set()  # numbers of the completed trials taken in
        self._front: list[list[float]] = []
        self._lock = threading.Lock()  # trials run in threads (Study.optimize with n_jobs)

    def admits(self, trial: optuna.Trial, values: Sequence[float]) -> bool:
        """Whether ``values`` would be on the front of ``trial``'s study now."""
        study, directions = trial.study, trial.study.directions
        with self._lock:
            if study.study_name != self._study:
                self._study, self._seen, self._front = study.study_name, set(), []
            for done in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
                if done.number in self._seen:
                    continue
                self._seen.add(done.number)
                if is_trained(done) and not dominated(done.values, self._front, directions):
                    self._front = [*(kept for kept in self._front if not dominated(kept, [done.values], directions)),
                                   done.values]
            return not dominated(values, self._front, directions)


def architecture_summary(trial: optuna.Trial, model: nn.Module) -> str:
    """Family, parameters, measured cost and the module tree (torch's own repr)."""
    attrs = trial.user_attrs
    params = "\n".join(f"  {key} = {value}" for key, value in sorted(trial.params.items()))
    cost = "\n".join(f"  {key} = {attrs[key]}" for key in SUMMARY_COSTS if key in attrs)
    return (f"trial {trial.number} of study {trial.study.study_name!r}: family {attrs.get(TrialAttr.FAMILY)}\n\n"
            f"parameters:\n{params}\n\ncost:\n{cost}\n\nmodule:\n{model}\n")


def curve_record(result: TrainResult) -> dict[str, list[int] | list[float]]:
    """The learning curve's JSON: ``epoch`` (1-based), ``val_accuracy`` and ``train_loss`` per epoch."""
    epochs = list(range(1, len(result.val_curve) + 1))
    return {"epoch": epochs, "val_accuracy": list(result.val_curve),
            "train_loss": [round(loss, 5) for loss in result.train_loss_curve]}


def save_trial_artifacts(store: FileSystemArtifactStore, trial: optuna.Trial, model: nn.Module,
                         result: TrainResult, values: Sequence[float], front: FrontSoFar) -> None:
    """Upload summary and learning curve (none after 0 epochs), and the weights when the trial is on the
    ``front`` now."""
    with tempfile.TemporaryDirectory(prefix="automl-artifacts-") as folder:
        paths = {name: Path(folder) / name for name in (SUMMARY, CURVE_JSON, CURVE_PNG, WEIGHTS)}
        paths[SUMMARY].write_text(architecture_summary(trial, model), encoding="utf-8")
        uploads = [SUMMARY]
        if result.val_curve:  # a model with nothing to train is scored as built, after 0 epochs: no curve
            curve = curve_record(result)
            paths[CURVE_JSON].write_text(json.dumps(curve), encoding="utf-8")
            draw_curve(curve["val_accuracy"], curve["train_loss"],
                       f"trial {trial.number} ({trial.user_attrs.get(TrialAttr.FAMILY)})", paths[CURVE_PNG])
            uploads += [CURVE_JSON, CURVE_PNG]
        if front.admits(trial, values):
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, paths[WEIGHTS])
            uploads.append(WEIGHTS)
        for name in uploads:
            upload(store, paths[name], trial)


def save_checkpoint(store: FileSystemArtifactStore, trial: optuna.Trial, checkpoint: Checkpoint) -> None:
    """Upload the last validated epoch of an interrupted trial, for its retry to resume from."""
    with tempfile.TemporaryDirectory(prefix="automl-checkpoint-") as folder:
        path = Path(folder) / CHECKPOINT
        path.write_bytes(checkpoint.to_bytes())
        upload(store, path, trial)


def load_checkpoint(store: FileSystemArtifactStore, study: optuna.Study, trial: FrozenTrial) -> Checkpoint | None:
    """The checkpoint ``trial`` left when it was interrupted, if any."""
    data = load_artifact(store, study, trial, CHECKPOINT, "its last validated epoch")
    return None if data is None else Checkpoint.from_bytes(data)
