"""Stopping a training run without losing steps: signals, and an image that cannot be decoded.

* :class:`StopSignals` turns the first SIGINT (Ctrl-C) or SIGTERM (a cluster's pre-emption:
  SLURM and Kubernetes send SIGTERM, then SIGKILL after a grace period) into a request the loop
  reads between steps: the step under way finishes, the trainer saves the last completed step and
  stops with :class:`~posetransfer.errors.Interrupted` (exit 130 / 143). A second signal while
  that happens raises ``Interrupted`` at once (the checkpoint writes are atomic, so the previous
  checkpoint stays whole).
* :class:`BadItem` is what the training data set yields instead of raising when an item cannot
  be read (a truncated JPEG whose header passed the pre-run scan): a plain, picklable value that
  crosses the DataLoader's worker processes intact (an exception crossing them loses its type,
  see ``cli._from_worker``), arrives in batch order (so the trainer knows exactly which step
  it would have fed) and lets the trainer save before it reports the file.
* :func:`agree` all-reduces the stop flags under DDP, so every rank stops before the same step
  and rank 0 can save without a hang.

DataLoader workers ignore SIGINT and SIGTERM (:func:`ignore_stop_signals`): Ctrl-C reaches the
whole foreground process group and SLURM signals every process of a job step; a worker dying of
it would make torch raise "DataLoader worker ... killed by signal" in the main process at any
moment, possibly mid-save. The main process shuts the workers down itself.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from types import FrameType
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import default_collate

from posetransfer.errors import DataError, Interrupted

__all__ = ["STOP_SIGNALS", "StopSignals", "BadItem", "collate", "ignore_stop_signals", "agree", "first_message", "signal_name"]

#: the signals a run stops on, saving first
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class StopSignals:
    """Context manager: while active, the first SIGINT/SIGTERM sets :attr:`signum`; a second raises.

    Handlers are installed only in the main thread of the main interpreter (Python allows no
    other); elsewhere (a web server's worker thread) the process keeps its own handling and
    :attr:`signum` stays 0. The previous handlers are restored on exit.
    """

    def __init__(self) -> None:
        self.signum = 0
        #: what the second signal's message says was going on (set by the trainer)
        self.doing = "finishing the step"
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum:
            raise Interrupted(signum, f"{signal_name(signum)} again while {self.doing}: stopped at once; "
                                      "the last complete checkpoint is intact, continue with --resume")  # fmt: skip
        self.signum = signum

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def ignore_stop_signals() -> None:
    """In a DataLoader worker: leave SIGINT/SIGTERM to the main process (see the module docstring)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


@dataclass(frozen=True)
class BadItem:
    """An item that could not be loaded: ``message`` is its error's one line (file: problem)."""

    message: str
    path: str | None = None
    problem: str | None = None

    @classmethod
    def of(cls, err: DataError) -> "BadItem":
        path = str(err.path) if err.line is None else f"{err.path}, line {err.line}"  # "file, line N: problem"
        return cls(str(err), path, err.problem)


def collate(items: list[Any]) -> Any:
    """``default_collate``, or the first :class:`BadItem` of the batch when it holds one."""
    for item in items:
        if isinstance(item, BadItem):
            return item
    return default_collate(items)


_FLAG_GROUPS: dict[Any, Any] = {}


def _flag_group() -> Any:
    """The process group the stop flags travel in: the default one when it is gloo (CPU), else a
    gloo group beside it, made once per default group (every rank reaches the first :func:`agree`
    at the same step, so all create it together). Flags on an NCCL group would be a CUDA tensor
    read back to the host every step: a device synchronisation that stops the CPU from queueing
    the next step while the GPU finishes this one. A gloo all-reduce of three integers costs about
    a millisecond of CPU time and leaves the GPU's queue alone."""
    default = dist.group.WORLD
    if dist.get_backend() == "gloo":
        return None
    if default not in _FLAG_GROUPS:
        _FLAG_GROUPS[default] = dist.new_group(backend="gloo")
    return _FLAG_GROUPS[default]


def agree(flags: list[int], distributed: bool) -> list[int]:
    """The element-wise maximum of ``flags`` over all ranks (the flags themselves in one process).

    One small CPU all-reduce a step under DDP (:func:`_flag_group`); it also keeps the ranks in
    lock-step, which the gradient all-reduces do anyway.
    """
    if not distributed:
        return list(flags)
    t = torch.tensor(flags, dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=_flag_group())
    return [int(v) for v in t.tolist()]


def first_message(value: Any, distributed: bool) -> Any:
    """The first rank's non-None ``value`` (in rank order; a picklable object), on every rank."""
    if not distributed:
        return value
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return next((v for v in gathered if v is not None), None)
