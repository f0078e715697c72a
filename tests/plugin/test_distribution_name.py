"""A plugin that depends on automl by its distribution name gets this project, from local packages alone."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import ALLOWLIST_ENV, REPO

DISTRIBUTION = "automl-pareto"
# What names "automl" on the package index, an unrelated project: an extra of it, a pip install of
# it, a dependency on it.
WRONG_DISTRIBUTION = re.compile(r"(?<![\w.-])automl\[|pip install\s+(?:-\S+\s+)*[\"']?automl(?![\w-])"
                                r"|dependencies\s*=\s*\[[^\]]*[\"']automl(?![\w-])")
# Where users read a distribution's name: docs, study files, messages and comments in the code, examples.
USER_FACING = ("README.md", "Makefile", "pyproject.toml", "docs/**/*.md", "studies/*.toml", "automl/**/*.py",
               "plugins/**/*.py", "examples/**/*.py", "examples/**/*.md", "examples/**/*.toml", "benchmarks/*.py",
               "benchmarks/*.sh")


def wrong_names(text: str) -> list[str]:
    return [match.group(0) for match in WRONG_DISTRIBUTION.finditer(text)]


def test_the_check_for_the_wrong_distribution_name_can_fail() -> None:
    assert wrong_names('install automl[torchvision]; pip install "automl"; dependencies = ["automl>=0.1"]') == [
        "automl[", 'pip install "automl', 'dependencies = ["automl']
    assert wrong_names('pip install "automl-pareto[torchvision]"; pip install -e automl-widemlp; '
                       'dependencies = ["automl-pareto", "torch"]; import automl; [project.entry-points.automl]') == []


def test_no_doc_or_message_names_the_unrelated_automl_distribution() -> None:
    found = {str(path.relative_to(REPO)): wrong_names(path.read_text(encoding="utf-8"))
             for pattern in USER_FACING for path in sorted(REPO.glob(pattern))}
    assert len(found) > 50, "the files users read were not found"
    assert {path: names for path, names in found.items() if names} == {}


def _site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def _installed_dependencies(folder: Path) -> Path:
    """A folder that shows the test environment's installed packages except this project itself.

    The fresh environment reads it through a .pth file, so pip finds torch, optuna and the rest
    installed (nothing is downloaded) and has to take this project from the wheel built below.
    """
    folder.mkdir()
    ours = ("automl", "automl_plugins", "automl_pareto", "__editable__.automl_pareto", "__editable___automl_pareto")
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(ours):
            (folder / entry.name).symlink_to(entry)
    return folder


@pytest.mark.slow
def test_example_plugin_installs_into_a_fresh_environment_with_this_project(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: building leaves build/ and egg-info beside the source
    for folder in ("automl", "plugins"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "examples" / "automl-mixer", tmp_path / "automl-mixer")
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels),
                    str(source)], check=True)
    assert [wheel.name.split("-")[0] for wheel in wheels.iterdir()] == ["automl_pareto"]
    with zipfile.ZipFile(next(wheels.iterdir())) as wheel:  # plugins/ installs as automl_plugins, never as "plugins"
        assert {name.split("/")[0] for name in wheel.namelist() if name.endswith(".py")} == {"automl", "automl_plugins"}

    venv = tmp_path / "fresh"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True)  # type: ignore[attr-defined]
    deps = _installed_dependencies(tmp_path / "deps")
    (_site_packages(venv) / "installed_dependencies.pth").write_text(f"{deps}\n")
    python = venv / "bin" / "python"
    # Only the wheel folder and what is installed: the package index's "automl" cannot be taken.
    env = {**os.environ, "PIP_CONSTRAINT": "", "PIP_FIND_LINKS": "", "PYTHONPATH": "", ALLOWLIST_ENV: "mixer"}
    install = subprocess.run([*pip, "--python", str(python), "install", "--no-index", "--find-links", str(wheels),
                              "--no-build-isolation", str(tmp_path / "automl-mixer")],
                             env=env, capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr

    probe = ("import automl, importlib.metadata as m; "
             "print(m.requires('automl-mixer')[0]); print(m.version('automl-pareto')); print(automl.__file__)")
    shown = subprocess.run([str(python), "-c", probe], env=env, capture_output=True, text=True, check=True,
                           cwd=tmp_path)
    requirement, version, module = shown.stdout.splitlines()
    assert requirement == DISTRIBUTION and version == "0.1.0"
    assert Path(module).is_relative_to(_site_packages(venv))  # the wheel built from this tree, not the editable one
    plugins = subprocess.run([str(python), "-m", "automl", "plugins"], env={**env, "COLUMNS": "200"},
                             capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert plugins.returncode == 0, plugins.stderr
    rows = {line.split("│")[1].strip(): line for line in plugins.stdout.splitlines() if line.count("│") > 3}
    assert "automl-mixer 0.1.0" in rows["mixer"] and f"{DISTRIBUTION} 0.1.0" in rows["mlp"]
