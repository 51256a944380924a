"""PG2 losses on tiny hand-computed tensors (eqs. 1-3)."""

from __future__ import annotations

import math

import pytest
import torch

from posetransfer.losses import bce_d_loss, bce_g_loss, l1, pose_mask_l1


def test_l1_exact_value():
    pred = torch.tensor([[[[1.0, -2.0], [0.5, 0.0]]]])
    target = torch.tensor([[[[0.0, 0.0], [1.0, 0.0]]]])
    # |1| + |-2| + |-0.5| + 0 = 3.5 over 4 elements
    assert l1(pred, target).item() == pytest.approx(3.5 / 4)


def test_pose_mask_l1_exact_value_mask_broadcast_over_channels():
    # B=1, C=2, H=1, W=2; mask marks the first pixel as body.
    pred = torch.tensor([[[[1.0, 2.0]], [[0.0, -1.0]]]])
    target = torch.tensor([[[[0.0, 0.0]], [[0.5, 1.0]]]])
    mask = torch.tensor([[[[1.0, 0.0]]]])
    # |diff| = [[1, 2], [0.5, 2]]; weights (1 + mask) = [2, 1] on both channels
    # sum = 1*2 + 2*1 + 0.5*2 + 2*1 = 7, mean over 4 elements
    assert pose_mask_l1(pred, target, mask).item() == pytest.approx(7.0 / 4)


def test_pose_mask_l1_equals_official_l1_plus_masked_l1():
    # The official code: mean(|d|) + mean(|d| * mask) == mean(|d| * (1 + mask)).
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(2, 3, 4, 5, generator=g), torch.randn(2, 3, 4, 5, generator=g)
    mask = (torch.rand(2, 1, 4, 5, generator=g) > 0.5).float()
    official = (pred - target).abs().mean() + ((pred - target).abs() * mask).mean()
    torch.testing.assert_close(pose_mask_l1(pred, target, mask), official)


def test_pose_mask_l1_zero_mask_is_plain_l1_and_full_mask_doubles_it():
    pred, target = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(pose_mask_l1(pred, target, torch.zeros(2, 1, 4, 4)), l1(pred, target))
    torch.testing.assert_close(pose_mask_l1(pred, target, torch.ones(2, 1, 4, 4)), 2 * l1(pred, target))


def test_losses_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        l1(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))
    with pytest.raises(ValueError, match="mask"):
        pose_mask_l1(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="mask"):
        pose_mask_l1(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 4))


def test_losses_are_float32_for_bfloat16_inputs():
    pred = torch.tensor([[[[1.0, 0.0]]]], dtype=torch.bfloat16)
    target = torch.zeros_like(pred)
    assert l1(pred, target).dtype == torch.float32
    assert bce_g_loss(torch.zeros(2, dtype=torch.bfloat16)).dtype == torch.float32


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_bce_d_loss_exact_values():
    # BCE(x, 1) = log(1 + e^-x); BCE(x, 0) = log(1 + e^x); each term is the batch mean (eq. 2).
    assert bce_d_loss(torch.zeros(3), torch.zeros(3)).item() == pytest.approx(2 * math.log(2))
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5])
    expected = (_softplus(-2.0) + _softplus(1.0)) / 2 + _softplus(0.5)
    assert bce_d_loss(real, fake).item() == pytest.approx(expected, rel=1e-6)


def test_bce_g_loss_exact_value_and_non_saturating():
    fake = torch.tensor([0.0, 3.0])
    assert bce_g_loss(fake).item() == pytest.approx((math.log(2) + _softplus(-3.0)) / 2, rel=1e-6)
    # Non-saturating (eq. 3): a confidently rejected fake still gives a gradient near -1.
    x = torch.tensor([-20.0], requires_grad=True)
    bce_g_loss(x).backward()
    assert x.grad.item() == pytest.approx(-1.0, abs=1e-6)


def test_bce_stable_for_extreme_logits():
    loss = bce_d_loss(torch.tensor([1e4]), torch.tensor([-1e4]))
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert math.isfinite(bce_g_loss(torch.tensor([-1e4])).item())
