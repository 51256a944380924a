"""``posetransfer bench infer``: inference speed of G1, G1+G2 and the multi-view generator.

Each model is built from its recipe in ``configs/`` with random weights, through the task's own
:meth:`~posetransfer.training.tasks.Task.build_networks` (stage II with a random G1 in place of
its stage-I checkpoint), and run with :meth:`Task.generate` on a synthetic batch of the task's
inputs (:func:`posetransfer.bench.train.synthetic_pair_batch` and ``synthetic_group_batch``)
under :func:`posetransfer.utils.perf.inference_settings`, the settings ``generate`` and
``transfer`` use. At both data sets' sizes: Market-1501 128x64 and DeepFashion 256x176 (the
crop most later work uses). PG2's G1 at 256x176 has 5 blocks instead of the 256x256 recipe's 6
(176 is not a multiple of 32); the multi-view generator gets 2 source photos (the -M variant's
fewest).

Reported per model and size: ms per image and frames per second (batch ``--batch``), the FLOPs
per image (``FlopCounterMode``), the achieved TFLOP/s and its fraction of the device's peak: on
CPU the bf16 (and fp32) 3x3-convolution peaks measured in the same run (:func:`bench.peak.conv_peak`),
on CUDA the data-sheet bf16 peak (:data:`bench.peak.KNOWN_BF16_PEAKS`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

from posetransfer.bench.peak import conv_peak, count_flops, device_peak, sync
from posetransfer.bench.train import machine_info, synthetic_group_batch, synthetic_pair_batch
from posetransfer.training.config import Config, load_config
from posetransfer.training.tasks import get_task_class
from posetransfer.utils.perf import inference_settings, resolve_precision
from posetransfer.utils.devices import resolve_device

__all__ = ["CONFIGS", "SIZES", "MODELS", "build_model", "bench_model", "bench_infer", "format_infer"]

#: the repository's recipes (``configs/`` next to ``src/``)
CONFIGS = Path(__file__).resolve().parents[3] / "configs"
#: data set -> frame size (H, W)
SIZES: dict[str, tuple[int, int]] = {"market": (128, 64), "deepfashion": (256, 176)}
MODELS = ("g1", "g1+g2", "multiview")
MULTIVIEW_SOURCES = 2


def _recipe(model: str, dataset: str, width: int | None = None) -> tuple[Config, dict[str, dict[str, Any]]]:
    """The config of ``model`` on ``dataset`` at :data:`SIZES`, and the networks to build at random.

    ``width`` replaces the networks' base widths (a smoke check of the wiring; not the recipes).
    """
    h, w = SIZES[dataset]
    size = f"[{h},{w}]"
    # data.image_size is the one switch: the config writes it into every network (and the inputs)
    g1_over = [f"data.image_size={size}"] + (["model.g1.num_blocks=5"] if dataset == "deepfashion" else [])
    if width:
        g1_over.append(f"model.g1.base_channels={width}")
    if model == "g1":
        return load_config(CONFIGS / "pg2" / dataset / "g1_posemaskloss.yaml", g1_over), {}
    if model == "g1+g2":
        g1 = load_config(CONFIGS / "pg2" / dataset / "g1_posemaskloss.yaml", g1_over)
        over = [f"data.image_size={size}"]
        if dataset == "deepfashion":  # D is not used at inference; 176 is not a multiple of 32
            over.append("model.d.num_layers=4")
        if width:
            over += [f"model.g2.base_channels={width}", f"model.d.base_channels={width}"]
        return load_config(CONFIGS / "pg2" / dataset / "g1_g2_d.yaml", over), {"g1": dict(g1.model["g1"])}
    if model == "multiview":
        over = [f"data.image_size={size}", "loss.perceptual_weight=0", "loss.d_image=false", "loss.d_pose=false"]
        if width:
            over += [f"model.g.base_channels={width}", f"model.g.pose_base_channels={width}"]
        return load_config(CONFIGS / "multiview" / dataset / "g_di_dp_m.yaml", over), {}
    raise ValueError(f"unknown model {model!r} (known: {', '.join(MODELS)})")


def build_model(model: str, dataset: str, device: torch.device, channels_last: bool = True, width: int | None = None):
    """(task, networks in eval mode on ``device``) of ``model`` on ``dataset``, random weights."""
    config, random_init = _recipe(model, dataset, width)
    task = get_task_class(config.task)(config)
    nets = task.build_networks(random_init)
    for net in nets.values():
        net.to(device).eval().requires_grad_(False)
        if channels_last:
            net.to(memory_format=torch.channels_last)
    return task, nets


def _batch(task, model: str, batch: int, size: tuple[int, int], device: torch.device) -> dict[str, Any]:
    spec = task.input_spec()  # the task's own model inputs (data.inputs)
    if model == "multiview":
        raw = synthetic_group_batch(batch, size, MULTIVIEW_SOURCES, inputs=spec)
    else:
        raw = synthetic_pair_batch(batch, size, inputs=spec)
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in raw.items()}


def bench_model(
    model: str, dataset: str, *, device: torch.device, batch: int = 8, repeats: int = 3, precision: str = "auto",
    check_bf16: bool = False, width: int | None = None,
) -> dict[str, Any]:
    """Time ``model`` on ``dataset``: best of ``repeats`` timed batches after one warm-up."""
    task, nets = build_model(model, dataset, device, width=width)
    size = SIZES[dataset]
    inputs = _batch(task, model, batch, size, device)
    final = task.final_output

    def run() -> torch.Tensor:
        return task.generate(nets, inputs)[final]

    with inference_settings(device, precision) as mode:
        flops = count_flops(run)
        run()  # warm-up
        sync(device)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = run()
            sync(device)
            times.append(time.perf_counter() - start)
    best = min(times)
    result: dict[str, Any] = {
        "model": model,
        "dataset": dataset,
        "image_size": list(size),
        "batch": batch,
        "precision": mode,
        "ms_per_image": 1000.0 * best / batch,
        "frames_per_s": batch / best,
        "seconds": [round(t, 4) for t in times],
        "gflop_per_image": flops / batch / 1e9,
        "tflops": flops / best / 1e12,
        "parameters_m": sum(p.numel() for n in nets.values() for p in n.parameters()) / 1e6,
    }
    if check_bf16:
        with inference_settings(device, "fp32"):
            ref = run().float()
        with inference_settings(device, "bf16"):
            low = run().float()
        diff = (low - ref).abs()
        result["bf16_vs_fp32"] = {"mean_abs": float(diff.mean()), "max_abs": float(diff.max())}
    assert out.shape[0] == batch
    return result


def bench_infer(
    *, device: str = "cpu", batch: int = 8, repeats: int = 3, precision: str = "auto", models: tuple[str, ...] = MODELS,
    datasets: tuple[str, ...] = tuple(SIZES), check_bf16: bool = False, peak_tflops: float | None = None,
    threads: int | None = None, width: int | None = None, peak_seconds: float = 0.2,
) -> dict[str, Any]:
    """Every model at every size, plus the peak the speeds are a fraction of (see the module docstring)."""
    dev = resolve_device(device)
    if threads is not None:
        torch.set_num_threads(threads)
    peaks: dict[str, Any] = {}
    if dev.type == "cpu":
        peaks["bf16_conv"] = conv_peak(dev, dtype=torch.bfloat16, min_seconds=peak_seconds)
        peaks["fp32_conv"] = conv_peak(dev, dtype=torch.float32, min_seconds=peak_seconds)
    table, source = device_peak(dev, peak_tflops)
    peaks["bf16_datasheet_tflops"], peaks["datasheet_source"] = table, source
    results = []
    for dataset in datasets:
        for model in models:
            r = bench_model(model, dataset, device=dev, batch=batch, repeats=repeats, precision=precision, check_bf16=check_bf16,
                            width=width)  # fmt: skip
            if table:
                r["fraction_of_bf16_peak"] = r["tflops"] / table
            results.append(r)
    if dev.type == "cpu":
        # the peaks again: the load of other processes changes meanwhile; the best of the two
        # measurements is the peak, and every fraction is taken of it
        peaks["bf16_conv_after"] = conv_peak(dev, dtype=torch.bfloat16, min_seconds=peak_seconds)
        peaks["fp32_conv_after"] = conv_peak(dev, dtype=torch.float32, min_seconds=peak_seconds)
        best = {d: max(peaks[f"{d}_conv"]["tflops"], peaks[f"{d}_conv_after"]["tflops"]) for d in ("bf16", "fp32")}
        peaks["bf16_conv_tflops"], peaks["fp32_conv_tflops"] = best["bf16"], best["fp32"]
        for r in results:
            r["fraction_of_bf16_conv_peak"] = r["tflops"] / best["bf16"]
            r["fraction_of_conv_peak_in_its_precision"] = r["tflops"] / best[r["precision"]]
    return {
        "device": str(dev),
        "width": width,
        "precision_requested": precision,
        "precision": resolve_precision(dev, precision),
        "peaks": peaks,
        "results": results,
        "settings": machine_info(dev),
        "loadavg": [round(v, 2) for v in os.getloadavg()],
    }


def format_infer(report: dict[str, Any]) -> list[str]:
    p = report["peaks"]
    lines = [f"bench infer on {report['device']} ({report['settings'].get('gpu') or report['settings']['cpu']}), "
             f"precision {report['precision']}, load average {' '.join(f'{v:.2f}' for v in report['loadavg'])}"]  # fmt: skip
    if "bf16_conv" in p:
        lines.append(f"  measured 3x3 conv peak (best of before and after): bf16 {p['bf16_conv_tflops']:.4f} TFLOP/s, "
                     f"fp32 {p['fp32_conv_tflops']:.4f} TFLOP/s")  # fmt: skip
    if p.get("bf16_datasheet_tflops"):
        lines.append(f"  bf16 peak {p['bf16_datasheet_tflops']:.0f} TFLOP/s from {p['datasheet_source']}")
    lines.append(f"  {'model':<10} {'data':<12} {'size':>8} {'batch':>5} {'ms/img':>9} {'frames/s':>9} {'GFLOP/img':>10} "
                 f"{'TFLOP/s':>8} {'of peak':>8}")  # fmt: skip
    for r in report["results"]:
        frac = r.get("fraction_of_bf16_peak", r.get("fraction_of_conv_peak_in_its_precision"))
        h, w = r["image_size"]
        lines.append(f"  {r['model']:<10} {r['dataset']:<12} {f'{h}x{w}':>8} {r['batch']:>5} {r['ms_per_image']:9.2f} "
                     f"{r['frames_per_s']:9.2f} {r['gflop_per_image']:10.2f} {r['tflops']:8.4f} "
                     f"{'' if frac is None else f'{frac:8.1%}'}")  # fmt: skip
        if "bf16_vs_fp32" in r:
            d = r["bf16_vs_fp32"]
            lines.append(f"    bf16 vs fp32 output: mean |diff| {d['mean_abs']:.4f}, max {d['max_abs']:.4f} (images in [-1, 1])")
    if "bf16_conv" in p:
        lines.append("  'of peak': of the measured conv peak in the precision used (JSON: also of the bf16 one)")
    return lines
