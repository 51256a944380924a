"""argparse value types shared by the subcommands (each error is argparse's one-line usage error)."""

from __future__ import annotations

import argparse
import re

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def size_hw(text: str) -> tuple[int, int]:
    """``"128x64"`` -> ``(128, 64)`` (height x width, both positive)."""
    m = _SIZE.match(text)
    if not m or int(m.group(1)) <= 0 or int(m.group(2)) <= 0:
        raise argparse.ArgumentTypeError(
            f"invalid size {text!r}: expected HEIGHTxWIDTH with positive integers, e.g. 128x64"
        )
    return int(m.group(1)), int(m.group(2))


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def port(text: str) -> int:
    """A TCP port, 0 (any free one) to 65535."""
    value = non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, got {text}")
    return value


def fraction(text: str) -> float:
    """A share in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid fraction {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"fraction must be in [0, 1), got {text}")
    return value


def add_overrides(parser: argparse.ArgumentParser, example: str = "train.batch_size=4", scope: str = "") -> None:
    """``--set KEY=VALUE`` (repeatable, into ``args.overrides``): a config value, parsed as YAML."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help=f"override a config value{scope}, e.g. --set {example} (value parsed as YAML; repeatable)",
    )  # fmt: skip
