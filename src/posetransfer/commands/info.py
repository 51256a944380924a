"""``posetransfer info``: versions, CPU and GPUs, the precision ``auto`` picks, installed extras
and found pretrained files, for a bug report or to see why a command is missing a piece.
See :mod:`posetransfer.utils.environment`."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "info",
        help="what this installation has: versions, CPU/GPU, extras, pretrained files (for bug reports)",
        description="Print the versions, the CPU and GPUs, the precision `auto` picks, which optional extras "
        "are installed (and how to install the others) and which pretrained files are found.",
    )
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=_info)


def _info(args: argparse.Namespace) -> int:
    from posetransfer.utils.environment import environment_report, format_report

    report = environment_report()
    print(json.dumps(report, indent=1) if args.json else "\n".join(format_report(report)))
    return 0
