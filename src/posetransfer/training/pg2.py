"""PG2 training tasks ("Pose Guided Person Image Generation", Ma et al. 2017): stage I, one-stage adversarial G1+D, and stage II.

Three tasks cover the six rows of the paper's Table 1:

* ``pg2_stage1`` (:class:`PG2Stage1Task`): G1 alone with an L1 loss, the rows G1-CE-L1,
  G1-HME-L1, G1-L1 (``loss.reconstruction: l1``, pose embedding ``ce``/``hme``/``concat``) and
  G1-poseMaskLoss (``pose_mask_l1``, eq. 1: ``|| (G1(I_A, P_B) - I_B) * (1 + M_B) ||_1``).
* ``pg2_g1_d`` (:class:`PG2G1DTask`): the one-stage adversarial model "G1+D": G1 trained against
  the pair discriminator D with eq. 4's objective applied to the G1 output.
* ``pg2_stage2`` (:class:`PG2Stage2Task`): the full model "G1+G2+D": a frozen, pre-trained G1
  (loaded from the stage-I checkpoint named in ``init_from.g1``), G2 refining its output by a
  difference map, and D on pairs: real ``(I_A, I_B)`` vs fake ``(I_A, Î_B2)`` (eq. 2), G2's loss
  ``L_bce(D(I_A, Î_B2), 1) + lambda * pose_mask_l1(Î_B2, I_B, M_B)`` (eqs. 3-4).

D sees the real and the fake pairs in one batch (concatenated), as the official code feeds its
DCGAN discriminator, so its BatchNorm statistics are those of a mixed batch in both the D and the
G step. ``lambda`` (``loss.l1_weight``) is not given in the paper (its supplementary material
studies it); the authors' released trainers use 10 on Market (``g_loss2 += L1Loss2 * 10``) and
50 on DeepFashion; the recipes follow them, the default here is 50.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, PositiveInt

from posetransfer.data.datasets import PairDataset
from posetransfer.data.inputs import InputSpec
from posetransfer.data.transforms import Augment
from posetransfer.losses.adversarial import bce_d_loss, bce_g_loss
from posetransfer.losses.reconstruction import l1, pose_mask_l1
from posetransfer.training.config import DataSource, PoseInputConfig, StrictModel
from posetransfer.training.tasks import Batch, Nets, Task

__all__ = [
    "PairDataConfig",
    "Stage1LossConfig",
    "AdversarialLossConfig",
    "PG2Stage1Task",
    "PG2G1DTask",
    "PG2Stage2Task",
]


class PairDataConfig(PoseInputConfig):
    """Data of the PG2 tasks: pair data sets and the pose encoding (PG2 sec. 3.1, 4.1)."""

    train: DataSource
    test: DataSource | None = None
    #: (height, width) of the model's frame, written into the networks' ``image_size``; null =
    #: the size the networks state (configs written before it lived here)
    image_size: tuple[PositiveInt, PositiveInt] | None = None
    #: target pose heatmaps: "disk" (PG2: 1 within radius 4 px) or "gaussian" (PATN, sigma 6)
    heatmap: Literal["disk", "gaussian"] = "disk"
    radius: int = Field(default=4, ge=0)
    sigma: float = Field(default=6.0, gt=0)
    #: probability of a left-right flip (PG2 sec. 4.1: "we do left-right flip for both datasets")
    flip: float = Field(default=0.5, ge=0.0, le=1.0)
    #: flip the two images of a pair together (one draw per pair), as the released PG2 data does
    #: (convert_market.py / convert_DF.py add the pairs of a flipped copy of the training folder);
    #: false: source and target flipped independently
    pair_flip: bool = True
    #: values of the pose heatmaps G1 sees: "0,1" (the paper's sec. 3.1 wording) or "-1,1" (the
    #: released trainer.py, ``_load_batch_pair_pose``: ``poses = poses*2-1``)
    heatmap_range: Literal["0,1", "-1,1"] = "0,1"
    #: a control, not a paper row: G1 sees all-zero pose inputs, so it cannot know the target pose
    #: (the "pose-blind" baseline of the demo: what G1 learns from the condition image alone)
    blind_pose: bool = False
    #: optional pairs files replacing the data sets' own
    train_pairs: str | None = None
    test_pairs: str | None = None


class Stage1LossConfig(StrictModel):
    """G1's loss: ``l1`` (rows *-L1 of Table 1) or ``pose_mask_l1`` (eq. 1, G1-poseMaskLoss)."""

    reconstruction: Literal["l1", "pose_mask_l1"] = "pose_mask_l1"


class AdversarialLossConfig(StrictModel):
    """Eq. 4: ``L_G = adversarial_weight * L_bce(D(I_A, Î_B), 1) + l1_weight * L1-term``."""

    reconstruction: Literal["l1", "pose_mask_l1"] = "pose_mask_l1"
    #: lambda of eq. 4 (released code: 10 on Market, 50 on DeepFashion)
    l1_weight: float = Field(default=50.0, ge=0.0)
    adversarial_weight: float = Field(default=1.0, ge=0.0)


_TITLES = {"stage1": "stage I", "stage2": "stage II"}


def _reconstruction(kind: str, pred: torch.Tensor, batch: Batch) -> torch.Tensor:
    if kind == "l1":
        return l1(pred, batch["target_image"])
    return pose_mask_l1(pred, batch["target_image"], batch["target_mask"])


class _PG2Task(Task):
    DataConfig = PairDataConfig

    def build_dataset(self, split: Literal["train", "test"], augment: bool) -> PairDataset:
        data: PairDataConfig = self.data_cfg  # type: ignore[assignment]
        source = data.train if split == "train" else (data.test or data.train)
        pairs = data.train_pairs if split == "train" else data.test_pairs
        return PairDataset(
            source.path,
            split=source.split,
            augment=Augment(flip=data.flip, pair=data.pair_flip) if augment and data.flip > 0 else None,
            pairs=pairs,
            seed=self.config.train.seed,
            inputs=self.input_spec(),
        )

    def input_spec(self) -> InputSpec:
        """One condition image; the target pose as heatmaps, coordinates, stick figure and mask."""
        data: PairDataConfig = self.data_cfg  # type: ignore[assignment]
        return InputSpec(
            image_size=self.image_size, heatmap=data.heatmap, radius=data.radius, sigma=data.sigma,
            stick_thickness=data.stick_thickness, mask=data.mask,
        )  # fmt: skip

    def _g1(self, nets: Nets, batch: Batch) -> torch.Tensor:
        g1 = nets["g1"]
        embedding = getattr(g1, "module", g1).pose_embedding
        pose = batch["target_coords"] if embedding == "ce" else batch["target_heatmaps"]
        if embedding != "ce" and self.data_cfg.heatmap_range == "-1,1":  # type: ignore[attr-defined]
            pose = pose * 2 - 1  # the released trainer's poses*2-1
        if self.data_cfg.blind_pose:  # type: ignore[attr-defined]
            pose = torch.zeros_like(pose)
        return g1(batch["source_image"], pose)

    @staticmethod
    def _d_logits(d: torch.nn.Module, batch: Batch, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Real ``(I_A, I_B)`` and fake ``(I_A, fake)`` logits from one D call on the joint batch."""
        cond = batch["source_image"]
        logits = d(torch.cat([cond, cond]), torch.cat([batch["target_image"], fake]))
        return logits[: cond.shape[0]], logits[cond.shape[0] :]

    def eval_losses(self, nets: Nets, batch: Batch) -> dict[str, torch.Tensor]:
        out = self.generate(nets, batch)
        final = out[self.final_output]
        target, mask = batch["target_image"], batch["target_mask"]
        return {
            "pose_mask_l1": pose_mask_l1(final, target, mask),
            "l1": l1(final, target),
            # the trivial baseline: output the condition image unchanged
            "copy_source_pose_mask_l1": pose_mask_l1(batch["source_image"], target, mask),
        }

    def visuals(self, batch: Batch, outputs: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
        return [
            ("condition", batch["source_image"]),
            ("target pose", batch["target_stick"] * 2.0 - 1.0),
            ("target", batch["target_image"]),
            *[(_TITLES.get(name, name), image) for name, image in outputs.items()],
        ]

    def dataset_at(self, path: str, split: str | None = None, pairs: str | None = None) -> PairDataset:
        return PairDataset(path, split=split, pairs=pairs, seed=self.config.train.seed, inputs=self.input_spec())


class PG2Stage1Task(_PG2Task):
    """G1 with an L1 or pose-mask L1 loss (PG2 sec. 3.1, eq. 1)."""

    name: ClassVar[str] = "pg2_stage1"
    LossConfig = Stage1LossConfig
    networks: ClassVar[dict[str, str]] = {"g1": "posetransfer.models.pg2:G1"}
    generators: ClassVar[tuple[str, ...]] = ("g1",)
    final_output: ClassVar[str] = "stage1"

    def forward(self, nets: Nets, batch: Batch) -> dict[str, torch.Tensor]:
        return {"stage1": self._g1(nets, batch)}

    def gen_losses(self, nets: Nets, batch: Batch, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        kind = self.loss_cfg.reconstruction  # type: ignore[attr-defined]
        return {kind: _reconstruction(kind, out["stage1"], batch)}

    def loss_weights(self, kind: Literal["gen", "dis"]) -> dict[str, float]:
        return {self.loss_cfg.reconstruction: 1.0} if kind == "gen" else {}  # type: ignore[attr-defined]

    @torch.no_grad()
    def generate(self, nets: Nets, batch: Batch) -> dict[str, torch.Tensor]:
        return {"stage1": self._g1(nets, batch)}


class _AdversarialMixin:
    loss_cfg: AdversarialLossConfig

    def dis_losses(self, nets: Nets, batch: Batch, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # eq. 2, with the fake detached: D's step must not reach the generator
        real, fake = _PG2Task._d_logits(nets["d"], batch, out[self.final_output].detach())
        return {
            "d_bce": bce_d_loss(real, fake),
            "d_real": torch.sigmoid(real.float()).mean(),  # monitors: D's mean belief
            "d_fake": torch.sigmoid(fake.float()).mean(),
        }

    def gen_losses(self, nets: Nets, batch: Batch, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        image = out[self.final_output]
        _, fake = _PG2Task._d_logits(nets["d"], batch, image)
        kind = self.loss_cfg.reconstruction
        return {"g_bce": bce_g_loss(fake), kind: _reconstruction(kind, image, batch)}  # eqs. 3-4

    def loss_weights(self, kind: Literal["gen", "dis"]) -> dict[str, float]:
        if kind == "dis":
            return {"d_bce": 1.0}
        return {"g_bce": self.loss_cfg.adversarial_weight, self.loss_cfg.reconstruction: self.loss_cfg.l1_weight}


class PG2G1DTask(_AdversarialMixin, PG2Stage1Task):
    """One-stage adversarial PG2 ("G1+D" in Table 1): G1 trained with D and eq. 4's objective."""

    name: ClassVar[str] = "pg2_g1_d"
    LossConfig = AdversarialLossConfig
    networks: ClassVar[dict[str, str]] = {
        "g1": "posetransfer.models.pg2:G1",
        "d": "posetransfer.models.pg2:PairDiscriminator",
    }
    generators: ClassVar[tuple[str, ...]] = ("g1",)
    discriminators: ClassVar[tuple[str, ...]] = ("d",)


class PG2Stage2Task(_AdversarialMixin, _PG2Task):
    """PG2 stage II ("G1+G2+D"): G2 + D refine a frozen stage-I G1 (sec. 3.2, eqs. 2-4)."""

    name: ClassVar[str] = "pg2_stage2"
    LossConfig = AdversarialLossConfig
    networks: ClassVar[dict[str, str]] = {
        "g2": "posetransfer.models.pg2:G2",
        "d": "posetransfer.models.pg2:PairDiscriminator",
    }
    init_networks: ClassVar[dict[str, str]] = {"g1": "posetransfer.models.pg2:G1"}
    required_init: ClassVar[tuple[str, ...]] = ("g1",)
    generators: ClassVar[tuple[str, ...]] = ("g2",)
    discriminators: ClassVar[tuple[str, ...]] = ("d",)
    final_output: ClassVar[str] = "stage2"

    def build_networks(self, random_init: dict[str, dict[str, Any]] | None = None) -> Nets:
        nets = super().build_networks(random_init)
        g1_size = tuple(getattr(nets["g1"], "image_size", ()))
        g2_size = tuple(getattr(nets["g2"], "image_size", ()))
        if g1_size and g2_size and g1_size != g2_size:
            from posetransfer.errors import ConfigError

            raise ConfigError(
                f"init_from.g1: the stage-I G1 works at {g1_size[0]}x{g1_size[1]}, "
                f"but model.g2.image_size is {g2_size[0]}x{g2_size[1]}"
            )
        return nets

    def forward(self, nets: Nets, batch: Batch) -> dict[str, Any]:
        with torch.no_grad():  # G1 is fixed at stage II
            stage1 = self._g1(nets, batch)
        refined, difference = nets["g2"](batch["source_image"], stage1)
        return {"stage1": stage1, "stage2": refined, "difference": difference}

    @torch.no_grad()
    def generate(self, nets: Nets, batch: Batch) -> dict[str, torch.Tensor]:
        stage1 = self._g1(nets, batch)
        refined, _ = nets["g2"](batch["source_image"], stage1)
        return {"stage1": stage1, "stage2": refined}
