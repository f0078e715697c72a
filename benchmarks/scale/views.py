"""What it costs to look at a large study: ``automl show``, ``automl report`` and the dashboard's study page.

Each command runs as a user runs it, in a process of its own (interpreter and imports included),
its wall time, CPU time (user and system: what the wall time would be on an idle machine, the
commands being single-threaded) and peak resident memory measured (GNU time's).
The peer is Optuna's own view of the same trials in a plain Optuna study: ``optuna best-trials``,
the Pareto front as Optuna's command line prints it. The dashboard is ``automl dashboard`` serving
both studies: its start-up (it brings automl's notes and figures up to date first), the study API
as the browser calls it first (``/api/studies/ID?after=0``), and the page loaded in headless
Chromium until the study's title renders.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
AUTOML = [sys.executable, "-m", "automl"]
OPTUNA = [str(Path(sys.executable).with_name("optuna"))]
TIME = "/usr/bin/time"  # GNU time (Debian's package "time")


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_mib: float
    ok: bool = True
    cpu_s: float = float("nan")


def measured_run(command: list[str], timeout: float, cwd: str | None = None) -> Measured:
    """Run ``command`` to its end (killed after ``timeout`` s): its wall time, CPU time and peak memory.

    GNU time measures the peak: a child forked from this process (torch loaded) would report
    this process's resident memory as its own (Linux keeps the highest across the exec).
    """
    with tempfile.NamedTemporaryFile("r", suffix=".time") as peak:
        started = time.perf_counter()
        try:
            run = subprocess.run([TIME, "-f", "%M %U %S", "-o", peak.name, *command], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, cwd=cwd, timeout=timeout)
        except subprocess.TimeoutExpired:
            return Measured(timeout, float("nan"), ok=False)
        seconds = time.perf_counter() - started
        found = peak.read().split()  # the last line: a note on a failed command's status comes before it
    if run.returncode != 0:
        print(f"  ({' '.join(command[2:4])} failed: {run.stderr.decode()[-400:]})", file=sys.stderr)
    if len(found) < 3:
        return Measured(seconds, float("nan"), run.returncode == 0)
    kib, user, system = found[-3:]
    return Measured(seconds, int(kib) / 1024, run.returncode == 0, float(user) + float(system))


def show(url: str, name: str, timeout: float) -> Measured:
    return measured_run([*AUTOML, "show", name, "--storage", url], timeout)


def report(url: str, name: str, timeout: float) -> Measured:
    with tempfile.TemporaryDirectory(prefix="automl-scale-report-") as folder:
        return measured_run([*AUTOML, "report", name, "--storage", url, "--out", folder], timeout)


def optuna_best_trials(url: str, name: str, timeout: float) -> Measured:
    return measured_run([*OPTUNA, "best-trials", "--study-name", name, "--storage", url], timeout)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


@dataclass
class Dashboard:
    base: str
    started_s: float  # until the server answered: its notes and figures brought up to date first
    ids: dict[str, int]
    peak_mib: float = 0.0


@contextlib.contextmanager
def dashboard(url: str, timeout: float) -> Iterator[Dashboard]:
    """``automl dashboard`` on a free port, until the block ends; then its peak memory is known."""
    port = _free_port()
    started = time.perf_counter()
    peak = tempfile.NamedTemporaryFile("r", suffix=".time")
    server = subprocess.Popen([TIME, "-f", "%M", "-o", peak.name, *AUTOML, "dashboard", "--storage", url,
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                studies = json.loads(_get(f"{base}/api/studies", 5))["study_summaries"]
                break
            except OSError:
                if server.poll() is not None or time.perf_counter() - started > timeout:
                    raise RuntimeError(f"automl dashboard did not answer within {timeout:.0f} s") from None
                time.sleep(0.2)
        served = Dashboard(base, time.perf_counter() - started, {s["study_name"]: s["study_id"] for s in studies})
        yield served
    finally:
        # Ctrl-C to the server (GNU time ignores it, waits for the server, then writes its peak).
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:  # a loaded machine: the peak is known once the server is gone
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        kib = peak.read().split()
        peak.close()
    served.peak_mib = int(kib[-1]) / 1024 if kib else float("nan")


def study_api(served: Dashboard, name: str, timeout: float) -> tuple[float, int]:
    """Seconds and bytes of the study's first API call, as the page makes it."""
    started = time.perf_counter()
    body = _get(f"{served.base}/api/studies/{served.ids[name]}?after=0", timeout)
    return time.perf_counter() - started, len(body)


def chromium() -> str | None:
    return shutil.which("chromium")


def page_load(served: Dashboard, name: str, timeout: float) -> Measured:
    """Headless Chromium opening the study's page: seconds until it dumps a DOM that shows the
    study's title bar (``NAME (id=ID)``), which the page draws once the study's API call is in."""
    browser = chromium()
    if browser is None:
        return Measured(float("nan"), float("nan"), ok=False)
    with tempfile.TemporaryDirectory(prefix="automl-scale-chromium-") as profile:
        started = time.perf_counter()
        try:
            page = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,900",
                                   "--virtual-time-budget=5000", "--dump-dom",
                                   f"{served.base}/dashboard/studies/{served.ids[name]}"],
                                  capture_output=True, text=True, timeout=timeout).stdout
        except subprocess.TimeoutExpired:
            return Measured(timeout, float("nan"), ok=False)
    return Measured(time.perf_counter() - started, float("nan"), f"{name} (id={served.ids[name]})" in page)
