"""Opening study storage from a SQLAlchemy URL, with errors that never show a password."""

from __future__ import annotations

import optuna
import sqlalchemy
from sqlalchemy.engine import make_url

from automl.errors import UsageError

URL_EXAMPLES = "sqlite:///automl.db or postgresql+psycopg://user:password@host/dbname"


def redact(url: str) -> str:
    """The URL with any password masked, safe to print or log."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return "<unparsable storage URL>"


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Connect to (and if needed create) the Optuna tables behind ``url``."""
    try:
        make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise UsageError(f"storage {url!r} is not a SQLAlchemy URL; expected e.g. {URL_EXAMPLES}") from None
    try:
        return optuna.storages.RDBStorage(url)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as exc:
        reason = str(exc).splitlines()[0]
        raise UsageError(f"cannot open storage {redact(url)}: {reason}") from None


def existing_study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    return [summary.study_name for summary in optuna.get_all_study_summaries(storage)]


def load_study(name: str, url: str) -> optuna.Study:
    """Load a study by name, or say which studies the storage holds."""
    storage = open_storage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = ", ".join(existing_study_names(storage)) or "none"
        raise UsageError(f"no study named {name!r} in {redact(url)}; studies there: {names}") from None
