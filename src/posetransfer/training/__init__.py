"""Training: one base GAN trainer, per-model tasks, typed configs, checkpoints, distributed launch.

* :mod:`~posetransfer.training.config`: YAML configs with ``base`` inheritance and ``--set`` overrides.
* :mod:`~posetransfer.training.tasks`: the task interface a model implements (``gen_losses`` /
  ``dis_losses`` / ``generate`` ...) and the task registry.
* :mod:`~posetransfer.training.base`: the trainer (``train(config, out_dir) -> RunResult``).
* :mod:`~posetransfer.training.pg2`: the PG2 tasks (Table 1 of "Pose Guided Person Image Generation").
* :mod:`~posetransfer.training.checkpoint`: safetensors + JSON checkpoints, atomic writes.
* :mod:`~posetransfer.training.distributed`: torchrun / DDP setup, resumable sharded sampling.

Inference (loading a checkpoint, generating, the pipeline) is :mod:`posetransfer.inference`.

The names below are imported lazily so that ``import posetransfer.training`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "train": "posetransfer.training.base",
    "resume_run": "posetransfer.training.base",
    "Trainer": "posetransfer.training.base",
    "RunResult": "posetransfer.training.base",
    "Config": "posetransfer.training.config",
    "load_config": "posetransfer.training.config",
    "Task": "posetransfer.training.tasks",
    "register_task": "posetransfer.training.tasks",
    "get_task_class": "posetransfer.training.tasks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'posetransfer.training' has no attribute {name!r}")
