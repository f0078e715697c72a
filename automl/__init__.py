"""automl: architecture search over plugin families with Optuna and PyTorch Lightning."""

from automl.hookspecs import hookimpl
from automl.task import TASK_KINDS, Task

__version__ = "0.1.0"

__all__ = ["TASK_KINDS", "Task", "__version__", "hookimpl"]
