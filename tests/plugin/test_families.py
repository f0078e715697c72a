"""Every registered family on every task kind it declares: sample, build, run, count, replay.

The cases come from the real plugin registry, so an installed third-party family is checked too.
"""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest

from automl import TASK_KINDS, Task, conformance
from automl.training.efficiency import count_parameters
from automl.plugin.registry import registry
from automl.plugin.space import namespaced_params, replay_params, sample_params

TASKS = [
    Task("image", (1, 8, 8), 10),  # the digits
    Task("image", (3, 32, 32), 10),
    Task("sequence", (12, 3), 5),
    Task("tabular", (20,), 3),
    Task("tokens", (16,), 4, vocab_size=50),
]
# One task of each kind, for checking that undeclared kinds are refused.
TASK_PER_KIND = {task.kind: task for task in TASKS}
CONFIGS_PER_TASK = 6
SPAN_SAMPLES = 40
MIN_SPAN = 100

FAMILIES = registry().families


def _task_id(task: Task) -> str:
    return f"{task.kind}{'x'.join(map(str, task.input_shape))}"


SUPPORTED = [pytest.param(name, task, id=f"{name}-{_task_id(task)}")
             for name, registered in FAMILIES.items() for task in TASKS
             if task.kind in registered.obj.task_kinds]
UNSUPPORTED = [pytest.param(name, kind, id=f"{name}-{kind}")
               for name, registered in FAMILIES.items() for kind in TASK_KINDS
               if kind not in registered.obj.task_kinds]


def _random_study(seed: int = 0) -> optuna.Study:
    return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))


def test_registry_holds_the_built_in_families():
    assert {"mlp", "cnn", "rnn", "transformer"} <= set(FAMILIES)


@pytest.mark.parametrize(("name", "task"), SUPPORTED)
def test_sampled_configs_build_run_and_replay(name, task):
    """The conformance checks again, on larger images too (automl.testing uses digits-sized ones)."""
    family = registry().family(name)
    configs = conformance.sample_configs(family, task, CONFIGS_PER_TASK)
    for config in configs:
        assert namespaced_params(config.stored, name).items() <= config.params.items(), \
            "every suggested parameter reaches build() unchanged"
    conformance.check_build_and_forward(family, task, configs)
    conformance.check_replay(family, task, configs)


@pytest.mark.parametrize(("name", "kind"), UNSUPPORTED)
def test_undeclared_task_kinds_are_refused(name, kind):
    family = registry().family(name)
    task = TASK_PER_KIND[kind]
    with pytest.raises(ValueError, match=kind):
        sample_params(family, _random_study().ask(), task)
    declared = next(t for t in TASKS if t.kind in family.task_kinds)
    params = sample_params(family, _random_study().ask(), declared)
    with pytest.raises(ValueError, match=kind):
        family.build(params, task)


def _sampled_sizes(family, task: Task) -> list[int]:
    study = _random_study(seed=1)
    return [count_parameters(family.build(sample_params(family, study.ask(), task), task))
            for _ in range(SPAN_SAMPLES)]


@pytest.mark.parametrize("name", list(FAMILIES))
def test_space_spans_tiny_to_large_models(name):
    family = registry().family(name)
    task = next(t for t in TASKS if t.kind in family.task_kinds)
    sizes = _sampled_sizes(family, task)
    assert max(sizes) >= MIN_SPAN * min(sizes), f"{name}: {min(sizes)} to {max(sizes)} parameters"


DIGITS = TASKS[0]
# The smallest and largest model of each built-in family on the digits, by parameter count.
BUILTIN_EXTREMES = {
    "mlp": ({"depth": 1, "width": 4, "activation": "relu", "norm": "none", "dropout": 0.0},
            {"depth": 4, "width": 1024, "activation": "gelu", "norm": "layer", "dropout": 0.5}),
    "cnn": ({"blocks": 1, "channels": 8, "kernel": 3, "norm": "none"},
            {"blocks": 4, "channels": 128, "kernel": 5, "norm": "batch", "pool": "max"}),
    "rnn": ({"cell": "gru", "hidden": 16, "layers": 1, "bidirectional": False, "readout": "last"},
            {"cell": "lstm", "hidden": 256, "layers": 3, "bidirectional": True, "readout": "mean",
             "dropout": 0.5}),
    "transformer": (
        {"tokenizer": "rows", "d_model": 16, "heads": 1, "layers": 1,
         "ff_multiplier": 1, "dropout": 0.0, "norm_first": False, "pooling": "mean"},
        {"tokenizer": "patches", "patch_size": 2, "d_model": 256, "heads": 8, "layers": 4,
         "ff_multiplier": 4, "dropout": 0.3, "norm_first": True, "pooling": "cls"}),
}
# The largest built-in models must still train an epoch of the digits on a CPU in seconds.
MAX_BUILTIN_PARAMETERS = 5_000_000


@pytest.mark.parametrize("name", list(BUILTIN_EXTREMES))
def test_builtin_extremes_bound_the_space(name):
    family = registry().family(name)
    sizes = []
    for extreme in BUILTIN_EXTREMES[name]:
        params = replay_params(family, {f"{name}.{key}": value for key, value in extreme.items()},
                               DIGITS)
        assert params == extreme
        sizes.append(count_parameters(family.build(params, DIGITS)))
    smallest, largest = sizes
    assert largest >= MIN_SPAN * smallest
    assert largest <= MAX_BUILTIN_PARAMETERS
    assert all(smallest <= size <= largest for size in _sampled_sizes(family, DIGITS))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TorchScript's
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_the_transformer_leaves_token_padding_out(pooling: str) -> None:
    """Whatever sits at a padded position (here, its learned position vector) does not reach the
    logits; a text that is all padding still gets finite logits; TorchScript (what `automl export
    --format torchscript` scripts with) runs the mask as PyTorch does."""
    import torch

    task = TASK_PER_KIND["tokens"]
    params = {"d_model": 16, "heads": 2, "layers": 2, "ff_multiplier": 2, "dropout": 0.0,
              "norm_first": False, "pooling": pooling}
    torch.manual_seed(0)
    model = FAMILIES["transformer"].obj.build(params, task).eval()
    texts = torch.randint(2, task.vocab_size, (3, 16))
    texts[0, :5] = 0  # left padding, as the tokenizer pads
    texts[1, :] = 0   # an empty text
    with torch.no_grad():
        before = model(texts)
        first_real = 1 if pooling == "cls" else 0  # the [CLS] token takes position 0
        model.position[:, first_real:first_real + 5] += 10.0
        after = model(texts)
    assert torch.isfinite(before).all()
    assert torch.allclose(before[0], after[0], atol=1e-5), "padding reached the logits"
    assert not torch.allclose(before[2], after[2]), "the real tokens' positions must matter"
    with torch.no_grad():
        assert torch.allclose(torch.jit.script(model)(texts), after, atol=1e-5)


def test_the_mlp_s_linear_bag_of_embeddings_learns_the_example_reviews() -> None:
    """A text study's first trial, fastText's linear bag, at the centre of the default training
    ranges (lr 1e-3, batches of 64, 10 epochs): its embeddings start at zero and their mean is
    scaled by sqrt(width), so the rarely seen words move the logits within those steps (from
    random N(0, 1) embeddings, unscaled, the same model scored 0.56 to 0.62 on these test rows)."""
    import torch

    from automl.config import DataConfig
    from automl.data.prepare import prepare
    from automl.training.loop import TrainingParams, train

    reviews = Path(__file__).resolve().parents[2] / "examples" / "data" / "reviews.tsv"
    data = prepare(DataConfig(dataset="text", path=str(reviews), folds=1), registry(), 0)
    family = FAMILIES["mlp"].obj
    (start,) = family.starting_points(data.task)
    torch.manual_seed(0)
    model = family.build(start, data.task)
    bag, linear = model
    assert start["depth"] == 0 and isinstance(linear, torch.nn.Linear)
    assert not bag.embedding.weight.any(), "the embeddings start at zero"
    with torch.no_grad():
        bag.embedding.weight.normal_()
        texts = torch.tensor([[0, 0, 2, 3], [4, 5, 6, 7]])
        mean = bag.embedding(texts).sum(dim=1) / torch.tensor([[2.0], [4.0]])  # padding (0) left out
        assert torch.allclose(bag(texts), mean * math.sqrt(start["embedding"]))
        bag.embedding.weight.zero_()
    params = TrainingParams(optimizer="adam", lr=1e-3, weight_decay=1e-4, batch_size=64)
    result = train(model, data, params, torch.device("cpu"), "32-true", 10, seed=0)
    assert result.test_accuracy is not None and result.test_accuracy >= 0.9
