"""docs/plugins.md is followed literally: its files are written, installed, checked and searched;
what it, the example plugin and the built-in families import is the public API a plugin author gets
from ``automl`` and ``automl.testing``."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from automl.plugin import hookspecs
from conftest import REPO, CliResult, run_cli, run_pytest, with_path

DOC = (REPO / "docs" / "plugins.md").read_text()
# Where a plugin author imports automl from.
AUTHOR_MODULES = ("automl", "automl.testing")
HOOKS = {name: function for name, function in vars(hookspecs).items()
         if callable(function) and hasattr(function, f"{hookspecs.PROJECT_NAME}_spec")}


def doc_files() -> dict[str, str]:
    """Code blocks whose first line is a comment naming a file: {path: contents}."""
    blocks = re.findall(r"```(?:python|toml)\n(.*?)```", DOC, flags=re.DOTALL)
    files = {}
    for block in blocks:
        first = block.splitlines()[0].strip()
        if first.startswith("# ") and first.endswith((".py", ".toml")):
            files[first[2:]] = block
    return files


# The plugin guide's commands run in a plain shell from the clone: its tools are called by path.
VENV_BIN = ".venv/bin/"


def doc_commands(markdown: str) -> list[list[str]]:
    """The commands of ``markdown``'s bash blocks, split as a shell splits them, comments dropped."""
    blocks = re.findall(r"```bash\n(.*?)```", markdown, flags=re.DOTALL)
    return [shlex.split(line, comments=True) for block in blocks for line in block.splitlines()
            if shlex.split(line, comments=True)]


def test_the_plugin_guide_runs_its_tools_by_path_in_a_plain_shell() -> None:
    commands = doc_commands(DOC)
    # A bare `pip` or `automl` is another environment's, or "command not found", in a fresh shell.
    assert [" ".join(command) for command in commands if not command[0].startswith(VENV_BIN)] == []
    assert {command[0] for command in commands} == {f"{VENV_BIN}{tool}" for tool in ("pip", "automl", "pytest")}


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.DOTALL)


def automl_imports(source: str) -> list[tuple[str, str]]:
    """(module, name) of every automl import in ``source``, and ("automl", NAME) for every
    ``automl.NAME`` it reads; the name is "" for a plain ``import module``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names if alias.name.split(".")[0] == "automl"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "automl":
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "automl":
            found.append(("automl", node.attr))
    return found


def not_public(source: str) -> list[str]:
    """What ``source`` takes from automl beyond the names ``automl`` and ``automl.testing`` export."""
    return [f"{module}{'.' + name if name else ''}" for module, name in automl_imports(source)
            if module not in AUTHOR_MODULES or name and name not in importlib.import_module(module).__all__]


AUTHOR_SOURCES = {
    "docs/plugins.md": python_blocks(DOC),
    # What a user's own code reads from automl: the README's and the Python API page's examples.
    **{page: python_blocks((REPO / page).read_text()) for page in ("README.md", "docs/python-api.md")},
    # One package: its layers module imports torch alone, the family module imports automl.
    "examples/automl-mixer": [path.read_text() for path in sorted((REPO / "examples" / "automl-mixer").rglob("*.py"))],
    **{f"plugins/automl_plugins/{name}.py": [(REPO / "plugins" / "automl_plugins" / f"{name}.py").read_text()]
       for name in ("mlp", "cnn", "rnn", "transformer", "_layers", "_space")},
}


@pytest.mark.parametrize("where", list(AUTHOR_SOURCES))
def test_plugin_code_imports_only_what_automl_exports(where: str) -> None:
    sources = AUTHOR_SOURCES[where]
    assert sources and any(automl_imports(source) for source in sources), f"no automl import found in {where}"
    for source in sources:
        assert not not_public(source), f"{where} imports from automl's insides: {not_public(source)}"


def test_the_import_check_sees_an_inside_import() -> None:
    # Guard against a check that cannot fail.
    assert not_public("from automl.plugin.space import sample_params\nimport automl\nautoml.registry") == [
        "automl.plugin.space.sample_params", "automl.registry"]


def test_every_hook_is_documented_with_its_exact_signature() -> None:
    assert HOOKS, "no hookspecs found"
    for name, function in HOOKS.items():
        parameters = ", ".join(inspect.signature(function).parameters)
        assert f"### `{name}({parameters})`" in DOC, f"{name} is missing from the hooks reference"


def test_every_hook_is_implemented_by_a_documented_example_this_file_runs() -> None:
    examples = "\n".join(doc_files().values())
    for name, function in HOOKS.items():
        parameters = ", ".join(inspect.signature(function).parameters)
        assert f"def {name}({parameters}):" in examples, f"no runnable example implements {name}"


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tutorial's files, written where it says, and the packages its pip commands install,
    installed with pip (into a site folder, not this environment)."""
    root = tmp_path_factory.mktemp("tutorial")
    for relative, text in doc_files().items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    installs = [command[3] for command in doc_commands(DOC) if command[:3] == [f"{VENV_BIN}pip", "install", "-e"]]
    assert installs == ["automl-widemlp", "automl-blobs"]
    # One pip for both packages: a second pip process would cost its start-up again.
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(root / "site"), *(str(root / package) for package in installs)], check=True)
    return root


def run_suite(tests: Path, env: dict[str, str]) -> CliResult:
    """pytest on a tutorial package's tests, as its author runs them."""
    return run_pytest(str(tests), cwd=tests.parent.parent, env=env)


@pytest.mark.slow  # pip installs the tutorial's packages and searches with them
def test_tutorial_family_and_dataset_are_listed_checked_tested_and_searched(tutorial: Path) -> None:
    """Every command of the guide, in its order, as written: pip's were run by the fixture; a
    search is capped at 3 trials."""
    env = with_path(tutorial / "site")
    ran = {}
    for command in doc_commands(DOC):
        tool, args = command[0].removeprefix(VENV_BIN), command[1:]
        if tool == "automl":
            result = run_cli(*args, *(["--n-trials", "3"] if args[0] == "run" else []), cwd=tutorial, env=env)
        elif tool == "pytest":
            result = run_suite(tutorial / args[0], env)
        else:
            continue
        assert result.returncode == 0, f"{' '.join(command)}: {result.stdout}{result.stderr}"
        ran[" ".join(args)] = result
    assert any("widemlp" in line and "automl-widemlp 0.1.0" in line for line in ran["plugins"].stdout.splitlines())
    assert "FAIL" not in ran["plugins check widemlp"].stdout
    assert re.search(r"Pareto front of 'widemlp-vs-cnn' \([1-3] of 3 trials\)", ran["show widemlp-vs-cnn"].stdout)
    assert " passed" in ran["automl-widemlp/tests"].stdout
    assert "5 passed" in ran["automl-blobs/tests"].stdout
    assert "blobs (tabular, input [8], 4 classes)" in " ".join(ran["run blobs.toml"].stderr.split())


@pytest.mark.slow
def test_tutorial_dataset_options_refuse_a_bad_value_and_a_typo(tutorial: Path) -> None:
    env = with_path(tutorial / "site")

    def run(data: str, db: str) -> subprocess.CompletedProcess:
        study = tutorial / "blobs-options.toml"
        study.write_text(f'name = "blobs"\nn_trials = 2\nstorage = "sqlite:///{tutorial / db}"\n'
                         '[search]\nfamilies = ["mlp"]\n[train]\nmax_epochs = 2\n'
                         f'[data]\ndataset = "blobs"\n{data}\n')
        return run_cli("run", str(study), cwd=tutorial, env=env)

    # The options model refuses a bad value given in a [data.options] table and a typo in [data].
    bad_value, typo = run('[data.options]\nclasses = "many"', "bad_value.db"), run("clases = 4", "typo.db")
    assert bad_value.returncode == typo.returncode == 2, bad_value.stderr + typo.stderr
    bad_value_error, typo_error = (" ".join(result.stderr.split()) for result in (bad_value, typo))
    assert "classes" in bad_value_error, bad_value_error
    assert "clases" in typo_error and "classes" in typo_error, typo_error
    assert not (tutorial / "bad_value.db").exists() and not (tutorial / "typo.db").exists()
