"""Hook specifications: the whole surface a plugin can implement."""

from __future__ import annotations

from typing import Any, Callable

import pluggy

PROJECT_NAME = "automl"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_families(register: Callable[[Any], None]) -> None:
    """Register architecture families by calling ``register(family)`` once for each."""


@hookspec
def register_datasets(register: Callable[[Any], None]) -> None:
    """Register datasets by calling ``register(dataset)`` once for each."""
