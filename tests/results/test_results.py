"""What a search leaves to use: trial artifacts, warm start, report, export and retrain.

One real study (tests/conftest.py: searched_study) is run once through `automl run`; the commands
then work on its SQLite file and artifact folder as a user's would.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnxruntime
import optuna
import pytest
import torch
from PIL import Image

from automl.storage.artifacts import CURVE_JSON, CURVE_PNG, SUMMARY, WEIGHTS, artifact_dir, artifact_names, open_store
from automl.cli import main
from automl.config import DataConfig, load_study_file
from automl.search.curve_image import PALETTE
from automl.data.prepare import prepare
from automl.data.splits import split_indices
from automl.errors import UsageError
from automl.results.hypervolume import hypervolume_history
from automl.plugin.registry import registry
from automl.plugin.task import Task
from automl.results.stored import load_stored_trial
from automl.search.plan import plan_study
from automl.storage.schema import CONFIG_ATTR, PREPROCESSING_ATTR, TASK_ATTR
from automl.search.warm_start import load_warm_start
from conftest import FAST, SLOW, SearchedStudy, run_cli, write_study
from datafiles import labels, write_table

COMPLETE = optuna.trial.TrialState.COMPLETE


def _study(searched: SearchedStudy) -> optuna.Study:
    return optuna.load_study(study_name=searched.name, storage=searched.url)


def _accuracy(logits: np.ndarray, labels: torch.Tensor) -> float:
    return float((logits.argmax(axis=1) == labels.numpy()).mean())


def _dominated_by_earlier(trial: optuna.trial.FrozenTrial, trials: list[optuna.trial.FrozenTrial]) -> bool:
    """Maximized accuracy, minimized FLOPs: some trial done before is as good in both, better in one."""
    accuracy, flops = trial.values
    return any(t.values[0] >= accuracy and t.values[1] <= flops and t.values != trial.values
               for t in trials if t.datetime_complete < trial.datetime_complete)


def test_warm_start_configs_run_first_and_artifacts_follow_the_front(searched_study: SearchedStudy) -> None:
    study = _study(searched_study)
    trials = study.get_trials(states=(COMPLETE,))
    assert len(trials) == 3 and "warm start: 2 known configs" in searched_study.run.stderr
    assert trials[0].params == FAST and trials[1].params == SLOW
    assert trials[0].values[1] == trials[1].values[1] and trials[1].values[0] < trials[0].values[0]
    for trial in trials:
        names = artifact_names(study, trial)
        assert {SUMMARY, CURVE_PNG, CURVE_JSON} <= set(names)
        assert (WEIGHTS in names) == (not _dominated_by_earlier(trial, trials)), (trial.number, names)
    assert WEIGHTS not in artifact_names(study, trials[1])  # the slow twin of trial 0
    assert all(WEIGHTS in artifact_names(study, t) for t in study.best_trials)

    folder = artifact_dir(searched_study.url)
    assert folder == searched_study.folder / "results-artifacts"
    metas = {m.filename: m for m in optuna.artifacts.get_all_artifact_meta(trials[0], storage=study._storage)}
    curve = json.loads((folder / metas[CURVE_JSON].artifact_id).read_text())
    assert curve["val_accuracy"] == pytest.approx(trials[0].user_attrs["val_curve"], abs=1e-5)
    assert len(curve["train_loss"]) == trials[0].user_attrs["epochs"] == 1
    with Image.open(folder / metas[CURVE_PNG].artifact_id) as image:
        assert image.format == "PNG" and image.width >= 400
        colors = {rgb for _, rgb in image.convert("RGB").getcolors()}
    assert set(PALETTE) <= colors  # both curves drawn, in their colours, with frame and labels
    summary = (folder / metas[SUMMARY].artifact_id).read_text()
    assert "family mlp" in summary and "Linear(in_features=64" in summary


def test_warm_start_from_a_study_front_in_the_study_file(searched_study: SearchedStudy, tmp_path: Path) -> None:
    front = [t.params for t in sorted(_study(searched_study).best_trials, key=lambda t: t.number)]
    (tmp_path / "more.json").write_text(json.dumps([{**FAST, "family": "cnn"}, FAST]))
    path = write_study(tmp_path, f"""
        name = "next"
        storage = "sqlite:///{tmp_path / 'next.db'}"
        [search]
        families = ["mlp"]
        warm_start = ["study:results@{searched_study.url}", "{tmp_path / 'more.json'}"]
    """)
    plan = plan_study(load_study_file(path), path, registry())
    warm = load_warm_start(plan)
    assert warm.configs == front + ([FAST] if FAST not in front else [])  # duplicates dropped
    assert warm.notes == [f"warm start {tmp_path / 'more.json'}: left out a cnn config; this study searches mlp"]
    assert warm.for_study(_study(searched_study)) == []  # a study with trials is not warm-started again

    broken = {key: value for key, value in FAST.items() if key != "mlp.width"}
    (tmp_path / "broken.json").write_text(json.dumps([broken]))
    with pytest.raises(UsageError, match=r"broken.json: config .* does not fit this study's space"):
        load_warm_start(plan, [str(tmp_path / "broken.json")])
    with pytest.raises(UsageError, match=r"no study named 'nope' in .*; studies there: results"):
        load_warm_start(plan, [f"study:nope@{searched_study.url}"])


def test_report_writes_a_self_contained_page_and_pngs(searched_study: SearchedStudy, tmp_path: Path) -> None:
    result = run_cli("report", "results", "--storage", searched_study.url, "--out", str(tmp_path / "report"),
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "report" / "report.html").read_text()
    for title in ("Study &#x27;results&#x27;", "Pareto front", "Hypervolume", "Learning curves",
                  "Hyperparameter importance for val_accuracy", "Hyperparameter importance for flops", "Families"):
        assert title in page
    assert "Not available" not in page
    assert page.count('src="data:image/png;base64,') == 6 and "http" not in page.replace(searched_study.url, "")
    for name in ("pareto_front", "hypervolume", "learning_curves", "importance_val_accuracy",
                 "importance_flops", "families"):
        with Image.open(tmp_path / "report" / f"{name}.png") as image:
            assert image.format == "PNG" and image.width >= 600, name


def test_hypervolume_history_by_completion_on_rescaled_objectives() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["val_accuracy", "flops"])
    for values in ([0.9, 1000.0], [0.5, 10.0], [0.4, 100.0]):
        study.add_trial(optuna.trial.create_trial(values=values))
    history = hypervolume_history(study)
    # Losses (1 - accuracy, log10 FLOPs scaled to [0, 1]): (0.1, 1), (0.5, 0), (0.6, 0.5);
    # reference (1, 1.1). The third point is dominated and adds nothing.
    assert history.values == pytest.approx([0.9 * 0.1, 0.9 * 0.1 + 0.5 * 1.1 - 0.5 * 0.1, 0.59])
    assert history.trial_numbers == [0, 1, 2]


def test_export_onnx_of_a_front_trial_reproduces_its_test_accuracy(searched_study: SearchedStudy,
                                                                   tmp_path: Path) -> None:
    trial = _study(searched_study).best_trials[0]
    result = run_cli("export", "results", "--storage", searched_study.url, "--trial", str(trial.number),
                     "--format", "onnx", "--out", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "stored no weights" not in result.stderr
    described = json.loads((tmp_path / f"trial{trial.number}.onnx.json").read_text())
    assert described["family"] == "mlp" and described["weights"] == "stored"
    assert described["stored_params"] == trial.params and described["params"]["width"] == 64
    assert described["task"] == {"kind": "image", "input_shape": [1, 8, 8], "num_classes": 10, "vocab_size": None,
                                 "class_names": None}
    assert described["metrics"] == dict(zip(["val_accuracy", "flops"], trial.values))
    # The exported file alone, in onnxruntime, fed the test split's digits as scikit-learn gives them
    # (pixel values 0..16), scores what the trial scored on it.
    assert "0..16" in described["input"]["values"]
    assert described["preprocessing"]["in_the_model"]["scale"] == 1 / 16
    from sklearn.datasets import load_digits

    arrays = registry().datasets["digits"].obj.load(0, DataConfig())
    test_rows = split_indices(arrays, DataConfig(), 0).test
    pixels = load_digits().images[test_rows][:, None].astype(np.float32)
    test = prepare(DataConfig(), registry(), 0).test
    session = onnxruntime.InferenceSession(str(tmp_path / f"trial{trial.number}.onnx"))
    logits = session.run(None, {"inputs": pixels})[0]
    assert abs(_accuracy(logits, test.y) - trial.user_attrs["test_accuracy"]) <= 1 / len(test.y)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_export_without_weights_retrains_the_trial_first(searched_study: SearchedStudy, tmp_path: Path) -> None:
    slow = _study(searched_study).get_trials(states=(COMPLETE,))[1]
    assert WEIGHTS not in artifact_names(_study(searched_study), slow)
    result = run_cli("export", "results", "--storage", searched_study.url, "--trial", str(slow.number),
                     "--format", "torchscript", "--out", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "stored no weights" in result.stderr and "training it again" in result.stderr
    described = json.loads((tmp_path / f"trial{slow.number}.torchscript.pt.json").read_text())
    assert described["weights"] == "retrained (none stored)" and described["check"]["max_abs_diff"] < 1e-4
    # Same seed, same epochs: the retrained model is the trial's model again.
    from sklearn.datasets import load_digits

    test_rows = split_indices(registry().datasets["digits"].obj.load(0, DataConfig()), DataConfig(), 0).test
    pixels = torch.from_numpy(load_digits().images[test_rows][:, None]).float()
    test = prepare(DataConfig(), registry(), 0).test
    model = torch.jit.load(str(tmp_path / f"trial{slow.number}.torchscript.pt"))
    with torch.no_grad():
        assert _accuracy(model(pixels).numpy(), test.y) == pytest.approx(slow.user_attrs["test_accuracy"])


def test_export_state_dict_loads_into_the_rebuilt_model(searched_study: SearchedStudy, tmp_path: Path) -> None:
    from automl.results.export import export_model, trained_model
    from automl.results.raw_inputs import raw_input_model

    study = _study(searched_study)
    stored = load_stored_trial(study, study.best_trials[0].number, searched_study.url, registry())
    model, weights, _ = trained_model(stored, open_store(artifact_dir(searched_study.url)), registry(), pytest.fail)
    data = prepare(DataConfig(), registry(), 0)
    exported = export_model(stored, model, "state_dict", tmp_path, weights, data)
    rebuilt = raw_input_model(stored.build(), data)  # the family's module behind its preprocessing
    rebuilt.load_state_dict(torch.load(exported.path, weights_only=True))
    with torch.no_grad():
        assert _accuracy(rebuilt.model.eval()(data.test.x).numpy(), data.test.y) == pytest.approx(
            stored.trial.user_attrs["test_accuracy"])


def test_export_and_retrain_name_the_trials_they_accept(searched_study: SearchedStudy, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["export", "--format", "onnx", "--out", str(tmp_path)], ["retrain"]):
        code = main([command[0], "results", "--storage", searched_study.url, "--trial", "7", *command[1:]])
        assert code == 2
        assert re.search(r"study 'results' in sqlite:///\S+ has no trial 7; trained trials: 0, 1, 2",
                         " ".join(capsys.readouterr().err.split()))

    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr(CONFIG_ATTR, _study(searched_study).user_attrs[CONFIG_ATTR])
    study.set_user_attr(TASK_ATTR, _study(searched_study).user_attrs[TASK_ATTR])
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL,
                                              user_attrs={"fail_reason": "NonFiniteLoss: nan"}))
    # Refused over budget: completed, but with no model to offer.
    study.add_trial(optuna.trial.create_trial(values=[0.0, 5e6], constraints={"max_flops": 1.0},
                                              user_attrs={"over_budget": "flops 5e+06 > max_flops 1e+04"}))
    with pytest.raises(UsageError, match=r"trial 0 of study .* failed \(NonFiniteLoss: nan\): only a completed "
                                         r"trial can be used; trained trials: none"):
        load_stored_trial(study, 0, "sqlite://", registry())

    from automl.results.export import trained_model

    front = load_stored_trial(_study(searched_study), 0, searched_study.url, registry())
    with pytest.raises(UsageError, match=r"trial 0 of study 'results' stored its weights as artifact \S+, which is "
                                         r"not in the artifact folder; .* --artifacts DIR"):
        trained_model(front, open_store(tmp_path / "elsewhere"), registry(), pytest.fail)


def test_a_study_stored_before_datasets_declared_options_still_rebuilds(searched_study: SearchedStudy) -> None:
    searched = _study(searched_study)
    config = searched.user_attrs[CONFIG_ATTR]
    # The old layout: every built-in dataset's key at the top of data, set or not.
    old_data = {**config["data"], "path": None, "download": False, "kind": None, "label": "label", "text": "text",
                "tokenizer": "words", "max_length": 64, "min_freq": 1, "image_size": None, "options": {}}
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr(CONFIG_ATTR, {**config, "data": old_data})
    study.set_user_attr(TASK_ATTR, searched.user_attrs[TASK_ATTR])
    study.add_trial(searched.trials[0])
    stored = load_stored_trial(study, 0, "sqlite://", registry())
    assert stored.config.data == DataConfig()
    assert stored.data(registry()).task == Task.from_dict(searched.user_attrs[TASK_ATTR])


def test_onnx_on_a_torch_without_its_exporter_is_a_usage_error_before_any_work(
        searched_study: SearchedStudy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from torch.torch_version import TorchVersion

    monkeypatch.setattr(torch, "__version__", TorchVersion("2.5.1+cpu"))
    for command in (["export", "--out", str(tmp_path)], ["retrain", "--out", str(tmp_path)]):
        code = main([command[0], "results", "--storage", searched_study.url, "--trial", "0", "--format", "onnx",
                     *command[1:]])
        assert code == 2
        assert "--format onnx needs torch >= 2.6" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_retrain_on_train_and_validation_reports_test_accuracy_and_saves_the_model(
        searched_study: SearchedStudy, tmp_path: Path) -> None:
    result = run_cli("retrain", "results", "--storage", searched_study.url, "--trial", "0", "--epochs", "2",
                     "--out", str(tmp_path / "final"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    found = re.search(r"retrained on train\+validation \((\d+) samples, 2 epochs\): test accuracy (0\.\d{4})",
                      result.stdout)
    assert found, result.stdout
    data = prepare(DataConfig(), registry(), 0)
    assert int(found[1]) == len(data.train.y) + len(data.val.y)
    assert float(found[2]) > 0.8  # two epochs of the fast config learn digits

    # The saved state dict is the retrained model: rebuilt, it scores the accuracy just printed, which
    # its JSON records (not the trial's own).
    described = json.loads((tmp_path / "final" / "trial0.state_dict.pt.json").read_text())
    assert described["weights"] == "retrained on train+validation (2 epochs)"
    measured = described["measured"]
    assert measured["test_accuracy"] == pytest.approx(float(found[2]), abs=1e-4) and measured["epochs"] == 2
    assert measured["train_samples"] == int(found[1]) and "val_accuracy" not in measured
    from automl.results.raw_inputs import raw_input_model

    stored = load_stored_trial(_study(searched_study), 0, searched_study.url, registry())
    rebuilt = raw_input_model(stored.build(), data)
    rebuilt.load_state_dict(torch.load(tmp_path / "final" / "trial0.state_dict.pt", weights_only=True))
    with torch.no_grad():
        assert _accuracy(rebuilt.model.eval()(data.test.x).numpy(), data.test.y) == pytest.approx(
            float(found[2]), abs=1e-4)

    usage = run_cli("retrain", "results", "--storage", searched_study.url, "--trial", "0", "--format", "onnx",
                    cwd=tmp_path)
    assert usage.returncode == 2 and "add --out DIR" in usage.stderr
    # A folder that cannot be made is refused before the retraining, not after it.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    usage = run_cli("retrain", "results", "--storage", searched_study.url, "--trial", "0", "--out", str(blocker),
                    cwd=tmp_path)
    assert usage.returncode == 2 and f"cannot use {blocker} as export folder" in usage.stderr
    assert "retraining" not in usage.stderr


class PinsBatchSize(torch.nn.Module):
    """Reads the batch size as a Python int, as some third-party models do: exporters fix it."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.reshape(len(x), 64))


def test_a_model_that_pins_its_batch_size_exports_for_one_sample(tmp_path: Path) -> None:
    from automl.config import StudyConfig
    from automl.results.export import export_model
    from automl.results.stored import StoredTrial
    from automl.plugin.task import Task
    from automl.training.loop import TrainingParams

    study = optuna.create_study(study_name="pinned", directions=["maximize", "minimize"])
    study.add_trial(optuna.trial.create_trial(values=[0.5, 1.0]))
    stored = StoredTrial(study, study.trials[0], StudyConfig(name="pinned"), Task("image", (1, 8, 8), 10),
                         registry().family("mlp"), {}, TrainingParams("adam", 1e-3, 0.0, 64))
    model = PinsBatchSize()
    exported = export_model(stored, model, "onnx", tmp_path, "stored", "the data is not needed here")
    assert exported.fixed_batch == 1 and exported.check_batch == 1
    assert json.loads(exported.json_path.read_text())["input"]["shape"] == [1, 1, 8, 8]
    session = onnxruntime.InferenceSession(str(exported.path))
    sample = torch.randn(1, 1, 8, 8)
    with torch.no_grad():
        np.testing.assert_allclose(session.run(None, {"inputs": sample.numpy()})[0], model(sample).numpy(),
                                   rtol=1e-4, atol=1e-5)


def test_export_of_stored_weights_goes_on_when_the_data_file_is_gone(tmp_path: Path) -> None:
    features = np.random.default_rng(0).normal(size=(80, 3)).round(3)
    y = labels(2, 40)
    rows = [[*row, label] for row, label in zip(features + y[:, None], y)]
    write_table(tmp_path / "table.csv", ["a", "b", "c", "label"], rows)
    url = f"sqlite:///{tmp_path / 'moved.db'}"
    study = write_study(tmp_path, f"""
        name = "moved"
        storage = "{url}"
        n_trials = 1
        data = {{ dataset = "csv", path = "table.csv" }}
        search = {{ families = ["mlp"] }}
        train = {{ max_epochs = 1 }}
    """)
    assert run_cli("run", str(study), "--no-progress", cwd=tmp_path).returncode == 0
    (tmp_path / "table.csv").unlink()
    # The study stored what turns the CSV's columns into the model's inputs: the export takes them as they are.
    result = run_cli("export", "moved", "--storage", url, "--trial", "0", "--format", "state_dict",
                     "--out", str(tmp_path / "kept"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    described = json.loads((tmp_path / "kept" / "trial0.state_dict.pt.json").read_text())
    assert described["input"]["feature_names"] == ["a", "b", "c"]
    assert len(described["preprocessing"]["in_the_model"]["mean"]) == 3
    # A study created before automl stored it recovers it from the data, which is gone now.
    optuna.load_study(study_name="moved", storage=url).set_user_attr(PREPROCESSING_ATTR, None)
    result = run_cli("export", "moved", "--storage", url, "--trial", "0", "--format", "state_dict",
                     "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "the export takes standardized inputs" in result.stderr and "table.csv does not exist" in result.stderr
    described = json.loads((tmp_path / "out" / "trial0.state_dict.pt.json").read_text())
    assert described["weights"] == "stored" and described["input"]["values"].startswith("standardized values")
    assert "table.csv does not exist" in described["preprocessing"]["unavailable"]
