"""Multi-process training: process-group setup from torchrun's environment, and data sharding.

One GPU (or one CPU process) per rank, DistributedDataParallel over the trainable networks:

* single machine, 2 GPUs::

      torchrun --nproc_per_node=2 -m posetransfer train configs/pg2/market/g1_posemaskloss.yaml --out runs/x

* several machines (run the same command on each node; ``--node_rank`` differs, or use the
  rendezvous backend and let it assign ranks)::

      torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d \\
               --rdzv_endpoint=HOST0:29400 --rdzv_id=pg2-market \\
               -m posetransfer train CONFIG --out RUN_DIR

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`init_distributed` reads them (``init_method="env://"``) and picks NCCL on GPUs and Gloo on
CPUs. The config's ``train.batch_size`` is the *global* batch: each rank gets
``batch_size / world_size`` samples of each step (the paper's batch sizes stay meaningful with any
number of GPUs). Only rank 0 writes checkpoints, logs and image grids; ``RUN_DIR`` must be on a
file system every node can read when resuming multi-node runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist

from posetransfer.errors import ConfigError

__all__ = ["DistInfo", "init_distributed", "cleanup_distributed", "ResumableBatchSampler", "barrier"]


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    initialized_here: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r} is not an integer") from None


def single_process(device: str = "auto") -> DistInfo:
    """The :class:`DistInfo` of a lone process on ``device`` ("auto", "cpu", "cuda"), never joining
    a process group (benchmarks, tests)."""
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but no CUDA device is available")
    dev = torch.device("cuda", torch.cuda.current_device()) if use_cuda else torch.device("cpu")
    return DistInfo(rank=0, world_size=1, local_rank=0, device=dev, initialized_here=False)


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group torchrun describes (if ``WORLD_SIZE`` > 1) and pick this rank's device."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but no CUDA device is available")
    if use_cuda:
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        dev = torch.device("cuda", torch.cuda.current_device())
    else:
        dev = torch.device("cpu")
    initialized_here = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", init_method="env://", rank=rank, world_size=world)
        initialized_here = True
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev, initialized_here=initialized_here)


def cleanup_distributed(info: DistInfo) -> None:
    if info.initialized_here and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.barrier()


class ResumableBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Seeded, sharded, resumable batches: the data order is a pure function of (seed, epoch, batch).

    Epoch ``e`` shuffles all indices with a generator seeded by ``seed + e``; global batch ``b``
    is ``perm[b*G:(b+1)*G]`` (``G`` = global batch) and rank ``r`` takes its ``r``-th slice of
    ``G / world_size`` indices (what ``DistributedSampler`` does, per batch). Incomplete last
    batches are dropped so every epoch has the same number of steps and the position of step
    ``s`` is ``divmod(s, batches_per_epoch)``, whatever the number of ranks or dataloader
    workers: a resumed run sees exactly the batches an uninterrupted run would have.
    """

    def __init__(self, num_items: int, global_batch: int, *, rank: int = 0, world_size: int = 1, seed: int = 0, shuffle: bool = True):
        if global_batch % world_size:
            raise ConfigError(f"train.batch_size={global_batch} is not divisible by the number of processes ({world_size})")
        if num_items < global_batch:
            raise ConfigError(f"the training set has {num_items} items, fewer than train.batch_size={global_batch}")
        self.num_items = num_items
        self.global_batch = global_batch
        self.local_batch = global_batch // world_size
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.start_batch = 0

    @property
    def batches_per_epoch(self) -> int:
        return self.num_items // self.global_batch

    def set_position(self, step: int) -> tuple[int, int]:
        """Start the next iteration at global step ``step``; returns (epoch, batch in epoch)."""
        self.epoch, self.start_batch = divmod(step, self.batches_per_epoch)
        return self.epoch, self.start_batch

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start_batch

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            perm = torch.randperm(self.num_items, generator=g).tolist()
        else:
            perm = list(range(self.num_items))
        lo = self.rank * self.local_batch
        for b in range(self.start_batch, self.batches_per_epoch):
            chunk = perm[b * self.global_batch : (b + 1) * self.global_batch]
            yield chunk[lo : lo + self.local_batch]
