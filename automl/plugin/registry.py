"""The plugin manager: loads entry points, collects families and datasets, checks each against the
contract (automl.plugin.contract) as it is registered."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Generic, TypeVar

import pluggy

from automl.errors import PluginError
from automl.plugin import hookspecs
from automl.plugin.contract import Dataset, Family, check_dataset, check_family

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME
# Comma-separated entry-point names to load besides the built-ins; set but empty: built-ins only.
ALLOWLIST_ENV = "AUTOML_LOAD_PLUGINS"
# Any non-empty value prints every hook call and its result to stderr.
TRACE_ENV = "AUTOML_TRACE_HOOKS"
# The distribution that ships automl and its built-in plugins (the import package is automl).
CORE_DISTRIBUTION = "automl-pareto"

# What a plugin registers: a family or a dataset.
Plugged = TypeVar("Plugged", bound=Family | Dataset[Any])


@dataclass(frozen=True)
class PluginSource:
    """Where a registered object came from."""

    entry_point: str
    module: str
    distribution: str
    version: str

    @property
    def builtin(self) -> bool:
        return self.distribution == CORE_DISTRIBUTION

    def __str__(self) -> str:
        return f'plugin "{self.entry_point}" (module {self.module}, {self.distribution} {self.version})'


@dataclass(frozen=True)
class Registered(Generic[Plugged]):
    """A family or dataset together with the plugin that registered it."""

    obj: Plugged
    source: PluginSource

    @property
    def name(self) -> str:
        return self.obj.name


@dataclass(frozen=True, eq=False)
class Registry:
    """Everything the installed plugins registered, keyed by name; ``plugins``: the plugins loaded,
    by entry-point name; ``left_out``: the installed ones ALLOWLIST_ENV did not load."""

    families: dict[str, Registered[Family]]
    datasets: dict[str, Registered[Dataset[Any]]]
    plugins: dict[str, PluginSource] = field(default_factory=dict)
    left_out: tuple[str, ...] = ()

    def family(self, name: str) -> Family:
        return self.families[name].obj

    def families_for(self, kind: str) -> list[str]:
        """Names of the families that can build for tasks of ``kind``, sorted."""
        return sorted(n for n, r in self.families.items() if kind in r.obj.task_kinds)

    def why_not_a_family(self, name: str) -> str:
        """Why no family is called ``name`` when a plugin is: one left out by ALLOWLIST_ENV, or one
        that registers other names; "" when no plugin is called ``name`` either."""
        if name in self.left_out:
            return (f'plugin "{name}" is installed but not loaded: {ALLOWLIST_ENV} leaves it out '
                    f"(add {name} to it)")
        source = self.plugins.get(name)
        if source is None:
            return ""
        registered = [family for family, entry in self.families.items() if entry.source == source]
        return f"{source} registers {'families ' + ', '.join(registered) if registered else 'no family'}"


def _allowed(entry_point: metadata.EntryPoint, allowlist: set[str] | None) -> bool:
    if allowlist is None or entry_point.dist is None:
        return True
    return entry_point.dist.name == CORE_DISTRIBUTION or entry_point.name in allowlist


def _read_allowlist() -> set[str] | None:
    value = os.environ.get(ALLOWLIST_ENV)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


# Every plugin error ends with what to do about it.
HINT = (f"Fix or uninstall the plugin, or set {ALLOWLIST_ENV} to the plugins to load "
        "(empty: built-ins only).")


def _distribution(entry_point: metadata.EntryPoint) -> tuple[str, str]:
    dist = entry_point.dist
    return (dist.name, dist.version) if dist else ("unknown", "unknown")


def _load_entry_point(entry_point: metadata.EntryPoint) -> Any:
    # pluggy's load_setuptools_entrypoints lets import errors escape without naming the plugin.
    try:
        return entry_point.load()
    except Exception as exc:
        raise PluginError(
            f'Error importing plugin "{entry_point.name}" (entry point '
            f'{entry_point.group}:{entry_point.name} = {entry_point.value}, '
            f'{" ".join(_distribution(entry_point))}): {type(exc).__name__}: {exc}. {HINT}'
        ) from exc


def _entry_points(allowlist: set[str] | None) -> list[metadata.EntryPoint]:
    """The allowed entry points, one per name; one name given by two distributions is an error
    (pluggy would refuse the second with a bare "Plugin name already registered")."""
    unique: dict[tuple[str, str, str], metadata.EntryPoint] = {}
    for entry_point in _installed():
        if _allowed(entry_point, allowlist):
            # The same distribution seen twice on the path (lib and lib64) is one plugin.
            unique.setdefault((entry_point.name, entry_point.value, _distribution(entry_point)[0]), entry_point)
    by_name: dict[str, list[metadata.EntryPoint]] = {}
    for entry_point in unique.values():
        by_name.setdefault(entry_point.name, []).append(entry_point)
    for name, clashing in by_name.items():
        if len(clashing) > 1:
            described = "; ".join(f"{ep.value} from {' '.join(_distribution(ep))}" for ep in clashing)
            raise PluginError(f'two installed plugins use the entry point name "{name}" '
                              f"({ENTRY_POINT_GROUP}:{name}): {described}. Uninstall one, or leave "
                              f"them out with {ALLOWLIST_ENV} (empty: built-ins only).")
    return sorted((eps[0] for eps in by_name.values()), key=lambda ep: ep.name)


def _installed() -> metadata.EntryPoints:
    return metadata.entry_points(group=ENTRY_POINT_GROUP)


# The hooks a plugin can implement (automl.plugin.hookspecs), and the attribute the marker sets.
HOOK_NAMES = tuple(name for name, value in vars(hookspecs).items()
                   if hasattr(value, f"{hookspecs.PROJECT_NAME}_spec"))
IMPL_MARK = f"{hookspecs.PROJECT_NAME}_impl"


def _check_marked(plugin: Any, source: PluginSource, implements_a_hook: bool) -> None:
    """Raise PluginError for a hook-named function without @automl.hookimpl (pluggy passes over
    it without a word, so the plugin's families would silently be missing), or a plugin that
    implements no hook at all."""
    unmarked = [name for name in HOOK_NAMES if callable(getattr(plugin, name, None))
                and not hasattr(getattr(plugin, name), IMPL_MARK)]
    if unmarked:
        definitions = " and ".join(f"`def {name}(register):`" for name in unmarked)
        raise PluginError(f"{source}: {', '.join(unmarked)} lacks the @automl.hookimpl marker, so automl never "
                          f"calls it and its registrations are missing: add @automl.hookimpl on the line above "
                          f"{definitions}. {HINT}")
    if not implements_a_hook:
        hooks = " or ".join(f"{name}(register)" for name in HOOK_NAMES)
        raise PluginError(f"{source} implements no automl hook: define {hooks} in it, marked with "
                          f"@automl.hookimpl. {HINT}")


def _invalid_hook(exc: pluggy.PluginValidationError, source: PluginSource | None) -> PluginError:
    # pluggy's message spans lines ("hookimpl definition: register_families(reg)"): one line here.
    where = f"{source}: " if source else ""
    return PluginError(f"{where}{' '.join(str(exc).split())}. The hooks are register_families(register) "
                       f"and register_datasets(register). {HINT}")


def _collector(table: dict[str, Registered[Plugged]], check: Callable[[Any, str], None],
               what: str, source: PluginSource) -> Callable[[Plugged], None]:
    def register(obj: Plugged) -> None:
        check(obj, str(source))
        if obj.name in table:
            raise PluginError(f"two {what} named {obj.name!r}: one from {table[obj.name].source}, "
                              f"one from {source}. Uninstall one, or leave one out with "
                              f"{ALLOWLIST_ENV}.")
        table[obj.name] = Registered(obj, source)
    return register


def _call_per_plugin(manager: pluggy.PluginManager, hook: str, sources: dict[str, PluginSource],
                     make_register: Callable[[PluginSource], Callable[[Any], None]]) -> None:
    # One call per plugin, so every registration, raise and return value is traced to its plugin.
    for name, source in sources.items():
        others = [p for n, p in manager.list_name_plugin() if n != name]
        try:
            returned = manager.subset_hook_caller(hook, remove_plugins=others)(
                register=make_register(source))
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"{source}: hook {hook} raised {type(exc).__name__}: {exc}. {HINT}") from exc
        wrong = [value for value in returned if value is not None]
        if wrong:
            raise PluginError(f"{source}: hook {hook} returned {type(wrong[0]).__name__}; it must call "
                              f"register(...) once per object and return None. {HINT}")


def build_registry() -> Registry:
    """Load every allowed plugin from the entry-point group and collect what it registers."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    if os.environ.get(TRACE_ENV):
        manager.trace.root.setwriter(sys.stderr.write)
        manager.enable_tracing()
    sources: dict[str, PluginSource] = {}
    for entry_point in _entry_points(_read_allowlist()):
        module = _load_entry_point(entry_point)
        # An entry point may name an object in a module (module:attr) rather than the module.
        source = PluginSource(entry_point.name, getattr(module, "__name__", entry_point.value),
                              *_distribution(entry_point))
        try:
            manager.register(module, name=entry_point.name)
        except pluggy.PluginValidationError as exc:
            raise _invalid_hook(exc, source) from exc
        except ValueError as exc:  # the same module under two entry point names
            raise PluginError(f"{source}: {exc}. {HINT}") from exc
        _check_marked(module, source, bool(manager.get_hookcallers(module)))
        sources[entry_point.name] = source
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        name = manager.get_name(exc.plugin)
        raise _invalid_hook(exc, sources.get(name) if name else None) from exc
    families: dict[str, Registered[Family]] = {}
    datasets: dict[str, Registered[Dataset[Any]]] = {}
    _call_per_plugin(manager, "register_families", sources,
                     lambda source: _collector(families, check_family, "families", source))
    _call_per_plugin(manager, "register_datasets", sources,
                     lambda source: _collector(datasets, check_dataset, "datasets", source))
    loaded = {entry_point.name for entry_point in _installed()}
    return Registry(dict(sorted(families.items())), dict(sorted(datasets.items())), sources,
                    tuple(sorted(loaded - set(sources))))


@functools.cache
def registry() -> Registry:
    """The process-wide registry, built on first use."""
    return build_registry()
