"""The ``posetransfer`` command. Thin: it parses arguments and calls the library.

Each subcommand lives in ``posetransfer.commands.<name>`` and exposes
``register(subparsers) -> None``; the parser it adds sets ``func`` (called with the parsed
arguments, returning an exit code). :func:`main` is the one error boundary of the command line
(:func:`report_error`): every expected failure (bad input, an operating-system error on a file,
a full disk, out of memory, Ctrl-C) is printed as one line, ``posetransfer CMD: error: <file>:
<problem>``, with the exit code of its family (:data:`EXIT_CODES_HELP`); anything else is a bug
and keeps its stack trace. ``--debug`` (or ``POSETRANSFER_DEBUG=1``) prints the stack trace of
expected failures too.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import re
import sys
import traceback

from posetransfer import __version__
from posetransfer.errors import (
    EXIT_BAD_INPUT,
    EXIT_DISK_FULL,
    EXIT_INTERRUPTED,
    EXIT_OS_ERROR,
    EXIT_OUT_OF_MEMORY,
    EXIT_PROBLEMS,
    EXIT_TERMINATED,
    PosetransferError,
)

# Order = order in --help.
COMMAND_MODULES = ("demo", "data", "bench", "pose", "transfer", "animate", "train", "generate", "export", "evaluate", "reproduce", "study", "serve", "weights", "info")
# Commands that tune glibc's malloc at start-up (``POSETRANSFER_NO_MALLOC_TUNING=1`` turns it off).
MALLOC_TUNED_COMMANDS = ("train", "demo", "reproduce")
DEBUG_ENV = "POSETRANSFER_DEBUG"

EXIT_CODES_HELP = f"""exit codes:
  0    success
  {EXIT_PROBLEMS}    the command ran and found problems (data check)
  {EXIT_BAD_INPUT}    bad input: a file, a config value or an argument (one line names the file)
  {EXIT_OS_ERROR}    the operating system refused a file operation (permission, read-only, not a folder)
  {EXIT_DISK_FULL}    no space left on the device
  {EXIT_OUT_OF_MEMORY}    out of memory (host or GPU)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C); finished outputs and checkpoints are intact
  {EXIT_TERMINATED}  terminated (SIGTERM, e.g. a cluster's pre-emption); train saved its last step first
  other: a bug in posetransfer (a stack trace is printed); --debug always prints one"""

#: errno values that mean "the disk is full"
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posetransfer",
        description="Pose-guided person image generation (PG2, multi-view ConvLSTM generator).",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"posetransfer {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help=f"print the stack trace of every error (also: {DEBUG_ENV}=1)")  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"posetransfer.commands.{name}").register(sub)
    return parser


def _one_line(text: object) -> str:
    """One line, printable whatever the file names hold (undecodable bytes shown as ``\\xe9``)."""
    line = " ".join(str(text).split())
    return line.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _is_out_of_memory(err: BaseException) -> bool:
    if isinstance(err, MemoryError):
        return True
    torch = sys.modules.get("torch")  # only when torch was imported by the command
    if torch is not None and isinstance(err, getattr(torch, "OutOfMemoryError", ())):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and (
        "CUDA out of memory" in text or "DefaultCPUAllocator: can't allocate memory" in text
    )


_WORKER_ORIGIN = re.compile(r"^posetransfer\.errors\.\w+: (.+)$")


def _from_worker(err: BaseException) -> str | None:
    """The project's own message of an error raised in a DataLoader worker process.

    torch re-raises it in the main process as ``type(err)(text)`` or, when that constructor does
    not take one string (``DataError``), as a RuntimeError; ``text`` holds the worker's traceback
    whose last line is ``posetransfer.errors.DataError: <file>: <problem>``.
    """
    text = str(err)
    if "DataLoader worker process" not in text:
        return None
    lines = [line for line in text.strip().splitlines() if line.strip()]
    m = _WORKER_ORIGIN.match(lines[-1].strip()) if lines else None
    return m.group(1) if m else None


def classify_error(err: BaseException) -> tuple[int, str] | None:
    """(exit code, one-line message) of an expected failure, or None for a bug (keep its trace)."""
    from_worker = _from_worker(err)
    if from_worker is not None:
        return EXIT_BAD_INPUT, _one_line(from_worker)
    if isinstance(err, KeyboardInterrupt):
        # a plain Ctrl-C, or errors.Interrupted (a signal train handled: its code and what it kept)
        return int(getattr(err, "exit_code", EXIT_INTERRUPTED)), _one_line(err) if str(err) else "interrupted"
    if isinstance(err, PosetransferError):
        return EXIT_BAD_INPUT, _one_line(err)
    pil_image = sys.modules.get("PIL.Image")
    if pil_image is not None and isinstance(err, pil_image.DecompressionBombError):
        return EXIT_BAD_INPUT, _one_line(f"image over the pixel limit ({err})")
    if isinstance(err, OSError) and err.errno is not None:
        # An OSError without an errno is a library's own complaint (often a bug): not caught here.
        problem = (err.strerror or os.strerror(err.errno)).lower()
        where = err.filename if err.filename is not None else "(no file named by the system)"
        if isinstance(where, bytes):
            where = os.fsdecode(where)
        if err.filename2 is not None:
            where = f"{where} -> {err.filename2}"
        code = EXIT_DISK_FULL if err.errno in _DISK_FULL else EXIT_OS_ERROR
        return code, _one_line(f"{where}: {problem}")
    if _is_out_of_memory(err):
        first = str(err).split(".")[0] if str(err) else type(err).__name__
        return EXIT_OUT_OF_MEMORY, _one_line(
            f"out of memory ({first}); try a smaller --batch-size / train.batch_size or image size"
        )
    return None


def report_error(command: str, err: BaseException, debug: bool = False) -> int:
    """Print ``err`` as one line on stderr and return its exit code; re-raise it when it is a bug."""
    found = classify_error(err)
    if found is None:
        raise err
    code, message = found
    if debug:
        traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
    if isinstance(err, KeyboardInterrupt):
        detail = f": {message}" if message != "interrupted" else ""
        print(f"posetransfer {command}: interrupted{detail}", file=sys.stderr)
    else:
        print(f"posetransfer {command}: error: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0"))
    if args.command in MALLOC_TUNED_COMMANDS:
        from posetransfer.utils.perf import tune_malloc

        tune_malloc()  # glibc malloc thresholds: much faster CPU training steps (utils/perf.py)
    try:
        return int(args.func(args) or 0)
    except BaseException as err:  # noqa: BLE001 - the boundary: expected failures -> one line; bugs re-raised
        if isinstance(err, SystemExit):
            raise
        return report_error(args.command, err, debug)


if __name__ == "__main__":
    raise SystemExit(main())
