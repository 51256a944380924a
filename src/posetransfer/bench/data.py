"""``posetransfer bench data``: batches per second of a config's training data on both data paths.

The worker path (``train.data_path: workers``: a ``DataLoader`` with the config's
``train.num_workers`` processes decoding, augmenting and encoding item by item) and the device path
(``train.data_path: device``: :func:`posetransfer.data.device_groups.device_batches`, every image
decoded once, then whole batches augmented and encoded on the training device), from the same
sampler, each batch moved to the device and the device synchronised. The start-up (worker
processes, the image bank's decoding) is reported apart from the steady batches/s. No network
runs: this is the data path alone, what a training step must not wait for.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, default_collate

from posetransfer.bench.peak import sync
from posetransfer.bench.train import machine_info
from posetransfer.training.config import Config
from posetransfer.training.distributed import ResumableBatchSampler, single_process
from posetransfer.training.tasks import get_task_class

__all__ = ["PATHS", "DataPathResult", "bench_data", "format_data"]

PATHS = ("workers", "device")


@dataclass
class DataPathResult:
    path: str
    #: seconds until the first batch is on the device (worker start-up or the image bank's decoding)
    start_s: float
    batches: int
    #: decoded photos in the timed batches
    photos: int
    seconds: float
    batches_per_s: float
    #: training items (pairs or identities) per second
    items_per_s: float
    #: decoded photos per second (sources, targets and unpaired photos the batches hold)
    photos_per_s: float
    settings: dict[str, Any] = field(default_factory=dict)


def _photos(batch: dict[str, Any]) -> int:
    if "num_sources" in batch:  # identity groups: the real photos, the target, p~'s photo
        n = int(batch["num_sources"].sum())
        b = len(batch["target_name"])
        return n + b + (b if "other_image" in batch else 0)
    return 2 * len(batch["target_name"])  # pairs


def _to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def bench_data(config: Config, *, batches: int = 20, paths: tuple[str, ...] = PATHS) -> dict[str, Any]:
    """Time ``batches`` batches (after the first, which is the start-up) on each of ``paths``."""
    device = single_process(config.train.device).device
    task = get_task_class(config.task)(config)
    dataset = task.build_dataset("train", augment=True)
    tcfg = config.train
    results = []
    for path in paths:
        indices = _indices(ResumableBatchSampler(len(dataset), tcfg.batch_size, seed=tcfg.seed), batches + 1)
        start = time.perf_counter()
        if path == "device":
            from posetransfer.data.device_groups import device_batches

            source: Any = device_batches(dataset, indices, device)
            workers = 0
        else:
            workers = tcfg.num_workers
            source = DataLoader(dataset, batch_sampler=indices, num_workers=workers, collate_fn=default_collate,
                                pin_memory=device.type == "cuda")  # fmt: skip
        it = iter(source)
        first = _to(next(it), device)
        sync(device)
        start_s = time.perf_counter() - start
        photos = 0
        t0 = time.perf_counter()
        for batch in it:
            batch = _to(batch, device)
            photos += _photos(batch)
        sync(device)
        seconds = time.perf_counter() - t0
        del first, it, source
        results.append(DataPathResult(
            path=path, start_s=round(start_s, 3), batches=batches, photos=photos, seconds=round(seconds, 3),
            batches_per_s=batches / seconds, items_per_s=batches * tcfg.batch_size / seconds,
            photos_per_s=photos / seconds, settings={"num_workers": workers},
        ))  # fmt: skip
    return {
        "description": config.description or config.task,
        "task": config.task,
        "batch_size": tcfg.batch_size,
        "items": len(dataset),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "loadavg": [round(v, 2) for v in os.getloadavg()],
        **machine_info(device),
        "results": [asdict(r) for r in results],
    }


def _indices(sampler: ResumableBatchSampler, count: int) -> list[list[int]]:
    """The sampler's first ``count`` batches, epoch after epoch (a small set has few per epoch)."""
    out: list[list[int]] = []
    while len(out) < count:
        sampler.set_position(len(out))
        out += [list(b) for b in sampler][: count - len(out)]
    return out


def format_data(report: dict[str, Any]) -> list[str]:
    lines = [f"bench data: {report['description']} ({report['task']}), batch {report['batch_size']}, "
             f"{report['items']} items, {report['device']}, load average {report['loadavg']}"]  # fmt: skip
    lines.append(f"  {'path':<8} {'start s':>8} {'batches/s':>10} {'items/s':>9} {'photos/s':>9}")
    for r in report["results"]:
        lines.append(f"  {r['path']:<8} {r['start_s']:>8.2f} {r['batches_per_s']:>10.2f} {r['items_per_s']:>9.1f} "
                     f"{r['photos_per_s']:>9.1f}")  # fmt: skip
    return lines
