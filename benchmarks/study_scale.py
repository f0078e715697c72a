"""How automl's costs grow with a study: per-trial overhead, the views, many workers on one database.

Side by side with plain Optuna in one run, on SQLite and (with a server) PostgreSQL:

1. per-trial overhead (everything but the training epochs) in studies already holding N finished
   trials, automl's worker against Optuna's ``study.optimize`` with the same grouped multivariate
   TPE on the same database (scale/overhead.py); the ratios automl/Optuna and automl at N / at the
   smallest N;
2. ``automl show``, ``automl report`` and ``automl dashboard`` (start-up, the study API as the
   browser calls it, the page in headless Chromium) on those studies, against ``optuna
   best-trials`` and the dashboard on the plain Optuna study of the same trials: time and peak
   memory (scale/views.py);
3. on PostgreSQL, 8, 32 and 128 simulated workers doing a worker's storage work on one study:
   finished trials per second, connections, errors, lost, stuck and duplicated trials, the CPU-seconds
   a finished trial costs the workers and the server (scale/workers.py); ``--rounds R`` runs each
   count R times (the figures: their medians; the trials got wrong: their sum); with ``--compare
   TREE``, against another checkout's, both run alternately in one run, and the ratios
   (scale/compare.py).

The studies are written in bulk (scale/bulk.py), as automl's workers leave them, so a study of
50,000 trials takes a minute to make, not days. PostgreSQL: ``--postgres URL`` (or
AUTOML_TEST_POSTGRES_URL, as .ci/postgres.sh sets it) of a role that may create databases; each
size gets a database of its own, dropped at the end. The last lines are ``key=value`` figures.

    python benchmarks/study_scale.py --quick        # about a minute: a smoke run
    python benchmarks/study_scale.py                # 100 to 50,000 trials: an hour or more on 2 cores
    # show and report alone, on a 50,000-trial study written once into /tmp/scale and reused after
    python benchmarks/study_scale.py --parts views --sizes 50000 --keep /tmp/scale --no-dashboard
    # 128 simulated workers, three runs: the medians
    python benchmarks/study_scale.py --parts workers --workers 128 --rounds 3
    # 32 simulated workers of this tree against an older commit's, alternately, twice each
    git worktree add --detach /tmp/before COMMIT
    python benchmarks/study_scale.py --parts workers --workers 32 --compare /tmp/before
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import operator
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import sqlalchemy
from scale import compare, views, workers
from sqlalchemy.engine import make_url

AUTOML, OPTUNA = "automl", "optuna"
VIEW_TIMEOUT_S = 600


@contextlib.contextmanager
def database(backend: str, postgres: str | None, size: int, folder: Path) -> Iterator[str]:
    """A new, empty database for one size: an SQLite file, or a PostgreSQL database dropped after."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / f'scale-{size}.db'}"
        return
    assert postgres is not None
    name = f"automl_scale_{size}_{os.getpid()}"
    admin = sqlalchemy.create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(postgres).set(database=name).render_as_string(hide_password=False)
    finally:
        sqlalchemy.create_engine(postgres).dispose()
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f"DROP DATABASE {name} WITH (FORCE)"))
        admin.dispose()


# The simulated workers' processes start by importing this module (multiprocessing's spawn): what
# brings torch (the studies' plans, the trials, the dashboard's figures) is imported where it is used,
# so that each of those processes stays as light as a worker without torch.


def overhead_rows(backend: str, url: str, size: int, timed: int, results: dict[str, float]) -> None:
    from scale import bulk
    from scale.overhead import automl_overhead, optuna_overhead

    started = time.perf_counter()
    study_plan, configs = bulk.automl_study(AUTOML, url, size)
    bulk.optuna_study(OPTUNA, url, size, configs)
    made = time.perf_counter() - started
    ours = automl_overhead(study_plan, timed)
    theirs = optuna_overhead(study_plan, url, OPTUNA, max(2, timed // 2) if size >= 10_000 else timed)
    results[f"overhead_ms_{backend}_{size}"] = 1000 * ours
    base = results.setdefault(f"overhead_ms_{backend}_base", 1000 * ours)
    print(f"{backend:<10} {size:>7,} {1000 * ours:>10.1f} {1000 * theirs:>10.1f} {ours / theirs:>13.3f} "
          f"{1000 * ours / base:>11.2f}   (studies written in {made:.0f} s)", flush=True)


def view_studies(url: str, size: int) -> None:
    """The automl and the plain Optuna study of ``size`` trials, written in bulk (overhead untimed);
    kept as they are when the database holds both already (a folder given with --keep)."""
    from scale import bulk

    if {AUTOML, OPTUNA} <= set(optuna.get_all_study_names(url)):
        print(f"{size:>7,} trials: studies reused from {make_url(url).database}", flush=True)
        return
    started = time.perf_counter()
    bulk.optuna_study(OPTUNA, url, size, bulk.automl_study(AUTOML, url, size)[1])
    print(f"{size:>7,} trials: studies written in {time.perf_counter() - started:.0f} s", flush=True)


def view_rows(url: str, size: int, browser: bool, results: dict[str, float], served: bool = True) -> None:
    """show, report and Optuna's best-trials on the study as `automl run` leaves it (its dashboard notes and
    figures saved); then, when ``served``, the dashboard."""
    from automl.results.dashboard import DashboardUpdater
    from automl.storage.urls import load_study, open_storage
    from automl.storage.worker_storage import WorkerStorage

    started = time.perf_counter()
    # What `automl run` keeps up to date as it goes, over the storage its workers read through.
    DashboardUpdater().update(load_study(AUTOML, url, WorkerStorage(open_storage(url, must_exist=True))))
    notes_s = time.perf_counter() - started
    show, report = views.show(url, AUTOML, VIEW_TIMEOUT_S), views.report(url, AUTOML, VIEW_TIMEOUT_S)
    peer = views.optuna_best_trials(url, OPTUNA, VIEW_TIMEOUT_S)
    print(f"{size:>7,} trials: show {show.seconds:6.1f} s ({show.cpu_s:5.1f} CPU-s) {show.peak_mib:5.0f} MiB"
          f"{'' if show.ok else ' FAILED'} | report {report.seconds:6.1f} s ({report.cpu_s:5.1f} CPU-s) "
          f"{report.peak_mib:5.0f} MiB{'' if report.ok else ' FAILED'} | optuna best-trials {peer.seconds:6.1f} s "
          f"({peer.cpu_s:5.1f} CPU-s) {peer.peak_mib:5.0f} MiB | show/peer {show.seconds / peer.seconds:.2f} "
          f"report/peer {report.seconds / peer.seconds:.2f}", flush=True)
    results.update({f"show_s_{size}": show.seconds, f"show_cpu_s_{size}": show.cpu_s, f"show_mib_{size}": show.peak_mib,
                    f"report_s_{size}": report.seconds, f"report_cpu_s_{size}": report.cpu_s,
                    f"report_mib_{size}": report.peak_mib})
    if not served:
        print(f"{'':>16}dashboard: notes {notes_s:5.1f} s (not served: --no-dashboard)", flush=True)
        return
    with views.dashboard(url, VIEW_TIMEOUT_S) as served_at:
        api = {name: views.study_api(served_at, name, VIEW_TIMEOUT_S) for name in (AUTOML, OPTUNA)}
        page = {name: views.page_load(served_at, name, VIEW_TIMEOUT_S) if browser else None
                for name in (AUTOML, OPTUNA)}
    print(f"{'':>16}dashboard: notes {notes_s:5.1f} s, start-up {served_at.started_s:5.1f} s, "
          f"peak {served_at.peak_mib:5.0f} MiB | study API {api[AUTOML][0]:5.2f} s {api[AUTOML][1] / 1e6:5.1f} MB vs "
          f"Optuna's study {api[OPTUNA][0]:5.2f} s {api[OPTUNA][1] / 1e6:5.1f} MB "
          f"({api[AUTOML][0] / api[OPTUNA][0]:.2f}x)"
          + (f" | Chromium {page[AUTOML].seconds:5.1f} s{'' if page[AUTOML].ok else ' NOT RENDERED'} vs "
             f"{page[OPTUNA].seconds:5.1f} s ({page[AUTOML].seconds / page[OPTUNA].seconds:.2f}x)"
             if page[AUTOML] and page[OPTUNA] else " | no Chromium"), flush=True)
    results[f"dashboard_api_s_{size}"] = api[AUTOML][0]
    if page[AUTOML]:
        results[f"chromium_s_{size}"] = page[AUTOML].seconds if page[AUTOML].ok else float("inf")


# The simulated workers' study: this many trials per worker. A worker's first trial carries its start
# (its statements compiled and prepared, its first read of the study), its last one the drain (the
# queue empty, fewer and fewer workers at work); a worker that runs for hours pays each once. With 5,
# about half of a run of 128 workers came before every worker had finished its first trial or after
# the first one had finished its last: the rate was as much of starts and drains as of workers at work.
TRIALS_PER_WORKER = 10


def ceiling_per_s(run: workers.WorkersResult) -> float:
    """The trials per second of ``run`` if this machine's cores did nothing else: their number over
    the CPU-seconds a finished trial cost the workers and the server."""
    return (os.cpu_count() or 1) / (run.client_cpu_s + run.server_cpu_s)


def workers_rows(postgres: str, counts: list[int], quick: bool, other: Path | None, rounds: int,
                 trials_per_worker: int | None, folder: Path, results: dict[str, float]) -> None:
    """The simulated workers' table, a row per run, each on a new database: ``rounds`` runs per count in
    this process (the ``key=value`` figures: their medians, the trials got wrong summed); or, with
    ``other`` (a checkout, --compare), ``rounds`` runs of ``other`` and of this tree alternately, each
    in a subprocess (scale/compare.py), then the comparison of the two. ``other`` runs first, so that
    a tree compare refuses (its reason: scale/compare.py) stops the benchmark at once."""
    train_s = 0.2 if quick else 1.0
    trials_per_worker = trials_per_worker or (2 if quick else TRIALS_PER_WORKER)
    sides: list[tuple[str, Callable[..., workers.WorkersResult]]] = [("", workers.simulate)] if other is None else [
        (other.name, functools.partial(compare.simulate_in, other)),
        ("this", functools.partial(compare.simulate_in, compare.THIS_TREE))]
    print("simulated workers on one PostgreSQL study (threads in up to 4 processes without torch; "
          f"{train_s:g} s of 'training' per trial, trials per worker: {trials_per_worker})"
          + ("" if other is None else f": {other.name} and this tree alternately, {rounds} runs each"))
    print(f"{'workers':>7} {'trials':>6} {'trials/s':>8} {'connections':>11} {'per worker':>10} "
          f"{'errors':>6} {'failed':>6} {'lost':>4} {'stuck':>5} {'duplicated':>10} "
          f"{'client CPU-s':>12} {'server CPU-s':>12} {'ceiling/s':>9} {'client MiB':>10}"
          + ("" if other is None else " tree"))
    print(f"{'':>7} (CPU-s per finished trial; ceiling: trials/s if this machine's {os.cpu_count()} cores "
          "did nothing else)")
    compared: dict[int, tuple[list[workers.WorkersResult], list[workers.WorkersResult]]] = {}
    for count in counts:
        runs: list[list[workers.WorkersResult]] = [[] for _ in sides]
        for _ in range(rounds):
            for (label, simulate), side_runs in zip(sides, runs, strict=True):
                with database("postgresql", postgres, count, folder) as url:
                    found = simulate(url, f"workers-{count}", count, trials_per_worker, train_s)
                side_runs.append(found)
                ceiling = ceiling_per_s(found)
                print(f"{count:>7} {found.trials:>6} {found.per_second:>8.1f} {found.max_connections:>11} "
                      f"{found.max_connections / count:>10.2f} {found.errors:>6} {found.failed:>6} {found.lost:>4} "
                      f"{found.stuck:>5} {found.duplicated:>10} {found.client_cpu_s:>12.3f} "
                      f"{found.server_cpu_s:>12.3f} {ceiling:>9.1f} {found.client_peak_mib:>10.0f} {label}".rstrip(),
                      flush=True)
                if found.first_error:
                    print(f"  first error: {found.first_error}")
        if other is None:  # the medians over the runs
            results.update({f"workers_{count}_{key}": statistics.median(of(run) for run in runs[0]) for key, of in (
                ("ceiling_per_s", ceiling_per_s), ("per_s", operator.attrgetter("per_second")),
                ("connections", operator.attrgetter("max_connections")))})
            results[f"workers_{count}_wrong"] = sum(map(compare.wrong, runs[0]))
        else:
            compared[count] = (runs[1], runs[0])
    if other is not None:
        results.update(compare.print_table(compared, other))


PARTS = ("overhead", "views", "workers")


def whole_numbers(text: str) -> list[int]:
    """``--sizes`` and ``--workers``: comma-separated whole numbers of at least 1 (an argparse type)."""
    try:
        found = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected whole numbers separated by commas") \
            from None
    if min(found) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: each at least 1")
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="studies of 100 and 300 trials, 4 workers: a smoke run")
    parser.add_argument("--sizes", type=whole_numbers,
                        help="study sizes, comma-separated (default 100,1000,10000,50000)")
    parser.add_argument("--views-from", type=int, default=1000, help="views on studies of at least this many trials")
    parser.add_argument("--workers", type=whole_numbers, help="simulated worker counts (default 8,32,128)")
    parser.add_argument("--postgres", default=os.environ.get("AUTOML_TEST_POSTGRES_URL"),
                        help="PostgreSQL server URL (default $AUTOML_TEST_POSTGRES_URL); without one, SQLite only")
    parser.add_argument("--no-browser", action="store_true", help="leave headless Chromium out")
    parser.add_argument("--no-dashboard", action="store_true", help="views: leave the dashboard's server out "
                        "(its notes and figures are still saved, as `automl run` saves them, before show and report)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="views alone: write the SQLite studies into DIR and "
                        "keep them; those already there are reused (50,000 trials take a minute or two to write)")
    parser.add_argument("--compare", type=Path, metavar="TREE", help="workers: against TREE, another checkout of "
                        "this repository (e.g. `git worktree add --detach /tmp/before COMMIT`), run alternately with "
                        "this tree on this environment's packages; prints both and the ratios this/TREE")
    parser.add_argument("--rounds", type=int, metavar="R", help="workers: runs per worker count (of each tree, with "
                        "--compare); the figures are their medians, the trials got wrong their sum (default 1, 2 "
                        "with --compare)")
    parser.add_argument("--trials-per-worker", type=int, metavar="N", help="workers: the study's trials, N per worker "
                        f"(default {TRIALS_PER_WORKER}, 2 with --quick)")
    parser.add_argument("--parts", help="which of overhead, views, workers to run "
                        "(default all; views alone write their studies without timing the overhead)")
    args = parser.parse_args(argv)
    parts = (args.parts or ",".join(PARTS)).split(",")
    if unknown := [part for part in parts if part not in PARTS]:
        parser.error(f"--parts {args.parts}: no part {', '.join(map(repr, unknown))}; the parts are {', '.join(PARTS)}")
    if args.parts and "workers" in parts and not args.postgres:  # by default, without a server: SQLite alone
        parser.error("--parts workers: the simulated workers need a PostgreSQL server: --postgres URL, or "
                     "AUTOML_TEST_POSTGRES_URL (.ci/postgres.sh starts one)")
    if args.keep and parts != ["views"]:
        parser.error("--keep is for the views alone (--parts views): the other parts write studies of their own")
    if args.compare and not (args.postgres and "workers" in parts):
        parser.error("--compare is for the simulated workers: it needs --parts with workers and PostgreSQL")
    if args.compare and not (args.compare / "benchmarks" / "scale" / "workers.py").is_file():
        parser.error(f"--compare {args.compare}: no benchmarks/scale/workers.py there (a checkout of this repository?)")
    for option, value in (("--rounds", args.rounds), ("--trials-per-worker", args.trials_per_worker)):
        if value is not None and value < 1:
            parser.error(f"{option} {value}: at least 1")
    if args.compare:
        args.compare = args.compare.resolve()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    sizes = args.sizes or ([100, 300] if args.quick else [100, 1000, 10000, 50000])
    views_from = 300 if args.quick else args.views_from
    counts = args.workers or ([4] if args.quick else [8, 32, 128])
    backends = ["sqlite", *(["postgresql"] if args.postgres else [])]
    browser = not args.no_browser and views.chromium() is not None
    timed = 6 if args.quick else 15
    results: dict[str, float] = {}
    if "overhead" in parts:
        print(f"per-trial overhead (ms, everything but the training epochs; median of {timed} trials, fewer for "
              "Optuna from 10,000 on)")
        print(f"{'backend':<10} {'trials':>7} {'automl':>10} {'optuna':>10} {'automl/optuna':>13} {'automl/base':>11}")
    with contextlib.nullcontext(str(args.keep)) if args.keep else tempfile.TemporaryDirectory(
            prefix="automl-scale-") as folder:
        for backend in backends if "overhead" in parts else []:
            for size in sizes:
                with database(backend, args.postgres, size, Path(folder)) as url:
                    overhead_rows(backend, url, size, timed, results)
                    if backend == "sqlite" and size >= views_from and "views" in parts:
                        view_rows(url, size, browser, results, not args.no_dashboard)
        for size in [] if "overhead" in parts or "views" not in parts else [n for n in sizes if n >= views_from]:
            with database("sqlite", None, size, Path(folder)) as url:
                view_studies(url, size)
                view_rows(url, size, browser, results, not args.no_dashboard)
        if args.postgres and "workers" in parts:
            try:
                workers_rows(args.postgres, counts, args.quick, args.compare, args.rounds or (2 if args.compare else 1),
                             args.trials_per_worker, Path(folder), results)
            except compare.TreeError as error:  # a tree that is not what --compare runs: its reason, not a traceback
                parser.exit(1, f"study_scale.py: --compare: {error}\n")
    for key, value in results.items():
        print(f"{key}={value:.4g}")


if __name__ == "__main__":
    main()
