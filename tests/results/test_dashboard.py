"""`automl dashboard` serves real studies over HTTP on 127.0.0.1, and a real browser renders them."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from PIL import Image

from automl.results.dashboard import FIGURE_IDS
from automl.storage.artifacts import CURVE_JSON, CURVE_PNG, MIME_TYPES, SUMMARY, WEIGHTS, artifact_dir
from automl.storage.schema import CONFIG_ATTR, TrialAttr, family_of, pareto_front
from conftest import AUTOML, SearchedStudy

pytestmark = pytest.mark.slow  # a dashboard server and a headless browser

# Debian's chromium, headless, on a machine without network (see .ci/run).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


@contextlib.contextmanager
def _dashboard(storage: str) -> Iterator[str]:
    """`automl dashboard` on a free port; yields its base URL once it answers."""
    port = _free_port()
    server = subprocess.Popen([*AUTOML, "dashboard", "--storage", storage, "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get_json(f"{base}/api/studies")
                break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()
                assert time.monotonic() < deadline, "dashboard did not start within 60 s"
                time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_dashboard_serves_the_study(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'dash.db'}"
    study = optuna.create_study(study_name="dash-study", storage=storage, directions=["maximize", "minimize"])
    study.set_metric_names(["val_accuracy", "flops"])
    study.add_trial(optuna.trial.create_trial(values=[0.9, 1000.0], params={}, distributions={}))
    # An automl study whose run saved no figures (as one run by `automl worker`s alone).
    ours = optuna.create_study(study_name="automl-study", storage=storage, directions=["maximize", "minimize"])
    ours.set_metric_names(["val_accuracy", "flops"])
    ours.set_user_attr(CONFIG_ATTR, {})
    ours.add_trial(optuna.trial.create_trial(values=[0.9, 1000.0], user_attrs={TrialAttr.VAL_CURVE: [0.5, 0.9]}))
    with _dashboard(storage) as base:
        ids = {s["study_name"]: s["study_id"] for s in _get_json(f"{base}/api/studies")["study_summaries"]}
        assert sorted(ids) == ["automl-study", "dash-study"]
        # automl dashboard saved the figures and notes of automl's study, and left the other alone.
        figures = {name: _get_json(f"{base}/api/studies/{ids[name]}")["plotly_graph_objects"] for name in ids}
        assert sorted(figure["id"] for figure in figures["automl-study"]) == sorted(FIGURE_IDS)
        assert figures["dash-study"] == []
        assert "| val_accuracy | maximize |" in _get_json(f"{base}/api/studies/{ids['automl-study']}")["note"]["body"]
        with urllib.request.urlopen(f"{base}/dashboard/", timeout=5) as response:
            assert response.status == 200
        port = base.rsplit(":", 1)[1]
        listening = {conn.split()[3] for conn in subprocess.run(["ss", "-ltn"], capture_output=True,
                                                                 text=True).stdout.splitlines()[1:]}
        assert f"127.0.0.1:{port}" in listening and f"0.0.0.0:{port}" not in listening


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: .ci/run must install Debian's chromium")
        pytest.skip("no chromium: apt-get install chromium")
    return found


def _render(browser: str, url: str, profile: Path, screenshot: Path) -> str:
    """The DOM after the page's scripts ran, and a screenshot of it."""
    for budget_ms in (15_000, 45_000):  # a second, longer try for a slow machine
        page = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,900",
                               f"--virtual-time-budget={budget_ms}", f"--screenshot={screenshot}", "--dump-dom", url],
                              capture_output=True, text=True, timeout=180).stdout
        if "optuna-loading" not in page or "MuiAppBar" in page:
            return page
    return page


@dataclass(frozen=True)
class ServedStudy:
    """The searched study served by one `automl dashboard`, and its page as Chromium rendered it."""

    base: str
    study_id: int
    page: str
    screenshot: Path


@pytest.fixture(scope="module")
def served_study(searched_study: SearchedStudy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedStudy]:
    """One dashboard server and one render of the study's page for the module's tests, which only
    read through them (each server costs an automl process's start, each render a browser's)."""
    browser = _chromium()
    folder = tmp_path_factory.mktemp("served")
    with _dashboard(searched_study.url) as base:
        study_id = next(s["study_id"] for s in _get_json(f"{base}/api/studies")["study_summaries"]
                        if s["study_name"] == searched_study.name)
        page = _render(browser, f"{base}/dashboard/studies/{study_id}", folder / "profile", folder / "study.png")
        yield ServedStudy(base, study_id, page, folder / "study.png")


def test_chromium_renders_the_study_and_its_trial_artifacts(searched_study: SearchedStudy, served_study: ServedStudy,
                                                            tmp_path: Path) -> None:
    browser, base, study_id = _chromium(), served_study.base, served_study.study_id
    assert f"{searched_study.name} (id={study_id})" in served_study.page  # the study's title bar
    assert "val_accuracy" in served_study.page and "flops" in served_study.page  # the front's metric names
    with Image.open(served_study.screenshot) as image:
        assert image.size == (1280, 900)

    trials = _render(browser, f"{base}/dashboard/studies/{study_id}/trials", tmp_path / "profile",
                     tmp_path / "trials.png")
    for name in (SUMMARY, CURVE_PNG, CURVE_JSON, WEIGHTS):
        assert name in trials, f"artifact {name} is not listed"
    # The dashboard serves the artifact the trial uploaded, from the folder derived from the URL.
    trial = optuna.load_study(study_name=searched_study.name, storage=searched_study.url).trials[0]
    meta = next(m for m in optuna.artifacts.get_all_artifact_meta(
        trial, storage=optuna.storages.RDBStorage(searched_study.url)) if m.filename == SUMMARY)
    url = f"{base}/artifacts/{study_id}/{trial._trial_id}/{meta.artifact_id}"
    with urllib.request.urlopen(url, timeout=5) as response:
        served = response.read()
    assert served == (artifact_dir(searched_study.url) / meta.artifact_id).read_bytes()


def _plot_segments(page: str) -> dict[str, str]:
    """The DOM of each figure automl saved to the study (optuna-dashboard's "user-defined-plot:ID"
    elements), up to the next one or the end of the page."""
    starts = sorted((page.find(f'id="user-defined-plot:{name}"'), name) for name in FIGURE_IDS)
    assert all(start >= 0 for start, _ in starts), f"figures missing: {[name for start, name in starts if start < 0]}"
    ends = [start for start, _ in starts[1:]] + [len(page)]
    return {name: page[start:end] for (start, name), end in zip(starts, ends, strict=True)}


def test_chromium_renders_the_figures_and_notes_automl_run_saved(searched_study: SearchedStudy,
                                                                 served_study: ServedStudy, tmp_path: Path) -> None:
    browser, base, study_id = _chromium(), served_study.base, served_study.study_id
    study = optuna.load_study(study_name=searched_study.name, storage=searched_study.url)
    with_curves = [t for t in study.trials if t.user_attrs.get(TrialAttr.VAL_CURVE)]
    plots = _plot_segments(served_study.page)
    # plotly drew them: titles, axes, one line per family and state of the trials with a curve,
    # the families in the legend.
    assert "Learning curves" in plots["learning-curves"] and "validation accuracy" in plots["learning-curves"]
    groups = {(t.user_attrs.get(TrialAttr.FAMILY), t.state) for t in with_curves}
    assert plots["learning-curves"].count('class="trace scatter') == len(groups) > 0
    assert "FLOPs per sample (log scale)" in plots["pareto-front"] and "mlp" in plots["pareto-front"]
    assert "Hypervolume" in plots["hypervolume"] and "completed trials" in plots["hypervolume"]
    served = {figure["id"]: json.loads(figure["graph_object"])
              for figure in _get_json(f"{base}/api/studies/{study_id}")["plotly_graph_objects"]}
    assert served["pareto-front"]["layout"]["xaxis"]["type"] == "log"

    note = _render(browser, f"{base}/dashboard/studies/{study_id}/note", tmp_path / "profile", tmp_path / "note.png")
    assert "fraction of the validation split classified right" in note and "forward FLOPs per sample" in note
    # The front's trials have notes (the others none: the page reads every note at each call).
    first = pareto_front(study)[0]
    trials = _render(browser, f"{base}/dashboard/studies/{study_id}/trials?numbers={first.number}",
                     tmp_path / "profile", tmp_path / "trials.png")
    assert f"Trial {first.number}: {family_of(first)}" in trials and "Where it stopped" in trials
    assert "val_accuracy (maximize)" in trials

    # Artifacts are served with their own type, not one guessed from the name.
    trial = study.trials[0]
    metas = {m.filename: m for m in optuna.artifacts.get_all_artifact_meta(
        trial, storage=optuna.storages.RDBStorage(searched_study.url))}
    for name in (WEIGHTS, CURVE_PNG, CURVE_JSON):
        url = f"{base}/artifacts/{study_id}/{trial._trial_id}/{metas[name].artifact_id}"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.headers["Content-Type"] == MIME_TYPES[name]
