"""``posetransfer bench encodings``: the pose encodings a training sample needs, timed per sample.

PG2 needs the 18 disk heatmaps and the pose mask, the multi-view generator the stick figure and
the mask. The goal is at most 2 ms for all of a sample's encodings at 256 x 256 on one CPU core,
so that encoding never starves training (the data loader's single-sample path).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from posetransfer.errors import DataError
from posetransfer.pose.encodings import disk_heatmaps, gaussian_heatmaps, pose_mask, stick_figure
from posetransfer.pose.io import read_annotations
from posetransfer.pose.schema import NUM_KEYPOINTS

__all__ = ["GOAL_MS", "load_poses", "time_per_sample", "bench_encodings", "format_encodings"]

GOAL_MS = 2.0


def load_poses(path: Path, count: int) -> np.ndarray:
    """Poses from an annotation file (coordinates as written), cycled to ``count`` samples."""
    annotations = read_annotations(path)
    if not annotations:
        raise DataError(path, "the annotation file holds no pose")
    poses = np.stack(list(annotations.values()))
    return poses[np.arange(count) % len(poses)]


def time_per_sample(fn: Callable[[np.ndarray], object], poses: np.ndarray) -> float:
    """Median over 5 passes of the mean time per sample (ms) of ``fn`` on single poses."""
    fn(poses[0])  # warm-up: caches, lazy imports
    passes = []
    for _ in range(5):
        start = time.perf_counter()
        for kp in poses:
            fn(kp)
        passes.append((time.perf_counter() - start) * 1000.0 / len(poses))
    return float(np.median(passes))


def bench_encodings(size: tuple[int, int], repeat: int, annotations: Path | None = None) -> dict[str, Any]:
    """Time each encoding on ``repeat`` poses (from ``annotations``, or built-in poses scaled to ``size``)."""
    if annotations is not None:
        poses = load_poses(annotations, repeat)
    else:
        from posetransfer.bench.train import bench_poses  # imports torch: only when needed

        poses = bench_poses(size, repeat)
    assert poses.shape[1:] == (NUM_KEYPOINTS, 2)
    fns: dict[str, Callable[[np.ndarray], object]] = {
        "disk_heatmaps": lambda kp: disk_heatmaps(kp, size),
        "gaussian_heatmaps": lambda kp: gaussian_heatmaps(kp, size),
        "pose_mask": lambda kp: pose_mask(kp, size),
        "stick_figure": lambda kp: stick_figure(kp, size),
    }
    ms = {name: time_per_sample(fn, poses) for name, fn in fns.items()}
    totals = {
        "pg2 (disk_heatmaps + pose_mask)": ms["disk_heatmaps"] + ms["pose_mask"],
        "multiview (stick_figure + pose_mask)": ms["stick_figure"] + ms["pose_mask"],
    }
    worst = max(totals.values())
    return {
        "size": list(size),
        "samples": int(len(poses)),
        "ms_per_sample": ms,
        "totals_ms_per_sample": totals,
        "goal_ms": GOAL_MS,
        "meets_goal": worst <= GOAL_MS,
    }


def format_encodings(report: dict[str, Any]) -> list[str]:
    h, w = report["size"]
    lines = [f"pose encodings at {h}x{w}, {report['samples']} samples, ms per sample (median of 5 passes)"]
    for name, value in (*report["ms_per_sample"].items(), *report["totals_ms_per_sample"].items()):
        lines.append(f"  {name:<38} {value:8.3f}")
    worst = max(report["totals_ms_per_sample"].values())
    verdict = "meets" if worst <= report["goal_ms"] else "MISSES"
    lines.append(f"  slowest model total {worst:.3f} ms {verdict} the goal of {report['goal_ms']:.1f} ms")
    return lines
