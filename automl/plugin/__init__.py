"""The plugin contract and its machinery: what a family or dataset is, and how they are found.

Owns the contract itself (``contract``: the ``Family`` and ``Dataset`` protocols and their
checks), the task a model is built for, what a dataset returns, building a family's module
(``build``), the hook specifications, the registry that loads plugins from entry points, and the
namespaced search-space view a family samples through. Imports only ``automl.errors``: every
later stage builds on it.
"""
