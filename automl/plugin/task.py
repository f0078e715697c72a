"""The task a family builds for: what one sample looks like and how many classes there are."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

# The task kinds as a type (a dataset option typed so lists them when a value is wrong) and as a tuple.
TaskKind = Literal["image", "sequence", "tabular", "tokens"]
TASK_KINDS: tuple[str, ...] = get_args(TaskKind)


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
