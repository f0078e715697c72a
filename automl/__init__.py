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

import logging

from automl.config import StudyConfig, load_study_file
from automl.errors import PluginError, UsageError
from automl.plugin.contract import DataPath, Dataset, DatasetOptions, Family, LabeledArrays, RawInputs, Trial
from automl.plugin.hookspecs import hookimpl
from automl.plugin.task import TASK_KINDS, Task, TaskKind
from automl.plugin.tokenizer import PAD, UNKNOWN, Tokenizer
from automl.runner import run
from automl.storage.schema import AUTOML_VERSION, pareto_front

__version__ = AUTOML_VERSION  # defined with the records that store it

# The stages in import order; modules not in a stage (cli, runner, conformance, testing) sit on top.
STAGES = ("errors", "plugin", "storage", "config", "data", "training", "workers", "search", "results")

# A library prints nothing unless its caller configures logging (automl's notes go to this logger).
logging.getLogger("automl").addHandler(logging.NullHandler())

# What a plugin author needs (automl.plugin.contract is the contract these names make up), and the
# Python API: run a study, read its front.
__all__ = ["PAD", "TASK_KINDS", "UNKNOWN", "DataPath", "Dataset", "DatasetOptions", "Family", "LabeledArrays",
           "PluginError", "RawInputs", "StudyConfig", "Task", "TaskKind", "Tokenizer", "Trial", "UsageError",
           "__version__", "hookimpl", "load_study_file", "pareto_front", "run"]
