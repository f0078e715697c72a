"""The built-in datasets read small generated files in each layout and become the right task."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from conftest import run_cli, write_study
from datafiles import labels, write_cifar, write_mnist, write_npz, write_pngs, write_table

from automl.config import DataConfig
from automl.data.prepare import prepare
from automl.errors import UsageError
from automl.plugin.registry import registry
from automl.plugin.tokenizer import PAD, UNKNOWN, Tokenizer
from automl.results.raw_inputs import input_description


def _prepare(dataset: str, path: Path, **options):
    return prepare(DataConfig(dataset=dataset, path=str(path), **options), registry(), 0)


@pytest.mark.parametrize(("shape", "options", "kind", "input_shape"), [
    ((60, 3, 6, 5), {}, "image", (3, 6, 5)),
    ((60, 7, 2), {}, "sequence", (7, 2)),
    ((60, 4), {}, "tabular", (4,)),
    ((60, 4), {"kind": "sequence"}, None, None),  # [N, F] is no sequence: refused
], ids=["image", "sequence", "tabular", "wrong-kind"])
def test_npz_kind_follows_the_shape_of_x(tmp_path: Path, shape, options, kind, input_shape) -> None:
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    path = write_npz(tmp_path / "data.npz", x, labels(3, 20))
    if kind is None:
        with pytest.raises(UsageError, match=r"x has shape \[60, 4\].*for kind 'sequence'"):
            _prepare("npz", path, **options)
        return
    data = _prepare("npz", path, **options)
    assert (data.task.kind, data.task.input_shape, data.task.num_classes) == (kind, input_shape, 3)
    assert len(data.train.y) + len(data.val.y) + len(data.test.y) == 60
    # Standardized with the train split's statistics (with cross-validation, every non-test row's).
    assert len(data.folds) == 3 and abs(float(data.non_test.x.mean())) < 1e-5


def test_npz_tokens_keep_their_ids(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 30, size=(60, 9))
    data = _prepare("npz", write_npz(tmp_path / "t.npz", x, labels(2, 30)), kind="tokens")
    assert (data.task.kind, data.task.input_shape, data.task.vocab_size) == ("tokens", (9,), int(x.max()) + 1)
    assert data.train.x.dtype.is_floating_point is False


def test_csv_table_with_named_classes(tmp_path: Path) -> None:
    y = labels(3, 20)
    rows = [[i * 0.5, -i, ["setosa", "versicolor", "virginica"][label]] for i, label in enumerate(y)]
    data = _prepare("csv", write_table(tmp_path / "iris.csv", ["a", "b", "species"], rows), label="species")
    assert (data.task.kind, data.task.input_shape) == ("tabular", (2,))
    assert data.task.class_names == ("setosa", "versicolor", "virginica")


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_text_vocabulary_comes_from_the_train_split_only(tmp_path: Path, suffix: str) -> None:
    y = labels(2, 30)
    rows = [[f"Word{i} {'good great' if label else 'bad awful'}", ["neg", "pos"][label]]
            for i, label in enumerate(y)]
    path = write_table(tmp_path / f"reviews{suffix}", ["review", "sentiment"], rows)
    data = _prepare("text", path, text="review", label="sentiment", max_length=4, folds=1)
    task = data.task
    assert (task.kind, task.input_shape, task.class_names) == ("tokens", (4,), ("neg", "pos"))
    # 4 shared words plus one word per train sample; each word{i} of val/test is unknown.
    assert task.vocab_size == 2 + 4 + len(data.train.y)
    assert (data.test.x[:, 1] == UNKNOWN).all() and (data.train.x[:, 1] > UNKNOWN).all()
    assert (data.train.x[:, 0] == PAD).all(), "three tokens in four places: padded on the left"
    # What an export records is enough to encode a text as the model saw it.
    recorded = input_description(data, "text")["preprocessing"]["before_the_model"]["tokenize"]
    assert (recorded["unit"], recorded["lowercase"], recorded["max_length"]) == ("wordpunct", True, 4)
    vocabulary, text = recorded["vocabulary"], "Word0 GOOD great unseen"
    tokens = re.findall(recorded["pattern"], text.lower())
    ids = [vocabulary.get(token, recorded["unknown_id"]) for token in tokens][:recorded["max_length"]]
    assert ids[1:3] == [vocabulary["good"], vocabulary["great"]] and ids[3] == UNKNOWN
    assert len(vocabulary) + 2 == task.vocab_size and recorded["pad_id"] == PAD


def test_text_words_next_to_punctuation_are_the_words_training_taught(tmp_path: Path) -> None:
    y = labels(2, 30)
    rows = [[f"the film was {'great' if label else 'dull'} and {'moving' if label else 'tedious'}", label]
            for label in y]
    path = write_table(tmp_path / "train.tsv", ["text", "label"], rows)
    test = write_table(tmp_path / "test.tsv", ["text", "label"], [["Great, moving!", 1], ["Dull... tedious.", 0]])
    data = _prepare("text", path, test_path=str(test), max_length=5)
    ids = data.vocabulary.ids  # the punctuation marks are new: unknown
    assert data.test.x[:, -4:].tolist() == [[ids["great"], UNKNOWN, ids["moving"], UNKNOWN],
                                            [ids["dull"], UNKNOWN, ids["tedious"], UNKNOWN]]
    # Split on whitespace, "great," is a token no training text had: nothing of the text is known.
    whitespace = _prepare("text", path, test_path=str(test), max_length=5, tokenizer="words")
    assert (whitespace.test.x[:, -2:] == UNKNOWN).all()


def test_text_characters_truncate_to_max_length(tmp_path: Path) -> None:
    rows = [["ab" * 10, label] for label in labels(2, 30)]
    data = _prepare("text", write_table(tmp_path / "t.csv", ["text", "label"], rows),
                    tokenizer="chars", max_length=5)
    assert data.task.vocab_size == 4 and data.train.x.shape[1] == 5
    assert (data.train.x > UNKNOWN).all()


@pytest.mark.parametrize(("mode", "channels"), [("L", 1), ("RGB", 3)])
def test_image_folder(tmp_path: Path, mode: str, channels: int) -> None:
    root = write_pngs(tmp_path / "images", {"cat": 20, "dog": 20}, mode=mode)
    data = _prepare("imagefolder", root)
    assert data.task.input_shape == (channels, 8, 8)
    assert data.task.class_names == ("cat", "dog")
    assert _prepare("imagefolder", root, image_size=4).task.input_shape == (channels, 4, 4)


@pytest.mark.parametrize(("dataset", "folder", "gzipped"), [
    ("mnist", "MNIST", False), ("fashion_mnist", "FashionMNIST", True)])
def test_mnist_layouts_keep_their_test_set(tmp_path: Path, dataset: str, folder: str, gzipped: bool) -> None:
    root = write_mnist(tmp_path / "root", folder, train=60, test=20, gzipped=gzipped)
    data = _prepare(dataset, root, val_size=0.2)
    assert data.task.input_shape == (1, 28, 28) and data.task.num_classes == 10
    # 60 training images: cross-validated on 3 folds (the first fold's rows are the validation split).
    assert (len(data.train.y), len(data.val.y), len(data.test.y), len(data.folds)) == (40, 20, 20, 3)


def test_cifar_layouts_keep_their_test_set(tmp_path: Path) -> None:
    data = _prepare("cifar10", write_cifar(tmp_path / "c10"), val_size=0.2)
    assert data.task.input_shape == (3, 32, 32) and len(data.test.y) == 20
    assert data.task.class_names[:2] == ("class0", "class1")
    hundred = _prepare("cifar100", write_cifar(tmp_path / "c100", hundred=True, per_batch=40, test=100),
                       val_size=0.5)
    assert hundred.task.num_classes == 100 and len(hundred.test.y) == 100


def test_torchvision_root_missing_names_path_and_flag(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(UsageError, match=rf"no MNIST/raw folder under \[data\] path {tmp_path}.*download = true"):
        _prepare("mnist", tmp_path)
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as where torchvision is not installed
    with pytest.raises(UsageError, match=r'pip install "automl-pareto\[torchvision\]"'):
        _prepare("cifar10", tmp_path, download=True)


def test_rare_tokens_are_unknown_and_long_texts_keep_their_start() -> None:
    vocabulary = Tokenizer("words", max_length=3, min_freq=2).fit(["To be or not to be", "TO go"])
    assert vocabulary.ids == {"to": 2, "be": 3} and vocabulary.size == 4
    assert vocabulary.encode(["be to", "to be or not", ""]).tolist() == [
        [PAD, 3, 2], [2, 3, UNKNOWN], [PAD, PAD, PAD]]


def test_prepare_checks_the_options_of_a_config_made_in_code(tmp_path: Path) -> None:
    path = write_table(tmp_path / "t.csv", ["text", "label"], [["a b", label] for label in labels(2, 30)])
    with pytest.raises(UsageError, match=r"key 'data.max_length': Input should be greater than 0 \(found 0\)"):
        _prepare("text", path, max_length=0)
    with pytest.raises(UsageError, match=r"unknown key 'data.label'; allowed in \[data\] for dataset 'npz': "
                                         r"dataset, val_size, test_size, folds, path, test_path, val_path, kind"):
        _prepare("npz", path, label="y")


def test_broken_torchvision_files_are_named(tmp_path: Path) -> None:
    root = write_cifar(tmp_path / "c10")
    (root / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(UsageError, match=r"cannot read .*cifar-10-batches-py \(UnpicklingError"):
        _prepare("cifar10", root)


@pytest.mark.slow  # a whole study from its file: seconds
def test_a_text_study_scores_test_texts_whose_words_carry_punctuation(tmp_path: Path) -> None:
    write_table(tmp_path / "train.tsv", ["text", "label"],
                [[f"the film was {'great' if label else 'dull'} and {'moving' if label else 'tedious'}", label]
                 for label in labels(2, 30)])
    write_table(tmp_path / "test.tsv", ["text", "label"],
                [["Great, moving!", 1], ["Dull... tedious.", 0], ["moving; great.", 1], ["tedious, dull!", 0]])
    write_study(tmp_path, f"""
        name = "reviews"
        n_trials = 1
        storage = "sqlite:///{tmp_path / 'reviews.db'}"
        [data]
        dataset = "text"
        path = "train.tsv"
        test_path = "test.tsv"
        folds = 1
        [search]
        families = ["mlp"]
        [train]
        max_epochs = 10
    """)
    result = run_cli("run", "study.toml", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    trial = optuna.load_study(study_name="reviews", storage=f"sqlite:///{tmp_path / 'reviews.db'}").trials[0]
    # Split on whitespace every test text is unknown tokens only, one input for all: half right.
    assert trial.user_attrs["test_accuracy"] == 1.0
