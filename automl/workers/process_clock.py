"""When this process started: a time budget counts the interpreter's start and imports too.

A run's time budget is the user's wall clock from the moment they pressed Enter. Python's own
start and its imports (torch, Lightning, Optuna: seconds on a busy machine) come before any line
of automl runs, so the clock starts at the process's start, as Linux records it in /proc.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

# A start further back than this is no start of this run (a clock that jumped): now is used.
PLAUSIBLE_S = 24 * 3600.0


def process_start_time() -> float:
    """When this process started, as a ``time.time()`` value (to 10 ms on Linux); elsewhere, or
    when /proc says nothing plausible, now.

    /proc/PID/stat's field 22 is the start in clock ticks after boot, and CLOCK_BOOTTIME the time
    after boot now. (psutil reads the same file; for this one number it would be a new dependency.)
    """
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        after_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        elapsed = time.clock_gettime(time.CLOCK_BOOTTIME) - after_boot
    except (OSError, ValueError, IndexError, AttributeError):  # not Linux
        return time.time()
    return time.time() - elapsed if 0 <= elapsed < PLAUSIBLE_S else time.time()
