"""Shared helpers: run the real CLI, write study files, make installed plugin distributions."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
AUTOML = [sys.executable, "-m", "automl"]


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
            ) -> subprocess.CompletedProcess:
    """Run ``automl ARGS`` in a fresh interpreter, as a user would."""
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    return subprocess.run([*AUTOML, *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def write_study(directory: Path, text: str, name: str = "study.toml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def make_distribution(site: Path, dist_name: str, modules: dict[str, str], entry_points: dict[str, str],
                      version: str = "1.0") -> Path:
    """Lay out an installed distribution (modules plus dist-info) under ``site``.

    This is exactly what pip leaves in site-packages, without a build step per test.
    """
    site.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist_name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[automl]\n{lines}\n")
    return site


def with_path(site: Path) -> dict[str, str]:
    """Environment that puts ``site`` on the import path of a subprocess."""
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture
def tiny_study(tmp_path: Path) -> Path:
    """A two-trial digits study with one epoch per trial, storing into tmp_path."""
    return write_study(tmp_path, f"""
        name = "tiny"
        n_trials = 2
        storage = "sqlite:///{tmp_path / 'tiny.db'}"
        [train]
        max_epochs = 1
        batch_size = [128]
    """)
