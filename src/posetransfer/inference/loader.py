"""The one checkpoint loader: a checkpoint reference -> task, networks, config and image size.

A reference is any of:

* a step folder ``RUN/checkpoints/step_XXXXXXX/`` (``model.json``, ``<network>.safetensors``,
  ``config.json``), or an exported folder (``posetransfer export``: the same files plus a model
  card), both loaded as they are;
* a run folder (its ``checkpoints/latest``);
* a Hugging Face Hub repo id ``owner/name`` (optionally ``owner/name@revision``) holding an
  exported folder, fetched with ``huggingface_hub.snapshot_download`` into the Hub cache and read
  from the cache without network once it is there (:func:`resolve_model`).

Networks are rebuilt from ``model.json`` (class + constructor kwargs) and safetensors weights (no
pickle is loaded), put in ``eval()`` mode with ``requires_grad=False``; the task comes from the
checkpoint's ``config.json``, and the image size from its ``data.image_size`` (checked against
the networks that record one). Every problem is a :class:`~posetransfer.errors.CheckpointError`
naming the file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from posetransfer.errors import CheckpointError, PosetransferError
from posetransfer.training import checkpoint as ckpt_io
from posetransfer.training.config import Config, config_from_dict
from posetransfer.training.tasks import Task, get_task_class
from posetransfer.utils.perf import inference_settings
from posetransfer.utils.devices import resolve_device

__all__ = ["Generator", "load_generator", "resolve_model", "HUB_REPO_PATTERN"]

#: ``owner/name`` or ``owner/name@revision`` (Hugging Face Hub repo ids)
HUB_REPO_PATTERN = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*(@[\w./-]+)?$")


def _snapshot_download(repo_id: str, revision: str | None, local_files_only: bool) -> str:
    """``huggingface_hub.snapshot_download`` (a seam for tests: there is no network here)."""
    from huggingface_hub import snapshot_download

    return snapshot_download(repo_id, revision=revision, local_files_only=local_files_only)


def _from_hub(reference: str) -> Path:
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        raise CheckpointError(
            f"{reference}: checkpoint does not exist (no such folder; loading it as a Hugging Face Hub repo id "
            "needs huggingface_hub: pip install 'posetransfer[hub]')"
        ) from None
    repo_id, _, revision = reference.partition("@")
    try:  # the cache first, so a cached model works offline
        return Path(_snapshot_download(repo_id, revision or None, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached (the Hub's own error types vary by version)
        pass
    try:
        return Path(_snapshot_download(repo_id, revision or None, local_files_only=False))
    except Exception as err:  # noqa: BLE001 - network, authentication, unknown repo
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{reference}: checkpoint does not exist (no such folder; as a Hugging Face Hub repo id it could "
            f"not be fetched: {first})"
        ) from None


def resolve_model(reference: str | Path) -> Path:
    """The local checkpoint folder of a reference (module docstring): step, export, run or Hub repo."""
    path = Path(reference)
    if path.exists() or not HUB_REPO_PATTERN.match(str(reference)):
        return ckpt_io.resolve_checkpoint(path)
    folder = _from_hub(str(reference))
    return ckpt_io.resolve_checkpoint(folder)


def _image_size(task: Task, nets: dict[str, torch.nn.Module], where: Path) -> tuple[int, int]:
    recorded = {tuple(int(v) for v in n.image_size) for n in nets.values() if hasattr(n, "image_size")}
    size = task.image_size
    if size is None:
        if len(recorded) != 1:
            raise CheckpointError(f"{where}: cannot tell the model's image size (found {recorded or 'none'})")
        size = recorded.pop()
    elif recorded - {tuple(size)}:
        raise CheckpointError(f"{where}: networks work at {sorted(recorded)}, its config says {tuple(size)}")
    return int(size[0]), int(size[1])


class Generator:
    """A trained model ready for inference: ``gen(batch) -> {output name: images}``.

    Attributes: ``checkpoint`` (the local step folder), ``config`` (:class:`Config`), ``task``,
    ``nets`` (plain modules in eval mode, no gradients), ``image_size`` (H, W), ``model`` (the
    ``model.json`` contents) and ``final_output`` (the output ``generate`` saves).
    """

    def __init__(self, checkpoint: str | Path, device: str | torch.device = "cpu"):
        self.checkpoint = resolve_model(checkpoint)
        where = self.checkpoint / ckpt_io.CONFIG_JSON
        raw = ckpt_io.read_checkpoint_config(self.checkpoint)
        self.nets, self.model = ckpt_io.load_networks(self.checkpoint)
        try:
            self.config: Config = config_from_dict(raw, source=str(where))
            self.task: Task = get_task_class(self.config.task)(self.config)
        except PosetransferError as err:
            raise CheckpointError(f"{where}: its config cannot be used ({err})") from None
        recorded_task = self.model.get("task")
        if recorded_task is not None and recorded_task != self.config.task:
            raise CheckpointError(
                f"{self.checkpoint / ckpt_io.MODEL_JSON}: task {recorded_task!r} differs from its config's {self.config.task!r}"
            )
        self.image_size = _image_size(self.task, self.nets, self.checkpoint)
        self.device = resolve_device(device)
        for net in self.nets.values():
            net.to(self.device).eval().requires_grad_(False)
        self.final_output = self.task.final_output

    @property
    def step(self) -> int:
        return int(self.model.get("step", 0))

    def dataset(self, path: str | Path, split: str | None = None, pairs: str | Path | None = None) -> Any:
        """The data set at ``path`` read with the encodings this model was trained on (no augmentation)."""
        return self.task.dataset_at(str(path), split, str(pairs) if pairs is not None else None)

    @torch.no_grad()
    def __call__(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        batch = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        with inference_settings(self.device):  # inference mode, bf16 where it pays, all CPUs
            return self.task.generate(self.nets, batch)


def load_generator(checkpoint: str | Path, device: str | torch.device = "cpu") -> Generator:
    """Rebuild a trained model from any checkpoint reference (module docstring)."""
    return Generator(checkpoint, resolve_device(device))
