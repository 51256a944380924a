"""Reconstruction losses: plain L1 and PG2's pose-mask L1 (PG2 eq. 1, also the L1 term of eq. 4).

PG2 writes the stage-I loss as ``L_G1 = || (G1(I_A, P_B) - I_B) * (1 + M_B) ||_1`` (eq. 1), with
M_B = 1 on the body and 0 on the background, so that body pixels weigh twice as much as the
background. The official code averages rather than sums the norm: ``PoseMaskLoss =
reduce_mean(|G2 - x_target| * mask_target)`` and ``L1Loss2 = reduce_mean(|G2 - x_target|) +
PoseMaskLoss``, i.e. ``mean(|pred - target| * (1 + mask))`` over every element (batch, channels,
pixels), with the one-channel mask broadcast over the colour channels. We do the same
(reduction "mean"), so the value does not depend on image size or batch size.

Losses are computed in float32 even when the network ran under autocast, so that the mean over
many pixels does not lose precision in bfloat16.
"""

from __future__ import annotations

import torch

__all__ = ["l1", "pose_mask_l1"]


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over all elements (PG2's "G1-L1" variant; official ``g_loss1``)."""
    _check_pair(pred, target)
    return (pred.float() - target.float()).abs().mean()


def pose_mask_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """PG2's pose-mask loss (eq. 1): ``mean(|pred - target| * (1 + mask))``.

    Args:
        pred, target: images ``(B, C, H, W)``.
        mask: the target pose mask M_B, ``(B, 1, H, W)`` (or ``(B, C, H, W)``) with values in
            [0, 1]; it is broadcast over the channels.

    Returns:
        A scalar: the mean over all ``B * C * H * W`` elements, as the official code averages.
    """
    _check_pair(pred, target)
    if (
        mask.ndim != pred.ndim
        or mask.shape[0] != pred.shape[0]
        or mask.shape[1] not in (1, pred.shape[1])
        or mask.shape[2:] != pred.shape[2:]
    ):
        raise ValueError(
            f"mask {tuple(mask.shape)} does not match pred {tuple(pred.shape)}; expected (B, 1, H, W)"
        )
    weight = 1.0 + mask.float()
    return ((pred.float() - target.float()).abs() * weight).mean()
