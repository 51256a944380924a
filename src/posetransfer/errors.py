"""Errors the command line reports as one clear line instead of a stack trace.

Every problem caused by the user's input (a file, a config, an argument) raises a subclass of
:class:`PosetransferError` whose message names the file and what is wrong with it.
"""

from __future__ import annotations

from pathlib import Path


class PosetransferError(Exception):
    """A problem with the user's input; ``str(err)`` is the whole message shown to the user."""


class DataError(PosetransferError):
    """A data file (image, annotation, pairs file, data set folder) is missing or malformed."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None):
        self.path = Path(path)
        self.problem = problem
        self.line = line
        where = f"{self.path}" if line is None else f"{self.path}, line {line}"
        super().__init__(f"{where}: {problem}")


class ConfigError(PosetransferError):
    """A config file or override is invalid (unknown key, wrong type, missing value)."""


class ModelConfigError(ConfigError, ValueError):
    """A network's constructor arguments are invalid (every network in ``models/`` raises this).

    Also a ``ValueError``, what a bad argument to a plain PyTorch module would raise.
    """


class CheckpointError(PosetransferError):
    """A checkpoint is missing, unreadable or does not match the model it is loaded into."""


class TrainingError(PosetransferError):
    """Training cannot go on (e.g. a loss became NaN); the last checkpoint on disk is intact."""
