"""The task interface: what a model supplies to the base trainer, and the registry of tasks.

The base trainer (:mod:`posetransfer.training.base`) owns the mechanics (devices, mixed
precision, ``channels_last``, ``requires_grad`` toggling, DDP wrapping, optimizers, checkpoints,
logging, resume). A *task* owns everything model-specific, in the style of imaginaire's
``trainers/<model>.py`` (``gen_update`` / ``dis_update``), with the network kept apart from its
objective:

* ``LossConfig`` / ``DataConfig``: pydantic schemas of the config's ``loss`` and ``data`` sections.
* ``networks``: network name -> ``"module:Class"`` of each network built from the config's
  ``model`` section (its constructor kwargs); ``init_networks``: networks that are instead loaded
  from the checkpoints named in ``init_from`` (``required_init`` must be given), e.g. the frozen
  G1 of PG2's stage II.
* ``generators`` / ``discriminators``: the trainable networks of each optimizer; anything else is
  frozen (``eval()`` mode, ``requires_grad=False``, never wrapped in DDP) but still saved in
  checkpoints, so a checkpoint is self-contained.
* ``input_spec()``: the :class:`~posetransfer.data.inputs.InputSpec` of the networks' inputs
  (encodings and their parameters, from the config's ``data`` section); data sets, inference and
  the benchmark all build batches with :func:`posetransfer.data.inputs.model_inputs` from it.
* ``build_dataset(split, augment)``: a map-style dataset of dict items (collated by the default
  collate function; tensors are moved to the device by the trainer, strings left alone).
* ``dataset_at(path, split, pairs)``: any data set folder read with the task's encodings, for
  ``posetransfer generate``.
* ``forward(nets, batch) -> dict``: the generator forward pass of a training step (with grad).
* ``dis_losses(nets, batch, out) -> {name: scalar}``: the discriminator's named losses, computed
  on ``out`` (detach the fakes). Called first, with the discriminators trainable.
* ``gen_losses(nets, batch, out) -> {name: scalar}``: the generator's named losses. Called after
  the discriminator step; in ``nets`` the discriminators are then the plain (not DDP-wrapped)
  modules with ``requires_grad=False``, so the generator's gradient flows *through* them without
  touching their parameters.
* ``loss_weights(kind) -> {name: weight}`` with kind ``"gen"``/``"dis"``: the total loss the
  trainer back-propagates is ``sum(weight * loss)`` over the named losses; losses without a weight
  are only logged (monitors).
* ``generate(nets, batch) -> {name: images}``: inference outputs in display order (e.g.
  ``stage1``, ``stage2``); ``final_output`` names the one ``posetransfer generate`` saves.
* ``eval_losses(nets, batch) -> {name: scalar}``: held-out measures, averaged over a few test
  batches at every sample interval (logged as ``eval/<name>``).
* ``visuals(batch, outputs) -> [(title, images)]``: the columns of logged image grids.

Register a new task with :func:`register_task` (or add it to ``_BUILTIN``, which imports lazily).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from pydantic import BaseModel
from torch import nn

from posetransfer.data.inputs import InputSpec
from posetransfer.errors import ConfigError

if TYPE_CHECKING:
    from posetransfer.training.config import Config

__all__ = ["Task", "register_task", "get_task_class", "task_names", "import_class"]

Batch = dict[str, Any]
Nets = dict[str, nn.Module]


class Task(ABC):
    """Base class of the model-specific half of training (see the module docstring)."""

    name: ClassVar[str] = ""
    LossConfig: ClassVar[type[BaseModel]]
    DataConfig: ClassVar[type[BaseModel]]
    #: networks built from ``config.model``: name -> "module:Class"
    networks: ClassVar[dict[str, str]] = {}
    #: networks loaded from ``config.init_from`` checkpoints: name -> "module:Class" they must be
    init_networks: ClassVar[dict[str, str]] = {}
    required_init: ClassVar[tuple[str, ...]] = ()
    generators: ClassVar[tuple[str, ...]] = ()
    discriminators: ClassVar[tuple[str, ...]] = ()
    final_output: ClassVar[str] = ""
    #: most source photos ``generate`` conditions on (PG2: one, "Pose Guided Person Image Generation" sec. 3); tasks whose
    #: number depends on the config (the multi-view -S/-M variants) set it per instance
    max_sources: int = 1
    #: (H, W) of the model's frame: the config's ``data.image_size`` (the one place it is set,
    #: written into the networks' ``image_size`` arguments by the config); None when the task's
    #: data section has no such key
    image_size: tuple[int, int] | None = None

    def __init__(self, config: "Config"):
        self.config = config
        self.loss_cfg = config.loss
        self.data_cfg = config.data
        if "image_size" in type(config.data).model_fields and config.data.image_size is not None:  # type: ignore[attr-defined]
            size = config.data.image_size  # type: ignore[attr-defined]
            self.image_size = (int(size[0]), int(size[1]))

    def input_spec(self) -> InputSpec:
        """What the networks consume and how poses are encoded (:mod:`posetransfer.data.inputs`)."""
        raise NotImplementedError(f"task {self.name!r} does not define its model inputs")

    # -- networks --------------------------------------------------------------------------

    @classmethod
    def config_networks(cls) -> list[str]:
        return list(cls.networks)

    @classmethod
    def network_class(cls, name: str) -> type[nn.Module]:
        spec = cls.networks.get(name) or cls.init_networks.get(name)
        if spec is None:
            raise KeyError(f"task {cls.name!r} has no network {name!r}")
        return import_class(spec)

    def build_networks(self, random_init: dict[str, dict[str, Any]] | None = None) -> Nets:
        """Construct the config's networks and load the ``init_from`` ones (on the CPU).

        ``random_init`` maps ``init_from`` names to constructor kwargs: those networks are built
        with random weights instead of being loaded (``bench train`` times stage II without a
        stage-I checkpoint).
        """
        from posetransfer.training.checkpoint import load_network_from

        random_init = random_init or {}
        unknown = [n for n in random_init if n not in self.config.init_from]
        if unknown:
            raise ConfigError(f"random init of {unknown[0]!r}: the config loads no network {unknown[0]!r} from init_from")
        nets: Nets = {}
        for name in self.config_networks():
            nets[name] = self.network_class(name)(**self.config.model[name])
        for name, kwargs in random_init.items():
            nets[name] = self.network_class(name)(**kwargs)
        for name, path in self.config.init_from.items():
            if name in random_init:
                continue
            expected = self.network_class(name) if name in self.networks or name in self.init_networks else None
            module = load_network_from(path, name, expected_class=expected)
            if name in nets:  # fine-tuning: same architecture required
                try:
                    nets[name].load_state_dict(module.state_dict())
                except RuntimeError as err:
                    raise ConfigError(
                        f"init_from.{name}: checkpoint {path} does not fit model.{name} ({str(err).splitlines()[0]})"
                    ) from None
            else:
                nets[name] = module
        return nets

    def check_image_size(self, nets: Nets) -> None:
        """Every network that records an image size works at ``data.image_size`` (a network whose
        config states another size, or one loaded from ``init_from``, would not fit the data)."""
        if self.image_size is None:
            return
        for name, net in nets.items():
            size = getattr(net, "image_size", None)  # only some networks are tied to a frame
            if size is not None and tuple(size) != tuple(self.image_size):
                raise ConfigError(
                    f"model.{name}: works at {size[0]}x{size[1]}, but data.image_size is "
                    f"{self.image_size[0]}x{self.image_size[1]}; set only data.image_size"
                )

    # -- data ------------------------------------------------------------------------------

    @abstractmethod
    def build_dataset(self, split: Literal["train", "test"], augment: bool) -> torch.utils.data.Dataset:
        """The training or held-out data set of this task (``augment`` only for training)."""

    def dataset_at(self, path: str, split: str | None = None, pairs: str | None = None) -> torch.utils.data.Dataset:
        """A data set at ``path`` read with this task's encodings, for inference (``generate``)."""
        raise NotImplementedError(f"task {self.name!r} does not support generating from a data set folder")

    # -- training steps --------------------------------------------------------------------

    @abstractmethod
    def forward(self, nets: Nets, batch: Batch) -> dict[str, torch.Tensor]:
        """Generator forward pass of one training step."""

    def dis_losses(self, nets: Nets, batch: Batch, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Named discriminator losses (only called when the task has discriminators)."""
        raise NotImplementedError

    @abstractmethod
    def gen_losses(self, nets: Nets, batch: Batch, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Named generator losses."""

    @abstractmethod
    def loss_weights(self, kind: Literal["gen", "dis"]) -> dict[str, float]:
        """Weights of the named losses summed into the back-propagated total."""

    # -- evaluation and inference ----------------------------------------------------------

    @abstractmethod
    def generate(self, nets: Nets, batch: Batch) -> dict[str, torch.Tensor]:
        """Inference outputs (images in [-1, 1]) in display order."""

    def eval_losses(self, nets: Nets, batch: Batch) -> dict[str, torch.Tensor]:
        return {}

    def visuals(self, batch: Batch, outputs: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
        return list(outputs.items())


# ----------------------------------------------------------------------------------------------

_BUILTIN: dict[str, str] = {
    "pg2_stage1": "posetransfer.training.pg2:PG2Stage1Task",
    "pg2_g1_d": "posetransfer.training.pg2:PG2G1DTask",
    "pg2_stage2": "posetransfer.training.pg2:PG2Stage2Task",
    "multiview": "posetransfer.training.multiview:MultiViewTask",
    "pix2pix": "posetransfer.training.multiview:Pix2PixTask",
}
_REGISTRY: dict[str, type[Task]] = {}


def register_task(name: str, cls: type[Task]) -> type[Task]:
    """Make ``cls`` available as ``task: <name>`` in configs."""
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise TypeError(f"{cls!r} is not a Task subclass")
    _REGISTRY[name] = cls
    return cls


def task_names() -> list[str]:
    return sorted(set(_BUILTIN) | set(_REGISTRY))


def get_task_class(name: str) -> type[Task]:
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in _BUILTIN:
        cls = import_class(_BUILTIN[name])
        _REGISTRY[name] = cls
        return cls
    raise ConfigError(f"unknown task {name!r} (known tasks: {', '.join(task_names())})")


def import_class(spec: str) -> type:
    """Import ``"package.module:Class"`` (or ``"package.module.Class"``)."""
    module_name, _, attr = spec.partition(":") if ":" in spec else spec.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)
