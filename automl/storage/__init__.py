"""Where studies live: SQLAlchemy URLs, SQLite settings, the trial-record schema, the trial
queue, the worker storage layers over Optuna's RDBStorage, and the trials' artifact store.

Imports only ``automl.errors`` and ``automl.plugin``: every stage that records or reads a trial
builds on it, so it knows nothing of study files, data or training.
"""
