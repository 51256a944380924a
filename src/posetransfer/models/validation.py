"""Checks the networks' constructors run on their arguments before building a single layer.

Every failure is a :class:`~posetransfer.errors.ModelConfigError` (a ``ConfigError`` and a
``ValueError``) naming the argument, its documented range and the value given, so a config with
``base_channels: -4`` or ``"eight"`` or an unknown ``pose_embedding`` is one clear line on the
command line (``training.config`` also builds each network on the ``meta`` device while it
validates a config, so the line names the config file and key).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from posetransfer.errors import ModelConfigError


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` is an int (not a bool) >= ``minimum``."""
    if not _is_int(value):
        raise ModelConfigError(f"{name} must be an integer >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ModelConfigError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def check_positive_ints(**values: Any) -> None:
    """Each keyword is a positive int."""
    for name, value in values.items():
        check_int(name, value, 1)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise ModelConfigError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ModelConfigError(f"{name} must be true or false, got {value!r}")
    return value


def check_number(name: str, value: Any, low: float | None = None, high: float | None = None) -> float:
    """A finite int or float within [low, high] (either bound optional)."""
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ModelConfigError(f"{name} must be a finite number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise ModelConfigError(f"{name} must be in {span}, got {value}")
    return float(value)


def check_image_size(value: Any, name: str = "image_size") -> tuple[int, int]:
    """Two positive ints (height, width)."""
    if not isinstance(value, (tuple, list)) or len(value) != 2 or not all(_is_int(s) and s > 0 for s in value):
        raise ModelConfigError(f"{name} must be two positive ints (height, width), got {value!r}")
    return int(value[0]), int(value[1])
