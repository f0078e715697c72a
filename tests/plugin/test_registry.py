"""Plugin discovery through real installed distributions and entry points."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from automl.plugin.registry import registry
from conftest import REPO, make_distribution, run_cli, run_pytest, with_path, write_study

FAMILY_MODULE = """
import torch
import automl

class {cls}:
    name = "{name}"
    task_kinds = ("image",)
    def search_space(self, trial, task):
        return {{"width": trial.suggest_int("width", 2, 8)}}
    def build(self, params, task):
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, task.num_classes))

@automl.hookimpl
def register_families(register):
    register({cls}())
"""


def test_builtins_come_from_the_entry_point_group() -> None:
    families = registry().families
    assert set(families) >= {"mlp", "cnn", "rnn", "transformer"}
    for name in ("mlp", "cnn", "rnn", "transformer"):
        source = families[name].source
        assert source.distribution == "automl-pareto" and source.builtin
        assert source.entry_point == name and source.module == f"automl_plugins.{name}"
    assert set(registry().datasets) >= {"digits", "waveforms"}


def test_core_never_names_a_builtin_family() -> None:
    core = "\n".join(path.read_text() for path in (REPO / "automl").glob("*.py"))
    for name in ("automl_plugins", "MLPFamily", "CNNFamily", "RNNFamily", "TransformerFamily"):
        assert name not in core


def test_plugins_command_lists_module_distribution_version_and_kinds(tmp_path: Path) -> None:
    result = run_cli("plugins", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") > 3}
    for name in ("mlp", "cnn", "rnn", "transformer"):
        assert f"automl_plugins.{name}" in lines[name] and "automl-pareto 0.1.0" in lines[name]
        assert "image" in lines[name] and "sequence" in lines[name]


def test_import_error_names_plugin_and_entry_point(tmp_path: Path) -> None:
    site = make_distribution(tmp_path / "site", "broken-plugin", {"broken_mod": "import does_not_exist\n"},
                             {"broken": "broken_mod"})
    result = run_cli("plugins", cwd=tmp_path, env=with_path(site))
    assert result.returncode == 2
    assert 'Error importing plugin "broken"' in result.stderr
    assert "automl:broken = broken_mod" in result.stderr and "does_not_exist" in result.stderr
    assert "AUTOML_LOAD_PLUGINS" in result.stderr

    allow_none = run_cli("plugins", cwd=tmp_path, env={**with_path(site), "AUTOML_LOAD_PLUGINS": ""})
    assert allow_none.returncode == 0, allow_none.stderr
    assert "transformer" in allow_none.stdout


def test_allowlist_loads_only_named_plugins(tmp_path: Path) -> None:
    site = make_distribution(tmp_path / "site", "two-plugins",
                             {"one_mod": FAMILY_MODULE.format(cls="One", name="one"),
                              "two_mod": FAMILY_MODULE.format(cls="Two", name="two")},
                             {"one": "one_mod", "two": "two_mod"})
    result = run_cli("plugins", cwd=tmp_path, env={**with_path(site), "AUTOML_LOAD_PLUGINS": "two"})
    assert result.returncode == 0, result.stderr
    assert "two_mod" in result.stdout and "one_mod" not in result.stdout
    assert "automl_plugins.cnn" in result.stdout


def test_duplicate_family_names_both_sources(tmp_path: Path) -> None:
    site = make_distribution(tmp_path / "site", "clash-plugin",
                             {"clash_mod": FAMILY_MODULE.format(cls="Clash", name="cnn")}, {"clash": "clash_mod"})
    result = run_cli("plugins", cwd=tmp_path, env=with_path(site))
    assert result.returncode == 2
    assert "two families named 'cnn'" in result.stderr
    assert "automl_plugins.cnn" in result.stderr and "clash_mod" in result.stderr and "clash-plugin 1.0" in result.stderr


def test_misspelled_hook_fails_loudly(tmp_path: Path) -> None:
    source = "import automl\n\n@automl.hookimpl\ndef register_familys(register):\n    pass\n"
    site = make_distribution(tmp_path / "site", "typo-plugin", {"typo_mod": source}, {"typo": "typo_mod"})
    result = run_cli("plugins", cwd=tmp_path, env=with_path(site))
    assert result.returncode == 2
    assert "register_familys" in result.stderr and "register_families" in result.stderr


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The run's stderr as one message, after checking it is one `error:` and no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.startswith("error: ")
    assert result.stderr.count("error:") == 1
    return " ".join(result.stderr.split())


HOOK_WITH_ARGUMENT = "import automl\n\n@automl.hookimpl\ndef register_{hook}({argument}):\n    pass\n"


@pytest.mark.parametrize(("hook", "argument"), [("families", "reg"), ("datasets", "register, extra")])
def test_a_hook_declaring_other_arguments_is_one_error_naming_the_plugin(tmp_path: Path, hook: str,
                                                                         argument: str) -> None:
    source = HOOK_WITH_ARGUMENT.format(hook=hook, argument=argument)
    site = make_distribution(tmp_path / "site", "args-plugin", {"args_mod": source}, {"args": "args_mod"}, "0.3")
    message = _one_error_line(run_cli("plugins", cwd=tmp_path, env=with_path(site)))
    assert 'plugin "args" (module args_mod, args-plugin 0.3)' in message
    assert f"register_{hook}" in message and argument.split(", ")[-1] in message
    assert f"register_{hook}(register)" in message and "AUTOML_LOAD_PLUGINS" in message


def test_one_entry_point_name_from_two_distributions_is_one_error_naming_both(tmp_path: Path) -> None:
    site = make_distribution(tmp_path / "site", "tiny-one", {"tiny_one": FAMILY_MODULE.format(cls="A", name="a")},
                             {"tiny": "tiny_one"}, "0.1")
    make_distribution(site, "tiny-fork", {"tiny_fork": FAMILY_MODULE.format(cls="B", name="b")},
                      {"tiny": "tiny_fork"}, "0.2")
    message = _one_error_line(run_cli("plugins", cwd=tmp_path, env=with_path(site)))
    assert '"tiny" (automl:tiny)' in message
    assert "tiny_one from tiny-one 0.1" in message and "tiny_fork from tiny-fork 0.2" in message
    assert "AUTOML_LOAD_PLUGINS" in message
    # Leaving the name out loads the rest.
    assert run_cli("plugins", cwd=tmp_path, env={**with_path(site), "AUTOML_LOAD_PLUGINS": ""}).returncode == 0


@pytest.mark.parametrize(("body", "expected"), [
    ("    return [object()]", "hook register_families returned list; it must call register(...)"),
    ("    raise KeyError('width')", "hook register_families raised KeyError: 'width'"),
    ("    register('not a family')", "registered"),
])
def test_a_hook_that_misbehaves_when_called_is_one_error_naming_the_plugin(tmp_path: Path, body: str,
                                                                          expected: str) -> None:
    source = f"import automl\n\n@automl.hookimpl\ndef register_families(register):\n{body}\n"
    site = make_distribution(tmp_path / "site", "odd-plugin", {"odd_mod": source}, {"odd": "odd_mod"})
    message = _one_error_line(run_cli("plugins", cwd=tmp_path, env=with_path(site)))
    assert 'plugin "odd" (module odd_mod, odd-plugin 1.0)' in message and expected in message


def test_an_entry_point_naming_an_object_in_a_module_is_a_plugin_too(tmp_path: Path) -> None:
    source = FAMILY_MODULE.format(cls="Obj", name="obj").replace(
        "@automl.hookimpl", "class Hooks:\n    pass\n\nhooks = Hooks()\n\n@automl.hookimpl")
    source += "\nhooks.register_families = register_families\n"
    site = make_distribution(tmp_path / "site", "obj-plugin", {"obj_mod": source}, {"obj": "obj_mod:hooks"})
    result = run_cli("plugins", cwd=tmp_path, env=with_path(site))
    assert result.returncode == 0, result.stderr
    assert "obj_mod:hooks" in result.stdout and "obj-plugin 1.0" in result.stdout


def test_an_import_error_names_the_distribution_too(tmp_path: Path) -> None:
    site = make_distribution(tmp_path / "site", "gone-plugin", {"gone_mod": "from os import nothing\n"},
                             {"gone": "gone_mod"}, "2.5")
    message = _one_error_line(run_cli("plugins", cwd=tmp_path, env=with_path(site)))
    assert "automl:gone = gone_mod, gone-plugin 2.5" in message and "ImportError" in message


@pytest.mark.parametrize(("body", "missing"), [
    ("    name = 'half'\n    task_kinds = ('image',)\n", "search_space, build"),
    ("    task_kinds = ('image',)\n    search_space = build = print\n", "name"),
])
def test_incomplete_family_is_named(tmp_path: Path, body: str, missing: str) -> None:
    source = f"import automl\n\nclass Half:\n{body}\n@automl.hookimpl\ndef register_families(register):\n    register(Half())\n"
    site = make_distribution(tmp_path / "site", "half-plugin", {"half_mod": source}, {"half": "half_mod"})
    result = run_cli("plugins", cwd=tmp_path, env=with_path(site))
    assert result.returncode == 2
    assert 'plugin "half"' in result.stderr and f"without {missing}" in result.stderr


def test_an_old_style_dataset_is_refused_naming_the_plugin(tmp_path: Path) -> None:
    source = ("import automl\n\nclass Old:\n    name = 'old'\n    option_keys = ()\n"
              "    def load(self, seed, config):\n        pass\n\n"
              "@automl.hookimpl\ndef register_datasets(register):\n    register(Old())\n")
    site = make_distribution(tmp_path / "site", "old-plugin", {"old_mod": source}, {"old": "old_mod"})
    result = run_cli("plugins", cwd=tmp_path, env=with_path(site))
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert 'plugin "old"' in message and "a dataset (Old) without options" in message
    assert "automl.Dataset" in message


def test_plugins_check_names_each_broken_contract(tmp_path: Path) -> None:
    broken = FAMILY_MODULE.format(cls="Wide", name="wide").replace(
        "torch.nn.Linear(64, task.num_classes)", "torch.nn.Linear(64, 64)")
    listy = FAMILY_MODULE.format(cls="Listy", name="listy").replace(
        'return {"width": trial.suggest_int("width", 2, 8)}', 'return [trial.suggest_int("width", 2, 8)]')
    site = make_distribution(tmp_path / "site", "broken-families", {"wide_mod": broken, "listy_mod": listy},
                             {"wide": "wide_mod", "listy": "listy_mod"})
    result = run_cli("plugins", "check", "wide", "listy", cwd=tmp_path, env=with_path(site))
    assert result.returncode == 1
    output = " ".join(result.stdout.split())
    assert "family wide: expected logits [B, 10], got [B, 64]" in output
    assert "family listy: search_space returned list, expected a dict" in output
    assert "6 checks failed" in result.stderr


def test_trace_variable_prints_every_hook_call(tmp_path: Path) -> None:
    result = run_cli("plugins", cwd=tmp_path, env={"AUTOML_TRACE_HOOKS": "1"})
    assert result.returncode == 0
    assert "register_families" in result.stderr and "register_datasets" in result.stderr


@dataclass(frozen=True)
class Installed:
    source: Path
    site: Path


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The example plugin package, really built and installed by pip into its own folder."""
    source = tmp_path_factory.mktemp("mixer-source") / "automl-mixer"
    shutil.copytree(REPO / "examples" / "automl-mixer", source)  # pip leaves build/ beside the source
    site = tmp_path_factory.mktemp("mixer-site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(source)], check=True)
    return Installed(source, site)


@pytest.mark.slow
def test_example_package_passes_its_own_tests(installed_example: Installed) -> None:
    result = run_pytest(cwd=installed_example.source, env=with_path(installed_example.site))
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "failed" not in result.stdout


@pytest.mark.slow
def test_plugins_check_passes_the_example(installed_example: Installed, tmp_path: Path) -> None:
    result = run_cli("plugins", "check", "mixer", cwd=tmp_path, env=with_path(installed_example.site))
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if "│ mixer" in line]
    assert len(rows) == 7 and all("PASS" in row for row in rows)


@pytest.mark.slow  # pip installs the example and searches with it
def test_external_package_is_discovered_listed_and_searched(installed_example: Installed, tmp_path: Path) -> None:
    env = with_path(installed_example.site)
    listed = run_cli("plugins", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    mixer = next(line for line in listed.stdout.splitlines() if "│ mixer" in line)
    assert "automl_mixer" in mixer and "automl-mixer 0.1.0" in mixer and "image" in mixer

    study = write_study(tmp_path, f"""
        name = "mixed"
        n_trials = 3
        storage = "sqlite:///{tmp_path / 'mixed.db'}"
        [search]
        families = ["mixer"]
        [train]
        max_epochs = 1
    """)
    run = run_cli("run", str(study), cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    assert "mixer" in run.stdout
    import optuna
    trials = optuna.load_study(study_name="mixed", storage=f"sqlite:///{tmp_path / 'mixed.db'}").trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert all(key.startswith(("mixer.", "train.", "family")) for key in trials[0].params)
    assert "mixer.depth" in trials[0].params
