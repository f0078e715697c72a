"""The package layout is the data flow: each stage imports only from the stages before it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import automl

PACKAGE = Path(automl.__file__).parent
BUILT_INS = PACKAGE.parent / "plugins" / "automl_plugins"
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _stage(module: str) -> int:
    """The position of ``module``'s stage in automl.STAGES; modules on top come after them all."""
    name = module.removeprefix("automl.").split(".")[0]
    return automl.STAGES.index(name) if name in automl.STAGES else len(automl.STAGES)


def _imports(path: Path) -> set[str]:
    """The automl modules ``path`` imports, anywhere in it (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name in MODULES}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_later_stage(module: str) -> None:
    later = sorted(name for name in _imports(MODULES[module]) if _stage(name) > _stage(module))
    assert not later, f"{module} (stage {_stage(module)}) imports later stages: {later}"


def test_no_import_cycle() -> None:
    graph = {module: _imports(path) - {module} for module, path in MODULES.items()}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        for imported in sorted(graph[module]):
            # A package's __init__ is imported with its modules; only module-to-module edges count.
            if not MODULES[imported].name == "__init__.py":
                visit(imported, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


@pytest.mark.parametrize("stage", automl.STAGES)
def test_every_stage_says_what_it_owns(stage: str) -> None:
    path = PACKAGE / stage / "__init__.py" if (PACKAGE / stage).is_dir() else PACKAGE / f"{stage}.py"
    docstring = ast.get_docstring(ast.parse(path.read_text()))
    assert docstring and len(docstring.split()) >= 8, f"{path} needs a docstring saying what it owns"
    assert "import" in docstring.lower(), f"{path}'s docstring should say what the stage may import"


def test_no_module_is_too_long() -> None:
    # The built-in plugins too: they are the examples plugin authors read.
    paths = {**MODULES, **{f"automl_plugins.{path.stem}": path for path in BUILT_INS.glob("*.py")}}
    long = {module: n for module, path in paths.items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by concept): {long}"


def test_the_layering_check_sees_a_late_import() -> None:
    # Guard against a check that cannot fail: a training module importing the search must show up.
    assert _stage("automl.search.objective") > _stage("automl.training.loop")
    assert "automl.search.objective" in _imports(PACKAGE / "search" / "study.py")
