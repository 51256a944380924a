"""The one reading of a ``--device`` / ``device=`` value: ``auto``, ``cpu``, ``cuda``, ``cuda:N``,
``mps``, or a :class:`torch.device`. A name torch does not know, or a device this machine does not
have, is a :class:`~posetransfer.errors.ConfigError` naming the option and what to use instead
(torch's own messages are an ``AssertionError`` deep in ``torch.cuda``, or a list of twenty device
types), raised before any model is loaded.
"""

from __future__ import annotations

import torch

from posetransfer.errors import ConfigError

__all__ = ["resolve_device"]


def resolve_device(spec: str | torch.device | None = "auto", *, option: str = "--device") -> torch.device:
    """``spec`` as a torch device; ``auto`` (or None) is the first CUDA device when there is one, else the CPU."""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "auto"):
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    if isinstance(spec, torch.device):
        device = spec
    else:
        try:
            device = torch.device(spec.strip().lower())
        except (RuntimeError, ValueError):
            raise ConfigError(f"{option} {spec!r}: not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = f"torch {torch.__version__} is a CPU-only build" if torch.version.cuda is None else "none is visible"
            raise ConfigError(f"{option} {spec}: no CUDA device is available here ({build}); use {option} cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"{option} {spec}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"{option} {spec}: Apple's MPS is not available here; use {option} cpu")
    elif device.type != "cpu":
        raise ConfigError(f"{option} {spec}: posetransfer runs on cpu, cuda or mps, not {device.type}")
    return device
