"""A time budget holds and loses no work: real `automl run` processes, real training, a real SQLite file."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from automl.search.signal import ranked_accuracy
from automl.storage import trial_queue
from automl.storage.trial_queue import samples_until_deadline, still_queued
from automl.workers.hard_deadline import GRACE_S as HARD_GRACE_S
from conftest import AUTOML, run_cli, sleepy_site, with_path, write_study

pytestmark = pytest.mark.slow

# What the run may take beyond its budget, which counts from the process's start: the step under
# way, testing the restored model, the trial's last writes, the front printed; whatever is left at
# the alarm's HARD_GRACE_S past the deadline is cut there, and the interpreter then exits.
GRACE_S = HARD_GRACE_S + 5.0
# One torch thread: two threads on a busy 2-core machine run tiny models tens of times slower, and
# the time budget would (rightly) refuse them; these tests are about the deadline.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def _long_study(directory: Path, url: str, n_trials: int, timeout: float | None = None) -> Path:
    """mlp trials of many epochs on digits: any one of them outlasts the budget. MO-ASHA (the
    default) lets the first trials at each rung go on, and writes the curve every epoch."""
    return write_study(directory, f"""
        name = "long"
        n_trials = {n_trials}
        storage = "{url}"
        {f"timeout = {timeout}" if timeout else ""}
        [search]
        families = ["mlp"]
        [train]
        max_epochs = 100000
        batch_size = [32]
    """)


# The run's budget in the test below: long enough that a worker's start-up on a busy machine (up to
# about 30 s at load 8) leaves the first epochs' estimates far inside it, so the deadline, not the
# time guard, is what stops the trial. The slow steps sleep (no CPU), so the length costs wall time only.
SLOWING_BUDGET_S = 60.0

# The family of the test below (conftest.SLEEPY) turns slow after its third epoch, as when a machine
# gets busy: every estimate from its first epochs lets it go on, and one slow epoch (40 steps of
# budget/40 s each) is longer than the whole budget, so the deadline comes in the middle of its
# fourth epoch.
FAST_STEPS = 3 * 40  # digits' train split in batches of 32, three epochs


def test_the_deadline_stops_the_trial_under_way_with_the_epochs_it_validated(tmp_path: Path) -> None:
    budget = SLOWING_BUDGET_S
    site = sleepy_site(tmp_path, step_s=budget / 40, fast_steps=FAST_STEPS)
    url = f"sqlite:///{tmp_path / 'long.db'}"
    study_file = write_study(tmp_path, f"""
        name = "long"
        n_trials = 3
        storage = "{url}"
        timeout = {budget}
        [search]
        families = ["sleepy"]
        [train]
        max_epochs = 100
        batch_size = [32]
    """)
    started = time.monotonic()
    result = run_cli("run", str(study_file), "--no-progress", cwd=tmp_path, env={**with_path(site), **ONE_THREAD},
                     timeout=budget + 120)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert elapsed < budget + GRACE_S, f"the run took {elapsed:.1f} s of a {budget:.0f} s budget"
    trials = optuna.load_study(study_name="long", storage=url).get_trials(deepcopy=False)
    stopped = [t for t in trials if t.user_attrs.get("stopped") == "deadline"]
    assert len(stopped) == 1 and stopped[0].state == TrialState.COMPLETE, [(t.state, t.user_attrs) for t in trials]
    attrs = stopped[0].user_attrs
    # It counts with what it reached: every validated epoch, its accuracy that of the last one.
    assert attrs["epochs"] == 3 and len(attrs["val_curve"]) == attrs["epochs"]
    assert attrs["val_accuracy"] == pytest.approx(attrs["val_curve"][-1], abs=1e-5)
    ranked = ranked_accuracy(attrs["val_accuracy"], attrs["val_loss"], attrs["val_samples"])
    assert stopped[0].values[0] == pytest.approx(ranked, abs=1e-7) and 0 < attrs["test_accuracy"] <= 1
    assert stopped[0].number in [t.number for t in optuna.load_study(study_name="long", storage=url).best_trials]
    # Nothing started after the deadline (the stopped trial was the last to start); the trials
    # not reached stay queued for a rerun. (On a busy machine an earlier one may have been refused
    # by the time budget: the first steps' pace decides.)
    assert all(t.datetime_start <= stopped[0].datetime_start for t in trials if t.datetime_start)
    assert sum(t.state == TrialState.WAITING for t in trials) >= 1
    assert "Pareto front of 'long'" in " ".join(result.stdout.split())


def test_an_interrupted_trial_resumes_from_its_last_validated_epoch(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'resume.db'}"
    study_file = _long_study(tmp_path, url, n_trials=1)
    run = subprocess.Popen([*AUTOML, "run", str(study_file), "--no-progress"], cwd=tmp_path,
                           env={**os.environ, **ONE_THREAD}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                running = optuna.load_study(study_name="long", storage=url).get_trials(
                    deepcopy=False, states=(TrialState.RUNNING,))
            except KeyError:
                continue
            if running and len(running[0].user_attrs.get("val_curve") or []) >= 2:
                break
        else:
            pytest.fail("no trial validated two epochs within 120 s")
        run.send_signal(signal.SIGINT)
        _, stderr = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 128 + signal.SIGINT, stderr
    study = optuna.load_study(study_name="long", storage=url)
    interrupted = next(t for t in study.trials if t.user_attrs.get("fail_reason") == "interrupted")
    validated = len(interrupted.user_attrs["val_curve"])

    # Resumed with a budget, the retry goes on from the interrupted trial's last validated epoch.
    timed = _long_study(tmp_path, url, n_trials=1, timeout=30)
    rerun = run_cli("run", str(timed), "--no-progress", cwd=tmp_path, env=ONE_THREAD, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    retry = next(t for t in optuna.load_study(study_name="long", storage=url).trials
                 if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == interrupted.number)
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["resumed_from"] == interrupted.number
    assert retry.user_attrs["val_curve"][:validated] == interrupted.user_attrs["val_curve"][:validated]
    assert retry.user_attrs["epochs"] > validated


def test_a_budget_without_n_trials_samples_until_the_deadline_and_a_rerun_without_one_stops(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Windows of 10 trials (100 in automl; both runs are in this process): the run queues window
    # after window until its deadline, and the rerun has at most 15 trials left to train, where
    # windows of 100 leave it up to 150 (the next window is queued from the middle of each).
    monkeypatch.setattr(trial_queue, "WINDOW", 10)
    url = f"sqlite:///{tmp_path / 'open.db'}"
    budget = 12.0
    study_file = write_study(tmp_path, f"""
        name = "open"
        storage = "{url}"
        [search]
        families = ["mlp"]
        pruner = "none"
        [train]
        max_epochs = 1
    """)
    started = time.monotonic()
    result = run_cli("run", str(study_file), "--timeout", str(budget), "--no-progress", cwd=tmp_path,
                     env=ONE_THREAD, timeout=budget + 120)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    # It worked until the deadline (not 30 trials and done), and no longer.
    assert budget <= elapsed < budget + GRACE_S, f"the run took {elapsed:.1f} s of a {budget:.0f} s budget"
    study = optuna.load_study(study_name="open", storage=url)
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert finished, result.stderr
    assert samples_until_deadline(study)
    left = still_queued(study)
    # Run again without a budget: it runs what is left of the queue and stops, not forever.
    rerun = run_cli("run", str(study_file), "--no-progress", cwd=tmp_path, env=ONE_THREAD, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming: {left} trial{'s' if left != 1 else ''} still queued" in rerun.stderr
    assert "runs those and stops" in rerun.stderr
    study = optuna.load_study(study_name="open", storage=url)
    assert len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))) \
        == len(finished) + left
    assert still_queued(study) == 0


BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_the_deadline_holds_on_a_study_of_thousands_of_trials() -> None:
    # benchmarks/deadline_overrun.py: a real 8-trial study, grown to 2,000 trials in SQL, resumed
    # with a budget in a fresh process; the same for the 8-trial study, side by side. The budget
    # leaves a fresh process's start-up on a busy machine (up to about 20 s) inside it.
    budget = 25.0
    run = subprocess.run([sys.executable, "deadline_overrun.py", "--base-trials", "8", "--trials", "2000",
                          "--timeout", str(budget)],
                         cwd=BENCHMARKS, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    values = {f"{kind}_{size}": float(value) for kind, size, value in
              re.findall(r"^(overrun|exit)_(small|large)_s=(-?[\d.]+)$", run.stdout, re.MULTILINE)}
    assert len(values) == 4, run.stdout
    for size in ("small", "large"):
        # Past the deadline: the alarm's grace at most, then the interpreter's exit, which a busy
        # machine slows (measured beside the run) and no run can shorten.
        overrun, teardown = values[f"overrun_{size}"], values[f"exit_{size}"]
        assert overrun < HARD_GRACE_S + teardown + 3.0, f"{size} study: {overrun} s past a {budget:g} s budget " \
                                                         f"(exit {teardown} s)\n{run.stdout}"
    assert re.findall(r"(\d+) tracebacks", run.stdout) == ["0", "0"], run.stdout
