"""optuna-dashboard's notes and figures as study system attributes, written in batches.

optuna-dashboard stores a note as a version (``dashboard:[TRIAL_ID:]note_ver``) and its text in
chunks (``dashboard:[TRIAL_ID:]note_str:I``), a figure as the chunks of its plotly JSON
(``dashboard:plot_data:ID:I``); a save that leaves fewer chunks than before blanks the rest. Its
``save_note`` and ``save_plotly_graph_object`` write that one attribute per transaction and then
read every system attribute of the study, so saving a note for each of N trials costs N full
reads: the square of the trials. Here the same attributes are computed from one read of the
study's attributes (``StudyAttrs``) and written in batches (automl.storage.study_attrs).

The key layout and chunking are optuna-dashboard's own functions, from its private modules
(automl.storage._optuna.dashboard_internals): a release that renames them fails at the first update.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from automl.storage._optuna import dashboard_internals


class StudyAttrs:
    """A study's system attributes as read once, and the writes that save notes and figures over them.

    ``writes`` collects what is to be written (key -> value); ``chunks`` counts the stored chunks
    under each key prefix, so that a shorter text blanks the chunks it no longer uses.
    """

    def __init__(self, stored: dict[str, Any]) -> None:
        self.stored = stored
        self._note, self._plot = dashboard_internals()
        self.writes: dict[str, Any] = {}
        self.chunks: Counter[str] = Counter(key.rpartition(":")[0] + ":" for key in stored
                                            if key.startswith("dashboard:"))

    def _chunked(self, prefix: str, chunks: dict[str, str]) -> None:
        self.writes.update(chunks)
        self.writes.update({f"{prefix}{index}": "" for index in range(len(chunks), self.chunks[prefix])})
        self.chunks[prefix] = max(self.chunks[prefix], len(chunks))

    def save_note(self, trial_id: int | None, body: str) -> None:
        """The note of the study (``trial_id`` None) or of a trial, at the next version."""
        version_key = self._note.note_ver_key(trial_id)
        self.writes[version_key] = int(self.writes.get(version_key, self.stored.get(version_key, 0))) + 1
        self._chunked(self._note.note_str_key_prefix(trial_id), self._note.split_body(body, trial_id))

    def save_figure(self, graph_object_id: str, figure_json: str) -> None:
        """A plotly figure's JSON under ``graph_object_id``, replacing the one saved there."""
        prefix = f"{self._plot.SYSTEM_ATTR_PLOT_DATA}{graph_object_id}:"
        self._chunked(prefix, self._plot.split_plot_data(figure_json, prefix))

    def take_writes(self) -> dict[str, Any]:
        """The writes collected so far, which the caller writes; collecting starts over."""
        writes, self.writes = self.writes, {}
        self.stored.update(writes)
        return writes
