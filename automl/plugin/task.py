"""The task a family builds for: what one sample looks like and how many classes there are."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import numpy as np

from automl.errors import UsageError

# The task kinds as a type (a dataset option typed so lists them when a value is wrong) and as a tuple.
TaskKind = Literal["image", "sequence", "tabular", "tokens"]
TASK_KINDS: tuple[str, ...] = get_args(TaskKind)
# The kind the rank of the samples ``x`` says; integer [N, T] token ids are tokens only when asked.
KIND_BY_RANK = {4: "image", 3: "sequence", 2: "tabular"}
RANK_BY_KIND = {"image": 4, "sequence": 3, "tabular": 2, "tokens": 2}


def kind_of(x: np.ndarray, kind: str | None = None, source: str = "x") -> str:
    """The task kind of samples ``x`` ([N, ...]): ``kind`` when given, else what the rank of ``x`` says.

    Raises UsageError naming ``source`` when the rank fits neither.
    """
    found = kind or KIND_BY_RANK.get(x.ndim)
    if found is None or x.ndim != RANK_BY_KIND.get(found):
        raise UsageError(f"{source}: x has shape {list(x.shape)}; expected [N, C, H, W] (image), [N, T, F] "
                         "(sequence), [N, F] (tabular) or integer [N, T] with kind \"tokens\""
                         f"{f', for kind {found!r}' if found else ''}")
    return found


def class_labels(y: np.ndarray) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """Labels ``y`` as integers and the class names: strings name classes, numbered 0..K-1 in
    sorted order (the names kept); other labels stay as they are."""
    if y.dtype.kind not in "USO":
        return y, None
    names, labels = np.unique(y.astype(str), return_inverse=True)
    return labels, tuple(names.tolist())


@dataclass(frozen=True)
class Task:
    """Shape of a classification problem.

    ``input_shape`` is one sample without the batch dimension: ``(C, H, W)`` for images,
    ``(T, F)`` for sequences, ``(F,)`` for tables and ``(T,)`` for tokens. ``class_names``
    says what each label means, when the dataset knows.
    """

    kind: str
    input_shape: tuple[int, ...]
    num_classes: int
    vocab_size: int | None = None
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task kind {self.kind!r} is not one of {', '.join(TASK_KINDS)}")
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        if self.class_names is not None:  # a list after a JSON round trip
            object.__setattr__(self, "class_names", tuple(self.class_names))
        if self.kind == "tokens" and not self.vocab_size:
            raise ValueError("a tokens task needs vocab_size")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        return cls(**data)

    @classmethod
    def from_arrays(cls, x: Any, y: Any, kind: TaskKind | None = None) -> Task:
        """The task of samples ``x`` and labels ``y`` as the caller holds them (NumPy arrays, or
        anything ``np.asarray`` takes, such as CPU tensors).

        ``x``: ``[N, C, H, W]`` images, ``[N, T, F]`` sequences, ``[N, F]`` tables, or integer
        ``[N, T]`` token ids with ``kind="tokens"`` (0 pads; the vocabulary is ``x.max() + 1``).
        ``y``: ``[N]`` integer labels 0..K-1, or strings naming the classes. Raises UsageError for
        a shape that fits no kind.
        """
        x = np.asarray(x)
        found = kind_of(x, kind)
        labels, names = class_labels(np.asarray(y))
        vocab_size = int(x.max()) + 1 if found == "tokens" and x.size else None
        return cls(found, x.shape[1:], int(labels.max()) + 1, vocab_size, names)
