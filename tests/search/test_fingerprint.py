"""A resumed study is checked against the fingerprint it stored at creation: real SQLite, real plugins,
real data; nothing is trained (a study's trials are only queued)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from conftest import has_study, run_cli, write_study

from automl import __version__
from automl.config import load_study_file
from automl.errors import UsageError
from automl.plugin.registry import Registered, Registry, registry
from automl.search.plan import StudyPlan, plan_study
from automl.search.study import create_or_resume, join_study, queue_run
from automl.storage.schema import CONFIG_ATTR, FINGERPRINT_ATTR, TASK_ATTR

BASE = """
    name = "fp"
    n_trials = 2
    storage = "sqlite:///{db}"
    {top}
    [data]
    dataset = "{dataset}"
    {data}
    [search]
    {families}
    {search}
    [train]
    max_epochs = {max_epochs}
    batch_size = {batch_size}
    {train}
"""


def plan_of(tmp_path: Path, registry_: Registry | None = None, *, top: str = "", dataset: str = "digits",
            data: str = "", families: str | None = '["mlp"]', batch_size: str = "[32, 64]", search: str = "",
            max_epochs: int = 1, train: str = "") -> StudyPlan:
    """The plan of a study file; ``families=None`` leaves [search] families out (every installed one)."""
    path = write_study(tmp_path, BASE.format(db=tmp_path / "fp.db", top=top, dataset=dataset, data=data,
                                             families=f"families = {families}" if families else "",
                                             batch_size=batch_size, search=search, max_epochs=max_epochs,
                                             train=train))
    return plan_study(load_study_file(path), path, registry_ or registry())


def created(plan: StudyPlan) -> optuna.Study:
    """The study made and its trials queued, as `automl run` does before any trial runs."""
    study = create_or_resume(plan)
    queue_run(study, plan.config.trials_per_run(plan.config.timeout))
    return study


def refused(plan: StudyPlan) -> str:
    with pytest.raises(UsageError) as caught:
        create_or_resume(plan)
    return str(caught.value)


def queued(tmp_path: Path) -> int:
    return len(optuna.load_study(study_name="fp", storage=f"sqlite:///{tmp_path / 'fp.db'}").trials)


def test_widened_training_choices_are_refused_naming_the_key_and_both_values(tmp_path: Path) -> None:
    created(plan_of(tmp_path))
    message = refused(plan_of(tmp_path, batch_size="[32, 64, 128]"))
    assert "train.batch_size: stored one of [32, 64], now one of [32, 64, 128]" in message
    assert "the study file or an installed plugin changed" in message and "new study name" in message
    assert queued(tmp_path) == 2  # nothing queued by the refused run
    # Workers joining with the changed file are refused as well.
    with pytest.raises(UsageError, match="train.batch_size"):
        join_study(plan_of(tmp_path, batch_size="[32, 64, 128]"))


def test_resume_with_the_same_file_goes_on_without_notes(tmp_path: Path) -> None:
    created(plan_of(tmp_path))
    notes: list[str] = []
    study = create_or_resume(plan_of(tmp_path), note=notes.append)
    assert notes == [] and study.user_attrs[FINGERPRINT_ATTR]["automl_version"] == __version__


class Toy:
    """A family whose depth range the test sets, as a plugin's new release might change it."""

    name = "toy"
    task_kinds = ("image",)

    def __init__(self, max_depth: int, extra: bool = False) -> None:
        self.max_depth, self.extra = max_depth, extra

    def search_space(self, trial: Any, task: Any) -> dict[str, Any]:
        params = {"depth": trial.suggest_int("depth", 1, self.max_depth)}
        if self.extra:
            params["kernel"] = trial.suggest_categorical("kernel", [3, 5])
        return params

    def build(self, params: dict[str, Any], task: Any) -> Any:
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(task.num_classes))


def with_toy(family: Toy) -> Registry:
    real = registry()
    return Registry({"toy": Registered(family, real.families["mlp"].source), "mlp": real.families["mlp"]},
                    real.datasets)


@pytest.mark.parametrize(("changed", "expected"), [
    (Toy(8), "toy.depth: stored an integer in [1, 4], now an integer in [1, 8]"),
    (Toy(4, extra=True), "toy.kernel: stored not set, now one of [3, 5]"),
])
def test_a_changed_family_space_is_refused(tmp_path: Path, changed: Toy, expected: str) -> None:
    created(plan_of(tmp_path, with_toy(Toy(4)), families='["toy"]'))
    assert expected in refused(plan_of(tmp_path, with_toy(changed), families='["toy"]'))


def test_an_added_family_is_refused_as_the_family_choices_change(tmp_path: Path) -> None:
    # Optuna cannot sample a categorical parameter whose choices changed ("dynamic value space").
    created(plan_of(tmp_path, with_toy(Toy(4)), families='["toy"]'))
    message = refused(plan_of(tmp_path, with_toy(Toy(4)), families='["toy", "mlp"]'))
    assert "family: stored one of ['toy'], now one of ['toy', 'mlp']" in message


def only_mlp() -> Registry:
    real = registry()
    return Registry({"mlp": real.families["mlp"]}, real.datasets)


def test_a_family_installed_since_does_not_stop_a_study_that_searches_every_installed_one(tmp_path: Path) -> None:
    study = created(plan_of(tmp_path, only_mlp(), families=None))
    notes: list[str] = []
    plan = plan_of(tmp_path, with_toy(Toy(4)), families=None)  # "toy" is installed, and listed first
    assert list(plan.families) == ["toy", "mlp"]
    create_or_resume(plan, note=notes.append)
    assert list(plan.families) == ["mlp"]
    assert notes == [f"study 'fp' in sqlite:///{tmp_path / 'fp.db'} keeps searching the families it was created "
                     "with (mlp); 'toy' is installed since and not searched: to search toy, use a new study name "
                     "(with [search] families listing the families to compare, or left out for every installed one)"]
    # Workers narrow their plan as the run does, and the trials sample the families of old.
    worker_plan = plan_of(tmp_path, with_toy(Toy(4)), families=None)
    joined, _ = join_study(worker_plan)
    assert list(worker_plan.families) == ["mlp"]
    assert joined.user_attrs[FINGERPRINT_ATTR] == study.user_attrs[FINGERPRINT_ATTR]


def test_a_family_uninstalled_since_is_named(tmp_path: Path) -> None:
    created(plan_of(tmp_path, with_toy(Toy(4)), families=None))
    message = refused(plan_of(tmp_path, only_mlp(), families=None))
    assert ("searches the families installed when it was created (toy, mlp); 'toy' is not among the installed "
            "families that build for image tasks now") in message and "reinstall the plugin" in message


@pytest.mark.parametrize(("changed", "expected"), [
    ({"max_epochs": 2}, "train.max_epochs: stored 1, now 2"),
    ({"train": "augment = true"}, "train.augment: stored false, now true"),
    ({"search": "reduction_factor = 2"}, "search.reduction_factor: stored 3, now 2"),
    ({"search": 'pruner = "none"'}, 'search.pruner: stored "moasha", now "none"'),
    ({"top": "[budget]\nmax_latency_ms = 50", "search": 'latency_device = "cpu"'},
     'search.latency_device: stored "train", now "cpu"'),
])
def test_a_change_in_how_trials_train_stop_or_are_timed_is_refused(tmp_path: Path, changed: dict[str, Any],
                                                                    expected: str) -> None:
    created(plan_of(tmp_path, top=changed.get("top", "")))
    message = refused(plan_of(tmp_path, **changed))
    assert expected in message and "another search space, training or data" in message


def test_how_trials_run_and_which_are_sampled_next_may_change(tmp_path: Path) -> None:
    created(plan_of(tmp_path))
    notes: list[str] = []
    create_or_resume(plan_of(tmp_path, search='sampler = "random"\nlatency_device = "cpu"',
                             train='accelerator = "cpu"\nprecision = "32-true"\nloader_workers = 0'),
                     note=notes.append)
    # Latency is no objective or budget here, so where it is timed changes nothing ranked; a trial
    # may train in another precision (the study moved to another machine), said so, as the trials
    # before and after share the front.
    where = f"study 'fp' in sqlite:///{tmp_path / 'fp.db'}"
    assert notes == [f"{where}: search.sampler: stored \"tpe\", now \"random\"; the trials run so far stay as they "
                     "are, the next ones are sampled by \"random\"",
                     f"{where}: train.precision: stored \"auto\", now \"32-true\"; the trials run so far trained "
                     "with \"auto\" and share the front with the next ones, which train with \"32-true\"; for a "
                     "front of one train.precision, use a new study name"]


def test_a_key_the_stored_config_lacks_is_not_judged(tmp_path: Path) -> None:
    study = created(plan_of(tmp_path))
    config = study.user_attrs[CONFIG_ATTR]
    study.set_user_attr(CONFIG_ATTR, {**config, "train": {k: v for k, v in config["train"].items() if k != "augment"}})
    notes: list[str] = []
    create_or_resume(plan_of(tmp_path, train="augment = true"), note=notes.append)
    assert notes == []


def test_changed_objectives_are_refused(tmp_path: Path) -> None:
    created(plan_of(tmp_path))
    message = refused(plan_of(tmp_path, families='["mlp"]\nobjectives = ["val_accuracy", "params"]'))
    assert 'search.objectives: stored ["val_accuracy", "flops"], now ["val_accuracy", "params"]' in message


@pytest.mark.parametrize(("top", "data", "expected"), [
    ("", "val_size = 0.2", "data.val_size: stored 0.15, now 0.2"),
    ("seed = 1", "", "seed: stored 0, now 1"),
])
def test_changed_splits_are_refused(tmp_path: Path, top: str, data: str, expected: str) -> None:
    created(plan_of(tmp_path))
    message = refused(plan_of(tmp_path, top=top, data=data))
    assert expected in message and "the data as loaded and split" in message


def write_csv(path: Path, rows: int = 60, flip: bool = False) -> Path:
    rng = np.random.default_rng(0)
    lines = ["a,b,label"]
    for index in range(rows):
        label = index % 2
        value = rng.normal(label, 0.3)
        lines.append(f"{-value if flip and index == 7 else value:.4f},{rng.normal():.4f},{'yes' if label else 'no'}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_csv_moved_with_the_same_content_is_harmless_and_noted(tmp_path: Path) -> None:
    first = write_csv(tmp_path / "first.csv")
    created(plan_of(tmp_path, dataset="csv", data=f'path = "{first}"'))
    moved = tmp_path / "moved.csv"
    shutil.copy(first, moved)
    notes: list[str] = []
    create_or_resume(plan_of(tmp_path, dataset="csv", data=f'path = "{moved}"'), note=notes.append)
    assert len(notes) == 1 and "data.options.path" in notes[0] and "moved.csv" in notes[0]
    assert "the data loaded and split is the same" in notes[0]


def test_a_csv_whose_content_changed_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.csv")
    created(plan_of(tmp_path, dataset="csv", data=f'path = "{path}"'))
    write_csv(path, flip=True)  # one value edited in place: this process reads it again, as a new one would
    message = refused(plan_of(tmp_path, dataset="csv", data=f'path = "{path}"'))
    assert "the dataset's content or its split changed" in message and "data.options" not in message


def test_a_study_of_another_automl_version_is_told_apart(tmp_path: Path) -> None:
    study = created(plan_of(tmp_path))
    stored = study.user_attrs[FINGERPRINT_ATTR]
    study.set_user_attr(FINGERPRINT_ATTR, {**stored, "automl_version": "0.0.1"})
    message = refused(plan_of(tmp_path, batch_size="[32, 64, 128]"))
    assert f"created by automl 0.0.1 and this is automl {__version__}" in message
    notes: list[str] = []
    create_or_resume(plan_of(tmp_path), note=notes.append)
    assert notes == [f"study 'fp' in sqlite:///{tmp_path / 'fp.db'} was created by automl 0.0.1, this is automl "
                     f"{__version__}; its space and data are unchanged, so the study goes on"]


def old_study(tmp_path: Path, plan: StudyPlan, **stored: Any) -> optuna.Study:
    """A study as automl made it before fingerprints: config and task attrs only."""
    study = optuna.create_study(study_name="fp", storage=f"sqlite:///{tmp_path / 'fp.db'}",
                                directions=["maximize", "minimize"])
    study.set_user_attr(CONFIG_ATTR, {**plan.config.to_dict(), "families": list(plan.families),
                                      "objectives": list(plan.config.search.objectives), **stored})
    study.set_user_attr(TASK_ATTR, plan.data.task.to_dict())
    return study


def test_a_study_from_before_fingerprints_resumes_with_a_note_and_gets_one(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    old_study(tmp_path, plan)
    notes: list[str] = []
    study = create_or_resume(plan, note=notes.append)
    assert len(notes) == 1 and "before automl kept a fingerprint" in notes[0]
    assert study.user_attrs[FINGERPRINT_ATTR]["space"]["train.batch_size"]["attributes"]["choices"] == [32, 64]
    assert "train.batch_size" in refused(plan_of(tmp_path, batch_size="[32, 64, 128]"))


def test_a_study_from_before_fingerprints_is_checked_on_its_families_and_trials(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    study = old_study(tmp_path, plan, families=["cnn"])
    assert "family: stored one of ['cnn'], now one of ['mlp']" in refused(plan)
    assert not study.user_attrs.get(FINGERPRINT_ATTR)


def test_a_study_from_before_fingerprints_is_checked_on_its_trials_parameters(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    study = old_study(tmp_path, plan)
    trial = study.ask()
    trial.suggest_categorical("train.batch_size", [32, 64])
    study.tell(trial, [0.5, 1.0])
    message = refused(plan_of(tmp_path, batch_size="[32, 64, 128]"))
    assert "train.batch_size: stored one of [32, 64], now one of [32, 64, 128]" in message


@pytest.mark.slow  # a fresh automl process plans the study: tens of seconds on a busy machine
def test_cli_resume_with_changed_choices_exits_2_before_queueing(tmp_path: Path) -> None:
    study_file = write_study(tmp_path, BASE.format(db=tmp_path / "fp.db", top="", dataset="digits", data="",
                                                   families='families = ["mlp"]', batch_size="[32, 64]",
                                                   search="", max_epochs=1, train=""))
    assert run_cli("run", str(study_file), "--workers", "0", cwd=tmp_path).returncode == 0
    study_file.write_text(study_file.read_text().replace("[32, 64]", "[32, 64, 128]"))
    result = run_cli("run", str(study_file), "--workers", "0", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "error:" in result.stderr and "train.batch_size: stored one of [32, 64], now one of [32, 64, 128]" in \
        result.stderr.replace("\n", " ")
    assert has_study(tmp_path / "fp.db") and queued(tmp_path) == 2


def test_a_changed_budget_limit_goes_on_with_a_note(tmp_path: Path) -> None:
    created(plan_of(tmp_path, top="[budget]\nmax_flops = 1e6"))
    notes: list[str] = []
    create_or_resume(plan_of(tmp_path, top="[budget]\nmax_flops = 2e6"), note=notes.append)
    assert notes == [f"study 'fp' in sqlite:///{tmp_path / 'fp.db'}: [budget] max_flops was 1e+06, now 2e+06; "
                     "trials already stored keep the feasibility the old limit gave them, new trials are judged "
                     "by the new one"]


def test_a_tokenizer_option_that_changes_the_token_ids_is_refused(tmp_path: Path) -> None:
    # "ab" and "ba" are two words or two characters: the same vocabulary size and task, other ids.
    path = tmp_path / "texts.csv"
    path.write_text("text,label\n" + "".join(f"{'ab' if i % 2 else 'ba'},{i % 2}\n" for i in range(40)))
    created(plan_of(tmp_path, dataset="text", data=f'path = "{path}"\ntokenizer = "words"'))
    message = refused(plan_of(tmp_path, dataset="text", data=f'path = "{path}"\ntokenizer = "chars"'))
    assert 'data.options.tokenizer: stored "words", now "chars"' in message
    assert "the data as loaded and split" in message and "task." not in message
