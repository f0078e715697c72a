"""What can be known before the first trial is found out before anything is stored: the device and
precision exist, and the smallest config of each family trains one step on the real data there."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from automl import Task, UsageError
from automl.config import load_study_file
from automl.plugin.registry import Registered, Registry, registry
from automl.search.plan import plan_study
from automl.search.preflight import check_device
from conftest import make_distribution, run_cli, with_path, write_study

EXPLODING_MODULE = """
import torch
import automl

class Exploding:
    name = "exploding"
    task_kinds = ("image",)
    def search_space(self, trial, task):
        return {"width": trial.suggest_int("width", 1, 4)}
    def build(self, params, task):
        class Explodes(torch.nn.Module):
            def forward(self, x):
                raise RuntimeError("kaboom in forward")
        return Explodes()

@automl.hookimpl
def register_families(register):
    register(Exploding())
"""


class Frozen:
    """Builds logits of the right shape that no parameter produced: forward passes, backward fails."""

    name = "frozen"
    task_kinds = ("image",)

    def search_space(self, trial, task: Task) -> dict:
        return {"width": trial.suggest_int("width", 1, 4)}

    def build(self, params: dict, task: Task) -> torch.nn.Module:
        class Constant(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.unused = torch.nn.Linear(1, 1)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return torch.zeros(len(x), task.num_classes)
        return Constant()


def _study(tmp_path: Path, train: str = "", search: str = "") -> Path:
    return write_study(tmp_path, f"""
        name = "pre"
        n_trials = 1
        storage = "sqlite:///{tmp_path / 'pre.db'}"
        [search]
        {search}
        [train]
        max_epochs = 1
        {train}
    """)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_a_gpu_asked_for_without_one_is_exit_2_with_nothing_stored(tmp_path: Path) -> None:
    study = _study(tmp_path, 'accelerator = "gpu"')
    result = run_cli("run", str(study), "--no-progress", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert "key 'train.accelerator': \"gpu\" but no CUDA GPU is visible" in message
    assert 'use "auto" or "cpu"' in message and "Traceback" not in message
    assert not (tmp_path / "pre.db").exists()


@pytest.mark.parametrize("accelerator", ["cuda", "mps"])
def test_accelerator_names_other_than_the_three_are_refused_by_the_study_file(tmp_path: Path,
                                                                              accelerator: str) -> None:
    with pytest.raises(UsageError, match="key 'train.accelerator': Input should be 'auto', 'cpu' or 'gpu'"):
        load_study_file(_study(tmp_path, f'accelerator = "{accelerator}"'))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_float16_autocast_on_the_cpu_is_refused_not_silently_changed(tmp_path: Path) -> None:
    study = _study(tmp_path, 'accelerator = "cpu"\nprecision = "16-mixed"')
    with pytest.raises(UsageError, match="key 'train.precision': \"16-mixed\" needs a CUDA GPU"):
        check_device(load_study_file(study), study)
    bf16 = _study(tmp_path, 'accelerator = "cpu"\nprecision = "bf16-mixed"')
    assert check_device(load_study_file(bf16), bf16) == torch.device("cpu")


def test_bf16_on_a_gpu_without_it_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A GPU older than Ampere, as torch reports it.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100")
    study = _study(tmp_path, 'accelerator = "gpu"\nprecision = "bf16-mixed"')
    with pytest.raises(UsageError, match="\"bf16-mixed\" but Tesla V100 has no bfloat16 support"):
        check_device(load_study_file(study), study)
    auto = _study(tmp_path, 'accelerator = "gpu"')
    assert check_device(load_study_file(auto), auto) == torch.device("cuda")


def test_a_study_whose_only_family_fails_in_forward_is_exit_2_with_nothing_stored(tmp_path: Path) -> None:
    site = make_distribution(tmp_path / "site", "exploding-plugin", {"exploding_mod": EXPLODING_MODULE},
                             {"exploding": "exploding_mod"})
    study = _study(tmp_path, search='families = ["exploding"]')
    result = run_cli("run", str(study), "--no-progress", cwd=tmp_path, env=with_path(site))
    assert result.returncode == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert "one training step on cpu in precision 32-true fails on each of 4 drawn configs of every family" in message
    assert "family 'exploding': RuntimeError: kaboom in forward" in message and "Traceback" not in message
    assert not (tmp_path / "pre.db").exists()


def test_a_family_failing_backward_beside_one_that_trains_is_a_note(tmp_path: Path) -> None:
    real = registry()
    families = {"frozen": Registered(Frozen(), real.families["mlp"].source), "mlp": real.families["mlp"]}
    study = _study(tmp_path)
    plan = plan_study(load_study_file(study), study, Registry(families, real.datasets))
    assert list(plan.families) == ["frozen", "mlp"]
    [note] = [note for note in plan.notes if "'frozen'" in note]
    assert "one training step on cpu in precision 32-true fails on each of 4 drawn configs" in note
    assert "does not require grad" in note and "(params {'width':" in note
    with pytest.raises(UsageError, match="family 'frozen': RuntimeError: .*does not require grad"):
        plan_study(load_study_file(study), study, Registry({"frozen": families["frozen"]}, real.datasets))


class FirstWidthFails:
    """Its one-unit config (the smallest) fails forward on the data; every wider one trains."""

    name = "picky"
    task_kinds = ("image",)

    def search_space(self, trial, task: Task) -> dict:
        return {"width": trial.suggest_categorical("width", [1, 16])}

    def build(self, params: dict, task: Task) -> torch.nn.Module:
        width = params["width"]

        class Picky(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.hidden = torch.nn.Linear(64, width)
                self.out = torch.nn.Linear(width, task.num_classes)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                if width == 1 and self.training:
                    raise RuntimeError("one unit cannot train on this data")
                return self.out(self.hidden(x.flatten(1)))
        return Picky()


def test_one_failing_config_does_not_stand_for_its_family(tmp_path: Path) -> None:
    real = registry()
    picky = {"picky": Registered(FirstWidthFails(), real.families["mlp"].source)}
    study = _study(tmp_path)
    plan = plan_study(load_study_file(study), study, Registry(picky, real.datasets))
    assert not [note for note in plan.notes if "picky" in note], plan.notes
