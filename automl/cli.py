"""The ``automl`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import optuna
from rich.console import Console
from rich.table import Table

from automl import __version__
from automl.config import DEFAULT_STORAGE, load_study_file
from automl.errors import AutomlError
from automl.plugins import registry
from automl.storage import load_study, open_storage, redact

ERR = Console(stderr=True)


def _run(args: argparse.Namespace) -> None:
    from automl.results import print_front
    from automl.study import plan_study, run_study

    path = Path(args.study_file)
    plan = plan_study(load_study_file(path), path, registry(), args.storage)
    for note in plan.notes:
        ERR.print(f"note: {note}")
    task = plan.data.task
    ERR.print(f"study {plan.config.name!r}: {len(plan.families)} families ({', '.join(plan.families)}) on "
              f"{plan.config.data.dataset} ({task.kind}, input {list(task.input_shape)}, "
              f"{task.num_classes} classes), objectives {', '.join(plan.config.search.objectives)}, "
              f"storage {redact(plan.storage_url)}")
    if not args.no_progress:
        # One INFO line per trial would tear the progress bar apart; failures still warn.
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = run_study(plan, args.n_trials, args.timeout, show_progress_bar=not args.no_progress)
    print_front(study)
    storage = redact(plan.storage_url)
    ERR.print(f"inspect: automl show {study.study_name} --storage {storage}", soft_wrap=True)
    ERR.print(f"browse:  automl dashboard --storage {storage}", soft_wrap=True)


def _show(args: argparse.Namespace) -> None:
    from automl.results import print_front

    print_front(load_study(args.study_name, args.storage))


def _plugins(args: argparse.Namespace) -> None:
    table = Table(title="Installed families")
    for column in ("family", "task kinds", "plugin", "module", "distribution"):
        table.add_column(column)
    for name, registered in registry().families.items():
        source = registered.source
        table.add_row(name, ", ".join(registered.obj.task_kinds), source.entry_point, source.module,
                      f"{source.distribution} {source.version}")
    Console().print(table)
    datasets = Table(title="Installed datasets")
    for column in ("dataset", "plugin", "module", "distribution"):
        datasets.add_column(column)
    for name, registered in registry().datasets.items():
        source = registered.source
        datasets.add_row(name, source.entry_point, source.module, f"{source.distribution} {source.version}")
    Console().print(datasets)


def _dashboard(args: argparse.Namespace) -> None:
    from optuna_dashboard import run_server

    storage = open_storage(args.storage)
    ERR.print(f"serving {redact(args.storage)} on http://{args.host}:{args.port}/ (Ctrl-C stops)")
    run_server(storage, host=args.host, port=args.port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="automl", description=__doc__)
    parser.add_argument("--version", action="version", version=f"automl {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run (or resume) the study a TOML study file describes")
    run.add_argument("study_file", metavar="STUDY.toml")
    run.add_argument("--n-trials", type=int, help="trials to add (default: the file's n_trials)")
    run.add_argument("--storage", help=f"SQLAlchemy URL (default: the file's storage, else {DEFAULT_STORAGE})")
    run.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(handler=_run)

    show = commands.add_parser("show", help="print a study's Pareto front with test accuracy")
    show.add_argument("study_name", metavar="STUDY_NAME")
    show.add_argument("--storage", default=DEFAULT_STORAGE, help=f"SQLAlchemy URL (default {DEFAULT_STORAGE})")
    show.set_defaults(handler=_show)

    plugins = commands.add_parser("plugins", help="list installed families and datasets and their plugins")
    plugins.set_defaults(handler=_plugins)

    dashboard = commands.add_parser("dashboard", help="open the studies in optuna-dashboard")
    dashboard.add_argument("--storage", default=DEFAULT_STORAGE, help=f"SQLAlchemy URL (default {DEFAULT_STORAGE})")
    dashboard.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    dashboard.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    dashboard.set_defaults(handler=_dashboard)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "n_trials", None) is not None and args.n_trials < 1:
        build_parser().error("--n-trials must be at least 1")
    try:
        args.handler(args)
    except AutomlError as exc:
        ERR.print(f"error: {exc}", markup=False, highlight=False)
        return exc.exit_code
    except KeyboardInterrupt:
        ERR.print("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
