"""Errors that reach the user as one clear message instead of a traceback, and the wording of the
counts those messages (and automl's notes) print.

The first stage: imports nothing of automl, and every other module may import it.
"""


class AutomlError(Exception):
    """An error the user can act on; the CLI prints it and exits with ``exit_code``."""

    exit_code = 1


class UsageError(AutomlError):
    """Bad command-line arguments, study file or data: exit code 2, nothing written."""

    exit_code = 2


class PluginError(AutomlError):
    """A plugin failed to load or registered something invalid: exit code 2, nothing written (an
    installation problem, found before any work, like a bad study file)."""

    exit_code = 2


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``count`` with ``noun`` in the right number: ``1 trial``, ``0 trials``, ``1,200 trials``;
    ``plural_form`` where adding an s is wrong (``plural(2, "family", "families")``)."""
    return f"{count:,} {noun_form(count, noun, plural_form)}"


def noun_form(count: int, noun: str, plural_form: str | None = None) -> str:
    """``noun`` alone in the number ``count`` calls for: ``line`` for 1, ``lines`` otherwise."""
    return noun if count == 1 else plural_form or noun + "s"


def is_or_are(count: int) -> str:
    """The verb that agrees with ``count`` things: ``is`` for 1, ``are`` otherwise."""
    return "is" if count == 1 else "are"
