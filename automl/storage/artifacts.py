"""Trial artifacts in an Optuna artifact store: what the dashboard shows beside each trial.

Every completed trial uploads its architecture summary and learning curve (PNG and JSON). Weights
go up only for a trial that is on the Pareto front when it finishes: a trial on the final front
is never dominated, so it was on the front when it finished too, and every final front trial has
its weights; trials that only looked good early cost some disk, the others nothing.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore, download_artifact, get_all_artifact_meta, upload_artifact
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url
from torch import nn

from automl.storage.schema import is_feasible
from automl.storage.curve_image import draw_curve
from automl.errors import UsageError
from automl.storage.sqlite import is_file_sqlite

if TYPE_CHECKING:  # automl.training.loop pulls in Lightning, which the dashboard does not need
    from automl.training.loop import TrainResult

DEFAULT_DIR = "automl-artifacts"
SUMMARY = "summary.txt"
CURVE_PNG = "learning_curve.png"
CURVE_JSON = "learning_curve.json"
WEIGHTS = "weights.pt"


def artifact_dir(storage_url: str, configured: str | None = None) -> Path:
    """The artifact folder of a storage: ``configured`` if given, else ``NAME-artifacts`` beside an
    SQLite file ``NAME.db``, else ``automl-artifacts`` in the working directory.

    Everything that writes or reads a study's artifacts (workers, dashboard, export) derives the
    same folder from the same URL, so none of them needs to be told where it is.
    """
    if configured:
        return Path(configured)
    if is_file_sqlite(storage_url):
        database = Path(make_url(storage_url).database)
        return database.with_name(f"{database.stem}-artifacts")
    return Path(DEFAULT_DIR)


def open_store(directory: Path) -> FileSystemArtifactStore:
    return FileSystemArtifactStore(str(output_dir(directory, "artifact folder")))


def output_dir(directory: Path, what: str) -> Path:
    """``directory``, created if needed; a UsageError when it cannot be."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot use {directory} as {what}: {exc.strerror}") from None
    return directory


def dominated(values: Sequence[float], others: Sequence[Sequence[float]],
              directions: Sequence[StudyDirection]) -> bool:
    """Whether some vector in ``others`` is at least as good everywhere and better somewhere."""
    # Optuna's dominance test is private (optuna.study._multi_objective); this is the definition.
    signs = [1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in directions]
    mine = [s * v for s, v in zip(signs, values)]
    for other in others:
        theirs = [s * v for s, v in zip(signs, other)]
        if all(t <= m for t, m in zip(theirs, mine)) and any(t < m for t, m in zip(theirs, mine)):
            return True
    return False


def on_front_now(trial: optuna.Trial, values: Sequence[float]) -> bool:
    """Whether ``values`` would be on the front of the within-budget trials completed so far."""
    done = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return not dominated(values, [t.values for t in done if is_feasible(t)], trial.study.directions)


def architecture_summary(trial: optuna.Trial, model: nn.Module) -> str:
    """Family, parameters, measured cost and the module tree (torch's own repr)."""
    attrs = trial.user_attrs
    params = "\n".join(f"  {key} = {value}" for key, value in sorted(trial.params.items()))
    cost = "\n".join(f"  {key} = {attrs[key]}" for key in ("n_params", "flops", "latency_ms") if key in attrs)
    return (f"trial {trial.number} of study {trial.study.study_name!r}: family {attrs.get('family')}\n\n"
            f"parameters:\n{params}\n\ncost:\n{cost}\n\nmodule:\n{model}\n")


def curve_record(result: TrainResult) -> dict[str, list[float]]:
    epochs = list(range(1, len(result.val_curve) + 1))
    return {"epoch": epochs, "val_accuracy": list(result.val_curve),
            "train_loss": [round(loss, 5) for loss in result.train_loss_curve]}


def save_trial_artifacts(store: FileSystemArtifactStore, trial: optuna.Trial, model: nn.Module,
                         result: TrainResult, values: Sequence[float]) -> None:
    """Upload summary and learning curve, and the weights when the trial is on the front now."""
    with tempfile.TemporaryDirectory(prefix="automl-artifacts-") as folder:
        paths = {name: Path(folder) / name for name in (SUMMARY, CURVE_JSON, CURVE_PNG, WEIGHTS)}
        paths[SUMMARY].write_text(architecture_summary(trial, model), encoding="utf-8")
        curve = curve_record(result)
        paths[CURVE_JSON].write_text(json.dumps(curve), encoding="utf-8")
        draw_curve(curve["val_accuracy"], curve["train_loss"],
                   f"trial {trial.number} ({trial.user_attrs.get('family')})", paths[CURVE_PNG])
        uploads = [SUMMARY, CURVE_JSON, CURVE_PNG]
        if on_front_now(trial, values):
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, paths[WEIGHTS])
            uploads.append(WEIGHTS)
        for name in uploads:
            upload_artifact(artifact_store=store, file_path=str(paths[name]), study_or_trial=trial)


def _metas(study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
    # A FrozenTrial's artifacts are listed through the storage, which Study keeps private.
    return {meta.filename: meta for meta in get_all_artifact_meta(trial, storage=study._storage)}


def artifact_names(study: optuna.Study, trial: FrozenTrial) -> list[str]:
    return sorted(_metas(study, trial))


def load_weights(store: FileSystemArtifactStore, study: optuna.Study,
                 trial: FrozenTrial) -> dict[str, torch.Tensor] | None:
    """The trial's stored state dict, or None when it stored none."""
    meta = _metas(study, trial).get(WEIGHTS)
    if meta is None:
        return None
    with tempfile.TemporaryDirectory(prefix="automl-weights-") as folder:
        path = Path(folder) / WEIGHTS
        try:
            download_artifact(artifact_store=store, file_path=str(path), artifact_id=meta.artifact_id)
        except ArtifactNotFound:
            raise UsageError(f"trial {trial.number} of study {study.study_name!r} stored its weights as artifact "
                             f"{meta.artifact_id}, which is not in the artifact folder; if the artifacts "
                             "live elsewhere, give that folder with --artifacts DIR") from None
        return torch.load(path, map_location="cpu", weights_only=True)
