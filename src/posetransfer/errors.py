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


class OutputError(PosetransferError):
    """An output cannot be written (exists without ``--overwrite``, not a folder, not writable)."""


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal (SIGINT = Ctrl-C, SIGTERM = a scheduler's pre-emption).

    A ``KeyboardInterrupt`` (what Python raises on Ctrl-C), so code that already treats Ctrl-C as
    "stop now" treats it alike; ``exit_code`` is the shell's ``128 + signal number`` (130 for
    SIGINT, 143 for SIGTERM) and ``str(err)`` says what was kept (e.g. the checkpoint written).
    """

    def __init__(self, signum: int, message: str = ""):
        self.signum = int(signum)
        self.exit_code = 128 + self.signum
        super().__init__(message)


# ---- exit codes of the command line, one per family of failure (README "Exit codes") ----------

#: the command ran and reported a negative result (e.g. ``data check`` found problems)
EXIT_PROBLEMS = 1
#: bad input: a file, a config, an argument (every PosetransferError; argparse's usage errors too)
EXIT_BAD_INPUT = 2
#: the operating system refused a file operation (permission, read-only file system, not a folder ...)
EXIT_OS_ERROR = 3
#: no space left on the device (or the disk quota is exceeded)
EXIT_DISK_FULL = 4
#: out of memory (host or GPU)
EXIT_OUT_OF_MEMORY = 5
#: interrupted (Ctrl-C / SIGINT), as a shell reports 128 + SIGINT
EXIT_INTERRUPTED = 130
#: terminated (SIGTERM: a cluster's pre-emption, ``kill``), as a shell reports 128 + SIGTERM
EXIT_TERMINATED = 143
