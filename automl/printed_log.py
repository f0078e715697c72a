"""automl's log records printed on stderr while a command runs; a library call leaves them to its caller."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from rich.console import Console


class _PrintedLog(logging.Handler):
    """automl's log records (notes, warnings, a worker's waits) as plain lines on ``console``."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.console.print(self.format(record), markup=False, highlight=False)


@contextlib.contextmanager
def printing_log(console: Console) -> Iterator[None]:
    """Within the block, automl's notes (level INFO and up) are printed on ``console``."""
    log, handler = logging.getLogger("automl"), _PrintedLog(console)
    level = log.level
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
