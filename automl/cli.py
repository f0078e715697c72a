"""The ``automl`` command line."""

from __future__ import annotations

import argparse
import contextlib
import math
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from automl import __version__
from automl.cli_plugins import check_plugins, list_plugins
from automl.config import DEFAULT_STORAGE, load_study_file
from automl.errors import AutomlError, UsageError
from automl.plugin.registry import registry
from automl.printed_log import printing_log
from automl.results.dashboard_storage import DASHBOARD_TRIALS
from automl.runner import quiet_libraries
from automl.storage.urls import STORAGE_ENV, load_study, open_storage, pasteable, redact, storage_from_env
from automl.study_reference import resolve_study
from automl.workers.collector import collect_less_often
from automl.workers.interrupts import Interrupted
from automl.workers.process_clock import process_start_time

if TYPE_CHECKING:  # imported when a command needs it: `automl --help` stays quick
    from automl.results.stored import StoredTrial


def error_console() -> Console:
    """stderr as the commands print to it. Soft wrap: a message stays one line however wide the
    terminal (or file) it goes to; the README promises one error line, and a wrapped path cannot
    be copied."""
    return Console(stderr=True, soft_wrap=True)


ERR = error_console()


def _run(args: argparse.Namespace) -> None:
    from automl.results.front import print_front
    from automl.runner import WorkersFailed, run

    path = Path(args.study_file)
    config = load_study_file(path)
    storage = config.storage_url(args.storage)
    try:
        study = run(config, n_trials=args.n_trials, timeout=args.timeout, storage=args.storage, workers=args.workers,
                    threads=args.threads, progress=not args.no_progress, warm_start=args.warm_start,
                    started=args.started)
    except WorkersFailed as failed:
        print_front(failed.study)
        _hints(failed.study.study_name, storage)
        raise
    if args.workers == 0:
        ERR.print(escape(f"queued; start workers anywhere: {pasteable(f'{invoked_as()} worker {path}', storage)}"))
        return
    print_front(study)
    _hints(study.study_name, storage)


def _hints(study_name: str, storage: str) -> None:
    """Where to look next, as commands the user can paste (the study in ``storage``)."""
    command = invoked_as()
    ERR.print(escape(f"inspect: {pasteable(f'{command} show {study_name}', storage)}"))
    ERR.print(escape(f"browse:  {pasteable(f'{command} dashboard', storage)}"))


def invoked_as() -> str:
    """The command as the user ran it, for hints they can paste: ``automl`` when the shell finds this
    one by that name, else the path they ran (``.venv/bin/automl``), or ``PYTHON -m automl``."""
    ran = Path(sys.argv[0])
    if ran.name == "__main__.py":  # python -m automl
        found = shutil.which("python")
        python = Path(sys.executable)
        shown = "python" if found and Path(found).absolute() == python.absolute() else _as_typed(python)
        return f"{shown} -m automl"
    found = shutil.which(ran.name)
    if found and Path(found).absolute() == ran.absolute():
        return ran.name
    return _as_typed(ran)


def _as_typed(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it, else absolute."""
    path = path.absolute()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _worker(args: argparse.Namespace) -> None:
    from automl.runner import join
    from automl.storage.trial_queue import DONE, count
    from automl.workers.worker import worker_name

    study = join(Path(args.study_file), storage=args.storage, timeout=args.timeout, deadline_at=args.deadline,
                 threads=args.threads, progress=not args.no_progress, started=args.started)
    ERR.print(f"worker {worker_name()}: no trial left to run; {count(study, *DONE)} finished in the study")


def _show(args: argparse.Namespace) -> None:
    from automl.results.front import print_front

    print_front(load_study(args.study_name, args.storage))  # read in outline (automl.storage.outline)


def _dashboard(args: argparse.Namespace) -> None:
    from optuna_dashboard import run_server

    from automl.results.dashboard import NOTES_PER_BATCH, DashboardUpdater
    from automl.results.dashboard_storage import DashboardStorage
    from automl.storage.artifacts import artifact_dir, open_store
    from automl.storage.schema import CONFIG_ATTR
    from automl.storage.worker_storage import WorkerStorage

    # A worker's storage reads the trials in batches, then those that changed; Optuna's ORM, all at each call.
    served = DashboardStorage(reads := WorkerStorage(open_storage(args.storage, must_exist=True)))
    folder = artifact_dir(args.storage, args.artifacts)
    # The studies alone: optuna.get_all_study_summaries would read every trial of every study
    # through Optuna's ORM to count them (minutes at 50,000 trials).
    for summary in reads.get_all_studies():
        if CONFIG_ATTR not in summary.user_attrs:  # not automl's: its notes are its owner's
            continue
        name = summary.study_name

        def progress(done: int, total: int, name: str = name) -> None:
            if total > NOTES_PER_BATCH:
                ERR.print(f"  study {name!r}: {done:,} of {total:,} notes written")

        study = load_study(name, args.storage, reads)  # its trials read once: the count, update, sample
        count = len(study.get_trials(deepcopy=False))
        try:  # a study run by `automl worker`s alone, or before automl saved figures, gets them now
            ERR.print(f"study {name!r} ({count:,} trials): bringing its dashboard notes and figures up to date")
            updater = DashboardUpdater(progress=progress)
            updater.update(study)
            ERR.print(f"  {updater.notes_written:,} notes written, figures saved, in {updater.spent_s:.1f} s")
        except Exception as exc:  # e.g. a read-only database: serve what is stored
            ERR.print(escape(f"note: the figures and notes of study {name!r} were not updated: {exc}"))
        left_out = 0 if args.all_trials else served.sample(study, DASHBOARD_TRIALS)
        if left_out:
            ERR.print(f"  its page shows {count - left_out:,} of its {count:,} trials: the front's, those not finished "
                      "and others evenly spread over the study (--all-trials: every one)", soft_wrap=True)
    ERR.print(f"serving {redact(args.storage)} on http://{args.host}:{args.port}/ with artifacts from "
              f"{folder} (Ctrl-C stops)")
    run_server(served, host=args.host, port=args.port, artifact_store=open_store(folder))


def _report(args: argparse.Namespace) -> None:
    from automl.storage.artifacts import output_dir

    study = load_study(args.study_name, args.storage)  # read in outline (automl.storage.outline)
    output_dir(Path(args.out), "report folder")  # a folder it cannot write fails before seconds of imports
    from automl.results.report import write_report

    path = write_report(study, args.storage, Path(args.out))
    ERR.print(f"report: {path} (figures as PNGs beside it)")


def _stored(args: argparse.Namespace) -> StoredTrial:
    from automl.results.stored import load_stored_trial

    return load_stored_trial(load_study(args.study_name, args.storage), args.trial, args.storage, registry())


def _export(args: argparse.Namespace) -> None:
    from automl.results.export import check_destination, check_trained, export_model, study_data, trained_model
    from automl.storage.artifacts import artifact_dir, open_store

    stored = _stored(args)  # refuses a trial outside its space before any folder is made
    check_trained(stored)
    check_destination(args.format, Path(args.out))  # before the weights are loaded or trained again
    store = open_store(artifact_dir(args.storage, args.artifacts))

    def note(text: str) -> None:
        ERR.print(f"note: {text}")

    model, weights, retrained = trained_model(stored, store, registry(), note)
    exported = export_model(stored, model, args.format, Path(args.out), weights, study_data(stored, registry(), note),
                            retrained)
    ERR.print(f"{stored.label} ({stored.family.name}) as {args.format}: {exported.path}, described in "
              f"{exported.json_path}; outputs match PyTorch on a batch of {exported.check_batch} "
              f"(max abs difference {exported.max_abs_diff:.2g})")
    if exported.fixed_batch:
        ERR.print(f"note: the model fixes its batch size, so the export takes batches of {exported.fixed_batch}")


def _retrain(args: argparse.Namespace) -> None:
    from automl.results.export import check_destination, export_model
    from automl.results.retrain import retrain
    from automl.storage.schema import TrialAttr

    if args.format and not args.out:
        raise UsageError(f"retrain --format {args.format} says how to save the retrained model; add --out DIR "
                         "to say where")
    fmt = args.format or "state_dict"
    stored = _stored(args)  # refuses a trial outside its space before any folder is made
    if args.out:
        check_destination(fmt, Path(args.out))  # before the minutes of training
    ERR.print(f"retraining {stored.label} ({stored.family.name}) on train+validation ...")
    data = stored.data(registry())
    result = retrain(stored, data, args.epochs)
    before, folds = (stored.trial.user_attrs.get(key) for key in (TrialAttr.TEST_ACCURACY, TrialAttr.FOLDS))
    trained_alone = f"the mean of its {folds} fold models" if folds else "trained on train alone"
    tested = "no test split" if result.test_accuracy is None else f"test accuracy {result.test_accuracy:.4f}"
    print(f"trial {stored.trial.number} ({stored.family.name}) retrained on train+validation "
          f"({result.train_samples} samples, {result.epochs} epochs): {tested}"
          + (f" ({trained_alone}: {before:.4f})" if before is not None else ""))
    if args.out:
        exported = export_model(stored, result.model, fmt, Path(args.out),
                                f"retrained on train+validation ({result.epochs} epochs)", data, result)
        ERR.print(f"retrained model as {fmt}: {exported.path}, described in {exported.json_path}")


def _at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum`` (argparse exits 2 naming the flag)."""
    def whole_number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, found {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, found {value}")
        return value
    return whole_number


def _seconds(text: str) -> float:
    """An argparse type: a number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, found {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, found {text}")
    return value


# What `automl --help` says first: plain text (the module docstring is reST).
DESCRIPTION = ("Neural architecture search over plugin families: every trial is scored on validation accuracy and "
               "cost (FLOPs, parameters or latency), and the result is a Pareto front.")
TIMEOUT_HELP = ("the run's wall-clock budget in seconds (default: the file's timeout): no trial starts after "
                "it, and the trials under way stop at their next training step with the epochs they validated")
STORAGE_HELP = (f"SQLAlchemy URL (default: ${STORAGE_ENV}, else the file's storage, else {DEFAULT_STORAGE}); "
                "the variable keeps a password off the command line")
ARTIFACTS_HELP = ("folder of the trials' artifacts (default: NAME-artifacts beside an SQLite file NAME.db, "
                  "else ./automl-artifacts; a study file sets it with artifacts = ...)")


def _study_command(commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
                   help: str) -> argparse.ArgumentParser:
    """A command on one stored study: STUDY_NAME and --storage."""
    command = commands.add_parser(name, help=help)
    command.add_argument("study_name", metavar="STUDY_NAME", help="the study's name, or its study file (which names "
                         "its storage)")
    command.add_argument("--storage", default=storage_from_env(),
                         help=f"SQLAlchemy URL (default ${STORAGE_ENV}, else a study file's storage, else "
                         f"{DEFAULT_STORAGE})")
    return command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="automl", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"automl {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run (or resume) the study a TOML study file describes")
    run.add_argument("study_file", metavar="STUDY.toml")
    run.add_argument("--n-trials", type=_at_least(1),
                     help="trials to add (default: the file's n_trials; without one, as many "
                     "as the time budget allows, else 30)")
    run.add_argument("--storage", default=storage_from_env(), help=STORAGE_HELP)
    run.add_argument("--timeout", type=_seconds, metavar="S", help=TIMEOUT_HELP)
    run.add_argument("--workers", type=_at_least(0), metavar="N",
                     help="worker processes on this machine (default 1, or [workers] trials_per_gpu "
                          "per GPU; 0 only queues the trials, for workers started elsewhere with "
                          "`automl worker`)")
    run.add_argument("--threads", type=_at_least(1), metavar="T",
                     help="CPU threads for training, per worker (default: torch's with one worker, else an even "
                          "share of the cores)")
    run.add_argument("--warm-start", action="append", default=[], metavar="SOURCE",
                     help="a new study first runs these configs: study:NAME (its Pareto front), "
                          "study:NAME@URL, or a JSON file; repeatable, added to the file's [search] warm_start")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(handler=_run)

    worker = commands.add_parser("worker", help="join a study's workers: run its queued trials, from any machine")
    worker.add_argument("study_file", metavar="STUDY.toml")
    worker.add_argument("--storage", default=storage_from_env(), help=STORAGE_HELP)
    worker.add_argument("--timeout", type=_seconds, metavar="S", help=TIMEOUT_HELP)
    # The run's deadline (a time.time() value), from `automl run` to the workers it starts.
    worker.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    worker.add_argument("--threads", type=_at_least(1), metavar="T", help="CPU threads for training (default: torch's)")
    worker.add_argument("--no-progress", action="store_true", help="no progress bar")
    worker.set_defaults(handler=_worker)

    show = _study_command(commands, "show", "print a study's Pareto front with test accuracy")
    show.set_defaults(handler=_show)

    # Without a command it lists; `check` is the one command it has, and optional.
    plugins = commands.add_parser("plugins", help="list installed families and datasets and their plugins",
                                  usage="automl plugins [-h] [check [NAME ...]]",
                                  description="Without a command: list the installed families and datasets and the "
                                  "plugins they come from. `automl plugins check` runs their conformance checks.")
    plugins.set_defaults(handler=list_plugins)
    plugin_commands = plugins.add_subparsers(dest="plugins_command", metavar="check", required=False,
                                             title="command (optional)")
    check = plugin_commands.add_parser("check", help="run quick conformance checks on installed families",
                                       prog="automl plugins check")
    check.add_argument("names", nargs="*", metavar="NAME", help="families to check (default: all)")
    check.set_defaults(handler=check_plugins)

    dashboard = commands.add_parser("dashboard", help="open the studies in optuna-dashboard")
    dashboard.add_argument("--storage", default=storage_from_env(DEFAULT_STORAGE),
                           help=f"SQLAlchemy URL (default ${STORAGE_ENV}, else {DEFAULT_STORAGE})")
    dashboard.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    dashboard.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    dashboard.add_argument("--artifacts", metavar="DIR", help=ARTIFACTS_HELP)
    dashboard.add_argument("--all-trials", action="store_true", help=f"every trial on an automl study's page (by "
                           f"default past {DASHBOARD_TRIALS:,}: the front's and others spread, {DASHBOARD_TRIALS:,} in "
                           "all; optuna-dashboard's page takes minutes for 50,000)")
    dashboard.set_defaults(handler=_dashboard)

    report = _study_command(commands, "report", "write an HTML report with figures of a study")
    report.add_argument("--out", required=True, metavar="DIR", help="folder for report.html and its PNGs")
    report.set_defaults(handler=_report)

    export = _study_command(commands, "export", "export a trial's trained model, checked against PyTorch")
    export.add_argument("--trial", type=_at_least(0), required=True, metavar="N",
                        help="trial number (see `automl show`)")
    export.add_argument("--format", required=True, choices=["onnx", "torchscript", "state_dict"])
    export.add_argument("--out", required=True, metavar="DIR", help="folder for the model and its JSON")
    export.add_argument("--artifacts", metavar="DIR", help=ARTIFACTS_HELP)
    export.set_defaults(handler=_export)

    retrain = _study_command(commands, "retrain", "train a trial's config on train+validation, report test accuracy")
    retrain.add_argument("--trial", type=_at_least(0), required=True, metavar="N",
                         help="trial number (see `automl show`)")
    retrain.add_argument("--epochs", type=_at_least(1), metavar="E", help="epochs (default: as many as the trial ran)")
    retrain.add_argument("--out", metavar="DIR", help="save the retrained model there, checked against PyTorch, "
                         "with its JSON (as export writes them)")
    retrain.add_argument("--format", choices=["onnx", "torchscript", "state_dict"],
                         help="format of the saved model (default state_dict; needs --out)")
    retrain.set_defaults(handler=_retrain)
    return parser


def main(argv: list[str] | None = None) -> int:
    # A time budget counts from the moment the user started automl: the process's start when this
    # is the program, the call when automl runs inside another program (a notebook, a test).
    started = process_start_time() if argv is None else time.time()
    if argv is None:
        collect_less_often()  # start-up's imports: see automl.workers.collector
    args = build_parser().parse_args(argv)
    args.started = started
    try:
        with printing_log(ERR), quiet_libraries():
            if getattr(args, "study_name", None) is not None:
                args.study_name, args.storage = resolve_study(args.study_name, args.storage)
            args.handler(args)
    except AutomlError as exc:
        ERR.print(f"error: {exc}", markup=False, highlight=False)
        return exc.exit_code
    except Interrupted as exc:
        # After SIGHUP the terminal may be gone: what the signal left is recorded already.
        with contextlib.suppress(OSError):
            ERR.print(exc.explain(), markup=False, highlight=False)
        return exc.exit_code
    except KeyboardInterrupt:
        ERR.print("interrupted")
        return 130
    return 0
