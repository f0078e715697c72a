"""What optuna-dashboard shows of a study beyond Optuna's own pages: markdown notes and figures.

The study's note names its objectives (direction, what each measures, in which unit); the note of
each trial on the front names its objective values, family, cost and where it stopped (the other
trials get none: the dashboard's study page reads every note at each call). The figures
(automl.results.dashboard_figures) are saved to the study as plotly graph objects. ``automl run``
keeps them current with a DashboardUpdater, from its own process and between trials, never inside
one; ``automl dashboard`` brings them up to date before it serves.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from automl.results.dashboard_figures import curves_figure, front_figure, hypervolume_figure
from automl.results.dashboard_store import StudyAttrs
from automl.results.front import accuracy_text, si
from automl.results.hypervolume import hypervolume_history
from automl.storage._optuna import study_storage
from automl.storage.outline import StudyOutline
from automl.storage.schema import CONFIG_ATTR, OBJECTIVES, TrialAttr, family_of
from automl.storage.study_attrs import set_study_system_attrs

LOG = logging.getLogger(__name__)
# The study system attrs that hold a digest of each note saved ("study" or the trial's number ->
# SHA-1 of its text), NOTES_PER_SHARD trials to an attr (NOTES_ATTR:SHARD; studies of earlier
# releases hold them all in NOTES_ATTR itself): a note saved before with the same text, by this run
# or another, is not written again, and a batch of notes rewrites only the shards it touched.
NOTES_ATTR = "automl:dashboard_notes"
NOTES_PER_SHARD = 1000
# Notes written per transaction: progress is stored as it goes, so a start-up cut short keeps it.
NOTES_PER_BATCH = 1000
# The ids the figures are saved under: saving again replaces them.
FIGURE_IDS = ("learning-curves", "pareto-front", "hypervolume")
# What each objective measures, for the study's note.
MEANINGS = {TrialAttr.VAL_ACCURACY: "fraction of the validation split classified right (cross-validated: the "
                                                  "mean over the folds)",
            TrialAttr.FLOPS: "forward FLOPs per sample (a multiply-add counts 2)",
            TrialAttr.N_PARAMS: "trainable parameters",
            # automl.training.efficiency.latency: the minimum of repeated timings.
            TrialAttr.LATENCY_MS: "milliseconds of one forward pass at latency_batch_size, the minimum of repeated "
                                  "timings (each trial's `latency_method` says how it was timed)"}
# How often `automl run` brings the dashboard up to date, at most (seconds), and the largest share
# of the run's time the updates may take: after one that took t seconds, the next waits t / MAX_SHARE.
UPDATE_INTERVAL_S = 15.0
MAX_SHARE = 0.02
# With a deadline: what a first update is assumed to take (a second or two for a small study, the
# report's imports included), and how far past the deadline the update at the end of a run may go.
FIRST_UPDATE_S = 5.0
FINAL_GRACE_S = 1.0


def _objectives(study: optuna.Study) -> list[str]:
    return list(study.metric_names or [f"objective {index}" for index in range(len(study.directions))])


def study_note(name: str, trials: Sequence[FrozenTrial], objectives: Sequence[str], directions: Sequence[str],
               hypervolume: str) -> str:
    """Markdown: the study's objectives (name, direction, what it measures), its trials by state and
    how the hypervolume figure is computed (``hypervolume``)."""
    rows = []
    for objective, direction in zip(objectives, directions, strict=True):
        spec = OBJECTIVES.get(objective)
        meaning = f"{MEANINGS[spec.attr]} (trial attr `{spec.attr}`)" if spec else "-"
        rows.append(f"| {objective} | {direction} | {meaning} |")
    states = [trial.state for trial in trials]
    counts = ", ".join(f"{states.count(state)} {state.name.lower()}" for state in TrialState if state in states)
    return "\n".join([f"## {name}", "", "| objective | direction | measures |", "| --- | --- | --- |",
                      *rows, "", f"Trials: {counts or 'none yet'}.", "",
                      "The study's page shows learning curves of every trial, the front on log-FLOPs and the "
                      f"hypervolume, updated as the study runs. Hypervolume: {hypervolume}", ""])


def _value(name: str, value: float | None) -> str:
    if value is None:
        return "-"
    spec = OBJECTIVES.get(name)
    return si(value) if spec is not None and spec.is_cost and spec.attr != TrialAttr.LATENCY_MS else f"{value:.4g}"


def _max_epochs(study: optuna.Study) -> int | None:
    config = study.user_attrs.get(CONFIG_ATTR) or {}
    epochs = (config.get("train") or {}).get("max_epochs")
    return epochs if isinstance(epochs, int) else None


def where_it_stopped(trial: FrozenTrial, max_epochs: int | None) -> str:
    """One sentence: how far the trial trained and why it ended there."""
    attrs = trial.user_attrs
    of = f" of {max_epochs}" if max_epochs else ""
    epochs = attrs.get(TrialAttr.EPOCHS, len(attrs.get(TrialAttr.VAL_CURVE) or []))
    if trial.state == TrialState.WAITING:
        return "queued, not started"
    if trial.state == TrialState.RUNNING:
        return f"running, {len(attrs.get(TrialAttr.VAL_CURVE) or [])}{of} epochs validated so far"
    if trial.state == TrialState.FAIL:
        reason = str(attrs.get(TrialAttr.FAIL_REASON, "no reason recorded"))
        return f"failed after {epochs}{of} epochs: {reason[:300]}"
    if trial.state == TrialState.PRUNED:
        rung = f" (rung {attrs[TrialAttr.RUNG]})" if TrialAttr.RUNG in attrs else ""
        return f"pruned after epoch {attrs.get(TrialAttr.PRUNED_AT_EPOCH, epochs)}{of}{rung}"
    if TrialAttr.OVER_BUDGET in attrs:
        return f"never trained, over budget: {attrs[TrialAttr.OVER_BUDGET]}"
    if TrialAttr.STOPPED in attrs:
        return f"stopped after epoch {epochs}{of} ({attrs[TrialAttr.STOPPED]})"
    if epochs == 0:
        return "scored as built, after 0 epochs: it has no trainable parameters"
    return f"completed, trained {epochs}{of} epochs"


def _objective_value(trial: FrozenTrial, index: int, name: str) -> str:
    """The trial's value of objective ``name``; for a trial without values (pruned, running,
    failed), what it measured: its cost, or its accuracy at the last validated epoch."""
    if trial.values:
        return _value(name, trial.values[index])
    spec = OBJECTIVES.get(name)
    if spec is None:
        return "-"
    if spec.is_cost:
        return _value(name, trial.user_attrs.get(spec.attr))
    curve = trial.user_attrs.get(TrialAttr.VAL_CURVE) or []
    return f"{_value(name, curve[-1])} (at epoch {len(curve)}, not reported)" if curve else "-"


def _cross_validated(attrs: dict[str, Any]) -> list[str]:
    """A cross-validated trial's accuracy spread, as markdown lines; none for one validation split."""
    folds = attrs.get(TrialAttr.FOLDS)
    if not folds or attrs.get(TrialAttr.VAL_ACCURACY_STD) is None:
        return []
    spread = accuracy_text(attrs.get(TrialAttr.VAL_ACCURACY), attrs[TrialAttr.VAL_ACCURACY_STD], folds, long=True)
    each = ", ".join(f"{value:.4f}" for value in attrs.get(TrialAttr.FOLD_ACCURACIES) or [])
    return [f"**Cross-validated:** validation accuracy {spread} (mean ± standard deviation; each fold's: {each}).", ""]


def trial_note(trial: FrozenTrial, objectives: Sequence[str], directions: Sequence[str],
               max_epochs: int | None = None) -> str:
    """Markdown: the trial's family, where it stopped, its objective values by name and its cost."""
    attrs = trial.user_attrs
    rows = [f"| {name} ({direction}) | {_objective_value(trial, index, name)} |"
            for index, (name, direction) in enumerate(zip(objectives, directions, strict=True))]
    cost = [f"{si(attrs.get(TrialAttr.N_PARAMS))} parameters", f"{si(attrs.get(TrialAttr.FLOPS))} FLOPs per sample"]
    if attrs.get(TrialAttr.LATENCY_MS) is not None:
        cost.append(f"{attrs[TrialAttr.LATENCY_MS]:.3g} ms latency")
    if attrs.get(TrialAttr.WALL_TIME_S) is not None:
        cost.append(f"{attrs[TrialAttr.WALL_TIME_S]:.1f} s wall time")
    test = attrs.get(TrialAttr.TEST_ACCURACY)
    return "\n".join([f"### Trial {trial.number}: {family_of(trial) or 'family not chosen yet'}", "",
                      f"**Where it stopped:** {where_it_stopped(trial, max_epochs)}.", "",
                      "| objective | value |", "| --- | --- |", *rows, "",
                      f"**Cost:** {', '.join(cost)}.", "",
                      *_cross_validated(attrs),
                      *([f"Test accuracy (reported, never selected on): {test:.4f}.", ""] if test is not None else [])])


class NoteDigests:
    """The digests of the notes saved (NOTES_ATTR), as read once; and the shards to write back."""

    def __init__(self, stored: dict[str, Any]) -> None:
        self.shards: dict[str, dict[str, str]] = {
            key: dict(value) for key, value in stored.items() if key.startswith(f"{NOTES_ATTR}:")}
        self.dirty: set[str] = set()
        for key, digest in (stored.get(NOTES_ATTR) or {}).items():  # an earlier release's one attr
            self.shards.setdefault(self._shard(key), {}).setdefault(key, digest)

    @staticmethod
    def _shard(key: str) -> str:
        return f"{NOTES_ATTR}:{key if key == 'study' else int(key) // NOTES_PER_SHARD}"

    @staticmethod
    def _digest(body: str) -> str:
        return hashlib.sha1(body.encode()).hexdigest()

    def changed(self, key: str, body: str) -> bool:
        return self.shards.get(self._shard(key), {}).get(key) != self._digest(body)

    def saved(self, key: str, body: str) -> None:
        shard = self._shard(key)
        self.shards.setdefault(shard, {})[key] = self._digest(body)
        self.dirty.add(shard)

    def take_writes(self) -> dict[str, dict[str, str]]:
        writes = {shard: self.shards[shard] for shard in self.dirty}
        self.dirty = set()
        return writes


class DashboardUpdater:
    """Saves the study's note, trial notes and figures; an Optuna trial callback that does so at
    most every ``interval_s`` seconds (between trials, in the process that runs them), and less
    often when an update takes more than ``max_share`` of the time until the next.

    An update reads the study's attributes once and writes what changed in batches of
    NOTES_PER_BATCH notes (automl.results.dashboard_store): its cost grows with the trials, not
    with their square. Notes already saved with the same text (their digests, NOTES_ATTR) are not
    written again, so a note edited in the dashboard stays until automl's text for it changes.
    ``progress(done, total)`` hears of each batch of notes written. With a ``deadline``
    (``time.time()`` seconds) the callback makes no update that would end after it, at the last
    update's pace. ``updates``, ``spent_s`` and ``notes_written`` count what it did.
    """

    def __init__(self, interval_s: float = UPDATE_INTERVAL_S, max_share: float = MAX_SHARE,
                 deadline: float | None = None, progress: Callable[[int, int], None] | None = None) -> None:
        self.interval_s, self.max_share = interval_s, max_share
        self.deadline, self.progress = deadline, progress
        self.updates = 0
        self.spent_s = 0.0
        self.last_s: float | None = None  # the last update's seconds
        self.notes_written = 0
        # time.monotonic() from which the next update is due: the first a full interval after the
        # run starts, so that a study's first trials, which give its first front, are not delayed.
        self._next = time.monotonic() + interval_s
        self._lock = threading.Lock()

    def __call__(self, study: optuna.Study, trial: FrozenTrial | None = None) -> None:
        if time.monotonic() >= self._next and self._fits(0.0):
            try:
                self.update(study)
            except Exception as exc:  # the figures are a view: a failed update must not end the run
                self._next = time.monotonic() + self.interval_s
                LOG.warning("the dashboard's figures and notes were not updated: %s", exc)

    def _fits(self, grace_s: float) -> bool:
        """Whether an update at the last one's pace (FIRST_UPDATE_S before any) ends by the deadline
        plus ``grace_s``."""
        expected = FIRST_UPDATE_S if self.last_s is None else self.last_s
        return self.deadline is None or time.time() + expected <= self.deadline + grace_s

    def catch_up(self, study: optuna.Study) -> bool:
        """The update at the end of a run, unless the deadline is past by more than FINAL_GRACE_S at
        the last update's pace (``automl dashboard`` catches up then); whether it updated."""
        if not self._fits(FINAL_GRACE_S):
            return False
        self.update(study)
        return True

    def update(self, study: optuna.Study) -> None:
        """Bring notes and figures up to date with the stored trials now."""
        # Imported here, at the first update: the report brings scikit-learn (a second of CPU), which
        # `automl run` must not spend before its first trial; its first update's time includes it
        # and spaces the next ones out accordingly.
        from automl.results.report import points

        with self._lock:
            started = time.monotonic()
            storage = study_storage(study)
            study_id = storage.get_study_id_from_name(study.study_name)
            attrs = StudyAttrs(storage.get_study_system_attrs(study_id))
            digests = NoteDigests(attrs.stored)
            trials = study.get_trials(deepcopy=False)
            objectives, max_epochs = _objectives(study), _max_epochs(study)
            directions = [direction.name.lower() for direction in study.directions]
            history = hypervolume_history(study, objectives, trials)
            notes: list[tuple[int | None, str, str]] = [
                (None, "study", study_note(study.study_name, trials, objectives, directions, history.explanation))]
            # Notes for the front's trials alone: the dashboard reads every note of the study at each
            # call of its study page, so a note per trial would make that page grow with the study;
            # every trial's attrs are on its page anyway.
            held = StudyOutline.holding(study, trials)  # read in full already: the front and points from them
            front = held.front
            notes += [(trial.number, str(trial.number), trial_note(trial, objectives, directions, max_epochs))
                      for trial in front]
            changed = [(number, key, body) for number, key, body in notes if digests.changed(key, body)]
            for done, (number, key, body) in enumerate(changed, 1):
                # A trial's note is kept under its id in the storage, which a FrozenTrial does not show.
                attrs.save_note(None if number is None else
                                storage.get_trial_id_from_study_id_trial_number(study_id, number), body)
                digests.saved(key, body)
                if done % NOTES_PER_BATCH == 0 or done == len(changed):
                    set_study_system_attrs(study, {**attrs.take_writes(), **digests.take_writes()})
                    self.notes_written += done % NOTES_PER_BATCH or NOTES_PER_BATCH
                    if self.progress is not None:
                        self.progress(done, len(changed))
            figures = (curves_figure(trials, {trial.number for trial in front}),
                       front_figure(points(held), objectives), hypervolume_figure(history))
            for figure_id, figure in zip(FIGURE_IDS, figures, strict=True):
                attrs.save_figure(figure_id, figure.to_json())
            set_study_system_attrs(study, attrs.take_writes())
            finished = time.monotonic()
            self.updates += 1
            self.last_s = finished - started
            self.spent_s += self.last_s
            # The first update also pays for loading plotly's figure classes (about a second), once.
            share_wait = self.last_s / self.max_share if self.updates > 1 else 0.0
            self._next = finished + max(self.interval_s, share_wait)

    @contextlib.contextmanager
    def in_background(self, study: optuna.Study) -> Iterator[None]:
        """Update from a thread while the block runs (trials running in other processes), as often
        as the callback would, and once more at its end (catch_up)."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(max(self._next - time.monotonic(), 0.0)):
                self(study)
                if not self._fits(0.0):
                    return  # past the deadline at this pace: the update at the end decides

        thread = threading.Thread(target=loop, name="dashboard-updates", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
        self.catch_up(study)
