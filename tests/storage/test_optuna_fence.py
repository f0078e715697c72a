"""Optuna's private names stay behind automl.storage._optuna, which checks the installed Optuna."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import tomllib

import optuna
import pytest
from conftest import REPO

import automl
import automl_plugins
from automl.storage import _optuna

# A private Optuna module imported, or a private attribute of a Study, FrozenTrial or storage read.
# A method's own attributes (self._x) and the overridden method's call (super()._x) are not reads:
# the fence lists and checks those methods (OVERRIDDEN).
PRIVATE_USE = re.compile(r"^\s*(from|import)\s+optuna\S*\._|optuna\.\w+(\.\w+)*\._\w|"
                         r"(?<!self)(?<!super\(\))\._(storage|backend|study_id|trial_id|get_trials)\b")


def _modules() -> list[str]:
    names = []
    for package in (automl, automl_plugins):
        names += [info.name for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
                  if not info.name.endswith("__main__")]  # that one runs the CLI
    return names


def test_no_module_but_the_fence_uses_a_private_optuna_name() -> None:
    users = {}
    for path in [*sorted((REPO / "automl").rglob("*.py")), *sorted((REPO / "plugins" / "automl_plugins").rglob("*.py"))]:
        if path.name == "_optuna.py":
            continue
        code = [line.split("#")[0] for line in path.read_text().splitlines()]
        found = [m.group(0).strip() for line in code for m in PRIVATE_USE.finditer(line)]
        if found:
            users[str(path.relative_to(REPO))] = found
    assert users == {}


def test_every_private_method_overridden_from_optuna_is_listed_and_checked() -> None:
    unlisted = []
    for name in _modules():
        for cls in vars(importlib.import_module(name)).values():
            if not inspect.isclass(cls) or not cls.__module__.startswith(("automl.", "automl_plugins.")):
                continue
            bases = [base for base in cls.__mro__[1:] if base.__module__.startswith("optuna")]
            listed = {attr for base in bases for attr in _optuna.OVERRIDDEN.get(base, {})}
            unlisted += [f"{cls.__qualname__}.{attr}" for attr in vars(cls)
                         if attr.startswith("_") and not attr.startswith("__") and attr != "_abc_impl"
                         and any(hasattr(base, attr) for base in bases) and attr not in listed]
    assert unlisted == []


def test_an_older_optuna_is_refused_and_a_newer_one_warned_about() -> None:
    with pytest.raises(ImportError, match=re.escape(f"pip install 'optuna{_optuna.SUPPORTED}'")):
        _optuna._check_version("4.9.0")
    with pytest.warns(UserWarning, match="newer than the range automl is tested on"):
        _optuna._check_version("5.1.0")
    _optuna._check_version(optuna.__version__)  # the installed one is in the range


def test_pyproject_requires_the_range_the_fence_supports() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert f"optuna{_optuna.SUPPORTED}" in project["dependencies"]
