"""The ``automl plugins`` commands: the installed families and datasets, and their conformance checks."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from automl.errors import AutomlError, UsageError, plural
from automl.plugin.registry import registry


def list_plugins(args: argparse.Namespace) -> None:
    table = Table(title="Installed families")
    # Module and distribution names wrap at 80 columns instead of losing their ends to an ellipsis.
    for column in ("family", "task kinds", "plugin", "module", "distribution"):
        table.add_column(column, overflow="fold")
    for name, registered in registry().families.items():
        source = registered.source
        table.add_row(name, ", ".join(registered.obj.task_kinds), source.entry_point, source.module,
                      f"{source.distribution} {source.version}")
    Console().print(table)
    datasets = Table(title="Installed datasets")
    for column in ("dataset", "plugin", "module", "distribution"):
        datasets.add_column(column, overflow="fold")
    for name, dataset in registry().datasets.items():
        source = dataset.source
        datasets.add_row(name, source.entry_point, source.module, f"{source.distribution} {source.version}")
    Console().print(datasets)


def check_plugins(args: argparse.Namespace) -> None:
    from automl.conformance import run_checks

    families = registry().families
    names = args.names or list(families)
    unknown = [name for name in names if name not in families]
    if unknown:
        reasons = [reason for reason in map(registry().why_not_a_family, unknown) if reason]
        raise UsageError(f"unknown family {', '.join(map(repr, unknown))}; installed families: "
                         f"{', '.join(families)}" + "".join(f"; {reason}" for reason in reasons))
    table = Table(title="Conformance checks")
    for column in ("family", "task kind", "check", "result"):
        table.add_column(column)
    failures = 0
    for name in names:
        for result in run_checks(families[name].obj):
            failures += not result.passed
            verdict = "[green]PASS[/]" if result.error is None else f"[red]FAIL[/] {escape(result.error)}"
            table.add_row(name, result.kind, result.check, verdict)
    Console().print(table)
    if failures:
        raise AutomlError(f"{plural(failures, 'check')} failed; see the table above")
