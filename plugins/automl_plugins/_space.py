"""What the built-in families' search spaces share: the task-kind check and the embedding width.

No torch here, nor in the families' modules: the registry imports every plugin module to read a
study file, so a study file's typo must not wait for torch. Their layers (``_layers``) are imported
by ``build``.
"""

from __future__ import annotations

from typing import Any

import automl

EMBEDDING_SIZES = [16, 32, 64, 128]


def check_kind(family: automl.Family, task: automl.Task) -> None:
    """Raise ValueError unless ``family`` declares ``task.kind``."""
    if task.kind not in family.task_kinds:
        raise ValueError(f"family {family.name!r} builds for {', '.join(family.task_kinds)} tasks, "
                         f"not {task.kind!r} (input shape {task.input_shape}).")


def suggest_embedding(trial: automl.Trial, task: automl.Task) -> dict[str, Any]:
    """The searched embedding width, for tokens tasks only."""
    if task.kind != "tokens":
        return {}
    return {"embedding": trial.suggest_categorical("embedding", EMBEDDING_SIZES)}
