"""The torch SSIM equals scikit-image's structural_similarity under PG2's and PATN's conventions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from posetransfer.evaluation.ssim import add_bounding, apply_mask, gaussian_window, ssim_patn, ssim_pg2
from posetransfer.pose.io import read_pairs
from posetransfer.utils.io import read_image


def _pairs(folder, n=6):
    pairs = read_pairs(folder / "pairs.csv")[:n]
    gen = np.stack([read_image(folder / "images" / a) for a, _ in pairs])
    tgt = np.stack([read_image(folder / "images" / b) for _, b in pairs])
    return gen, tgt


def _sk_pg2(gen, tgt):
    return np.array([structural_similarity(t, g, channel_axis=-1) for g, t in zip(gen, tgt)])


def _sk_patn(gen, tgt):
    # PATN's getMetrics: compare_ssim(reference, generated, gaussian_weights=True, sigma=1.5,
    # use_sample_covariance=False, multichannel=True, data_range=generated.max() - generated.min())
    return np.array([
        structural_similarity(t, g, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False, data_range=float(g.max()) - float(g.min()))
        for g, t in zip(gen, tgt)
    ])  # fmt: skip


@pytest.fixture(scope="module")
def market(mini_market):
    return _pairs(mini_market)


@pytest.fixture(scope="module")
def fashion(mini_fashion):
    return _pairs(mini_fashion, n=4)


def test_real_images_have_the_expected_sizes(market, fashion):
    assert market[0].shape[1:] == (128, 64, 3)
    assert fashion[0].shape[1:] == (256, 176, 3)


@pytest.mark.parametrize("which", ["market", "fashion"])
def test_pg2_equals_skimage_defaults(which, request):
    gen, tgt = request.getfixturevalue(which)
    ref = _sk_pg2(gen, tgt)
    # float32 filtering is exact here (integer box sums below 2^24), float64 too.
    np.testing.assert_allclose(ssim_pg2(gen, tgt), ref, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ssim_pg2(gen, tgt, dtype=torch.float64), ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("which,bound", [("market", 0), ("fashion", 0), ("fashion", 40)])
def test_patn_equals_skimage_gaussian(which, bound, request):
    gen, tgt = request.getfixturevalue(which)
    ref = _sk_patn(add_bounding(gen, bound), add_bounding(tgt, bound)) if bound else _sk_patn(gen, tgt)
    np.testing.assert_allclose(ssim_patn(gen, tgt, bound=bound, dtype=torch.float64), ref, rtol=0, atol=1e-6)
    # float32 (the fast default): ~1e-6 per image, far less on the mean.
    fast = ssim_patn(gen, tgt, bound=bound)
    np.testing.assert_allclose(fast, ref, rtol=0, atol=5e-6)
    assert abs(fast.mean() - ref.mean()) < 1e-6


def test_padding_changes_patn_ssim_on_deepfashion(fashion):
    gen, tgt = fashion
    assert add_bounding(gen).shape[1:] == (256, 256, 3)
    assert (add_bounding(gen)[:, :, :40] == 255).all()
    assert not np.allclose(ssim_patn(gen, tgt, bound=40), ssim_patn(gen, tgt))


def test_batches_give_the_same_values_as_one_call(market):
    gen, tgt = market
    np.testing.assert_allclose(ssim_pg2(gen, tgt, batch_size=2), ssim_pg2(gen, tgt), atol=1e-12)
    np.testing.assert_allclose(ssim_patn(gen, tgt, batch_size=4), ssim_patn(gen, tgt), atol=1e-12)


def test_identical_images_score_one_and_order_does_not_matter(market):
    gen, tgt = market
    np.testing.assert_allclose(ssim_pg2(tgt, tgt), 1.0, atol=1e-12)
    np.testing.assert_allclose(ssim_patn(tgt, tgt), 1.0, atol=1e-9)
    np.testing.assert_allclose(ssim_pg2(gen, tgt), ssim_pg2(tgt, gen), atol=1e-12)


def test_gaussian_window_is_scipys_eleven_taps():
    w = gaussian_window(1.5)
    assert w.size == 11 and abs(w.sum() - 1) < 1e-15
    assert w[5] == w.max() and np.allclose(w, w[::-1])


def test_mask_ssim_hand_made_case():
    """Equal inside the mask, different outside: mask-SSIM is exactly 1 while SSIM is not."""
    rng = np.random.default_rng(0)
    tgt = rng.integers(0, 256, (1, 32, 24, 3), dtype=np.uint8)
    gen = rng.integers(0, 256, (1, 32, 24, 3), dtype=np.uint8)
    mask = np.zeros((1, 32, 24), np.float32)
    mask[:, 4:28, 6:18] = 1
    gen[mask.astype(bool)] = tgt[mask.astype(bool)]
    mg, mt = apply_mask(gen, mask), apply_mask(tgt, mask)
    assert mg.dtype == np.uint8 and (mg[0, :4] == 0).all() and (mg[0, 10, 10] == tgt[0, 10, 10]).all()
    np.testing.assert_array_equal(mg, mt)
    assert ssim_pg2(mg, mt)[0] == pytest.approx(1.0, abs=1e-12)
    assert ssim_pg2(gen, tgt)[0] < 0.9
    # and on a partial overlap, it is scikit-image's SSIM of the masked uint8 images
    gen2 = gen.copy()
    gen2[0, 10:14, 8:12] = 0
    mg2 = apply_mask(gen2, mask)
    assert ssim_pg2(mg2, mt)[0] == pytest.approx(structural_similarity(mt[0], mg2[0], channel_axis=-1), abs=1e-9)


def test_bad_inputs_raise():
    a = np.zeros((1, 16, 16, 3), np.uint8)
    with pytest.raises(TypeError, match="uint8"):
        ssim_pg2(a.astype(np.float32), a.astype(np.float32))
    with pytest.raises(ValueError, match="differ in shape"):
        ssim_pg2(a, np.zeros((1, 16, 17, 3), np.uint8))
    with pytest.raises(ValueError, match="smaller than"):
        ssim_patn(np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="do not match"):
        apply_mask(a, np.ones((1, 15, 16)))
