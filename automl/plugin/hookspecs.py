"""Hook specifications: the whole surface a plugin can implement."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

from automl.plugin.contract import Dataset, Family

PROJECT_NAME = "automl"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_families(register: Callable[[Family], None]) -> None:
    """Register architecture families by calling ``register(family)`` once for each."""


@hookspec
def register_datasets(register: Callable[[Dataset[Any]], None]) -> None:
    """Register datasets by calling ``register(dataset)`` once for each."""
