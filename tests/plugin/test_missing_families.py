"""A plugin whose families would be missing says so: hooks without the @automl.hookimpl marker, a
plugin with no hook, and `automl plugins check NAME` naming why NAME is no family. In-process, on
distributions laid out in a site folder as pip leaves them."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_distribution
from test_registry import FAMILY_MODULE

from automl.cli import main
from automl.errors import PluginError
from automl.plugin.registry import ALLOWLIST_ENV, build_registry, registry


def family_module(name: str, marked: bool = True) -> str:
    """A plugin module registering one family called ``name``, its hook marked or not."""
    source = FAMILY_MODULE.format(cls="Oops", name=name)
    return source if marked else source.replace("@automl.hookimpl\n", "")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on the import path whose distributions' entry points automl sees; the process-wide
    registry is rebuilt with them, and with the built-ins alone after the test."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    modules = set(sys.modules)
    registry.cache_clear()
    yield folder
    for name in set(sys.modules) - modules:
        if name.startswith("oops_"):
            del sys.modules[name]
    registry.cache_clear()


def install(site: Path, monkeypatch: pytest.MonkeyPatch, module: str, source: str, entry_point: str = "oops",
            load: str | None = None) -> None:
    make_distribution(site, f"{module.replace('_', '-')}", {module: source}, {entry_point: module})
    monkeypatch.setenv(ALLOWLIST_ENV, entry_point if load is None else load)
    importlib.invalidate_caches()


def test_a_hook_without_the_marker_is_an_error_naming_the_plugin_and_the_fix(
        site: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    install(site, monkeypatch, "oops_unmarked", family_module("oops", marked=False))
    with pytest.raises(PluginError) as caught:
        build_registry()
    message = str(caught.value)
    assert message.startswith('plugin "oops" (module oops_unmarked, oops-unmarked 1.0): register_families lacks '
                              "the @automl.hookimpl marker")
    assert "add @automl.hookimpl on the line above `def register_families(register):`" in message
    # `automl plugins check oops` says the same, once, with exit code 2.
    assert main(["plugins", "check", "oops"]) == 2
    error = " ".join(capsys.readouterr().err.split())
    assert error.count("error:") == 1 and "register_families lacks the @automl.hookimpl marker" in error


def test_a_plugin_implementing_no_hook_is_an_error(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install(site, monkeypatch, "oops_empty", "def register_family(register):\n    pass\n")
    with pytest.raises(PluginError, match=r'plugin "oops" \(module oops_empty, oops-empty 1.0\) implements no '
                                          r"automl hook: define register_families\(register\) or "
                                          r"register_datasets\(register\) in it, marked with @automl.hookimpl"):
        build_registry()


def test_plugins_check_says_why_a_plugin_of_that_name_gives_no_such_family(
        site: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    install(site, monkeypatch, "oops_other", family_module("oopsie"))
    assert main(["plugins", "check", "oops"]) == 2
    error = " ".join(capsys.readouterr().err.split())
    assert "unknown family 'oops'" in error
    assert 'plugin "oops" (module oops_other, oops-other 1.0) registers families oopsie' in error

    registry.cache_clear()
    monkeypatch.setenv(ALLOWLIST_ENV, "")  # installed, but the allowlist loads the built-ins only
    assert main(["plugins", "check", "oops"]) == 2
    error = " ".join(capsys.readouterr().err.split())
    assert f'plugin "oops" is installed but not loaded: {ALLOWLIST_ENV} leaves it out (add oops to it)' in error
