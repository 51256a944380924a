"""The ``posetransfer`` command. Thin: it parses arguments and calls the library.

Each subcommand lives in ``posetransfer.commands.<name>`` and exposes
``register(subparsers) -> None``; the parser it adds sets ``func`` (called with the parsed
arguments, returning an exit code). Problems with the user's input raise
:class:`~posetransfer.errors.PosetransferError` and are printed as one line, never a stack trace.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from posetransfer import __version__
from posetransfer.errors import PosetransferError

# Order = order in --help.
COMMAND_MODULES = ("demo", "data", "bench", "pose", "transfer", "train", "generate", "evaluate", "study", "serve")
# Commands that tune glibc's malloc at start-up (``POSETRANSFER_NO_MALLOC_TUNING=1`` turns it off).
MALLOC_TUNED_COMMANDS = ("train", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posetransfer",
        description="Pose-guided person image generation (PG2, multi-view ConvLSTM generator).",
    )
    parser.add_argument("--version", action="version", version=f"posetransfer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"posetransfer.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in MALLOC_TUNED_COMMANDS:
        from posetransfer.utils.perf import tune_malloc

        tune_malloc()  # glibc malloc thresholds: much faster CPU training steps (utils/perf.py)
    try:
        return int(args.func(args) or 0)
    except PosetransferError as err:
        print(f"posetransfer {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"posetransfer {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
