"""CPU speed settings applied at run time: glibc malloc tuning.

Why: PyTorch's CPU allocator hands every tensor to ``malloc``. glibc serves blocks above the
*mmap threshold* with a fresh ``mmap`` and returns them with ``munmap`` on free; its threshold is
dynamic (it grows up to 32 MiB as large blocks are freed) and freed memory at the top of the heap
above the *trim threshold* (128 KiB) goes back to the kernel. A PG2 training step allocates and
frees the same multi-megabyte activations every step, so with the defaults the kernel keeps
mapping, zero-filling (page faults) and unmapping them: measured here, 1.6-2.8x slower steps
(docs/benchmarks.md, "Training speed"). Raising both thresholds to 1 GB keeps the freed blocks in
the heap, where the next step reuses them.

The ``Makefile`` exports the same settings as ``MALLOC_MMAP_THRESHOLD_`` /
``MALLOC_TRIM_THRESHOLD_`` for its targets; :func:`tune_malloc` applies them with ``mallopt`` from
inside the process, so ``posetransfer train`` started directly gets the speed-up too.
``mallopt`` changes glibc's parameters for every later allocation of the process (they are
process-wide, not per arena), and forked children (data-loader workers) inherit them.

Set ``POSETRANSFER_NO_MALLOC_TUNING=1`` to turn it off (the benchmark's plain baseline does).
Environment values the user set (``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``, read by
glibc at start-up) are left alone. Off glibc (musl, macOS, Windows) it does nothing.
"""

from __future__ import annotations

import ctypes
import os

__all__ = [
    "DISABLE_ENV",
    "MALLOC_ENV",
    "MMAP_THRESHOLD",
    "TRIM_THRESHOLD",
    "glibc_version",
    "malloc_tuning",
    "tune_malloc",
]

#: set to 1 to keep glibc's default malloc behaviour
DISABLE_ENV = "POSETRANSFER_NO_MALLOC_TUNING"
#: bytes; blocks below this come from the heap instead of a fresh mmap (glibc default: 128 KiB, dynamic up to 32 MiB)
MMAP_THRESHOLD = 1_000_000_000
#: bytes of free memory at the heap top kept before giving it back to the kernel (glibc default: 128 KiB)
TRIM_THRESHOLD = 1_000_000_000
#: the environment variables glibc reads for the same settings at start-up (what the Makefile exports)
MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: how the current process is tuned, once decided: "mallopt", "environment", "disabled", "unavailable"
_state: str | None = None


def glibc_version() -> str | None:
    """The running glibc's version (``"2.36"``), or ``None`` when the C library is not glibc."""
    try:
        value = os.confstr("CS_GNU_LIBC_VERSION")  # glibc only, e.g. "glibc 2.36"
    except (AttributeError, ValueError, OSError):
        return None
    if not value or not value.startswith("glibc"):
        return None
    return value.split()[-1]


def _disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; ``True`` if the tuning is in effect.

    Idempotent: the first call decides (and applies), later calls return the same answer. Returns
    ``True`` when applied now or already set through ``MALLOC_*_`` variables (which win over
    ``POSETRANSFER_NO_MALLOC_TUNING``: glibc read them before Python started); ``False`` when
    disabled by ``POSETRANSFER_NO_MALLOC_TUNING``, off glibc, or if ``mallopt`` refuses a value.
    """
    global _state
    if _state is None:
        _state = _apply()
    return _state in ("mallopt", "environment")


def malloc_tuning() -> str:
    """How this process's malloc is tuned: ``"mallopt"`` (by :func:`tune_malloc`), ``"environment"``
    (``MALLOC_*_`` variables set at start-up), ``"disabled"``, ``"unavailable"`` (not glibc or
    refused) or ``"off"`` (:func:`tune_malloc` not called and no variables set)."""
    if _state is not None:
        return _state
    if glibc_version() is not None and any(os.environ.get(k) for k in MALLOC_ENV):
        return "environment"
    return "disabled" if _disabled() else "off"


def _apply() -> str:
    if glibc_version() is None:
        return "unavailable"
    if any(os.environ.get(k) for k in MALLOC_ENV):
        # the user's (or the Makefile's) values, applied by glibc at start-up: left as they are
        return "environment"
    if _disabled():
        return "disabled"
    try:
        libc = ctypes.CDLL(None)  # the C library the interpreter is linked against
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "unavailable"
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 when the value is refused (e.g. above glibc's limit)
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    return "mallopt" if ok else "unavailable"
