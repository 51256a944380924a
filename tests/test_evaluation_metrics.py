"""Metric formulas on injected features / hand-made images: FID, IS, PSNR, L1, masked L1, PCKh, PCK."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

from posetransfer.evaluation.metrics import (
    CHEAP_METRICS,
    compute_metrics,
    feature_statistics,
    fid_from_features,
    frechet_distance,
    inception_score_from_probs,
    l1,
    masked_l1,
    psnr,
)
from posetransfer.evaluation.pck import pck, pckh
from posetransfer.evaluation.ssim import ssim_pg2

# ------------------------------------------------------------------ FID


def test_fid_of_identical_sets_is_zero():
    f = np.random.default_rng(0).normal(size=(300, 16))
    assert abs(fid_from_features(f, f)) < 1e-6


def test_fid_diagonal_gaussians_hand_computed():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    # |mu1 - mu2|^2 + sum(s1 + s2 - 2 sqrt(s1 s2)) = 5 + (1 + 1 + 4) = 11
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert expected == pytest.approx(11.0)
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, abs=1e-9)


def test_fid_singular_covariances_use_the_eps_offset():
    # rank-deficient covariances (fewer samples than dimensions) still give a finite, small value
    f = np.random.default_rng(1).normal(size=(5, 8))
    assert abs(fid_from_features(f, f)) < 1e-3


def test_feature_statistics_match_numpy():
    f = np.random.default_rng(2).normal(size=(50, 4))
    mu, sigma = feature_statistics(f)
    np.testing.assert_allclose(mu, f.mean(0))
    np.testing.assert_allclose(sigma, np.cov(f, rowvar=False))
    with pytest.raises(ValueError, match="at least 2"):
        feature_statistics(f[:1])


# ------------------------------------------------------------------ IS


def test_is_of_uniform_probabilities_is_one():
    p = np.full((100, 1008), 1 / 1008)
    mean, std = inception_score_from_probs(p)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_is_of_one_hot_distinct_classes_is_their_number():
    n = 20
    p = np.eye(n)
    assert inception_score_from_probs(p, splits=1)[0] == pytest.approx(n)
    # with 10 splits each part holds 2 distinct classes
    assert inception_score_from_probs(p, splits=10)[0] == pytest.approx(2.0)


def test_is_needs_enough_images():
    with pytest.raises(ValueError, match="at least 10"):
        inception_score_from_probs(np.eye(5))


# ------------------------------------------------------------------ pixel metrics


def test_psnr_equals_skimage_and_identical_is_inf():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    expected = [peak_signal_noise_ratio(x, y, data_range=255) for x, y in zip(b, a)]
    np.testing.assert_allclose(psnr(a, b), expected)
    assert np.isinf(psnr(a, a)).all()


def test_l1_and_masked_l1_hand_computed():
    gen = np.zeros((1, 2, 2, 3), np.uint8)
    tgt = np.zeros((1, 2, 2, 3), np.uint8)
    tgt[0, 0, 0] = 255  # one pixel differs by the full range: 2 on the [-1, 1] scale
    assert l1(gen, tgt)[0] == pytest.approx(2 * 3 / 12)
    mask = np.array([[[1, 1], [0, 0]]], np.float32)
    assert masked_l1(gen, tgt, mask)[0] == pytest.approx(2 * 3 / (3 * 2))
    assert np.isnan(masked_l1(gen, tgt, np.zeros((1, 2, 2))))[0]


def test_compute_metrics_cheap_set():
    rng = np.random.default_rng(4)
    gen = rng.integers(0, 256, (3, 16, 12, 3), dtype=np.uint8)
    tgt = rng.integers(0, 256, (3, 16, 12, 3), dtype=np.uint8)
    masks = np.zeros((3, 16, 12), np.float32)
    masks[:, 2:14, 3:9] = 1
    per_pair: dict = {}
    out = compute_metrics(gen, tgt, masks, CHEAP_METRICS, patn_masks=masks, per_pair=per_pair)
    assert set(out) == set(CHEAP_METRICS) | {"pairs"} and out["pairs"] == 3
    assert out["ssim_pg2"] == pytest.approx(ssim_pg2(gen, tgt).mean())
    assert per_pair["psnr"].shape == (3,)
    with pytest.raises(ValueError, match="pg2 pose masks"):
        compute_metrics(gen, tgt, None, ["mask_ssim_pg2"])
    with pytest.raises(ValueError, match="patn pose masks"):
        compute_metrics(gen, tgt, masks, ["mask_ssim_patn"])
    with pytest.raises(ValueError, match="Inception"):
        compute_metrics(gen, tgt, None, ["is"])
    with pytest.raises(ValueError, match="unknown metrics"):
        compute_metrics(gen, tgt, None, ["ssim"])


# ------------------------------------------------------------------ PCKh / PCK


def _pose(points: dict[int, tuple[float, float]]) -> np.ndarray:
    kp = np.full((18, 2), -1, np.float32)
    for j, (y, x) in points.items():
        kp[j] = (y, x)
    return kp


def test_pckh_follows_patn_per_axis_head_box():
    # head box from nose (10, 20) and neck (30, 28): height 20, width 8 -> thresholds 10 and 4
    target = _pose({0: (10, 20), 1: (30, 28), 2: (40, 10), 3: (60, 10), 5: (40, 40)})
    pred = target.copy()
    pred[2] = (40 + 9.9, 10 + 3.9)  # inside both axis thresholds: correct
    pred[3] = (60 + 10, 10)  # |dy| = 10 is not < 10: wrong
    pred[5] = (-1, -1)  # missing in the prediction: wrong
    score, correct, total = pckh(pred[None], target[None])
    assert (correct, total) == (3, 5) and score == pytest.approx(0.6)


def test_pckh_skips_images_without_a_head_box():
    no_head = _pose({0: (10, 20), 2: (40, 10)})  # one head part only
    assert pckh(no_head[None], no_head[None])[1:] == (0, 0)
    assert np.isnan(pckh(no_head[None], no_head[None])[0])


def test_pck_uses_the_person_box():
    target = _pose({0: (0, 0), 10: (100, 50)})  # box 100 x 50 -> threshold 0.1 * 100 = 10
    pred = target.copy()
    pred[10] = (100 + 6, 50 + 8)  # distance 10: correct (<=)
    assert pck(pred[None], target[None])[1:] == (2, 2)
    pred[10] = (100 + 6, 50 + 8.1)
    assert pck(pred[None], target[None])[1:] == (1, 2)
    with pytest.raises(ValueError, match="18, 2"):
        pck(np.zeros((1, 17, 2)), np.zeros((1, 17, 2)))


def test_compute_metrics_inception_metrics_with_an_injected_network():
    """IS, mask-IS and FID through compute_metrics, with a tiny stand-in for the Inception."""
    import torch

    from posetransfer.evaluation.inception import inception_outputs

    class TinyInception(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(3, 4)

        def forward(self, x):  # (N, 3, H, W) in [0, 1] -> pool3 (N, 4), logits (N, 5)
            pool3 = self.proj(x.mean(dim=(2, 3)))
            return pool3, torch.cat([pool3, -pool3.sum(1, keepdim=True)], 1) * 10

    rng = np.random.default_rng(5)
    gen = rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
    tgt = rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
    masks = np.ones((20, 8, 8), np.float32)
    net = TinyInception().eval()
    feats, probs = inception_outputs(net, gen)
    assert feats.shape == (20, 4) and probs.shape == (20, 5)
    np.testing.assert_allclose(probs.sum(1), 1.0)
    out = compute_metrics(gen, tgt, masks, ["is", "mask_is", "fid"], inception=net, real_stats=feature_statistics(feats))
    assert abs(out["fid"]) < 1e-6  # the generated set against its own statistics
    assert out["is"] == pytest.approx(inception_score_from_probs(probs)[0])
    assert out["mask_is"] == pytest.approx(out["is"])  # an all-ones mask changes nothing
    assert out["is"] > 1.0 and "is_std" in out and out["pairs"] == 20
