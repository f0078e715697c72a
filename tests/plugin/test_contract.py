"""The contract in code: one check per rule, the same for the registry and the conformance suites."""

from __future__ import annotations

import optuna
import pytest
import torch

import automl
from automl import conformance
from automl.plugin.build import build_model, example_inputs
from automl.plugin.contract import check_dataset, check_family
from automl.plugin.space import NamespacedTrial

SOURCE = 'plugin "half" (module half_mod, half-plugin 1.0)'


class Complete:
    name = "complete"
    task_kinds = ("tabular",)

    def search_space(self, trial: automl.Trial, task: automl.Task) -> dict:
        return {"width": trial.suggest_int("width", 2, 8)}

    def build(self, params: dict, task: automl.Task) -> torch.nn.Module:
        return torch.nn.Linear(task.input_shape[0], params.get("outputs", task.num_classes))


def _family(**members) -> object:
    return type("Changed", (Complete,), members)()


class Half:
    name = "half"
    task_kinds = ("image",)


BROKEN_FAMILIES = [
    (Half(), "a family (Half) without search_space, build; a family needs name, task_kinds, search_space, "
             "build (see automl.Family)."),
    (_family(name="two words"), "a family named 'two words'; names must be identifiers"),
    (_family(task_kinds="tabular"), "family 'complete': task_kinds='tabular'; expected a non-empty tuple"),
    (_family(task_kinds=("tabular", "graph")), "task_kinds=('tabular', 'graph')"),
    (_family(build=3), "family 'complete': build is 3, expected a method."),
]


@pytest.mark.parametrize(("family", "message"), BROKEN_FAMILIES)
def test_a_broken_family_gets_one_message_from_the_registry_and_the_suite(family, message) -> None:
    with pytest.raises(automl.PluginError) as registered:
        check_family(family, SOURCE)
    assert str(registered.value).startswith(f"{SOURCE} registered ") and message in str(registered.value)
    with pytest.raises(conformance.ConformanceError) as checked:
        conformance.check_family_contract(family)
    assert message in str(checked.value) and "registered" not in str(checked.value)


def test_an_old_style_dataset_is_told_what_the_contract_needs() -> None:
    class OldStyle:
        name = "old"
        option_keys = ("classes",)

        def load(self, seed, config):
            raise AssertionError("never loaded")

    with pytest.raises(automl.PluginError, match=r"a dataset \(OldStyle\) without options; a dataset needs "
                                                 r"name, options, load \(see automl.Dataset\)"):
        check_dataset(OldStyle(), SOURCE)


def test_the_complete_family_and_builtins_pass() -> None:
    check_family(Complete())
    assert isinstance(Complete(), automl.Family)


def test_every_trial_a_family_sees_offers_the_trial_protocol() -> None:
    trial = optuna.create_study().ask()
    for candidate in (trial, NamespacedTrial(trial, "mlp"), optuna.trial.FixedTrial({"width": 3})):
        assert isinstance(candidate, automl.Trial), type(candidate).__name__


def test_build_model_checks_the_module_and_its_logits() -> None:
    task = automl.Task("tabular", (5,), 3)
    example = example_inputs(task, 2)
    assert build_model(Complete(), {}, task, example).training
    with pytest.raises(automl.PluginError, match=r"family complete: expected logits \[B, 3\], got \[B, 7\] "
                                                 r"for params \{'outputs': 7\}"):
        build_model(Complete(), {"outputs": 7}, task, example)
    with pytest.raises(automl.PluginError, match="family half: build returned str, expected a torch.nn.Module"):
        build_model(_family(name="half", build=lambda self, params, task: "model"), {}, task, example)


def test_example_inputs_are_what_a_family_receives() -> None:
    tokens = example_inputs(automl.Task("tokens", (16,), 4, vocab_size=50), 8, seed=3)
    assert tokens.dtype == torch.int64 and tokens.shape == (8, 16) and 0 <= tokens.min() <= tokens.max() < 50
    images = example_inputs(automl.Task("image", (1, 8, 8), 10), 2)
    assert images.dtype == torch.float32 and images.shape == (2, 1, 8, 8)
    assert torch.equal(tokens, example_inputs(automl.Task("tokens", (16,), 4, vocab_size=50), 8, seed=3))


def test_automl_exports_the_contract() -> None:
    # That `import automl` imports no torch (the Python API's load_model, suggest_model and
    # PruningCallback import it when first asked for, automl.__getattr__) is checked in a fresh
    # interpreter, together with every exported name, by tests/test_api.py.
    assert [name for name in automl.__all__ if not hasattr(automl, name)] == []
    assert {"Family", "Dataset", "DatasetOptions", "DataPath", "Trial", "hookimpl", "Task"} <= set(automl.__all__)
