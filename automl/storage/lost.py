"""Storage a worker loses under it: unreachable for too long, its study deleted, its SQLite file
deleted or replaced. Each stops the worker with one message naming the study and the storage
(automl.workers.worker finds it however deep in Optuna's trial loop it was raised).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from automl.errors import AutomlError


class StorageLost(AutomlError):
    """The storage changed or vanished under a worker in a way the worker cannot go on from."""


class StudyDeleted(StorageLost, KeyError):
    """The study was deleted from its storage while a worker was working on it. A KeyError too, as
    Optuna's storages raise for a study that does not exist."""

    def __str__(self) -> str:
        return str(self.args[0])  # KeyError would quote it


def study_deleted(name: str, storage: str, trials: int, finished: int) -> StudyDeleted:
    """The error for study ``name`` deleted from ``storage`` (a URL safe to print) with ``trials``
    trials known to the worker, ``finished`` of them finished."""
    return StudyDeleted(
        f"study {name!r} was deleted from {storage} while this worker was working on it; {trials} trials "
        f"were lost ({finished} finished). This worker stops; to start the study again, run its study file")


class DatabaseFileGone(StorageLost):
    """The SQLite file a worker opened was deleted or replaced by another file."""


class DatabaseFile:
    """The SQLite file behind a URL, as it was when opened: a worker writing on after the file was
    deleted (or replaced, e.g. by ``mv``) would write to a file no one can open again."""

    def __init__(self, url: str) -> None:
        self.path = Path(make_url(url).database or "").resolve()
        stat = self.path.stat()
        self._identity = (stat.st_dev, stat.st_ino)

    def check(self) -> None:
        """Raise DatabaseFileGone if the path no longer names the file opened."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            what = "deleted"
        else:
            if (stat.st_dev, stat.st_ino) == self._identity:
                return
            what = "replaced by another file"
        raise DatabaseFileGone(
            f"the study's database {self.path} was {what} while this worker was working on it; what it "
            "wrote since is in the old file, which no process can open any more. This worker stops; to go "
            f"on, put the study's database back at {self.path} (or name another with --storage) and run again")


def lost_in(error: BaseException) -> StorageLost | None:
    """The StorageLost that ``error`` was raised from or while handling, if any.

    Optuna's trial loop turns a storage error in its tell into an UnboundLocalError (or an
    AssertionError) raised while handling it; the worker reports the storage, not that.
    """
    seen: BaseException | None = error
    while seen is not None and not isinstance(seen, StorageLost):
        seen = seen.__cause__ or seen.__context__
    return seen
