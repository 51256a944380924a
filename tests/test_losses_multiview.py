"""The multiview objective (eqs. 1-4) over logits: hand-computed values, unpaired poses, weights."""

from __future__ import annotations

import math

import pytest
import torch

from posetransfer.errors import ConfigError
from posetransfer.losses.multiview import (
    MultiViewLossWeights,
    discriminator_loss,
    gan_loss,
    generator_adversarial_loss,
    generator_loss,
    unpaired_indices,
)


def test_gan_loss_hand_values():
    z = torch.zeros(1, 1, 2, 2)
    assert gan_loss(z, True).item() == pytest.approx(math.log(2))
    assert gan_loss(z, False).item() == pytest.approx(math.log(2))
    logits = torch.tensor([[[[2.0, -1.0]]]])
    # -mean(log sigmoid(l)) for real, -mean(log(1 - sigmoid(l))) for fake
    real = -(math.log(1 / (1 + math.exp(-2))) + math.log(1 / (1 + math.exp(1)))) / 2
    fake = -(math.log(1 - 1 / (1 + math.exp(-2))) + math.log(1 - 1 / (1 + math.exp(1)))) / 2
    assert gan_loss(logits, True).item() == pytest.approx(real, rel=1e-6)
    assert gan_loss(logits, False).item() == pytest.approx(fake, rel=1e-6)
    assert gan_loss(logits, True, "lsgan").item() == pytest.approx(((2 - 1) ** 2 + (-1 - 1) ** 2) / 2)
    assert gan_loss(logits, False, "lsgan").item() == pytest.approx((4 + 1) / 2)
    with pytest.raises(ConfigError, match="wgan"):
        gan_loss(logits, True, "wgan")  # type: ignore[arg-type]


def test_discriminator_and_generator_terms():
    real, fake = torch.tensor([3.0, 1.0]), torch.tensor([-2.0, 0.5])
    d = discriminator_loss(real, fake)
    assert d.item() == pytest.approx(gan_loss(real, True).item() + gan_loss(fake, False).item())
    mism = torch.tensor([0.0, 4.0])
    d_m = discriminator_loss(real, fake, mismatched_logits=mism)
    expected = gan_loss(real, True) + 0.5 * (gan_loss(fake, False) + gan_loss(mism, False))
    assert d_m.item() == pytest.approx(expected.item())
    # a confident, correct discriminator has a small loss; the generator's loss is then large
    assert discriminator_loss(torch.full((4,), 8.0), torch.full((4,), -8.0)).item() < 1e-3
    assert generator_adversarial_loss(torch.full((4,), -8.0)).item() == pytest.approx(8.0, abs=1e-3)


def test_unpaired_indices_never_pick_the_item_itself():
    gen = torch.Generator().manual_seed(0)
    for n in (2, 3, 7):
        for _ in range(20):
            idx = unpaired_indices(n, gen)
            assert sorted(idx.tolist()) == list(range(n))
            assert all(i != j for i, j in enumerate(idx.tolist()))
    with pytest.raises(ValueError, match="at least 2"):
        unpaired_indices(1)


def test_generator_loss_terms_and_weights():
    fake = torch.tensor([[[[0.5, -0.5]]]]).expand(1, 3, 1, 2).clone().requires_grad_()
    target = torch.zeros(1, 3, 1, 2)
    logits = torch.zeros(1, 1, 2, 2)
    w = MultiViewLossWeights(l1=2.0, perceptual=1.0, alpha=0.5, beta=0.25)
    terms = generator_loss(
        fake,
        target,
        perceptual=lambda a, b: (a - b).pow(2).mean(),
        d_image_logits=logits,
        d_pose_logits=logits,
        weights=w,
    )
    assert set(terms) == {"l1", "perceptual", "adv_image", "adv_pose", "total"}
    assert terms["l1"].item() == pytest.approx(2.0 * 0.5)
    assert terms["perceptual"].item() == pytest.approx(0.25)
    assert terms["adv_image"].item() == pytest.approx(0.5 * math.log(2))
    assert terms["adv_pose"].item() == pytest.approx(0.25 * math.log(2))
    assert terms["total"].item() == pytest.approx(1.0 + 0.25 + 0.75 * math.log(2))
    terms["total"].backward()
    assert fake.grad is not None

    # ablations: G + D_P (alpha = 0) and G + D_I (beta = 0) drop the term
    only_p = generator_loss(fake, target, d_image_logits=logits, d_pose_logits=logits,
                            weights=MultiViewLossWeights(alpha=0.0))  # fmt: skip
    assert "adv_image" not in only_p and "adv_pose" in only_p
    assert set(generator_loss(fake, target)) == {"l1", "total"}


def test_weights_reject_bad_values():
    with pytest.raises(ConfigError, match="alpha"):
        MultiViewLossWeights(alpha=-1.0)
