"""SSIM / LPIPS conventions of GFLA, PIDM and CFLD against references written from their released
scripts, on the real-mini pairs (metrics to 1e-6).

References (each calls scikit-image with the released script's arguments; ``compare_ssim`` of
scikit-image < 0.16 is ``structural_similarity``, with ``multichannel=True`` now ``channel_axis=-1``,
and it cast its inputs to float64):

* GFLA, github.com/RenYurui/Global-Flow-Local-Attention, ``script/metrics.py``
  ``Reconstruction_Metrics.calculate_from_disk`` (lines 334-345 of the fetched copy): ``img =
  imread(...).astype(np.float32) / 255.0``; ``compare_ssim(img_gt, img_pred, data_range=1,
  win_size=51, multichannel=True)``; ``ssim_256`` with ``gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=img_pred_256.max() - img_pred_256.min()``.
* PIDM, github.com/ankanbhunia/PIDM, ``utils/metrics.py`` (the ``ssim_256`` call, line ~349): the same
  with ``sigma=1.2``.
* GFLA ``LPIPS.calculate_from_disk``: batches of 64, ``n_batches = d0 // batch_size``, then
  ``np.average`` of the batch results.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from posetransfer.evaluation.protocols import gfla_used_pairs, lpips_gfla, ssim_gfla, ssim_pidm
from posetransfer.evaluation.ssim import ssim_patn
from posetransfer.utils.io import read_image


def _pairs(folder, n=12):
    with open(folder / "pairs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))[:n]
    gen = np.stack([read_image(folder / "images" / r["from"]) for r in rows])
    tgt = np.stack([read_image(folder / "images" / r["to"]) for r in rows])
    return gen, tgt


def _ref_gfla_ssim(gen_u8, tgt_u8):
    out = []
    for g, t in zip(gen_u8, tgt_u8):
        img_gt = t.astype(np.float32) / 255.0
        img_pred = g.astype(np.float32) / 255.0
        out.append(structural_similarity(img_gt.astype(np.float64), img_pred.astype(np.float64),
                                         data_range=1, win_size=51, channel_axis=-1))  # fmt: skip
    return np.array(out)


def _ref_ssim_256(gen_u8, tgt_u8, sigma):
    out = []
    for g, t in zip(gen_u8, tgt_u8):
        img_gt_256 = (t.astype(np.float32) / 255.0) * 255.0
        img_pred_256 = (g.astype(np.float32) / 255.0) * 255.0
        out.append(structural_similarity(
            img_gt_256.astype(np.float64), img_pred_256.astype(np.float64), gaussian_weights=True, sigma=sigma,
            use_sample_covariance=False, channel_axis=-1, data_range=float(img_pred_256.max() - img_pred_256.min()),
        ))  # fmt: skip
    return np.array(out)


@pytest.mark.parametrize("which", ["mini_market", "mini_fashion"])
def test_ssim_gfla_equals_the_released_call(which, request):
    gen, tgt = _pairs(request.getfixturevalue(which), n=12 if which == "mini_market" else 3)
    np.testing.assert_allclose(ssim_gfla(gen, tgt), _ref_gfla_ssim(gen, tgt), atol=1e-6, rtol=0)


@pytest.mark.parametrize("which", ["mini_market", "mini_fashion"])
def test_ssim_pidm_equals_the_released_call_and_differs_from_sigma_1_5(which, request):
    gen, tgt = _pairs(request.getfixturevalue(which), n=12 if which == "mini_market" else 3)
    pidm = ssim_pidm(gen, tgt)
    np.testing.assert_allclose(pidm, _ref_ssim_256(gen, tgt, 1.2), atol=1e-6, rtol=0)
    # GFLA's / CFLD's ssim_256 (sigma 1.5) is PATN's convention: ssim_patn without padding
    np.testing.assert_allclose(ssim_patn(gen, tgt, dtype=__import__("torch").float64), _ref_ssim_256(gen, tgt, 1.5), atol=1e-6)
    assert np.abs(pidm - _ref_ssim_256(gen, tgt, 1.5)).max() > 1e-3  # a different number, hence its own name


def test_lpips_gfla_drops_the_last_incomplete_batch():
    d = np.arange(130, dtype=np.float64)
    assert gfla_used_pairs(130) == 128 and gfla_used_pairs(50) == 50 and gfla_used_pairs(64) == 64
    assert lpips_gfla(d) == pytest.approx(np.arange(128).mean())  # the reference: batches 0..63, 64..127
    assert lpips_gfla(d[:50]) == pytest.approx(np.arange(50).mean())  # a set under 64 is one batch
