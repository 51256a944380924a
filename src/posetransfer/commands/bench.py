"""``posetransfer bench ...``: speed measurements, kept out of the test suite (CONVENTIONS.md).

``bench`` is a group of subcommands; each is one ``_register_<name>(group)`` function below that
adds its parser and sets ``func``. Adding another benchmark (``bench train``) means writing one
such function and listing it in :data:`SUBCOMMANDS`.

``bench encodings`` times the pose encodings a training sample needs, per sample, in the data
loader's single-sample path: PG2 needs the 18 disk heatmaps and the pose mask, the multi-view
generator the stick figure and the mask. The goal is at most 2 ms for all of a sample's
encodings at 256 x 256 on one CPU core, so that encoding never starves training.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from posetransfer.errors import DataError
from posetransfer.pose.encodings import disk_heatmaps, gaussian_heatmaps, pose_mask, stick_figure
from posetransfer.pose.io import read_annotations
from posetransfer.pose.schema import MISSING, NUM_KEYPOINTS

GOAL_MS = 2.0

# A standing person in a 256 x 176 frame (DeepFashion-like), (y, x); a few joints missing.
_REFERENCE_POSE = np.array(
    [[30, 88], [62, 88], [62, 58], [100, 50], [136, 48], [62, 118], [100, 126], [136, 128],
     [140, 70], [190, 68], [238, 66], [140, 106], [190, 108], [238, 110],
     [24, 80], [24, 96], [28, 72], [MISSING, MISSING]],
    dtype=np.float32,
)  # fmt: skip
_REFERENCE_SIZE = (256, 176)


def parse_size(text: str) -> tuple[int, int]:
    """``"256x176"`` -> ``(256, 176)`` (height x width)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 256x256, got {text!r}") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return h, w


def bench_poses(size: tuple[int, int], count: int, seed: int = 0) -> np.ndarray:
    """``count`` plausible poses in a ``size`` frame: the reference pose scaled, jittered and shifted."""
    rng = np.random.default_rng(seed)
    scale = np.asarray(size, np.float32) / np.asarray(_REFERENCE_SIZE, np.float32)
    poses = np.repeat(_REFERENCE_POSE[None] * scale, count, axis=0)
    poses += rng.normal(0.0, 0.03 * min(size), poses.shape).astype(np.float32)
    poses[:, _REFERENCE_POSE[:, 0] < 0] = MISSING
    return poses


def _load_poses(path: Path, count: int) -> np.ndarray:
    """Poses from an annotation file (coordinates as written), cycled to ``count`` samples."""
    annotations = read_annotations(path)
    if not annotations:
        raise DataError(path, "the annotation file holds no pose")
    poses = np.stack(list(annotations.values()))
    return poses[np.arange(count) % len(poses)]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


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


def run_encodings(args: argparse.Namespace) -> int:
    size: tuple[int, int] = args.size
    if args.annotations is not None:
        poses = _load_poses(args.annotations, args.repeat)
    else:
        poses = bench_poses(size, args.repeat)
    assert poses.shape[1:] == (NUM_KEYPOINTS, 2)
    encodings: dict[str, Callable[[np.ndarray], object]] = {
        "disk_heatmaps": lambda kp: disk_heatmaps(kp, size),
        "gaussian_heatmaps": lambda kp: gaussian_heatmaps(kp, size),
        "pose_mask": lambda kp: pose_mask(kp, size),
        "stick_figure": lambda kp: stick_figure(kp, size),
    }
    ms = {name: time_per_sample(fn, poses) for name, fn in encodings.items()}
    totals = {
        "pg2 (disk_heatmaps + pose_mask)": ms["disk_heatmaps"] + ms["pose_mask"],
        "multiview (stick_figure + pose_mask)": ms["stick_figure"] + ms["pose_mask"],
    }
    worst = max(totals.values())
    report = {
        "size": list(size),
        "samples": int(len(poses)),
        "ms_per_sample": ms,
        "totals_ms_per_sample": totals,
        "goal_ms": GOAL_MS,
        "meets_goal": worst <= GOAL_MS,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"pose encodings at {size[0]}x{size[1]}, {len(poses)} samples, ms per sample (median of 5 passes)")
        for name, value in ms.items():
            print(f"  {name:<38} {value:8.3f}")
        for name, value in totals.items():
            print(f"  {name:<38} {value:8.3f}")
        verdict = "meets" if worst <= GOAL_MS else "MISSES"
        print(f"  slowest model total {worst:.3f} ms {verdict} the goal of {GOAL_MS:.1f} ms")
    return 0


def _register_encodings(group: argparse._SubParsersAction) -> None:
    p = group.add_parser(
        "encodings",
        help="time the pose encodings per training sample",
        description="Time disk/Gaussian heatmaps, the pose mask and the stick figure on single poses.",
    )
    p.add_argument("--size", type=parse_size, default=(256, 256), metavar="HxW", help="frame size (default 256x256)")
    p.add_argument("--repeat", type=_positive_int, default=200, metavar="N", help="samples per timing pass (default 200)")
    p.add_argument("--annotations", type=Path, default=None, metavar="CSV",
                   help="time on the poses of this annotation file, as written (joints outside --size count as missing); default: built-in poses scaled to --size")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=run_encodings)


# Subcommands of ``bench``, in --help order.
SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_register_encodings,)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="speed benchmarks", description="Speed benchmarks.")
    group = parser.add_subparsers(dest="bench_command", metavar="BENCHMARK")
    group.required = True
    for add in SUBCOMMANDS:
        add(group)
