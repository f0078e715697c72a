"""`automl dashboard` serves a real study over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna

from conftest import AUTOML


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_dashboard_serves_the_study(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'dash.db'}"
    study = optuna.create_study(study_name="dash-study", storage=storage, directions=["maximize", "minimize"])
    study.set_metric_names(["val_accuracy", "flops"])
    study.add_trial(optuna.trial.create_trial(values=[0.9, 1000.0], params={}, distributions={}))
    port = _free_port()
    server = subprocess.Popen([*AUTOML, "dashboard", "--storage", storage, "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as response:
                    payload = json.load(response)
                break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()
                assert time.monotonic() < deadline, "dashboard did not start within 60 s"
                time.sleep(0.5)
        names = [s["study_name"] for s in payload["study_summaries"]]
        assert names == ["dash-study"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/dashboard/", timeout=5) as response:
            assert response.status == 200
        listening = {conn.split()[3] for conn in subprocess.run(["ss", "-ltn"], capture_output=True,
                                                                 text=True).stdout.splitlines()[1:]}
        assert f"127.0.0.1:{port}" in listening and f"0.0.0.0:{port}" not in listening
    finally:
        server.terminate()
        server.wait(timeout=10)
