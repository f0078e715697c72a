"""Where studies live: SQLAlchemy URLs, SQLite settings, the trial-record schema, the trial
queue, the worker's storage around Optuna's RDBStorage (and its parts: retries, held writes,
reads once, Optuna's tables, storage lost), the views' reading of a study in outline, and the
trials' artifact store.
Optuna's private names are used through ``automl.storage._optuna`` only, which checks the
installed Optuna on first import of this package.

Imports only ``automl.errors`` and ``automl.plugin``: every stage that records or reads a trial
builds on it, so it knows nothing of study files, data or training.
"""

from automl.storage import _optuna  # noqa: F401  (the Optuna version check, before any other use)
