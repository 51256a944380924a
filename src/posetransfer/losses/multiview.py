"""Objective of the multiview model (paper 003, section 3.3, eqs. 1-4), as functions over logits.

    L_G   = ||y - G(x, p)||_1 + sum_k lambda_k ||Phi_k(y) - Phi_k(G(x, p))||_1        (eq. 1)
    L_DI  = E[log D_I(y)] + E[log(1 - D_I(G(x, p~)))]                                   (eq. 2)
    L_DP  = E[log D_P(y~, p~)] + E[log(1 - D_P(G(x, p~), p~))]                          (eq. 3)
    G*, D_I*, D_P* = arg min_G max_{D_I, D_P} L_G + alpha L_DI + beta L_DP              (eq. 4)

(The paper prints ``E[1 - log D(.)]`` in eqs. 2-3; the GAN objective of [7] it cites is
``E[log(1 - D(.))]``, which is what is implemented.) ``p~`` are poses taken from *other* items
(other identities) and ``y~`` the images those poses belong to: ``D_P``'s real pair is a real
image with its own pose, its fake pair the generated image with the pose it was asked to show.

Choices the paper leaves open:

* The adversarial loss is the log-loss of [7] (``mode="bce"``, binary cross-entropy on logits,
  averaged over the PatchGAN's patches: "averages all scores", section 4.2). ``mode="lsgan"``
  (least squares, used by the CycleGAN code [38] the generator follows) is available.
* The generator minimises the non-saturating ``-log D(G(.))`` instead of ``log(1 - D(G(.)))``, as
  [7] recommends in practice.
* ``D_P`` may also see *mismatched* real pairs ``(y, p~)`` (a real image with another item's pose)
  as "inconsistent" (``mismatched_logits``), the matching-aware trick of Reed et al. 2016; off
  unless the caller passes them.
* The paper gives no value for ``alpha``, ``beta`` or the L1 weight; :class:`MultiViewLossWeights`
  defaults to L1 1, perceptual 1, alpha = beta = 0.1 (pix2pixHD's adversarial : perceptual ratio).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from posetransfer.errors import ConfigError

__all__ = [
    "GanMode",
    "MultiViewLossWeights",
    "discriminator_loss",
    "gan_loss",
    "generator_adversarial_loss",
    "generator_loss",
    "unpaired_indices",
]

GanMode = Literal["bce", "lsgan"]


def gan_loss(logits: Tensor, target_is_real: bool, mode: GanMode = "bce") -> Tensor:
    """Mean adversarial loss of a logit map against an all-real or all-fake label.

    ``bce``: ``-log sigmoid(l)`` for real, ``-log(1 - sigmoid(l))`` for fake (eqs. 2-3 negated).
    ``lsgan``: ``(l - 1)^2`` for real, ``l^2`` for fake. Computed in float32 (autocast-safe).
    """
    logits = logits.float()
    target = torch.full_like(logits, 1.0 if target_is_real else 0.0)
    if mode == "bce":
        return F.binary_cross_entropy_with_logits(logits, target)
    if mode == "lsgan":
        return F.mse_loss(logits, target)
    raise ConfigError(f"unknown GAN loss mode {mode!r}; expected 'bce' or 'lsgan'")


def discriminator_loss(
    real_logits: Tensor,
    fake_logits: Tensor,
    mode: GanMode = "bce",
    mismatched_logits: Tensor | None = None,
) -> Tensor:
    """A discriminator's loss to minimise: eq. 2 (``D_I``) or eq. 3 (``D_P``), negated.

    ``D_I``: ``real_logits = D_I(y)``, ``fake_logits = D_I(G(x, p~).detach())``.
    ``D_P``: ``real_logits = D_P(y~, p~)``, ``fake_logits = D_P(G(x, p~).detach(), p~)``, and
    optionally ``mismatched_logits = D_P(y, p~)`` counted as a second kind of fake (the two fake
    terms are then averaged so the real/fake balance is kept).
    """
    fake = gan_loss(fake_logits, False, mode)
    if mismatched_logits is not None:
        fake = 0.5 * (fake + gan_loss(mismatched_logits, False, mode))
    return gan_loss(real_logits, True, mode) + fake


def generator_adversarial_loss(fake_logits: Tensor, mode: GanMode = "bce") -> Tensor:
    """The generator's adversarial term (non-saturating): its fakes should be judged real."""
    return gan_loss(fake_logits, True, mode)


def unpaired_indices(batch_size: int, generator: torch.Generator | None = None) -> Tensor:
    """A random permutation of ``range(batch_size)`` with no fixed point (a derangement).

    ``p~ = poses[idx]`` then gives every item a pose of *another* item of the batch. Needs at
    least 2 items; with the paper's batch of one identity, the data loader has to supply p~.
    """
    if batch_size < 2:
        raise ValueError("unpaired poses need a batch of at least 2 items (or p~ from the data loader)")
    perm = torch.randperm(batch_size, generator=generator)
    # Shift a random permutation's cycle by one: sigma(perm[i]) = perm[i + 1] has no fixed point.
    idx = torch.empty_like(perm)
    idx[perm] = perm.roll(-1)
    return idx


@dataclass(frozen=True)
class MultiViewLossWeights:
    """Weights of eq. 4: ``l1`` and ``perceptual`` scale eq. 1's terms, ``alpha`` the ``D_I`` term,
    ``beta`` the ``D_P`` term. Set ``alpha=0`` for the G+D_P ablation, ``beta=0`` for G+D_I."""

    l1: float = 1.0
    perceptual: float = 1.0
    alpha: float = 0.1
    beta: float = 0.1

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"loss weight {name} must be a non-negative number, got {value!r}")


def generator_loss(
    fake: Tensor,
    target: Tensor,
    *,
    perceptual: torch.nn.Module | None = None,
    d_image_logits: Tensor | None = None,
    d_pose_logits: Tensor | None = None,
    weights: MultiViewLossWeights = MultiViewLossWeights(),
    mode: GanMode = "bce",
) -> dict[str, Tensor]:
    """The generator's side of eq. 4, as named terms (weighted) plus their sum ``"total"``.

    ``fake = G(x, p)`` and ``target = y`` feed eq. 1 (L1 and, when ``perceptual`` is given, the
    VGG19 term); ``d_image_logits = D_I(G(x, p~))`` and ``d_pose_logits = D_P(G(x, p~), p~)``
    feed the adversarial terms (skipped when None or when their weight is 0). The returned terms
    are already multiplied by their weights.
    """
    terms: dict[str, Tensor] = {"l1": weights.l1 * F.l1_loss(fake.float(), target.float())}
    if perceptual is not None and weights.perceptual > 0:
        terms["perceptual"] = weights.perceptual * perceptual(fake, target)
    if d_image_logits is not None and weights.alpha > 0:
        terms["adv_image"] = weights.alpha * generator_adversarial_loss(d_image_logits, mode)
    if d_pose_logits is not None and weights.beta > 0:
        terms["adv_pose"] = weights.beta * generator_adversarial_loss(d_pose_logits, mode)
    terms["total"] = sum(terms.values(), start=torch.zeros((), device=fake.device))
    return terms
