"""Every signal a terminal, a user or a scheduler sends to end a run leaves nothing RUNNING: the
running trial is recorded as interrupted and queued again."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import optuna
import pytest
from conftest import has_study, write_study
from optuna.trial import TrialState

from automl.config import load_study_file
from automl.plugin.registry import registry
from automl.runner import run_plan
from automl.search.plan import plan_study
from automl.workers.interrupts import TERMINATION_SIGNALS, Interrupted, raise_on_signals


@pytest.mark.parametrize("signum", TERMINATION_SIGNALS, ids=[signal.Signals(s).name for s in TERMINATION_SIGNALS])
def test_each_termination_signal_is_an_interrupt(signum: int) -> None:
    before = signal.getsignal(signum)
    with pytest.raises(Interrupted) as interrupted, raise_on_signals():
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the handler raises at the next bytecode
    assert interrupted.value.signum == signum and interrupted.value.exit_code == 128 + signum
    assert signal.getsignal(signum) == before


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGUSR1], ids=["SIGHUP", "SIGUSR1"])
def test_a_hang_up_or_a_scheduler_warning_records_the_running_trial(tmp_path: Path, signum: int) -> None:
    db = tmp_path / "signal.db"
    url = f"sqlite:///{db}"
    study_file = write_study(tmp_path, f"""
        name = "signal"
        n_trials = 1
        storage = "{url}"
        [search]
        families = ["mlp"]
        pruner = "none"
        [train]
        max_epochs = 200
        batch_size = [128]
    """)
    plan = plan_study(load_study_file(study_file), study_file, registry())

    def send_mid_trial() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            trials = optuna.load_study(study_name="signal", storage=url).trials if has_study(db) else []
            if any(t.state == TrialState.RUNNING and "n_params" in t.user_attrs for t in trials):
                os.kill(os.getpid(), signum)  # as the terminal, the ssh session or Slurm would
                return
            time.sleep(0.05)

    sender = threading.Thread(target=send_mid_trial)
    sender.start()
    with pytest.raises(Interrupted) as interrupted:
        run_plan(plan, progress=False)
    sender.join()
    assert interrupted.value.exit_code == 128 + signum
    trials = optuna.load_study(study_name="signal", storage=url).trials
    assert [(t.state, t.user_attrs.get("fail_reason")) for t in trials] == [
        (TrialState.FAIL, "interrupted"), (TrialState.WAITING, None)]
    assert trials[1].params == trials[0].params
