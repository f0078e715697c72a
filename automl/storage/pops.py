"""A worker's pops as optuna.Study makes them: the queued trials listed, then tried one by one.

optuna.Study pops a queued trial (``_pop_waiting_trial_id``) by listing the study's queued trials
(``get_all_trials``) and asking the storage to set each RUNNING in turn, in order, until one is set.
With many workers asking at once, every one of them tries the same first trial; a pop that fails
(automl.storage.trial_states.change_state: the trial is being popped or was popped by another
worker) finds, in its transaction, the first trial after it that is queued and not being popped.
Two things then keep a pop to one transaction, whatever the number of workers:

- the trials between the one that failed and that one were taken or being taken at that moment:
  the loop passes over them without asking the database (with 32 workers a pop tried 16 trials on
  average, a transaction each);
- that trial is popped in the same transaction, while its row is locked, if the loop will come to
  it (its id is at most the highest queued id of the listing the loop goes through): it is this
  worker's when the loop asks for it, without a second transaction. Before, another worker often
  took it between the two, and 128 workers made 3,505 pop attempts for 640 pops.

A trial popped ahead that the loop does not ask for (only another thread's calls on a storage it
shares could make one) is put back in the queue at the next listing or pop (trial_states.unpop).
"""

from __future__ import annotations

from automl.storage.trial_states import StateChanged


class PopLoop:
    """Where this storage's current pop loop stands (see module); one loop at a time."""

    def __init__(self) -> None:
        self.listed_up_to: int | None = None  # the highest queued trial id the last listing showed
        # After a pop that failed: the trials between it and the next queued one (None: every
        # later one) that the loop passes over.
        self._passing: tuple[int, int | None] | None = None
        self._ahead: tuple[int, StateChanged] | None = None  # the trial popped ahead, and how

    def listed(self) -> int | None:
        """A new listing of the study, or new trials in it: a loop starts over (the caller sets
        ``listed_up_to`` for a listing of queued trials). Returns the trial popped ahead for the last
        loop, if it never asked for it."""
        self.listed_up_to, self._passing = None, None
        return self.popped_ahead()

    def popped_ahead(self) -> int | None:
        """The trial popped ahead and not asked for (the caller puts it back), forgetting it."""
        ahead, self._ahead = self._ahead, None
        return None if ahead is None else ahead[0]

    def passes_over(self, trial_id: int) -> bool:
        """Whether the loop passes over ``trial_id`` without asking the database."""
        return self._passing is not None and self._passing[0] < trial_id < (self._passing[1] or trial_id + 1)

    def claim(self, trial_id: int) -> StateChanged | None:
        """How ``trial_id`` was popped, if it is the trial popped ahead for this loop."""
        if self._ahead is None or self._ahead[0] != trial_id:
            return None
        changed, self._ahead = self._ahead[1], None
        self._passing = None
        return StateChanged(True, changed.datetime_start)

    def tried(self, trial_id: int, changed: StateChanged) -> None:
        """Note a pop of ``trial_id`` asked of the database; if it failed, what the loop passes over
        and what was popped ahead."""
        self._passing = None if changed.changed else (trial_id, changed.next_queued)
        if changed.popped_next and changed.next_queued is not None:
            self._ahead = (changed.next_queued, changed)
