"""Speed settings applied at run time: glibc malloc tuning, and the inference settings.

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

import functools

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

__all__ = [
    "AUTO_PRECISION",
    "BF16_TOLERANCE",
    "cpu_has_bf16",
    "inference_settings",
    "resolve_precision",
    "usable_cpus",
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


# ---- inference settings ---------------------------------------------------------------------------

#: what ``precision="auto"`` picks on CUDA; on CPU it is bf16 only where the CPU has native bf16
#: arithmetic (:func:`cpu_has_bf16`): measured on this machine (an AVX2 EPYC without it), a bf16
#: 3x3 convolution runs several times slower than fp32 (docs/benchmarks.md, "Inference")
AUTO_PRECISION = {"cuda": "bf16"}
#: the stated bound of |bf16 - fp32| on generated images in [-1, 1] (mean, max over pixels):
#: 1 and 8 uint8 levels, checked by ``posetransfer bench infer`` (``bf16_vs_fp32``) and a test
BF16_TOLERANCE = {"mean": 1.0 / 127.5, "max": 8.0 / 127.5}


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask; ``os.cpu_count()`` where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """The CPU multiplies bf16 natively (AVX512-BF16 or AMX-BF16 in ``/proc/cpuinfo``)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(device, precision: str = "auto") -> str:
    """``"fp32"`` or ``"bf16"`` for ``precision`` in {"auto", "fp32", "bf16"} on ``device``."""
    kind = getattr(device, "type", str(device).split(":")[0])
    if precision == "auto":
        if kind == "cpu":
            return "bf16" if cpu_has_bf16() else "fp32"
        return AUTO_PRECISION.get(kind, "fp32")
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
    return precision


@contextmanager
def inference_settings(device="cpu", precision: str = "auto", threads: int | None = None) -> Iterator[str]:
    """Run the models for inference: ``torch.inference_mode``, bf16 autocast when ``precision``
    resolves to bf16 (:func:`resolve_precision`), and on CPU the intra-op threads set to
    ``threads`` (default: every usable CPU unless ``OMP_NUM_THREADS`` was set by the user),
    restored on exit. Yields the precision in effect. Batch the inputs: one call per batch.
    """
    import torch

    kind = getattr(device, "type", str(device).split(":")[0])
    mode = resolve_precision(device, precision)
    before = torch.get_num_threads()
    if kind == "cpu":
        wanted = threads if threads is not None else (None if os.environ.get("OMP_NUM_THREADS") else usable_cpus())
        if wanted is not None and wanted != before:
            torch.set_num_threads(int(wanted))
    autocast = torch.autocast(device_type=kind, dtype=torch.bfloat16) if mode == "bf16" else nullcontext()
    try:
        with torch.inference_mode(), autocast:
            yield mode
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
