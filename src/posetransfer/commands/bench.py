"""``posetransfer bench ...``: speed measurements, kept out of the test suite (CONVENTIONS.md).

``bench`` is a group of subcommands; each is one ``_register_<name>(group)`` function below that
adds its parser and sets ``func``. Adding another benchmark (``bench train``) means writing one
such function and listing it in :data:`SUBCOMMANDS`.

``bench encodings`` times the pose encodings a training sample needs, per sample, in the data
loader's single-sample path: PG2 needs the 18 disk heatmaps and the pose mask, the multi-view
generator the stick figure and the mask. The goal is at most 2 ms for all of a sample's
encodings at 256 x 256 on one CPU core, so that encoding never starves training.

``bench train`` times full training steps (forward, losses, backward, optimizer steps; D and G
for GAN tasks) of a config on synthetic in-memory batches of the config's image and batch size
(:mod:`posetransfer.training.benchmark`). The goal on CPU: at least 3x the images/s of the plain
reference (fp32, eager, NCHW, glibc's default malloc; ``--baseline``) at the Market recipe.
``--compare`` runs both. ``bench precision`` trains a config in fp32 and in bf16 and compares
the loss curves (the check behind ``precision: bf16`` in the PG2 recipes).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from posetransfer.commands._args import non_negative_int, positive_int, size_hw
from posetransfer.errors import DataError
from posetransfer.pose.encodings import (
    disk_heatmaps,
    gaussian_heatmaps,
    pose_mask,
    stick_figure,
)
from posetransfer.pose.io import read_annotations
from posetransfer.pose.schema import NUM_KEYPOINTS

GOAL_MS = 2.0


def _load_poses(path: Path, count: int) -> np.ndarray:
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


def run_encodings(args: argparse.Namespace) -> int:
    size: tuple[int, int] = args.size
    if args.annotations is not None:
        poses = _load_poses(args.annotations, args.repeat)
    else:
        from posetransfer.training.benchmark import (
            bench_poses,  # imports torch: only when needed
        )

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
    p.add_argument("--size", type=size_hw, default=(256, 256), metavar="HxW", help="frame size (default 256x256)")
    p.add_argument("--repeat", type=positive_int, default=200, metavar="N", help="samples per timing pass (default 200)")
    p.add_argument("--annotations", type=Path, default=None, metavar="CSV",
                   help="time on the poses of this annotation file, as written (joints outside --size count as missing); default: built-in poses scaled to --size")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=run_encodings)


# ---- bench train -------------------------------------------------------------------------------

#: the speed-up over the plain reference the tuned settings should reach on CPU (the issue's goal)
TRAIN_GOAL_SPEEDUP = 3.0


def _random_init(items: list[str]) -> tuple[list[str], dict]:
    """``NAME=CONFIG`` items -> ({name: Config}); the config's ``model.NAME`` builds a random network."""
    from posetransfer.errors import ConfigError
    from posetransfer.training.config import load_config

    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--random-init: expected NAME=CONFIG such as g1=configs/pg2/market/g1_posemaskloss.yaml, got {item!r}")
        out[name] = load_config(path)
    return items, out


def _format_train(result: dict, title: str) -> list[str]:
    s = result["settings"]
    cuda = f", peak CUDA {result['peak_cuda_mb']:.0f} MB" if result.get("peak_cuda_mb") is not None else ""
    h, w = result["image_size"]
    return [
        f"{title}: {result['description']} ({result['task']}), batch {result['batch_size']} at {h}x{w}, "
        f"{result['steps']} timed steps after {result['warmup']} warm-up",
        f"  images/s {result['images_per_s']:.3f}   seconds/step {result['seconds_per_step']:.3f}   "
        f"peak RSS {result['peak_rss_mb']:.0f} MB{cuda}",
        f"  precision {s['precision']}, channels_last {str(s['channels_last']).lower()}, malloc tuning "
        f"{s['malloc_tuning']}, threads {s['threads']}, device {s['device']}"
        + (f" ({s['gpu']})" if s.get("gpu") else ""),
        f"  torch {s['torch']}, CPU {s['cpu']} x {s['cpus']}, load average "
        f"{' '.join(f'{v:.2f}' for v in result['loadavg'])}",
    ]


def run_train(args: argparse.Namespace) -> int:
    import os

    import torch

    from posetransfer.training import benchmark
    from posetransfer.training.config import load_config
    from posetransfer.utils import perf

    if args.no_malloc_tuning:
        os.environ[perf.DISABLE_ENV] = "1"
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    raw_random, random_init = _random_init(args.random_init)
    overrides = list(args.overrides)
    if args.baseline or args.compare:
        baseline = benchmark.run_baseline(
            args.config, overrides, steps=args.steps, warmup=args.warmup, random_init=raw_random, threads=args.threads
        )
    if args.baseline:
        report = baseline
        lines = _format_train(baseline, "bench train (baseline)")
    else:
        config = load_config(args.config, overrides)
        result = benchmark.bench_train(
            config, steps=args.steps, warmup=args.warmup, random_init=random_init, malloc=not args.no_malloc_tuning
        ).as_dict()
        report = result
        lines = _format_train(result, "bench train")
        if args.compare:
            ratio = result["images_per_s"] / baseline["images_per_s"]
            report = {**result, "baseline": baseline, "speedup": ratio, "goal_speedup": TRAIN_GOAL_SPEEDUP}
            verdict = "meets" if ratio >= TRAIN_GOAL_SPEEDUP else "MISSES"
            lines = [*_format_train(baseline, "baseline"), *_format_train(result, "tuned"),
                     f"speed-up {ratio:.2f}x {verdict} the goal of {TRAIN_GOAL_SPEEDUP:.0f}x"]  # fmt: skip
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(lines))
    return 0


def _register_train(group: argparse._SubParsersAction) -> None:
    p = group.add_parser(
        "train",
        help="time training steps of a config on synthetic batches",
        description="Time full training steps (forward, losses, backward, optimizer steps; D and G for GAN "
        "tasks) of CONFIG's task on synthetic in-memory batches of its image and batch size: no data set "
        "needed. Reports images/s, seconds/step, peak memory and the settings.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="CONFIG", help="a training config (YAML)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.precision=bf16 (repeatable)")  # fmt: skip
    p.add_argument("--steps", type=positive_int, default=5, metavar="N", help="timed steps (default 5)")
    p.add_argument("--warmup", type=non_negative_int, default=1, metavar="N", help="untimed steps first (default 1)")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="torch intra-op threads (default: torch's choice)")  # fmt: skip
    p.add_argument("--random-init", action="append", default=[], metavar="NAME=CONFIG",
                   help="build network NAME with random weights from CONFIG's model.NAME instead of loading it "
                   "from init_from (e.g. g1=configs/pg2/market/g1_posemaskloss.yaml for stage II)")  # fmt: skip
    p.add_argument("--no-malloc-tuning", action="store_true", help="keep glibc's default malloc settings")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--baseline", action="store_true",
                      help="run the plain reference instead: fp32, eager, NCHW, default malloc (in a subprocess)")  # fmt: skip
    mode.add_argument("--compare", action="store_true", help="run the reference and the config's settings; print the ratio")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_train)


# ---- bench precision ---------------------------------------------------------------------------


def run_precision(args: argparse.Namespace) -> int:
    import tempfile

    from posetransfer.training import benchmark

    with tempfile.TemporaryDirectory(prefix="posetransfer-precision-") as tmp:
        overrides = list(args.overrides)
        if args.synth is not None:
            from posetransfer.data.synth import synthesize

            h, w = args.synth
            data = Path(tmp) / "data"
            synthesize(data, size=(h, w), identities=args.identities, views=6, seed=0, progress=False)
            overrides += [f"data.train={data / 'train'}", f"data.test={data / 'test'}"]
        cmp = benchmark.compare_precision(args.config, Path(tmp) / "runs", overrides, window=args.window,
                                          loss_name=args.loss)  # fmt: skip
    if args.json:
        print(json.dumps(cmp.as_dict(), indent=2))
        return 0
    print(f"fp32 vs bf16, {cmp.steps} steps, {cmp.loss_name} (seconds: fp32 {cmp.seconds['fp32']}, bf16 {cmp.seconds['bf16']})")
    print(f"  {'step':>6} {'train fp32':>11} {'train bf16':>11} {'held-out fp32':>14} {'held-out bf16':>14}")
    held = {p: dict(v) for p, v in cmp.held_out.items()}
    for (step, a), (_, b) in zip(cmp.train["fp32"], cmp.train["bf16"]):
        he = f"{held['fp32'][step]:14.4f} {held['bf16'][step]:14.4f}" if step in held["fp32"] and step in held["bf16"] else ""
        if he or step % max(1, cmp.steps // 10) == 0:
            print(f"  {step:>6} {a:11.4f} {b:11.4f} {he}")
    print(f"  last {cmp.window} steps: max relative gap train {cmp.max_rel_gap_train:.2%} "
          f"(mean {cmp.mean_rel_gap_train:.2%}), held-out {cmp.max_rel_gap_held_out:.2%}")  # fmt: skip
    return 0


def _register_precision(group: argparse._SubParsersAction) -> None:
    p = group.add_parser(
        "precision",
        help="compare bf16 and fp32 loss curves of a config",
        description="Train CONFIG twice, in fp32 and in bf16 (same seed, data order and initial weights), and "
        "compare the training and held-out loss curves over the last --window steps.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="CONFIG", help="a training config (YAML)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable)")  # fmt: skip
    p.add_argument("--synth", type=size_hw, default=None, metavar="HxW",
                   help="train on a fresh synthetic data set of this size (data.train/test point at it)")  # fmt: skip
    p.add_argument("--identities", type=positive_int, default=40, metavar="N", help="synthetic identities (default 40)")
    p.add_argument("--window", type=positive_int, default=100, metavar="N", help="steps compared at the end (default 100)")
    p.add_argument("--loss", default="pose_mask_l1", help="the loss compared (default pose_mask_l1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_precision)


# Subcommands of ``bench``, in --help order.
# ---- bench animate (issue 13) --------------------------------------------------------------------


def _register_animate(group: argparse._SubParsersAction) -> None:
    p = group.add_parser("animate", help="frames/s of `animate`: networks alone, generation, whole command",
                         description="On a synthetic walking clip: per batch size, the frames/s of the networks "
                         "alone (one prepared batch), of animate's generation part and of the whole command "
                         "(tracking with the pose backend, retargeting, encoding included).")  # fmt: skip
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, help="a trained checkpoint or run folder")
    src.add_argument("--config", type=Path, help="a training config: its networks with random weights")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (with --config), e.g. --set model.g1.image_size=[256,176]")
    p.add_argument("--random-init", action="append", default=[], metavar="NAME=CONFIG",
                   help="with --config: build init_from network NAME with random weights from CONFIG")
    p.add_argument("--batch", default="1,2,4", help="comma-separated batch sizes (default 1,2,4)")
    p.add_argument("--frames", type=positive_int, default=32, help="frames of the clip (default 32)")
    p.add_argument("--repeats", type=positive_int, default=3,
                   help="alternated timings of the networks and the generation part, medians reported (default 3)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch intra-op threads")
    p.add_argument("--backend", default="mediapipe", help="pose backend for tracking (default mediapipe)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_animate)


def run_animate(args: argparse.Namespace) -> int:
    import torch

    from posetransfer.animation import benchmark
    from posetransfer.errors import PosetransferError
    from posetransfer.inference import Pipeline

    try:
        batches = [int(b) for b in args.batch.split(",")]
    except ValueError:
        raise PosetransferError(f"--batch: expected comma-separated integers, got {args.batch!r}") from None
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.checkpoint is not None:
        pipe = Pipeline.from_checkpoint(args.checkpoint, device=args.device, backend=args.backend)
        what = str(args.checkpoint)
    else:
        from posetransfer.training.benchmark import _build_networks
        from posetransfer.training.config import load_config
        from posetransfer.training.tasks import get_task_class

        config = load_config(args.config, args.overrides)
        random_init = {}
        for item in args.random_init:
            name, _, path = item.partition("=")
            random_init[name] = load_config(path)
        task = get_task_class(config.task)(config)
        torch.manual_seed(0)
        nets = _build_networks(task, config, random_init)
        sizes = {tuple(n.image_size) for n in nets.values() if hasattr(n, "image_size")}
        pipe = Pipeline(task, {k: nets[k] for k in nets if k not in task.discriminators}, sizes.pop(),
                        device=args.device, backend=args.backend)  # fmt: skip
        what = f"{args.config} (random weights)"
    rows = benchmark(pipe, batches, frames=args.frames, repeats=args.repeats)
    info = {"model": what, "task": pipe.task.name, "image_size": list(pipe.image_size),
            "threads": torch.get_num_threads(), "rows": rows}  # fmt: skip
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{what}: {pipe.task.name} at {pipe.image_size[0]}x{pipe.image_size[1]}, {info['threads']} thread(s)")
    print("batch  networks f/s  generation f/s  (ratio)  whole command f/s  (tracking s)")
    for r in rows:
        print(f"{r['batch']:>5}  {r['bare_fps']:>12.2f}  {r['generation_fps']:>14.2f}  ({r['generation_vs_bare']:.2f})"
              f"  {r['total_fps']:>17.2f}  ({r['tracking_s']:.1f})")
    return 0


SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _register_encodings,
    _register_train,
    _register_precision,
    _register_animate,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="speed benchmarks", description="Speed benchmarks.")
    group = parser.add_subparsers(dest="bench_command", metavar="BENCHMARK")
    group.required = True
    for add in SUBCOMMANDS:
        add(group)
