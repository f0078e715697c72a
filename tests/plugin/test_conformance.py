"""Every registered family, built-in or installed, runs the conformance suite plugin authors use."""

from __future__ import annotations

from automl.plugin.registry import registry
from automl.testing import FamilyConformance

for _name, _registered in registry().families.items():
    globals()[f"Test{_name.title()}Conformance"] = type(
        f"Test{_name.title()}Conformance", (FamilyConformance,), {"family": _registered.obj})
