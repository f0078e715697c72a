"""automl: architecture search over plugin families with Optuna and PyTorch Lightning.

A study file becomes a validated config (``automl.config``), the dataset plugin's arrays become
splits and a task (``automl.data``), the search plans and runs trials (``automl.search``) whose
objective builds a family's module (``automl.plugin``) and trains it (``automl.training``) in
workers (``automl.workers``); trials are stored (``automl.storage``) and read back as fronts,
reports and exports (``automl.results``). ``automl.runner`` runs a study (``automl.run``);
``automl.cli`` sits on top.

Imports go one way: a stage imports only from the stages listed before it in ``STAGES``
(tests/test_architecture.py checks it). Plugin authors import from this module only, and from
``automl.testing`` for the conformance suites; so do users of the Python API.
"""

import importlib
import logging
from typing import TYPE_CHECKING, Any

from automl.config import StudyConfig, load_study_file
from automl.errors import PluginError, UsageError
from automl.plugin.contract import DataPath, Dataset, DatasetOptions, Family, LabeledArrays, RawInputs, Trial
from automl.plugin.hookspecs import hookimpl
from automl.plugin.task import TASK_KINDS, Task, TaskKind
from automl.plugin.tokenizer import PAD, UNKNOWN, Tokenizer
from automl.runner import run
from automl.search.moasha import MOASHAPruner
from automl.storage.schema import AUTOML_VERSION, pareto_front

if TYPE_CHECKING:  # imported on first use (torch and Lightning take seconds): see __getattr__
    from automl.results.load import load_model
    from automl.search.pruning_callback import PruningCallback
    from automl.search.suggest import suggest_model

__version__ = AUTOML_VERSION  # defined with the records that store it

# The stages in import order; modules not in a stage (cli, runner, run_messages, conformance, testing) sit on top.
STAGES = ("errors", "plugin", "storage", "config", "data", "training", "workers", "search", "results")

# A library prints nothing unless its caller configures logging (automl's notes go to this logger).
logging.getLogger("automl").addHandler(logging.NullHandler())

# What a plugin author needs (automl.plugin.contract is the contract these names make up), and the
# Python API: run a study, read its front, load a model; automl's search in one's own Optuna study.
__all__ = ["PAD", "TASK_KINDS", "UNKNOWN", "DataPath", "Dataset", "DatasetOptions", "Family", "LabeledArrays",
           "MOASHAPruner", "PluginError", "PruningCallback", "RawInputs", "StudyConfig", "Task", "TaskKind",
           "Tokenizer", "Trial", "UsageError", "__version__", "hookimpl", "load_model", "load_study_file",
           "pareto_front", "run", "suggest_model"]

# The names whose modules import torch or Lightning, imported when first asked for: `import automl`
# (every plugin does) and `automl --help` stay quick.
_LAZY = {"load_model": "automl.results.load", "PruningCallback": "automl.search.pruning_callback",
         "suggest_model": "automl.search.suggest"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'automl' has no attribute {name!r}")
