"""The base GAN trainer: the mechanics every model shares; the model supplies a :class:`Task`.

What the trainer owns (imaginaire ``trainers/base.py`` style; the task interface is documented in
:mod:`posetransfer.training.tasks`):

* **Seeds**: python, numpy and torch are seeded with ``train.seed``; the data order is a pure
  function of (seed, epoch, batch) (:class:`~posetransfer.training.distributed.ResumableBatchSampler`)
  and each item's augmentation draws come from a generator seeded by (seed, epoch, index), so
  neither depends on the number of data-loader workers.
* **Data off the critical path**: a ``DataLoader`` with ``train.num_workers`` persistent worker
  processes prefetching batches (``pin_memory`` only on CUDA).
* **One step** = generator forward, then (GAN tasks) the discriminator step with the
  discriminators trainable, then the generator step with the discriminators' ``requires_grad``
  switched off. Each step back-propagates ``sum(weight * loss)`` of the task's named losses.
* **Learning rate**: constant, or the step decay of ``optim.lr_schedule`` (e.g. the multi-view
  paper's "decay 0.5 every 50 epochs"), set before every step from the step number alone.
* **Numerics**: ``train.precision: bf16`` runs the forward passes and losses under
  ``torch.autocast(device_type, dtype=torch.bfloat16)`` (no loss scaling needed for bfloat16);
  ``train.channels_last`` converts the networks and the image batches to channels-last memory.
* **Checkpoints** every ``train.checkpoint_every`` steps and at the end, written atomically
  (:mod:`posetransfer.training.checkpoint`); ``resume=True`` continues from the newest one
  *exactly*: weights, optimizer moments, step, RNG states and data position are restored, so
  N steps + resume + N steps gives bit-identical weights to 2N steps straight (on CPU; cuDNN's
  non-deterministic kernels make GPU runs only approximately equal).
* **Stopping early loses no step** (:mod:`posetransfer.training.stopping`): Ctrl-C / SIGTERM
  finish the step under way, save it and raise :class:`~posetransfer.errors.Interrupted` (exit
  130 / 143); an item that cannot be decoded stops the run before the step that needs it, saving
  the last completed step first, and raises its :class:`~posetransfer.errors.DataError` (exit 2).
  Under DDP the ranks agree on both before every step.
* **Logs** (rank 0): TensorBoard scalars of every named loss (``loss/gen/<name>``,
  ``loss/dis/<name>``, averaged over the log interval and across ranks), held-out losses
  (``eval/<name>``) and an image grid every ``train.sample_every`` steps; a tqdm bar with ETA.
* **Distributed**: under ``torchrun`` the trainable networks are wrapped in
  ``DistributedDataParallel`` (Gloo on CPU, NCCL on GPU; see
  :mod:`posetransfer.training.distributed` for single- and multi-node commands).
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections import defaultdict
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, NoReturn

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Subset

from posetransfer.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    Interrupted,
    OutputError,
    TrainingError,
)
from posetransfer.training import checkpoint as ckpt_io
from posetransfer.training.config import Config, apply_overrides, config_from_dict, dump_config, load_config
from posetransfer.training.distributed import (
    DistInfo,
    ResumableBatchSampler,
    cleanup_distributed,
    init_distributed,
    single_process,
)
from posetransfer.training.logger import RunLogger
from posetransfer.training.stopping import BadItem, StopSignals, agree, collate, first_message, ignore_stop_signals, signal_name
from posetransfer.training.tasks import get_task_class
from posetransfer.utils.io import atomic_write_text, check_writable_folder
from posetransfer.utils.perf import resolve_precision, usable_cpus
from posetransfer.utils.viz import make_grid

__all__ = ["Trainer", "RunResult", "train", "resume_run", "seed_everything", "set_requires_grad", "RUN_CONFIG"]

#: the resolved config of a run, written when it starts (``train --resume RUN_DIR`` reads it)
RUN_CONFIG = "config.yaml"


@dataclass
class RunResult:
    """What a finished (or resumed-and-finished) run returns to its caller (rank 0 has the logs)."""

    run_dir: Path
    step: int
    checkpoint: Path | None
    #: (step, {"gen/<name>": value, "dis/<name>": value}) at every log interval of this process
    losses: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    #: (step, {name: value}) held-out losses at every sample interval (rank 0 only)
    evals: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    #: the trained networks (plain modules, on the training device)
    networks: dict[str, nn.Module] = field(default_factory=dict)
    seconds: float = 0.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_requires_grad(modules: list[nn.Module], flag: bool) -> None:
    """Switch gradients of whole networks (the discriminators during the generator step)."""
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(flag)


def rng_state() -> dict[str, Any]:
    """The RNG states as tensors / lists / ints (loadable with ``torch.load(weights_only=True)``)."""
    version, keys, gauss = random.getstate()
    name, np_keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    state: dict[str, Any] = {
        "python": [version, list(keys), gauss],
        "numpy": [name, torch.from_numpy(np.asarray(np_keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, keys, gauss = state["python"]
    random.setstate((int(version), tuple(int(k) for k in keys), gauss))
    name, np_keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np_keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


class _EpochItems(Dataset):
    """Items addressed as ``(epoch, index)``: the worker's copy of the data set learns the epoch.

    With persistent workers, ``set_epoch`` on the main process's data set would never reach the
    workers' copies; passing the epoch with each index keeps augmentation seeded by
    (seed, epoch, index) wherever the item is loaded.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        try:
            return self.dataset[index]
        except DataError as err:  # an unreadable image: the trainer saves, then reports it
            return BadItem.of(err)


class _EpochTagged(torch.utils.data.Sampler):
    def __init__(self, sampler: ResumableBatchSampler):
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch = self.sampler.epoch
        for batch in self.sampler:
            yield [(epoch, i) for i in batch]


def _worker_init(worker_id: int) -> None:
    # Each worker gets its own numpy/python streams (torch seeds itself per worker); the data
    # sets draw their augmentation from explicit per-item generators anyway.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    ignore_stop_signals()  # the main process finishes the step and saves (training/stopping.py)


def _shutdown_workers(loader_iter: Any) -> None:
    """Stop a DataLoader iterator's worker processes now (they ignore SIGINT/SIGTERM, so they must
    not be left to ``multiprocessing``'s exit handler, which terminates then joins them). torch
    does this when the iterator is garbage-collected; an exception's traceback can keep it alive
    until the process exits, hence the call (a private method, present since torch 1.0)."""
    shutdown = getattr(loader_iter, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


class Trainer:
    """Runs one training job: ``Trainer(config, run_dir, resume=...).fit() -> RunResult``."""

    def __init__(self, config: Config, run_dir: str | Path, *, resume: bool = False, progress: bool = True):
        self.config = config
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.progress = progress
        self.task_cls = get_task_class(config.task)

    # ------------------------------------------------------------------------------------

    def fit(self) -> RunResult:
        info = init_distributed(self.config.train.device)
        try:
            return self._fit(info)
        finally:
            cleanup_distributed(info)

    def _fit(self, info: DistInfo) -> RunResult:
        t0 = time.perf_counter()
        cfg, tcfg = self.config, self.config.train
        self.info = info
        self.device = info.device
        existing = self._preflight(info)
        nets = self.prepare(info)
        task = self.task
        self.kwargs = self._network_kwargs(existing)

        start = 0
        if existing is not None:
            start = self._restore(existing)


        train_set = task.build_dataset("train", augment=True)
        sampler = ResumableBatchSampler(
            len(train_set), tcfg.batch_size, rank=info.rank, world_size=info.world_size, seed=tcfg.seed
        )
        if tcfg.data_path == "device":
            # every image decoded once, batches encoded and augmented on the device (each rank
            # draws its shard of indices from the same sampler as the worker path)
            from posetransfer.data.device_groups import device_batches

            loader: Any = device_batches(train_set, _EpochTagged(sampler), self.device)
        else:
            # more worker processes than CPUs only make them wait for each other (torch warns of a
            # freeze); every item is drawn from its own (seed, epoch, index), so the batches are the
            # same with any number of workers
            workers = min(tcfg.num_workers, usable_cpus())
            if workers < tcfg.num_workers and info.is_main:
                print(f"note: train.num_workers {tcfg.num_workers} > the {usable_cpus()} CPU(s) this process may use: "
                      f"{workers} data workers (the same batches)", file=sys.stderr)  # fmt: skip
            loader = DataLoader(
                _EpochItems(train_set),
                batch_sampler=_EpochTagged(sampler),
                num_workers=workers,
                persistent_workers=workers > 0,
                pin_memory=self.device.type == "cuda",
                worker_init_fn=_worker_init,
                collate_fn=collate,  # default_collate, or the batch's BadItem
                generator=torch.Generator().manual_seed(tcfg.seed + info.rank),
            )
        test_set = task.build_dataset("test", augment=False) if info.is_main else None
        check_image_sizes(nets, train_set, "train")
        if test_set is not None:
            check_image_sizes(nets, test_set, "test")

        # The run folder is created only now, when the config, the networks and the data are known
        # to fit: a bad input leaves nothing behind.
        if info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / RUN_CONFIG, yaml.safe_dump(dump_config(cfg), sort_keys=False))

        result = RunResult(run_dir=self.run_dir, step=start, checkpoint=existing, networks=nets)
        logger = RunLogger(
            self.run_dir, enabled=info.is_main, total=tcfg.iterations, initial=min(start, tcfg.iterations),
            progress=self.progress, description=cfg.task,
        )
        stop = StopSignals()  # Ctrl-C / SIGTERM: finish the step, save it, then stop (training/stopping.py)
        loader_iter: Any = None
        try:
            stop.__enter__()
            pending: BadItem | None = None  # a held-out image that failed at the last sample step
            if info.is_main and test_set is not None and start == 0:
                evals = self.evaluate(test_set)  # the untrained baseline of the eval curves
                if evals:
                    logger.scalars(0, evals, prefix="eval/")
                    result.evals.append((0, evals))
            step = start
            sums: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), device=self.device))
            count = 0
            while step < tcfg.iterations:
                sampler.set_position(step)
                loader_iter = iter(loader)
                while step < tcfg.iterations:
                    try:
                        batch = next(loader_iter)
                    except StopIteration:
                        break
                    except DataError as err:  # a data path that raises instead of yielding a BadItem
                        batch = BadItem.of(err)
                    bad = batch if isinstance(batch, BadItem) else None
                    # every rank stops before the same step (one tiny all-reduce a step under DDP)
                    signum, bad_train, bad_test = agree(
                        [stop.signum, int(bad is not None), int(pending is not None)], info.distributed
                    )
                    if signum or bad_train or bad_test:
                        self._stop(step, sampler, stop, signum, bad or pending, from_test=not bad_train)
                    self._schedule_lr(step, sampler.batches_per_epoch)
                    losses = self.train_step(self._to_device(batch))
                    step += 1
                    count += 1
                    for k, v in losses.items():
                        sums[k] = sums[k] + v.detach().float()
                    logger.advance()
                    last = step == tcfg.iterations
                    if step % tcfg.log_every == 0 or last:
                        means = self._reduce_mean(sums, count)
                        bad_names = [k for k, v in means.items() if not math.isfinite(v)]
                        if bad_names:
                            last_ckpt = ckpt_io.latest_checkpoint(self.run_dir)
                            kept = f"the last checkpoint {last_ckpt} is intact" if last_ckpt else "no checkpoint was written"
                            raise TrainingError(
                                f"{self.run_dir}: step {step}: non-finite loss {', '.join(bad_names)}; {kept}; "
                                "lower optim.lr (--set optim.lr=...) and continue with --resume"
                            )
                        logger.scalars(step, means, prefix="loss/")
                        result.losses.append((step, means))
                        sums.clear()
                        count = 0
                    if info.is_main and test_set is not None and (step % tcfg.sample_every == 0 or last):
                        try:
                            evals = self.evaluate(test_set)
                            if evals:
                                logger.scalars(step, evals, prefix="eval/")
                                result.evals.append((step, evals))
                            logger.image(step, "samples", self.sample_grid(test_set))
                        except DataError as err:
                            # a held-out image that cannot be decoded: stop before the next step
                            # (after this step's checkpoint), with the other ranks
                            pending = BadItem.of(err)
                    if step % tcfg.checkpoint_every == 0 or last:
                        if info.is_main:
                            result.checkpoint = self.save(step, sampler)
                    if step >= tcfg.iterations:
                        break
            if pending is not None:  # met at the last step: its checkpoint is written
                self._raise_bad_data(step, pending, result.checkpoint, True)
            result.step = step
        finally:
            stop.__exit__(None, None, None)
            logger.close()
            _shutdown_workers(loader_iter)
            del loader, loader_iter
        result.seconds = time.perf_counter() - t0
        return result

    # -- stopping early (a signal, an unreadable image) -----------------------------------

    def _stop(self, step: int, sampler: ResumableBatchSampler, stop: StopSignals, signum: int,
              bad: BadItem | None, from_test: bool) -> NoReturn:
        """Save the last completed step (rank 0, if no checkpoint holds it yet) and raise
        :class:`Interrupted` (a signal) or the unreadable file's error; every rank calls it at the
        same step, and every rank's line names the file (gathered from the rank that met it)."""
        stop.doing = f"saving step {step}"
        kept = self._save_stopped(step, sampler) if self.info.is_main else None
        kept = first_message(kept, self.info.distributed)
        if signum:
            raise Interrupted(signum, f"{signal_name(signum)} after step {step}: {kept}; "
                                      f"continue with --resume (posetransfer train --resume {self.run_dir})")  # fmt: skip
        found = first_message(bad, self.info.distributed)
        self._raise_bad_data(step, found if isinstance(found, BadItem) else BadItem("an unreadable item on another rank"),
                             kept, from_test)  # fmt: skip

    def _save_stopped(self, step: int, sampler: ResumableBatchSampler) -> str:
        """Checkpoint ``step`` unless the newest checkpoint already holds it; says what was kept."""
        latest = ckpt_io.latest_checkpoint(self.run_dir, strict=False)
        latest_step = int(ckpt_io.read_model_json(latest).get("step", -1)) if latest is not None else None
        if latest is not None and latest_step == step:
            return f"checkpoint {latest} holds it"
        if step == 0:
            return "no step was completed, nothing to save"
        return f"saved checkpoint {self.save(step, sampler)}"

    def _raise_bad_data(self, step: int, bad: BadItem, kept: Any, from_test: bool) -> NoReturn:
        split = "test" if from_test else "train"
        source = getattr(self.config.data, split, None)
        check = "posetransfer data check"
        if source is not None:
            check += f" {source.path}" + (f" --split {source.split}" if source.split else "")
        where = "at the held-out pass after step" if from_test else "in the batch after step"
        kept = kept if isinstance(kept, str) else f"checkpoint {kept}" if kept else "no checkpoint"
        advice = (f"met {where} {step} ({kept}); fix or replace the file ({check} lists every unreadable "
                  "image), then continue with --resume")
        if bad.path is not None and bad.problem is not None:
            raise DataError(bad.path, f"{bad.problem}; {advice}")
        raise TrainingError(f"{bad.message}; {advice}")

    # ------------------------------------------------------------------------------------

    def prepare(self, info: DistInfo | None = None, random_init: dict[str, dict[str, Any]] | None = None) -> dict[str, nn.Module]:
        """Seed, build the task and its networks (:meth:`Task.build_networks`), set them up
        (:meth:`setup_networks`) and wrap them for the steps (:meth:`wrap_networks`): after this,
        :meth:`train_step` runs. ``info`` defaults to a lone process on ``train.device``;
        ``random_init`` is passed to :meth:`Task.build_networks`. Used by :meth:`fit` and by the
        benchmarks (``posetransfer bench train``), so both time the same set-up."""
        self.info = info or single_process(self.config.train.device)
        self.device = self.info.device
        seed_everything(self.config.train.seed)
        self.task = self.task_cls(self.config)
        nets = self.task.build_networks(random_init)
        self.task.check_image_size(nets)
        self.setup_networks(nets)
        self.wrap_networks()
        return nets

    def wrap_networks(self) -> None:
        """The call views of the steps: DDP over the trainable networks when distributed (frozen
        ones stay plain), then ``torch.compile`` when ``train.compile`` (``self.nets`` stay the
        plain modules that checkpoints save)."""
        task, nets, tcfg = self.task, self.nets, self.config.train
        trainable = (*task.generators, *task.discriminators)  # same order on every rank
        wrapped: dict[str, nn.Module] = dict(nets)
        if self.info.distributed:
            for name in trainable:
                wrapped[name] = DistributedDataParallel(
                    nets[name], device_ids=[self.device.index] if self.device.type == "cuda" else None
                )
        gen_view = {n: (nets[n] if n in task.discriminators else m) for n, m in wrapped.items()}
        if tcfg.compile:
            for name in trainable:
                wrapped[name] = torch.compile(wrapped[name], backend=tcfg.compile_backend)
                # the generator step sees the plain discriminator (no DDP hooks): compiled apart
                gen_view[name] = wrapped[name] if name not in task.discriminators else torch.compile(
                    nets[name], backend=tcfg.compile_backend
                )
        self.wrapped, self.gen_view = wrapped, gen_view

    def _preflight(self, info: DistInfo) -> Path | None:
        """Before anything is built: refuse an existing run without ``resume``, check the folder is
        writable, tidy an interrupted checkpoint write, find the checkpoint to resume from and warn
        about every setting that differs from it. Returns that checkpoint (or None)."""
        run = self.run_dir
        if run.exists() and not run.is_dir():
            raise OutputError(f"{run}: exists and is not a folder; --out needs a run folder")
        # only rank 0 judges the folder: it creates it, possibly before another rank looks
        holds = info.is_main and run.is_dir() and any(not p.name.startswith(".") for p in run.iterdir())
        if holds and not self.resume:
            steps = ckpt_io.step_folders(run)
            what = f"checkpoints (newest {steps[-1].name})" if steps else "files"
            raise ConfigError(
                f"{run}: already holds {what}; pass --resume to continue that run or choose another --out"
            )
        if info.is_main:
            check_writable_folder(run)
            for note in ckpt_io.clean_leftovers(run):
                _warn(f"{run}: {note}")
        if not self.resume:
            return None
        existing, note = ckpt_io.find_resume_checkpoint(run)
        if note:
            _warn(note)
        if existing is None and holds and not (run / RUN_CONFIG).is_file():
            raise ConfigError(f"{run}: holds files but no training run (no {RUN_CONFIG}); choose another --out")
        if existing is not None and info.is_main:
            self._compare_settings(existing)
        return existing

    def _compare_settings(self, ckpt: Path) -> None:
        """Warn about every setting that differs from the checkpoint's config (a changed model is
        refused by :meth:`_restore`)."""
        saved = ckpt_io.read_checkpoint_config(ckpt)
        now = dump_config(self.config)
        for key, old, new in _diff(saved, now):
            # a changed task or network is refused by _restore (it compares the complete
            # constructor kwargs with model.json), before anything is written
            if key.split(".")[0] not in ("task", "model"):
                _warn(f"--resume: {key} changed from {old!r} (checkpoint {ckpt.name}) to {new!r}")

    def setup_networks(self, nets: dict[str, nn.Module]) -> None:
        """Put ``self.task``'s networks on ``self.device`` (``channels_last`` if configured), freeze
        the ones no optimizer trains, and create the generator and discriminator Adam optimizers.
        Shared by :meth:`_fit` and ``bench train`` so both time the same set-up."""
        task, tcfg, o = self.task, self.config.train, self.config.optim
        trainable = set(task.generators) | set(task.discriminators)
        for name, net in nets.items():
            net.to(self.device)
            if tcfg.channels_last:
                net.to(memory_format=torch.channels_last)
            if name not in trainable:
                net.eval()
                net.requires_grad_(False)
        self.nets = nets
        # fused Adam (one kernel for all parameters) on CUDA; the same update as the default
        fused = {"fused": True} if self.device.type == "cuda" else {}
        gen_params = [p for n in task.generators for p in nets[n].parameters()]
        self.g_opt = torch.optim.Adam(gen_params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay, **fused)
        self.d_opt = None
        if task.discriminators:
            dis_params = [p for n in task.discriminators for p in nets[n].parameters()]
            self.d_opt = torch.optim.Adam(dis_params, lr=o.dis_lr or o.lr, betas=o.betas, weight_decay=o.weight_decay,
                                          **fused)  # fmt: skip

    def _schedule_lr(self, step: int, batches_per_epoch: int) -> None:
        """Set both optimizers' rates for global step ``step`` from ``optim.lr_schedule`` (if any)."""
        o = self.config.optim
        if o.lr_schedule is None:
            return
        scale = o.lr_schedule.scale(step, batches_per_epoch)
        for opt, lr in ((self.g_opt, o.lr), (self.d_opt, o.dis_lr or o.lr)):
            if opt is not None:
                for group in opt.param_groups:
                    group["lr"] = lr * scale

    def _autocast(self):
        if resolve_precision(self.device, self.config.train.precision) == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Tensors of ``batch`` on the training device (float image batches channels-last if set)."""
        out: dict[str, Any] = {}
        cl = self.config.train.channels_last
        for k, v in batch.items():
            if torch.is_tensor(v):
                v = v.to(self.device, non_blocking=True)
                if cl and v.ndim == 4 and v.is_floating_point():
                    v = v.contiguous(memory_format=torch.channels_last)
            out[k] = v
        return out

    _to_device = to_device

    def micro_batches(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        """``batch`` split into ``train.grad_accum`` equal micro-batches along the first dimension."""
        k = self.config.train.grad_accum
        if k == 1:
            return [batch]
        size = next(v for v in batch.values() if torch.is_tensor(v)).shape[0]
        if size % k:
            raise ConfigError(f"train.grad_accum={k} does not divide the batch of {size} (train.batch_size per rank)")
        n = size // k
        return [{key: v[i * n : (i + 1) * n] for key, v in batch.items()} for i in range(k)]

    def _no_sync(self, last: bool):
        """DDP's ``no_sync`` on every wrapped network for all micro-batches but the last."""
        stack = ExitStack()
        if not last:
            for m in self.wrapped.values():
                m = getattr(m, "_orig_mod", m)  # a compiled DDP module
                if isinstance(m, DistributedDataParallel):
                    stack.enter_context(m.no_sync())
        return stack

    def _weighted(self, losses: dict[str, torch.Tensor], kind: str) -> torch.Tensor:
        weights = self.task.loss_weights(kind)  # type: ignore[arg-type]
        missing = [n for n in weights if n not in losses]
        if missing:
            raise RuntimeError(f"task {self.task.name} returned no {kind} loss {missing} (got {list(losses)})")
        terms = [float(w) * losses[n].float() for n, w in weights.items() if w != 0.0]
        if not terms:
            raise RuntimeError(f"task {self.task.name}: every {kind} loss has weight 0, nothing to train")
        return torch.stack(terms).sum()

    def train_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """One optimisation step: G forward, D step (GAN tasks), G step; returns detached losses.

        With ``train.grad_accum = k`` the batch is split into k micro-batches whose gradients (of
        the total divided by k) add up before each optimizer step, and the logged losses are the
        micro-batch means. GAN tasks then run the D phase over all micro-batches (generator
        forward without gradients), step D, and run the generator forward again for the G phase
        against the updated D, as with k = 1; only BatchNorm statistics differ from one big batch.
        """
        task = self.task
        micros = self.micro_batches(batch)
        k = len(micros)
        logged: dict[str, list[torch.Tensor]] = defaultdict(list)
        outs: list[Any] = [None] * k
        if self.d_opt is not None:
            discs = [self.nets[n] for n in task.discriminators]
            set_requires_grad(discs, True)
            self.d_opt.zero_grad(set_to_none=True)
            for i, mb in enumerate(micros):
                with self._autocast():
                    if k == 1:
                        outs[i] = task.forward(self.wrapped, mb)
                        out = outs[i]
                    else:
                        with torch.no_grad():
                            out = task.forward(self.wrapped, mb)
                    d_losses = task.dis_losses(self.wrapped, mb, out)
                total = self._weighted(d_losses, "dis")
                with self._no_sync(i == k - 1):
                    (total / k if k > 1 else total).backward()
                for n, v in d_losses.items():
                    logged[f"dis/{n}"].append(v.detach())
            self.d_opt.step()
            set_requires_grad(discs, False)
        self.g_opt.zero_grad(set_to_none=True)
        for i, mb in enumerate(micros):
            with self._autocast():
                out = outs[i] if outs[i] is not None else task.forward(self.wrapped, mb)
                g_losses = task.gen_losses(self.gen_view, mb, out)
            total = self._weighted(g_losses, "gen")
            with self._no_sync(i == k - 1):
                (total / k if k > 1 else total).backward()
            for n, v in g_losses.items():
                logged[f"gen/{n}"].append(v.detach())
            outs[i] = None
        self.g_opt.step()
        return {n: v[0] if len(v) == 1 else torch.stack([x.float() for x in v]).mean() for n, v in logged.items()}

    def _reduce_mean(self, sums: dict[str, torch.Tensor], count: int) -> dict[str, float]:
        names = sorted(sums)
        if not names or count == 0:
            return {}
        values = torch.stack([sums[n] for n in names]) / count
        if self.info.distributed:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
            values /= self.info.world_size
        return {n: float(v) for n, v in zip(names, values.cpu().tolist())}

    # -- evaluation ------------------------------------------------------------------------

    def _eval_loader(self, dataset: Dataset, count: int) -> DataLoader:
        items = Subset(dataset, list(range(min(count, len(dataset)))))  # type: ignore[arg-type]
        return DataLoader(items, batch_size=self.config.train.batch_size // self.info.world_size or 1, shuffle=False, num_workers=0)

    def _eval_mode(self) -> list[nn.Module]:
        was_training = [m for m in self.nets.values() if m.training]
        for m in self.nets.values():
            m.eval()
        return was_training

    @torch.no_grad()
    def evaluate(self, dataset: Dataset) -> dict[str, float]:
        """Held-out losses, averaged over ``train.eval_batches`` test batches (plain modules)."""
        tcfg = self.config.train
        if tcfg.eval_batches == 0:
            return {}
        local = max(1, tcfg.batch_size // self.info.world_size)
        was_training = self._eval_mode()
        sums: dict[str, float] = defaultdict(float)
        n = 0
        with self._own_rng():
            try:
                for batch in self._eval_loader(dataset, tcfg.eval_batches * local):
                    batch = self._to_device(batch)
                    with self._autocast():
                        values = self.task.eval_losses(self.nets, batch)
                    size = next(v for v in batch.values() if torch.is_tensor(v)).shape[0]
                    for k, v in values.items():
                        sums[k] += float(v) * size
                    n += size
            finally:
                for m in was_training:
                    m.train()
        return {k: v / n for k, v in sums.items()} if n else {}

    def _own_rng(self):
        """The held-out passes draw from torch's global generators (the DataLoader's seed, dropout)
        inside a fork of them: training then does not depend on ``sample_every`` / ``eval_batches``
        (a pix2pix step's dropout would otherwise see other numbers when they change)."""
        devices = [self.device.index if self.device.index is not None else torch.cuda.current_device()] if self.device.type == "cuda" else []
        return torch.random.fork_rng(devices=devices)

    @torch.no_grad()
    def sample_grid(self, dataset: Dataset) -> np.ndarray:
        """An image grid of the first ``train.sample_count`` test pairs (columns from ``task.visuals``)."""
        was_training = self._eval_mode()
        rows: list[list[torch.Tensor]] = []
        labels: list[str] = []
        with self._own_rng():
            try:
                for batch in self._eval_loader(dataset, self.config.train.sample_count):
                    batch = self._to_device(batch)
                    with self._autocast():
                        outputs = self.task.generate(self.nets, batch)
                    columns = self.task.visuals(batch, outputs)
                    labels = [title for title, _ in columns]
                    for i in range(columns[0][1].shape[0]):
                        rows.append([img[i].float().clamp(-1, 1).cpu() for _, img in columns])
            finally:
                for m in was_training:
                    m.train()
        return make_grid(rows, labels=labels)

    # -- checkpoints -----------------------------------------------------------------------

    def _network_kwargs(self, existing: Path | None) -> dict[str, dict[str, Any]]:
        """Complete constructor kwargs per network (config + defaults; init_from ones from their checkpoint)."""
        from posetransfer.training.config import complete_kwargs

        kwargs: dict[str, dict[str, Any]] = {}
        for name, net in self.nets.items():
            if name in self.config.model:
                kwargs[name] = complete_kwargs(type(net), self.config.model[name])
            else:
                src = ckpt_io.resolve_checkpoint(self.config.init_from[name])
                kwargs[name] = ckpt_io.read_model_json(src)["networks"][name]["kwargs"]
        return kwargs

    def save(self, step: int, sampler: ResumableBatchSampler) -> Path:
        epoch, batch = divmod(step, sampler.batches_per_epoch)
        state = {
            "step": step,
            "optimizers": {"gen": self.g_opt.state_dict(), **({"dis": self.d_opt.state_dict()} if self.d_opt else {})},
            "rng": rng_state(),
            "data": {"epoch": epoch, "batch": batch, "seed": self.config.train.seed, "batches_per_epoch": sampler.batches_per_epoch},
            "world_size": self.info.world_size,
        }
        trainable = set(self.task.generators) | set(self.task.discriminators)
        return ckpt_io.save_checkpoint(
            self.run_dir, step, self.nets, self.kwargs, trainable, dump_config(self.config), state,
            task=self.config.task, keep=self.config.train.keep_checkpoints,
        )

    def _restore(self, ckpt: Path) -> int:
        """Load weights, optimizer states and RNG states from ``ckpt``; returns its step."""
        model = ckpt_io.read_model_json(ckpt)
        saved = model["networks"]
        if model.get("task") != self.config.task:
            raise CheckpointError(f"{ckpt / ckpt_io.MODEL_JSON}: written by task {model.get('task')!r}, not {self.config.task!r}")
        for name, net in self.nets.items():
            if name not in saved:
                raise CheckpointError(f"{ckpt / ckpt_io.MODEL_JSON}: has no network {name!r}")
            if saved[name]["kwargs"] != self.kwargs[name]:
                raise CheckpointError(
                    f"{ckpt / ckpt_io.MODEL_JSON}: network {name!r} was built with {saved[name]['kwargs']}, "
                    f"the config now asks for {self.kwargs[name]}"
                )
            ckpt_io.load_weights(net, ckpt / f"{name}.safetensors")
        state = ckpt_io.load_state(ckpt)
        try:
            self.g_opt.load_state_dict(state["optimizers"]["gen"])
            if self.d_opt is not None:
                self.d_opt.load_state_dict(state["optimizers"]["dis"])
        except (KeyError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"{ckpt / ckpt_io.STATE_FILE}: optimizer state does not fit ({err})") from None
        try:
            set_rng_state(state["rng"])
        except (KeyError, ValueError, TypeError, RuntimeError) as err:
            raise CheckpointError(f"{ckpt / ckpt_io.STATE_FILE}: malformed RNG state ({err})") from None
        return int(state["step"])


# ----------------------------------------------------------------------------------------------


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


_MISSING = object()


def _diff(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Flattened ``(key, old, new)`` of every value that differs between two config trees."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[tuple[str, Any, Any]] = []
        for key in list(old) + [k for k in new if k not in old]:
            sub = f"{prefix}.{key}" if prefix else str(key)
            out += _diff(old.get(key, _MISSING), new.get(key, _MISSING), sub)
        return out
    if old == new:
        return []
    return [(prefix, None if old is _MISSING else old, None if new is _MISSING else new)]


def check_image_sizes(nets: dict[str, nn.Module], dataset: Any, split: str, scan: bool = True) -> None:
    """Every network built for a fixed ``image_size`` matches the data set's image size, and (``scan``)
    every image's header in the data set's folder is readable, within the pixel limit and of that
    size: a bad image is reported before a run folder is created, not at some step of the run.
    Reads headers only (0.12 ms an image, docs/benchmarks.md); an image whose header size differs
    is decoded (EXIF rotation applied) before it is blamed."""
    size = getattr(dataset, "size", None)
    if size is None:
        return
    files = getattr(dataset, "files", None)
    if scan and files is not None and hasattr(files, "image_names"):
        from posetransfer.data.layouts import _header_size
        from posetransfer.utils.io import max_pixels, read_image

        limit = max_pixels()
        for name in files.image_names():
            path = files.images_dir / name
            hw = _header_size(path, exif=False)
            if hw is None or hw[0] * hw[1] > limit:
                read_image(path)  # raises the DataError naming the file and its problem
            elif tuple(hw) != tuple(size):
                read_image(path, tuple(size))
    for name, net in nets.items():
        want = getattr(net, "image_size", None)
        if want is not None and tuple(want) != tuple(size):
            files = getattr(dataset, "files", None)
            where = getattr(files, "images_dir", None) or f"the {split} data"
            raise ConfigError(
                f"{where}: the {split} images are {size[0]}x{size[1]} (height x width) but network {name!r} "
                f"is built for {want[0]}x{want[1]} (model.{name}.image_size); make them agree"
            )


def train(
    config: Config | str | Path,
    out_dir: str | Path,
    overrides: list[str] | None = None,
    resume: bool = False,
    progress: bool = True,
) -> RunResult:
    """Train ``config`` (a :class:`Config` or a YAML path) into ``out_dir``; see :class:`Trainer`."""
    if isinstance(config, (str, Path)):
        config = load_config(config, overrides)
    elif overrides:
        config = config_from_dict(apply_overrides(dump_config(config), overrides))
    return Trainer(config, out_dir, resume=resume, progress=progress).fit()


def resume_run(run_dir: str | Path, overrides: list[str] | None = None, progress: bool = True) -> RunResult:
    """Continue the run in ``run_dir`` with the config it was started with (plus ``overrides``)."""
    path = Path(run_dir) / RUN_CONFIG
    if not path.is_file():
        raise ConfigError(f"{path}: no such file; is {run_dir} a training run folder?")
    return train(path, run_dir, overrides=overrides, resume=True, progress=progress)
