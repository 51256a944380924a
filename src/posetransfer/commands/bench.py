"""``posetransfer bench ...``: speed measurements, kept out of the test suite (CONVENTIONS.md).

``bench`` is a group of subcommands; each is one ``_register_<name>(group)`` function below that
adds its parser and sets ``func``. This module only parses arguments and prints; the timing code
lives in :mod:`posetransfer.bench` (one module per benchmark). Adding another benchmark means
writing one such function and listing it in :data:`SUBCOMMANDS`.

* ``bench encodings`` (:mod:`posetransfer.bench.encodings`): the pose encodings per sample.
* ``bench train`` (:mod:`posetransfer.bench.train`): full training steps of a config on synthetic
  batches: images/s, FLOPs, MFU (CUDA), the fraction of the measured conv peak (CPU), memory.
  The goal on CPU: at least 3x the images/s of the plain reference (fp32, eager, NCHW, glibc's
  default malloc; ``--baseline``) at the Market recipe; ``--compare`` runs both.
* ``bench infer`` (:mod:`posetransfer.bench.infer`): G1, G1+G2 and the multi-view generator at
  both data sets' sizes: ms/image, frames/s, fraction of peak.
* ``bench data`` (:mod:`posetransfer.bench.data`): a config's training batches/s on the worker and
  the device data path (no network).
* ``bench precision``: a config trained in fp32 and in bf16, the loss curves compared.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from posetransfer.commands._args import add_overrides, non_negative_int, positive_int, size_hw


def run_encodings(args: argparse.Namespace) -> int:
    from posetransfer.bench.encodings import bench_encodings, format_encodings

    report = bench_encodings(args.size, args.repeat, args.annotations)
    print(json.dumps(report, indent=2) if args.json else "\n".join(format_encodings(report)))
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


def run_train(args: argparse.Namespace) -> int:
    import os

    import torch

    from posetransfer.bench import train as benchmark
    from posetransfer.bench.train import format_train as _format_train
    from posetransfer.training.config import load_config
    from posetransfer.utils import perf

    if args.no_malloc_tuning:
        os.environ[perf.DISABLE_ENV] = "1"
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    raw_random, random_init = _random_init(args.random_init)
    overrides = list(args.overrides) + ([f"train.device={args.device}"] if args.device else [])
    if args.baseline or args.compare:
        baseline = benchmark.run_baseline(
            args.config, overrides, steps=args.steps, warmup=args.warmup, random_init=raw_random, threads=args.threads
        )
    if args.baseline:
        report = baseline
        lines = _format_train(baseline, "bench train (baseline)")
    else:
        config = load_config(args.config, overrides)
        on_cpu = config.train.device == "cpu" or (config.train.device == "auto" and not torch.cuda.is_available())
        result = benchmark.bench_train(
            config, steps=args.steps, warmup=args.warmup, random_init=random_init, malloc=not args.no_malloc_tuning,
            peak_tflops=args.peak_tflops, measure_conv_peak=on_cpu and not args.no_conv_peak,
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
    add_overrides(p, "train.precision=bf16")
    p.add_argument("--steps", type=positive_int, default=5, metavar="N", help="timed steps (default 5)")
    p.add_argument("--warmup", type=non_negative_int, default=1, metavar="N", help="untimed steps first (default 1)")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="torch intra-op threads (default: torch's choice)")  # fmt: skip
    p.add_argument("--random-init", action="append", default=[], metavar="NAME=CONFIG",
                   help="build network NAME with random weights from CONFIG's model.NAME instead of loading it "
                   "from init_from (e.g. g1=configs/pg2/market/g1_posemaskloss.yaml for stage II)")  # fmt: skip
    p.add_argument("--no-malloc-tuning", action="store_true", help="keep glibc's default malloc settings")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                   help="the training device (default: the config's train.device)")  # fmt: skip
    p.add_argument("--peak-tflops", type=float, default=None, metavar="T",
                   help="the device's bf16 peak for MFU (default: the table of known GPUs)")  # fmt: skip
    p.add_argument("--no-conv-peak", action="store_true",
                   help="on CPU, skip the bf16 convolution micro-benchmark (the fraction-of-peak figure)")  # fmt: skip
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--baseline", action="store_true",
                      help="run the plain reference instead: fp32, eager, NCHW, default malloc (in a subprocess)")  # fmt: skip
    mode.add_argument("--compare", action="store_true", help="run the reference and the config's settings; print the ratio")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_train)


# ---- bench data --------------------------------------------------------------------------------


def run_data(args: argparse.Namespace) -> int:
    import tempfile

    import torch

    from posetransfer.bench.data import bench_data, format_data
    from posetransfer.training.config import load_config

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="posetransfer-bench-data-") as tmp:
        overrides = list(args.overrides) + ([f"train.device={args.device}"] if args.device else [])
        if args.synth is not None:
            from posetransfer.data.synth import synthesize

            data = Path(tmp) / "data"
            synthesize(data, size=args.synth, identities=args.identities, views=4, seed=0, progress=False)
            overrides += [f"data.train={data / 'train'}", f"data.test={data / 'test'}"]
        report = bench_data(load_config(args.config, overrides), batches=args.batches, paths=tuple(args.paths))
    print(json.dumps(report, indent=2) if args.json else "\n".join(format_data(report)))
    return 0


def _register_data(group: argparse._SubParsersAction) -> None:
    p = group.add_parser(
        "data",
        help="time a config's training batches on the worker and the device data path",
        description="Batches/s of CONFIG's training data (its augmentation and encodings, no network) on "
        "train.data_path workers (train.num_workers processes) and device (images decoded once, batches "
        "made on the training device); the start-up (worker processes, decoding) is reported apart.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="CONFIG", help="a training config (YAML)")
    add_overrides(p, "train.num_workers=4")
    p.add_argument("--synth", type=size_hw, default=None, metavar="HxW",
                   help="use a fresh synthetic data set of this size (data.train/test point at it)")  # fmt: skip
    p.add_argument("--identities", type=positive_int, default=40, metavar="N", help="synthetic identities (default 40)")
    p.add_argument("--batches", type=positive_int, default=20, metavar="N", help="timed batches per path (default 20)")
    p.add_argument("--paths", nargs="+", choices=("workers", "device"), default=["workers", "device"],
                   help="the data paths to time (default both)")  # fmt: skip
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                   help="the training device (default: the config's train.device)")  # fmt: skip
    p.add_argument("--threads", type=positive_int, default=None, metavar="N", help="torch intra-op threads")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_data)


# ---- bench precision ---------------------------------------------------------------------------


def run_precision(args: argparse.Namespace) -> int:
    import tempfile

    from posetransfer.bench import train as benchmark

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
    add_overrides(p, "train.precision=fp32")
    p.add_argument("--synth", type=size_hw, default=None, metavar="HxW",
                   help="train on a fresh synthetic data set of this size (data.train/test point at it)")  # fmt: skip
    p.add_argument("--identities", type=positive_int, default=40, metavar="N", help="synthetic identities (default 40)")
    p.add_argument("--window", type=positive_int, default=100, metavar="N", help="steps compared at the end (default 100)")
    p.add_argument("--loss", default="pose_mask_l1", help="the loss compared (default pose_mask_l1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_precision)


# ---- bench infer -------------------------------------------------------------------------------


def run_infer(args: argparse.Namespace) -> int:
    from posetransfer.bench.infer import bench_infer, format_infer

    report = bench_infer(device=args.device, batch=args.batch, repeats=args.repeats, precision=args.precision,
                         models=tuple(args.models), datasets=tuple(args.datasets), check_bf16=args.check_bf16,
                         peak_tflops=args.peak_tflops, threads=args.threads, width=args.width,
                         peak_seconds=args.peak_seconds)  # fmt: skip
    print(json.dumps(report, indent=2) if args.json else "\n".join(format_infer(report)))
    return 0


# the choices of bench.infer.MODELS and bench.infer.SIZES (not imported: they import torch)
INFER_MODELS = ("g1", "g1+g2", "multiview")
INFER_DATASETS = ("market", "deepfashion")


def _register_infer(group: argparse._SubParsersAction) -> None:
    MODELS, SIZES = INFER_MODELS, INFER_DATASETS  # noqa: N806
    p = group.add_parser(
        "infer",
        help="time inference of G1, G1+G2 and the multi-view generator",
        description="Time inference (random weights, synthetic inputs, the settings generate and transfer use) of "
        "PG2's G1, G1+G2 and the multi-view generator at Market (128x64) and DeepFashion (256x176) sizes: "
        "ms/image, frames/s, FLOPs and the fraction of peak (CPU: the bf16 conv peak measured in the same run).",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="default cpu")
    p.add_argument("--batch", type=positive_int, default=8, metavar="N", help="images per call (default 8)")
    p.add_argument("--repeats", type=positive_int, default=3, metavar="N", help="timed batches, best kept (default 3)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto: bf16 on CUDA and on CPUs with native bf16, else fp32")  # fmt: skip
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS), metavar="MODEL", help=f"of {', '.join(MODELS)}")
    p.add_argument("--datasets", nargs="+", choices=tuple(SIZES), default=list(SIZES), metavar="DATA",
                   help=f"of {', '.join(SIZES)}")  # fmt: skip
    p.add_argument("--check-bf16", action="store_true", help="also compare bf16 and fp32 outputs (mean, max |diff|)")
    p.add_argument("--peak-tflops", type=float, default=None, metavar="T", help="the device's bf16 peak (CUDA default: table)")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N", help="torch intra-op threads on CPU")
    p.add_argument("--peak-seconds", type=float, default=0.2, metavar="S",
                   help="CPU: seconds per timed run of the conv peak micro-benchmark (default 0.2)")  # fmt: skip
    p.add_argument("--width", type=positive_int, default=None, metavar="C",
                   help="replace the networks' base widths (a quick check of the wiring; not the recipes' speed)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_infer)


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
    add_overrides(p, "model.g1.image_size=[256,176]", " (with --config)")
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

    from posetransfer.inference.animation import benchmark
    from posetransfer.errors import PosetransferError
    from posetransfer.inference import Pipeline

    try:
        batches = [int(b) for b in args.batch.split(",")]
    except ValueError:
        raise PosetransferError(f"--batch: expected comma-separated integers, got {args.batch!r}") from None
    if args.threads:
        import os

        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inference_settings keeps a user's thread count
        torch.set_num_threads(args.threads)
    if args.checkpoint is not None:
        pipe = Pipeline.from_checkpoint(args.checkpoint, device=args.device, backend=args.backend)
        what = str(args.checkpoint)
    else:
        from posetransfer.errors import ConfigError
        from posetransfer.training.config import load_config
        from posetransfer.training.tasks import get_task_class

        config = load_config(args.config, args.overrides)
        kwargs = {}
        for name, other in _random_init(args.random_init)[1].items():
            if name not in other.model:
                raise ConfigError(f"--random-init {name}: config {other.description or other.task!r} has no model.{name}")
            kwargs[name] = dict(other.model[name])
        task = get_task_class(config.task)(config)
        torch.manual_seed(0)
        nets = task.build_networks(random_init=kwargs)
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
    _register_data,
    _register_infer,
    _register_precision,
    _register_animate,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="speed benchmarks", description="Speed benchmarks.")
    group = parser.add_subparsers(dest="bench_command", metavar="BENCHMARK")
    group.required = True
    for add in SUBCOMMANDS:
        add(group)
