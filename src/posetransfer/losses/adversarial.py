"""Adversarial losses of PG2 (eqs. 2 and 3): binary cross-entropy on discriminator logits.

The discriminator returns raw logits; ``binary_cross_entropy_with_logits`` folds the sigmoid
into the loss, which is numerically stable where ``log(sigmoid(x))`` would underflow, and is
what the official code uses (``tf.nn.sigmoid_cross_entropy_with_logits``). Each BCE term is the
mean over the batch. Computed in float32 (logits from an autocast region may be bfloat16).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["bce_d_loss", "bce_g_loss"]


def _bce(logits: torch.Tensor, label: float) -> torch.Tensor:
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))


def bce_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss, PG2 eq. 2: ``L_bce(D(I_A, I_B), 1) + L_bce(D(I_A, Î_B2), 0)``.

    The sum, as in the paper; the official trainers divide it by 2, which only rescales D's
    gradients (and Adam is nearly invariant to a constant loss scale).
    """
    return _bce(real_logits, 1.0) + _bce(fake_logits, 0.0)


def bce_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator adversarial loss, PG2 eq. 3: ``L_bce(D(I_A, Î_B2), 1)``.

    The non-saturating form (targets 1 for the fakes) rather than minimising ``log(1 - D)``:
    it is what eq. 3 states and what the official code optimises. The full stage-II objective
    (eq. 4) adds ``lambda * pose_mask_l1`` in the trainer.
    """
    return _bce(fake_logits, 1.0)
