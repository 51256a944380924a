"""FLOPs and peaks: what a benchmark's speed is a fraction of.

* :func:`count_flops` counts the FLOPs of one call with ``torch.utils.flop_counter.FlopCounterMode``
  (matrix multiplications and convolutions, forward and backward: the work that matters here).
* :data:`KNOWN_BF16_PEAKS`: the vendors' dense bf16 tensor-core peaks (TFLOP/s, no sparsity) by
  device name, for MFU on CUDA; ``--peak-tflops`` overrides it (a device not in the table, or a
  clock-limited part).
* :func:`conv_peak`: the machine's own bf16 convolution peak, measured: a 3x3 convolution of
  PG2-like width in bf16, channels-last, inference mode, best of several timed runs. On CPU there is
  no data-sheet number for what oneDNN reaches, so the benchmarks report the fraction of this
  measured peak, taken in the same run (the load of other processes affects both alike).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["KNOWN_BF16_PEAKS", "count_flops", "device_peak", "conv_peak", "sync"]

#: dense bf16 peak TFLOP/s by a substring of ``torch.cuda.get_device_name`` (longest match wins);
#: from the vendors' data sheets (H100/H200 SXM 989, H100 PCIe 756, A100 312, L40S 362, L4 121,
#: A10 125, RTX 4090 165 with fp32 accumulation, B200 2250)
KNOWN_BF16_PEAKS: dict[str, float] = {
    "H200": 989.4,
    "H100 80GB HBM3": 989.4,
    "H100 SXM": 989.4,
    "H100 NVL": 835.0,
    "H100 PCIe": 756.5,
    "H100": 989.4,
    "GH200": 989.4,
    "B200": 2250.0,
    "A100": 312.0,
    "L40S": 362.1,
    "L4": 121.0,
    "A10": 125.0,
    "RTX 4090": 165.2,
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(fn: Callable[[], Any]) -> int:
    """Total FLOPs ``fn()`` runs (one multiply-add = 2 FLOPs), counted by ``FlopCounterMode``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def device_peak(device: torch.device, override: float | None = None) -> tuple[float | None, str]:
    """(bf16 peak TFLOP/s, where it comes from) for a CUDA device: ``override``, else the table."""
    if override is not None:
        return float(override), "--peak-tflops"
    if device.type != "cuda":
        return None, "none (CPU: see the measured convolution peak)"
    name = torch.cuda.get_device_name(device)
    hits = [k for k in KNOWN_BF16_PEAKS if k.lower() in name.lower()]
    if not hits:
        return None, f"unknown device {name!r}: pass --peak-tflops"
    key = max(hits, key=len)
    return KNOWN_BF16_PEAKS[key], f"table ({key})"


def conv_peak(
    device: torch.device | str = "cpu",
    *,
    dtype: torch.dtype = torch.bfloat16,
    channels: int = 256,
    size: tuple[int, int] = (32, 16),
    batch: int | None = None,
    repeats: int = 5,
    min_seconds: float = 0.2,
) -> dict[str, Any]:
    """Measured 3x3-convolution throughput (bf16 by default) on ``device``: ``{"tflops", "shape", ...}``.

    A ``channels -> channels`` 3x3 convolution (stride 1, padding 1) on ``batch x channels x size``
    channels-last bf16 input under ``torch.inference_mode``; each timed run repeats the call for
    at least ``min_seconds``; the best of ``repeats`` runs is the peak (the least disturbed by the
    other processes). FLOPs: ``2 * batch * H * W * channels^2 * 9``.
    """
    device = torch.device(device)
    if batch is None:
        batch = 256 if device.type == "cuda" else 8  # enough work to fill a GPU
    h, w = size
    x = torch.randn(batch, channels, h, w, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    weight = (torch.randn(channels, channels, 3, 3, device=device) * 0.02).to(dtype)
    weight = weight.contiguous(memory_format=torch.channels_last)
    flops = 2 * batch * h * w * channels * channels * 9
    best = 0.0
    with torch.inference_mode():
        for _ in range(2):  # warm-up: oneDNN / cuDNN pick and cache their kernels
            F.conv2d(x, weight, padding=1)
        sync(device)
        calls = 1
        start = time.perf_counter()
        F.conv2d(x, weight, padding=1)
        sync(device)
        one = max(time.perf_counter() - start, 1e-6)
        calls = max(1, int(min_seconds / one))
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(calls):
                F.conv2d(x, weight, padding=1)
            sync(device)
            best = max(best, flops * calls / (time.perf_counter() - start))
    return {"tflops": best / 1e12, "dtype": str(dtype).replace("torch.", ""), "shape": [batch, channels, h, w],
            "calls_per_run": calls, "runs": repeats}  # fmt: skip
