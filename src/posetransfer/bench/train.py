"""Training-speed benchmark (``posetransfer bench train``) and the bf16-vs-fp32 loss-curve check.

(Moved from ``training/benchmark.py`` into the ``bench/`` room.)

:func:`bench_train` times full training steps of a config's task on synthetic in-memory batches,
so a recipe (e.g. PG2 on Market-1501, "Pose Guided Person Image Generation" sec. 4.1: 128x64, batch 16) can be measured
without its data set:

* the networks and optimizers are set up as :class:`~posetransfer.training.base.Trainer` does
  (device, ``channels_last``, frozen networks in ``eval()`` without gradients, Adam with the
  config's rates), and each step is :meth:`Trainer.train_step` itself: generator forward, the
  discriminator step (GAN tasks), the generator step, under ``torch.autocast`` for ``bf16``;
* batches are random but well-formed: images in [-1, 1], and the pose inputs are the task's real
  encodings (disk/Gaussian heatmaps, pose mask, coordinate vector, stick figure) of jittered
  standing poses at the config's image size, two batches cycled so no step reuses its inputs;
* ``--warmup`` untimed steps first (allocator and oneDNN kernel caches), then ``--steps`` timed
  ones (on CUDA with a synchronisation before reading the clock).

The plain reference of the speed goal (fp32, eager, NCHW, glibc's default malloc) runs in a
subprocess (:func:`run_baseline`), because malloc settings cannot be undone inside a process.

:func:`compare_precision` is the numerics check behind ``train.precision: bf16`` as a default:
the same run (same seed, data order and initial weights) in fp32 and in bf16, compared on the
training and held-out pose-mask L1 curves (PG2 eq. 1).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import default_collate

from posetransfer.bench.peak import conv_peak, count_flops, device_peak, sync
from posetransfer.data.inputs import InputSpec, encode_pose, image_to_tensor, model_inputs
from posetransfer.errors import ConfigError
from posetransfer.pose.schema import MISSING
from posetransfer.training.base import Trainer
from posetransfer.training.config import Config, load_config
from posetransfer.training.tasks import Task
from posetransfer.utils import perf
from posetransfer.utils.environment import cpu_model
from posetransfer.utils.perf import resolve_precision

__all__ = [
    "TrainBenchResult",
    "PrecisionComparison",
    "bench_poses",
    "synthetic_pair_batch",
    "synthetic_group_batch",
    "bench_train",
    "run_baseline",
    "machine_info",
    "compare_precision",
    "BASELINE_OVERRIDES",
]

#: what the plain reference changes in a config: fp32 and NCHW (and, in its process, default malloc)
BASELINE_OVERRIDES = ("train.precision=fp32", "train.channels_last=false")

# A standing person in a 256 x 176 frame (DeepFashion-like), (y, x); a few joints missing.
_REFERENCE_POSE = np.array(
    [[30, 88], [62, 88], [62, 58], [100, 50], [136, 48], [62, 118], [100, 126], [136, 128],
     [140, 70], [190, 68], [238, 66], [140, 106], [190, 108], [238, 110],
     [24, 80], [24, 96], [28, 72], [MISSING, MISSING]],
    dtype=np.float32,
)  # fmt: skip
_REFERENCE_SIZE = (256, 176)

# tasks whose items are PairDataset items (PG2 stage I, G1+D, stage II)
_PAIR_TASKS = ("pg2_stage1", "pg2_g1_d", "pg2_stage2")
# tasks whose items are MultiViewDataset items (003_*: the multi-view generator, pix2pix)
_GROUP_TASKS = ("multiview", "pix2pix")


def bench_poses(size: tuple[int, int], count: int, seed: int = 0) -> np.ndarray:
    """``count`` plausible poses in a ``size`` frame: the reference pose scaled, jittered and shifted."""
    rng = np.random.default_rng(seed)
    scale = np.asarray(size, np.float32) / np.asarray(_REFERENCE_SIZE, np.float32)
    poses = np.repeat(_REFERENCE_POSE[None] * scale, count, axis=0)
    poses += rng.normal(0.0, 0.03 * min(size), poses.shape).astype(np.float32)
    poses[:, _REFERENCE_POSE[:, 0] < 0] = MISSING
    return poses


# ----------------------------------------------------------------------------------------------
# Synthetic batches


def synthetic_pair_batch(
    batch_size: int,
    size: tuple[int, int],
    *,
    heatmap: str = "disk",
    radius: int = 4,
    sigma: float = 6.0,
    seed: int = 0,
    inputs: InputSpec | None = None,
) -> dict[str, Any]:
    """A collated batch with the keys and shapes of :class:`~posetransfer.data.datasets.PairDataset`.

    Images are uniform noise (speed does not depend on the pixels); poses are jittered reference
    poses, and every item is built by :func:`posetransfer.data.inputs.model_inputs` as the data
    set builds it, so masks and heatmaps have realistic sparsity. ``inputs`` (a task's input spec)
    replaces ``heatmap`` / ``radius`` / ``sigma``.
    """
    h, w = size
    spec = (inputs or InputSpec(heatmap=heatmap, radius=radius, sigma=sigma)).at_size(size)  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    source_kp = bench_poses(size, batch_size, seed=2 * seed)
    target_kp = bench_poses(size, batch_size, seed=2 * seed + 1)
    items = []
    for i in range(batch_size):
        source, target = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
        item = model_inputs(spec, [source], target_kp[i], source_keypoints=[source_kp[i]], target_image=target)
        items.append({**item, "source_name": f"bench_{i}_a.jpg", "target_name": f"bench_{i}_b.jpg"})
    return default_collate(items)


def synthetic_group_batch(
    batch_size: int, size: tuple[int, int], sources: int, seed: int = 0, inputs: InputSpec | None = None
) -> dict[str, Any]:
    """A collated batch with the keys and shapes of the multi-view data set: ``sources`` photos per
    item, the target, and the unpaired ``other_*`` pose and image (noise images, jittered poses),
    every item built by :func:`posetransfer.data.inputs.model_inputs` as the data set builds it."""
    h, w = size
    spec = (inputs or InputSpec(encodings=("stick", "mask"), group=True)).at_size(size)
    rng = np.random.default_rng(seed)
    kp = bench_poses(size, 2 * batch_size, seed=seed)
    items = []
    for i in range(batch_size):
        photos = rng.integers(0, 256, (sources + 2, h, w, 3), dtype=np.uint8)
        item = model_inputs(spec, list(photos[:sources]), kp[i], target_image=photos[sources])
        other = kp[batch_size + i]
        item["other_image"] = image_to_tensor(photos[sources + 1])
        item["other_keypoints"] = torch.from_numpy(other)
        item["other_stick"] = encode_pose(other, spec, ["stick"])["stick"]
        items.append(item)
    return default_collate(items)


def _image_size(config: Config, task: Task) -> tuple[int, int]:
    """The model's frame: the config's ``data.image_size`` (``Task.image_size``)."""
    if task.image_size is None:
        raise ConfigError(f"{config.task}: cannot tell the image size (the config has no data.image_size)")
    return task.image_size


# ----------------------------------------------------------------------------------------------
# The benchmark


@dataclass
class TrainBenchResult:
    """What ``bench train`` reports (``--json`` prints :meth:`as_dict`)."""

    description: str
    task: str
    image_size: list[int]
    batch_size: int
    warmup: int
    steps: int
    images: int
    seconds: float
    images_per_s: float
    seconds_per_step: float
    #: seconds of each timed step
    step_seconds: list[float]
    #: the process's peak resident set size (``getrusage`` maxrss), MB
    peak_rss_mb: float
    #: ``torch.cuda.max_memory_allocated`` during the timed steps (CUDA only), MB
    peak_cuda_mb: float | None
    #: precision, channels_last, malloc tuning, threads, device, torch, CPU, GPU
    settings: dict[str, Any]
    #: ``os.getloadavg()`` right after the timed steps (other processes sharing the CPU)
    loadavg: list[float]
    #: the last step's losses (a sanity check that the step trained something finite)
    losses: dict[str, float] = field(default_factory=dict)
    #: FLOPs of a training step per image (``FlopCounterMode``: forward + backward), GFLOP
    gflop_per_image: float = 0.0
    #: achieved TFLOP/s over the timed steps
    tflops: float = 0.0
    #: the device's bf16 peak (TFLOP/s) and where it comes from (``bench.peak.device_peak``)
    peak_tflops: float | None = None
    peak_source: str = ""
    #: model FLOPs utilisation: ``tflops / peak_tflops`` (CUDA, or with ``--peak-tflops``)
    mfu: float | None = None
    #: the measured bf16 3x3-convolution peak of this machine and the fraction of it (CPU)
    conv_peak_tflops: float | None = None
    fraction_of_conv_peak: float | None = None
    #: the same in the step's precision (``train.precision``)
    conv_peak_own_precision_tflops: float | None = None
    fraction_of_conv_peak_own_precision: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def machine_info(device: torch.device | None = None) -> dict[str, Any]:
    """CPU model and count, torch version and threads, GPU name: the context of a timing."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "glibc": perf.glibc_version(),
    }
    if device is not None and device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def format_train(result: dict, title: str) -> list[str]:
    """The human-readable lines of a :class:`TrainBenchResult` (``as_dict``)."""
    s = result["settings"]
    cuda = f", peak CUDA {result['peak_cuda_mb']:.0f} MB" if result.get("peak_cuda_mb") is not None else ""
    h, w = result["image_size"]
    lines = [
        f"{title}: {result['description']} ({result['task']}), batch {result['batch_size']} at {h}x{w}, "
        f"{result['steps']} timed steps after {result['warmup']} warm-up",
        f"  images/s {result['images_per_s']:.3f}   seconds/step {result['seconds_per_step']:.3f}   "
        f"peak RSS {result['peak_rss_mb']:.0f} MB{cuda}",
    ]
    if result.get("tflops"):
        mfu = f"   MFU {result['mfu']:.1%} of {result['peak_tflops']:.0f} TFLOP/s ({result['peak_source']})" if result.get("mfu") is not None else ""
        conv = (f"   {result['fraction_of_conv_peak']:.1%} of the measured bf16 conv peak {result['conv_peak_tflops']:.4f} TFLOP/s"
                f" ({result['fraction_of_conv_peak_own_precision']:.1%} of the {s['precision']} one)"
                if result.get("fraction_of_conv_peak") is not None else "")  # fmt: skip
        lines.append(f"  {result['gflop_per_image']:.1f} GFLOP/image, {result['tflops']:.4f} TFLOP/s{mfu}{conv}")
    lines += [
        f"  precision {s['precision']}, channels_last {str(s['channels_last']).lower()}, malloc tuning "
        f"{s['malloc_tuning']}, threads {s['threads']}, device {s['device']}"
        + (f" ({s['gpu']})" if s.get("gpu") else "")
        + (f", compile {str(s['compile']).lower()}" if "compile" in s else ""),
        f"  torch {s['torch']}, CPU {s['cpu']} x {s['cpus']}, load average "
        f"{' '.join(f'{v:.2f}' for v in result['loadavg'])}",
    ]
    return lines


def _prepare_trainer(config: Config, random_init: dict[str, Config]) -> Trainer:
    """A :class:`Trainer` set up for :meth:`Trainer.train_step` by :meth:`Trainer.prepare`, as
    training sets it up (single process: no data loader, no run folder). Networks named in
    ``random_init`` are built with random weights from that config's ``model.NAME`` instead of
    being loaded from ``init_from`` (e.g. stage II's G1, whose stage-I checkpoint a benchmark
    does not need)."""
    kwargs: dict[str, dict[str, Any]] = {}
    for name, other in random_init.items():
        if name not in config.init_from:
            raise ConfigError(f"--random-init {name}: the config loads no network {name!r} from init_from")
        if name not in other.model:
            raise ConfigError(f"--random-init {name}: config {other.description or other.task!r} has no model.{name}")
        kwargs[name] = dict(other.model[name])
    trainer = Trainer(config, run_dir=Path(tempfile.gettempdir()) / "posetransfer-bench-unused", progress=False)
    trainer.prepare(random_init=kwargs)
    return trainer


def _batches(config: Config, size: tuple[int, int], task: Task) -> Iterator[dict[str, Any]]:
    data = config.data
    spec = task.input_spec()
    if config.task in _PAIR_TASKS:
        pool = [synthetic_pair_batch(config.train.batch_size, size, seed=i, inputs=spec) for i in range(2)]
    elif config.task in _GROUP_TASKS:
        # the most photos an item can have: the slowest step of the recipe
        k = getattr(data, "num_sources", None) or getattr(data, "max_sources", 1)
        pool = [synthetic_group_batch(config.train.batch_size, size, int(k), seed=i, inputs=spec) for i in range(2)]
    else:
        raise ConfigError(
            f"bench train: task {config.task!r} has no synthetic batches yet "
            f"(supported: {', '.join((*_PAIR_TASKS, *_GROUP_TASKS))})"
        )
    i = 0
    while True:
        yield pool[i % len(pool)]
        i += 1


_sync = sync


def _step_flops(trainer: Trainer, batch: dict[str, Any]) -> int:
    """FLOPs of one training step (forward, backward, both networks of a GAN), counted by
    ``FlopCounterMode`` on one step run eagerly (compiled views bypass the counter), which also
    serves as a warm-up step."""
    if not trainer.config.train.compile:
        return count_flops(lambda: trainer.train_step(batch))
    eager = Trainer(trainer.config.model_copy(update={"train": trainer.config.train.model_copy(update={"compile": False})}),
                    run_dir=trainer.run_dir, progress=False)  # fmt: skip
    eager.prepare()
    return count_flops(lambda: eager.train_step(batch))


def bench_train(
    config: Config,
    *,
    steps: int = 5,
    warmup: int = 1,
    random_init: dict[str, Config] | None = None,
    malloc: bool = True,
    peak_tflops: float | None = None,
    measure_conv_peak: bool = False,
) -> TrainBenchResult:
    """Time ``steps`` full training steps of ``config``'s task after ``warmup`` untimed ones.

    ``malloc`` applies :func:`posetransfer.utils.perf.tune_malloc` first (the process-wide glibc
    setting ``posetransfer train`` uses; ``POSETRANSFER_NO_MALLOC_TUNING=1`` still disables it).
    """
    if steps < 1 or warmup < 0:
        raise ValueError("steps must be >= 1 and warmup >= 0")
    if malloc:
        perf.tune_malloc()
    trainer = _prepare_trainer(config, random_init or {})
    device = trainer.device
    size = _image_size(config, trainer.task)
    batches = _batches(config, size, trainer.task)
    flops = _step_flops(trainer, trainer.to_device(next(batches)))
    for _ in range(warmup):
        trainer.train_step(trainer.to_device(next(batches)))
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times: list[float] = []
    losses: dict[str, torch.Tensor] = {}
    for _ in range(steps):
        batch = trainer.to_device(next(batches))
        start = time.perf_counter()
        losses = trainer.train_step(batch)
        _sync(device)
        times.append(time.perf_counter() - start)
    total = float(sum(times))
    images = steps * config.train.batch_size
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    peak_cuda = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    peak, peak_source = device_peak(device, peak_tflops)
    achieved = flops * steps / total / 1e12
    conv = conv_peak(device)["tflops"] if measure_conv_peak else None
    # and in the step's own precision (on a CPU without native bf16, fp32 convolutions are faster)
    own = None
    if measure_conv_peak:
        own = conv if resolve_precision(device, config.train.precision) == "bf16" else conv_peak(device, dtype=torch.float32)["tflops"]
    settings = {
        "precision": resolve_precision(device, config.train.precision),
        "channels_last": config.train.channels_last,
        "malloc_tuning": perf.malloc_tuning(),
        "compile": config.train.compile,
        "grad_accum": config.train.grad_accum,
        "device": str(device),
        **machine_info(device),
    }
    return TrainBenchResult(
        description=config.description or config.task,
        task=config.task,
        image_size=list(size),
        batch_size=config.train.batch_size,
        warmup=warmup,
        steps=steps,
        images=images,
        seconds=round(total, 4),
        images_per_s=images / total,
        seconds_per_step=total / steps,
        step_seconds=[round(t, 4) for t in times],
        peak_rss_mb=round(peak_rss_mb, 1),
        peak_cuda_mb=None if peak_cuda is None else round(peak_cuda, 1),
        settings=settings,
        loadavg=[round(v, 2) for v in os.getloadavg()],
        losses={k: float(v) for k, v in losses.items()},
        gflop_per_image=flops / config.train.batch_size / 1e9,
        tflops=achieved,
        peak_tflops=peak,
        peak_source=peak_source,
        mfu=None if peak is None else achieved / peak,
        conv_peak_tflops=conv,
        fraction_of_conv_peak=None if conv is None else achieved / conv,
        conv_peak_own_precision_tflops=own,
        fraction_of_conv_peak_own_precision=None if own is None else achieved / own,
    )


def run_baseline(
    config_path: str | Path,
    overrides: list[str] | None = None,
    *,
    steps: int = 5,
    warmup: int = 1,
    random_init: list[str] | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """The plain reference in a fresh process: fp32, NCHW, eager, glibc's default malloc.

    Runs ``posetransfer bench train --json`` with :data:`BASELINE_OVERRIDES` appended (they win
    over ``overrides``), ``POSETRANSFER_NO_MALLOC_TUNING=1`` and the ``MALLOC_*_`` variables
    removed; returns its JSON result.
    """
    cmd = [sys.executable, "-m", "posetransfer.cli", "bench", "train", "--config", str(config_path),
           "--steps", str(steps), "--warmup", str(warmup), "--json", "--no-malloc-tuning"]  # fmt: skip
    for item in [*(overrides or []), *BASELINE_OVERRIDES]:
        cmd += ["--set", item]
    for item in random_init or []:
        cmd += ["--random-init", item]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    env = {k: v for k, v in os.environ.items() if k not in perf.MALLOC_ENV}
    env[perf.DISABLE_ENV] = "1"
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise ConfigError(f"the baseline run failed: {lines[-1] if lines else f'exit status {proc.returncode}'}")
    return json.loads(proc.stdout)


# ----------------------------------------------------------------------------------------------
# bf16 vs fp32 loss curves


@dataclass
class PrecisionComparison:
    """Training and held-out curves of one run in fp32 and in bf16 (same seed, data, weights)."""

    steps: int
    window: int
    #: (step, value) of the training loss per precision
    train: dict[str, list[tuple[int, float]]]
    #: (step, value) of the held-out loss per precision
    held_out: dict[str, list[tuple[int, float]]]
    #: max over the last ``window`` steps of |bf16 - fp32| / fp32
    max_rel_gap_train: float
    max_rel_gap_held_out: float
    #: mean over the last ``window`` steps of the same gap (the per-step training loss is noisy)
    mean_rel_gap_train: float
    seconds: dict[str, float]
    loss_name: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rel_gaps(a: list[tuple[int, float]], b: list[tuple[int, float]], first_step: int) -> list[float]:
    bv = dict(b)
    return [abs(bv[s] - v) / abs(v) for s, v in a if s > first_step and s in bv and v != 0]


def compare_precision(
    config: str | Path | Config,
    out_dir: str | Path,
    overrides: list[str] | None = None,
    *,
    window: int = 100,
    loss_name: str = "pose_mask_l1",
) -> PrecisionComparison:
    """Train ``config`` twice, ``train.precision=fp32`` then ``bf16`` (everything else equal), and
    compare the curves of ``loss_name``: training (``gen/<loss_name>``, logged every
    ``train.log_every`` steps) and held-out (``eval/<loss_name>``, every ``train.sample_every``).

    The gaps are relative to fp32, over the steps after ``iterations - window``.
    """
    from posetransfer.training.base import train
    from posetransfer.training.config import apply_overrides, config_from_dict, dump_config

    if not isinstance(config, Config):
        config = load_config(config, overrides)
    elif overrides:
        config = config_from_dict(apply_overrides(dump_config(config), overrides))
    raw = dump_config(config)
    curves: dict[str, list[tuple[int, float]]] = {}
    evals: dict[str, list[tuple[int, float]]] = {}
    seconds: dict[str, float] = {}
    for precision in ("fp32", "bf16"):
        cfg = config_from_dict(apply_overrides(raw, [f"train.precision={precision}"]))
        result = train(cfg, Path(out_dir) / precision, progress=False)
        curves[precision] = [(s, v[f"gen/{loss_name}"]) for s, v in result.losses if f"gen/{loss_name}" in v]
        evals[precision] = [(s, v[loss_name]) for s, v in result.evals if loss_name in v]
        seconds[precision] = round(result.seconds, 1)
        if not curves[precision]:
            raise ConfigError(f"{config.task}: the run logged no loss 'gen/{loss_name}'")
    first = config.train.iterations - window
    train_gaps = _rel_gaps(curves["fp32"], curves["bf16"], first)
    eval_gaps = _rel_gaps(evals["fp32"], evals["bf16"], first)
    return PrecisionComparison(
        steps=config.train.iterations,
        window=window,
        train=curves,
        held_out=evals,
        max_rel_gap_train=max(train_gaps, default=float("nan")),
        max_rel_gap_held_out=max(eval_gaps, default=float("nan")),
        mean_rel_gap_train=float(np.mean(train_gaps)) if train_gaps else float("nan"),
        seconds=seconds,
        loss_name=loss_name,
    )
