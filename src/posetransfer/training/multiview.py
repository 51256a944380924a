"""Training tasks of the multi-image generator with two discriminators (the multi-view paper) and its baseline.

Two tasks cover the rows of the paper's Table 1:

* ``multiview`` (:class:`MultiViewTask`): the generator ``G`` (``E_I`` with the bidirectional
  ConvLSTM over the source photos, ``E_P`` on the stick figure, U-Net decoder) trained with eq. 4:

      L_G + alpha L_DI + beta L_DP,   L_G = ||y - G(x, p)||_1 + sum_k lambda_k ||Phi_k(y) - Phi_k(G(x, p))||_1

  ``loss.d_image`` / ``loss.d_pose`` switch ``D_I`` (eq. 2, real ``y`` vs fake ``G(x, p~)``) and
  ``D_P`` (eq. 3, consistent ``(y~, p~)`` vs ``(G(x, p~), p~)``) on and off: rows G+D_I, G+D_P and
  G+D_I+D_P. ``data.min_sources`` / ``data.max_sources`` choose the variant: "-S" takes one photo
  (1..1), "-M" takes several (the paper's "one SKU ... ranging from 2 to 5" images: 2..5).
  ``p~`` and ``y~`` are a photo of *another* identity and its pose, drawn by the data set
  (:class:`~posetransfer.data.datasets.MultiViewDataset`, ``other_image`` / ``other_stick``), so the
  paper's batch of one identity works. ``G(x, p)`` and ``G(x, p~)`` come from one generator call
  on the doubled batch.
* ``pix2pix`` (:class:`Pix2PixTask`): the "pix2pix" row, Isola et al.'s U-Net generator on
  ``concat(source image, target stick figure)`` and a conditional PatchGAN on
  ``concat(source, stick figure, image)``, with pix2pix's objective ``cGAN + 100 * L1``.

Choices the paper leaves open (each is a config value):

* ``alpha``, ``beta`` and the L1 / perceptual weights: 0.1, 0.1, 1, 1 (pix2pixHD's adversarial to
  perceptual ratio; :class:`posetransfer.losses.multiview.MultiViewLossWeights`).
* The discriminators' own step minimises each one's loss with weight 1: eq. 4 scales ``L_DI`` by
  ``alpha`` in the min-max too, but ``D_I`` and ``D_P`` have separate parameters and Adam's update
  is invariant to a constant gradient scale, so only the generator's weights matter.
* Augmentation (sec. 4.2: "randomly crop ... flip ... randomly rotate"): each photo gets its own
  draw of :class:`~posetransfer.data.transforms.Augment` (crop scale 0.9-1, flip 0.5, +-10 degrees
  by default; keypoints move with the image).
* Batches: the paper's batch is one identity with its photos (``train.batch_size: 1``, K drawn per
  step). Larger batches stack identities; when K varies (``min_sources < max_sources``) every item
  is padded to ``max_sources`` photos and ``num_sources`` tells the ConvLSTM each item's length.

The VGG19 of the perceptual term is loaded when the trainer builds the networks
(:meth:`MultiViewTask.build_networks`), so missing weights stop a run before any training work;
inference (``generate``, ``transfer``) never needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt, model_validator

from posetransfer.data.groups import MAX_SOURCES, IdentityGroups, generation_plan
from posetransfer.data.inputs import InputSpec
from posetransfer.data.pairs import group_by_identity
from posetransfer.data.transforms import Augment
from posetransfer.errors import DataError
from posetransfer.losses.multiview import GanMode, discriminator_loss, generator_adversarial_loss
from posetransfer.losses.perceptual import DEFAULT_LAYERS, VGGPerceptualLoss
from posetransfer.losses.reconstruction import l1, pose_mask_l1
from posetransfer.pose.io import read_pairs
from posetransfer.training.config import DataSource, PoseInputConfig, StrictModel
from posetransfer.training.tasks import Batch, Nets, Task

__all__ = [
    "GroupDataConfig",
    "MultiViewDataConfig",
    "MultiViewLossConfig",
    "Pix2PixLossConfig",
    "MultiViewTask",
    "Pix2PixTask",
]



# ----------------------------------------------------------------------------------------------
# Configs


class GroupDataConfig(PoseInputConfig):
    """Data of both tasks: identity groups of photos, the frame size and the augmentation."""

    train: DataSource
    test: DataSource | None = None
    #: (height, width) of the data's images (checked when read) and of the model's frame for
    #: ``transfer`` (the fully convolutional generator does not record it)
    image_size: tuple[PositiveInt, PositiveInt]
    #: probability of a left-right flip of each photo (sec. 4.2)
    flip: float = Field(default=0.5, ge=0.0, le=1.0)
    #: random crop: (min, max) scale of a window resized back to the frame; null = no crop
    crop: tuple[float, float] | None = (0.9, 1.0)
    #: random rotation: maximum angle in degrees (0 = none)
    rotation: float = Field(default=10.0, ge=0.0, le=180.0)

    def augment(self) -> Augment | None:
        if self.flip == 0 and self.crop is None and self.rotation == 0:
            return None
        return Augment(flip=self.flip, crop=self.crop, rotation=self.rotation)


class MultiViewDataConfig(GroupDataConfig):
    """Adds the number of source photos: -S = ``1..1``, -M = ``2..5`` (Table 1)."""

    min_sources: int = Field(default=2, ge=1, le=MAX_SOURCES)
    max_sources: int = Field(default=MAX_SOURCES, ge=1, le=MAX_SOURCES)
    #: draw the unpaired pose p~ (and its image y~) from another identity (eqs. 2-3); without it
    #: the adversarial terms use the target's own pose
    unpaired: bool = True

    @model_validator(mode="after")
    def _sources_range(self) -> "MultiViewDataConfig":
        if self.min_sources > self.max_sources:
            raise ValueError(f"min_sources ({self.min_sources}) is larger than max_sources ({self.max_sources})")
        return self


class MultiViewLossConfig(StrictModel):
    """Eq. 4's terms and weights; which discriminators exist (rows G+D_I, G+D_P, G+D_I+D_P)."""

    l1_weight: float = Field(default=1.0, ge=0.0)
    #: weight of eq. 1's VGG19 term (0 = off; then no VGG19 weights are needed)
    perceptual_weight: float = Field(default=1.0, ge=0.0)
    #: local torchvision VGG19 state dict; null = $POSETRANSFER_WEIGHTS_DIR, ~/.cache/posetransfer,
    #: then a download (losses.perceptual.resolve_vgg19_weights)
    vgg_weights: str | None = None
    #: fetch the ImageNet VGG19 weights when they are not found locally
    vgg_download: bool = True
    vgg_layers: list[str] = Field(default_factory=lambda: list(DEFAULT_LAYERS))
    #: lambda_k per layer; null = pix2pixHD's 1/32 .. 1 for the default layers, else 1 each
    vgg_layer_weights: list[float] | None = None
    #: train D_I (eq. 2, real/fake images) and add alpha * its term to G's loss
    d_image: bool = True
    #: train D_P (eq. 3, image-pose consistency) and add beta * its term to G's loss
    d_pose: bool = True
    alpha: float = Field(default=0.1, gt=0.0)
    beta: float = Field(default=0.1, gt=0.0)
    #: "bce" = the log-loss of eqs. 2-3; "lsgan" = least squares (CycleGAN's code)
    gan_mode: GanMode = "bce"
    #: D_P also sees real images with another identity's pose, (y, p~), as inconsistent
    d_pose_mismatched: bool = False


class Pix2PixLossConfig(StrictModel):
    """pix2pix's objective: ``adversarial_weight * cGAN + l1_weight * L1`` (Isola et al., lambda = 100)."""

    l1_weight: float = Field(default=100.0, ge=0.0)
    adversarial_weight: float = Field(default=1.0, ge=0.0)
    gan_mode: GanMode = "bce"
    #: "separate" (pix2pix's ``backward_D``, models/pix2pix_model.py of
    #: junyanz/pytorch-CycleGAN-and-pix2pix): D called once on the fakes and once on the reals,
    #: so batch norm normalises each on its own, and ``loss_D = (fake + real) * 0.5``;
    #: "joint": one D call on reals and fakes concatenated (one batch-norm batch), loss summed
    discriminator_calls: Literal["separate", "joint"] = "separate"


# ----------------------------------------------------------------------------------------------
# Tasks


class _GroupTask(Task):
    """Shared data handling of the two tasks: identity groups, -S/-M source counts, generation."""

    DataConfig = MultiViewDataConfig
    final_output: ClassVar[str] = "generated"

    def __init__(self, config: Any):
        super().__init__(config)
        self.min_sources, self.max_sources = self._source_range()

    def _source_range(self) -> tuple[int, int]:
        data: MultiViewDataConfig = self.data_cfg  # type: ignore[assignment]
        return data.min_sources, data.max_sources

    def _unpaired(self) -> bool:
        return False

    def build_dataset(self, split: Literal["train", "test"], augment: bool) -> IdentityGroups:
        data: GroupDataConfig = self.data_cfg  # type: ignore[assignment]
        source = data.train if split == "train" else (data.test or data.train)
        # Pad only when identities of different K can meet in one batch.
        varying = self.min_sources != self.max_sources and self.config.train.batch_size > 1
        return IdentityGroups(
            source.path,
            source.split,
            min_sources=self.min_sources,
            max_sources=self.max_sources,
            pad_to=self.max_sources if varying else None,
            augment=data.augment() if augment else None,
            unpaired=self._unpaired() and split == "train",
            size=self.image_size,
            seed=self.config.train.seed,
            inputs=self.input_spec(),
        )

    def input_spec(self) -> InputSpec:
        """K source photos; the target pose as a stick figure (E_P's input) and a pose mask."""
        data: GroupDataConfig = self.data_cfg  # type: ignore[assignment]
        return InputSpec(
            image_size=self.image_size, stick_thickness=data.stick_thickness, mask=data.mask,
            encodings=("stick", "mask"), group=True,
        )  # fmt: skip

    def dataset_at(self, path: str, split: str | None = None, pairs: str | None = None) -> IdentityGroups:
        """Every photo of the folder as a target with its identity's other photos as sources (up to
        the model's ``max_sources``), or the given pairs (``from`` first); padded for batching."""
        ds = IdentityGroups(
            path, split, min_sources=1, max_sources=self.max_sources, pad_to=self.max_sources,
            unpaired=False, size=self.image_size, seed=self.config.train.seed, inputs=self.input_spec(),
        )  # fmt: skip
        usable = group_by_identity([n for n in ds.annotations if n in ds.on_disk])
        listed = read_pairs(pairs) if pairs is not None else None
        plan = generation_plan(usable, self.max_sources, listed)
        if not plan:
            raise DataError(Path(path), "no identity has two annotated photos to generate from")
        ds.set_plan(plan, where=pairs)
        return ds

    @staticmethod
    def _lengths(batch: Batch, images: torch.Tensor) -> torch.Tensor | None:
        """``num_sources`` when the batch is padded (some item has fewer photos than K), else None."""
        n = batch.get("num_sources")
        if n is None or not torch.is_tensor(n) or bool((n == images.shape[1]).all()):
            return None
        return n

    def eval_losses(self, nets: Nets, batch: Batch) -> dict[str, torch.Tensor]:
        out = self.generate(nets, batch)[self.final_output]
        target, mask = batch["target_image"], batch["target_mask"]
        return {
            "l1": l1(out, target),
            "pose_mask_l1": pose_mask_l1(out, target, mask),
            # the trivial baseline: output the first source photo unchanged
            "copy_source_l1": l1(batch["source_images"][:, 0], target),
        }

    def visuals(self, batch: Batch, outputs: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
        images = batch["source_images"]
        # a fixed number of source columns (grey where an identity has fewer photos), so rows of
        # batches with different K fit one grid
        columns = [
            (f"source {i + 1}", images[:, i] if i < images.shape[1] else torch.zeros_like(images[:, 0]))
            for i in range(self.max_sources)
        ]
        return [
            *columns,
            ("target pose", batch["target_stick"] * 2.0 - 1.0),
            ("target", batch["target_image"]),
            *outputs.items(),
        ]


class MultiViewTask(_GroupTask):
    """The multi-view generator with D_I and/or D_P (the multi-view paper, eqs. 1-4; see the module docstring)."""

    name: ClassVar[str] = "multiview"
    LossConfig = MultiViewLossConfig
    networks: ClassVar[dict[str, str]] = {
        "g": "posetransfer.models.multiview:MultiViewGenerator",
        "d_image": "posetransfer.models.multiview:PatchDiscriminator",
        "d_pose": "posetransfer.models.multiview:PatchDiscriminator",
    }
    generators: ClassVar[tuple[str, ...]] = ("g",)

    def __init__(self, config: Any):
        super().__init__(config)
        loss: MultiViewLossConfig = self.loss_cfg  # type: ignore[assignment]
        # Only the discriminators that are on are built, trained and saved (rows G+D_I / G+D_P).
        self.discriminators = tuple(  # type: ignore[misc]
            name for name, on in (("d_image", loss.d_image), ("d_pose", loss.d_pose)) if on
        )
        self.perceptual: VGGPerceptualLoss | None = None

    def _unpaired(self) -> bool:
        return bool(self.data_cfg.unpaired)  # type: ignore[attr-defined]

    def build_networks(self, random_init: dict[str, dict[str, Any]] | None = None) -> Nets:
        """The generator and the discriminators that are on; loads VGG19 for the perceptual term.

        Called by the trainer before any data is read, so missing VGG19 weights fail at once with
        :class:`~posetransfer.errors.CheckpointError` saying where to put them.
        """
        nets = super().build_networks(random_init)
        for name in ("d_image", "d_pose"):
            if name not in self.discriminators:
                nets.pop(name, None)
        loss: MultiViewLossConfig = self.loss_cfg  # type: ignore[assignment]
        if loss.perceptual_weight > 0 and self.perceptual is None:
            self.perceptual = VGGPerceptualLoss(
                layers=loss.vgg_layers,
                layer_weights=loss.vgg_layer_weights,
                weights_path=loss.vgg_weights,
                download=loss.vgg_download,
            )
        return nets

    def _generate(self, g: torch.nn.Module, batch: Batch, pose: torch.Tensor) -> torch.Tensor:
        images = batch["source_images"]
        return g(images, pose, self._lengths(batch, images))

    def forward(self, nets: Nets, batch: Batch) -> dict[str, torch.Tensor]:
        if not self.discriminators:
            return {"generated": self._generate(nets["g"], batch, batch["target_stick"])}
        # G(x, p) for eq. 1 and G(x, p~) for eqs. 2-3 in one call on the doubled batch
        # (instance norm and the per-sample ConvLSTM make this equal to two calls).
        images = batch["source_images"]
        lengths = self._lengths(batch, images)
        poses = torch.cat([batch["target_stick"], self._other(batch)[1]])
        both = nets["g"](
            torch.cat([images, images]), poses, None if lengths is None else torch.cat([lengths, lengths])
        )
        generated, unpaired = both.chunk(2)
        return {"generated": generated, "unpaired": unpaired}

    @staticmethod
    def _other(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(y~, p~): a photo of another identity and its stick figure; the target's own without them."""
        if "other_stick" in batch:
            return batch["other_image"], batch["other_stick"]
        return batch["target_image"], batch["target_stick"]

    @staticmethod
    def _pair_logits(d: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor, cond: torch.Tensor | None = None):
        """Real and fake logits from one D call on the joint batch (per-sample norm: same as two)."""
        joint_cond = None if cond is None else torch.cat([cond, cond])
        logits = d(torch.cat([real, fake]), joint_cond)
        return logits.chunk(2)

    def dis_losses(self, nets: Nets, batch: Batch, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        loss: MultiViewLossConfig = self.loss_cfg  # type: ignore[assignment]
        fake = out["unpaired"].detach()  # D's step must not reach the generator
        y = batch["target_image"]
        y_other, p_other = self._other(batch)
        losses: dict[str, torch.Tensor] = {}
        if "d_image" in self.discriminators:  # eq. 2: D_I(y) real, D_I(G(x, p~)) fake
            real, fake_l = self._pair_logits(nets["d_image"], y, fake)
            losses["d_image"] = discriminator_loss(real, fake_l, loss.gan_mode)
            losses["d_image_real"] = torch.sigmoid(real.float()).mean()  # monitors
            losses["d_image_fake"] = torch.sigmoid(fake_l.float()).mean()
        if "d_pose" in self.discriminators:  # eq. 3: D_P(y~, p~) real, D_P(G(x, p~), p~) fake
            real, fake_l = self._pair_logits(nets["d_pose"], y_other, fake, p_other)
            mismatched = nets["d_pose"](y, p_other) if loss.d_pose_mismatched and "other_stick" in batch else None
            losses["d_pose"] = discriminator_loss(real, fake_l, loss.gan_mode, mismatched_logits=mismatched)
            losses["d_pose_real"] = torch.sigmoid(real.float()).mean()
            losses["d_pose_fake"] = torch.sigmoid(fake_l.float()).mean()
        return losses

    def gen_losses(self, nets: Nets, batch: Batch, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        loss: MultiViewLossConfig = self.loss_cfg  # type: ignore[assignment]
        generated, y = out["generated"], batch["target_image"]
        losses = {"l1": F.l1_loss(generated.float(), y.float())}  # eq. 1, first term
        if loss.perceptual_weight > 0:
            if self.perceptual is None:
                raise RuntimeError("the perceptual loss is built by build_networks(), which was not called")
            if self.perceptual.scale.device != generated.device:
                self.perceptual.to(generated.device)
            losses["perceptual"] = self.perceptual(generated, y)  # eq. 1, second term
        if "d_image" in self.discriminators:
            losses["adv_image"] = generator_adversarial_loss(nets["d_image"](out["unpaired"]), loss.gan_mode)
        if "d_pose" in self.discriminators:
            p_other = self._other(batch)[1]
            losses["adv_pose"] = generator_adversarial_loss(nets["d_pose"](out["unpaired"], p_other), loss.gan_mode)
        return losses

    def loss_weights(self, kind: Literal["gen", "dis"]) -> dict[str, float]:
        loss: MultiViewLossConfig = self.loss_cfg  # type: ignore[assignment]
        if kind == "dis":
            return {name: 1.0 for name in self.discriminators}
        weights = {"l1": loss.l1_weight, "perceptual": loss.perceptual_weight}
        if "d_image" in self.discriminators:
            weights["adv_image"] = loss.alpha
        if "d_pose" in self.discriminators:
            weights["adv_pose"] = loss.beta
        return {k: v for k, v in weights.items() if v > 0}

    @torch.no_grad()
    def generate(self, nets: Nets, batch: Batch) -> dict[str, torch.Tensor]:
        return {"generated": self._generate(nets["g"], batch, batch["target_stick"])}


class Pix2PixTask(_GroupTask):
    """The "pix2pix" row of Table 1: U-Net G on (source image, target stick figure), conditional
    PatchGAN D on (source, stick figure, image); ``L = cGAN + lambda * L1`` (Isola et al. 2017)."""

    name: ClassVar[str] = "pix2pix"
    DataConfig = GroupDataConfig
    LossConfig = Pix2PixLossConfig
    networks: ClassVar[dict[str, str]] = {
        "g": "posetransfer.models.multiview:Pix2PixGenerator",
        "d": "posetransfer.models.multiview:PatchDiscriminator",
    }
    generators: ClassVar[tuple[str, ...]] = ("g",)
    discriminators: ClassVar[tuple[str, ...]] = ("d",)

    def _source_range(self) -> tuple[int, int]:
        return 1, 1  # pix2pix translates one image

    @staticmethod
    def _condition(batch: Batch) -> torch.Tensor:
        return torch.cat([batch["source_images"][:, 0], batch["target_stick"]], dim=1)

    def forward(self, nets: Nets, batch: Batch) -> dict[str, torch.Tensor]:
        return {"generated": nets["g"](batch["source_images"][:, 0], batch["target_stick"])}

    def dis_losses(self, nets: Nets, batch: Batch, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cond = self._condition(batch)
        real_in = torch.cat([cond, batch["target_image"]], 1)
        fake_in = torch.cat([cond, out["generated"].detach()], 1)
        if self.loss_cfg.discriminator_calls == "separate":  # type: ignore[attr-defined]
            fake = nets["d"](fake_in)  # pix2pix's order: fake first, then real
            real = nets["d"](real_in)
        else:
            real, fake = nets["d"](torch.cat([real_in, fake_in])).chunk(2)
        return {
            "d_bce": discriminator_loss(real, fake, self.loss_cfg.gan_mode),  # type: ignore[attr-defined]
            "d_real": torch.sigmoid(real.float()).mean(),
            "d_fake": torch.sigmoid(fake.float()).mean(),
        }

    def gen_losses(self, nets: Nets, batch: Batch, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        fake = nets["d"](torch.cat([self._condition(batch), out["generated"]], 1))
        return {
            "g_gan": generator_adversarial_loss(fake, self.loss_cfg.gan_mode),  # type: ignore[attr-defined]
            "l1": F.l1_loss(out["generated"].float(), batch["target_image"].float()),
        }

    def loss_weights(self, kind: Literal["gen", "dis"]) -> dict[str, float]:
        loss: Pix2PixLossConfig = self.loss_cfg  # type: ignore[assignment]
        if kind == "dis":
            # pix2pix: loss_D = (loss_D_fake + loss_D_real) * 0.5
            return {"d_bce": 0.5 if loss.discriminator_calls == "separate" else 1.0}
        return {"g_gan": loss.adversarial_weight, "l1": loss.l1_weight}

    @torch.no_grad()
    def generate(self, nets: Nets, batch: Batch) -> dict[str, torch.Tensor]:
        return {"generated": nets["g"](batch["source_images"][:, 0], batch["target_stick"])}
