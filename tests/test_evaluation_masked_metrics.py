"""Masked metrics and PATN's padding against the released score scripts, on the real-mini pairs.

References written from the scripts (not from our code):

* PG2 mask-SSIM, charliememory/Pose-Guided-Person-Image-Generation ``score_mask.py`` lines 80-82:
  ``np.uint8(mask[:, :, None] / 255. * img)`` for both images, then ``compare_ssim(G, x,
  multichannel=True)`` (scikit-image defaults; ``structural_similarity(..., channel_axis=-1)`` today).
  The mask PNGs it reads (its ``mask`` folder) are written by ``trainer.py`` lines 402-403 from
  ``mask_fixed``, the *condition* image's ``pose_mask_r4_0``, times 255 (lines 455-460).
* PATN mask-SSIM, tengteng95/Pose-Transfer ``tool/getMetrics_market.py`` lines 21-28 (``ssim_score``)
  and 39-52 (``create_masked_image``: ``image * produce_ma_mask(kp_to, image.shape[:2])[..., None]``
  with the *target's* keypoints), used at line 112.
* PATN DeepFashion, ``tool/getMetrics_fashion.py`` lines 58-64 (``addBounding``: 40 white columns
  per side) applied at lines 78-80 to every image before the IS (line 102) and the SSIM (line 106).
"""

from __future__ import annotations

import numpy as np
import pytest
from reference_protocols import patn_produce_ma_mask, peaks_from_pose, pg2_get_pose_mask
from skimage.metrics import structural_similarity

from posetransfer.evaluation.evaluate import EvaluationSet, evaluate_set
from posetransfer.evaluation.metrics import compute_metrics, inception_score_from_probs
from posetransfer.evaluation.ssim import add_bounding
from posetransfer.pose.io import read_annotations, read_pairs
from posetransfer.utils.io import read_image


N_PAIRS = 32  # the first pairs of each real-mini set: the per-image scikit-image references are slow


def _real_pairs(folder):
    """(generated, target, source keypoints, target keypoints): "generated" = the condition image
    (the copy-the-source baseline), a realistic non-trivial input for the masked SSIMs."""
    ann = read_annotations(folder / "annotation.csv")
    pairs = read_pairs(folder / "pairs.csv")[:N_PAIRS]
    gen = np.stack([read_image(folder / "images" / a) for a, _ in pairs])
    tgt = np.stack([read_image(folder / "images" / b) for _, b in pairs])
    return gen, tgt, np.stack([ann[a] for a, _ in pairs]), np.stack([ann[b] for _, b in pairs]), pairs


@pytest.fixture(scope="module", params=["market", "fashion"])
def real(request, mini_market, mini_fashion):
    return _real_pairs(mini_market if request.param == "market" else mini_fashion)


def _ref_pg2_mask_ssim(gen, tgt, kps):
    scores = []
    for g, x, kp in zip(gen, tgt, kps):
        mask = np.uint8(pg2_get_pose_mask(peaks_from_pose(kp.astype(np.int64)), *g.shape[:2]) * 255)
        masked_g = np.uint8(mask[:, :, np.newaxis] / 255.0 * g)
        masked_x = np.uint8(mask[:, :, np.newaxis] / 255.0 * x)
        scores.append(structural_similarity(masked_g, masked_x, channel_axis=-1))
    return float(np.mean(scores))


def _ref_patn_ssim(generated_images, reference_images):
    out = []
    for reference_image, generated_image in zip(reference_images, generated_images):
        out.append(structural_similarity(reference_image, generated_image, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False, channel_axis=-1,
                                         data_range=generated_image.max() - generated_image.min()))  # fmt: skip
    return float(np.mean(out))


def _ref_patn_masked(images, kps):
    return [image * patn_produce_ma_mask(kp.astype(np.int64), image.shape[:2])[..., np.newaxis] for image, kp in zip(images, kps)]


def _eval_set(gen, tgt, src_kp, tgt_kp, pairs, tmp_path):
    return EvaluationSet(
        generated_files=[tmp_path / f"{i}.png" for i in range(len(gen))], pairs=pairs, generated=gen, targets=tgt,
        target_keypoints=tgt_kp.astype(np.float32), images_dir=tmp_path, source_keypoints=src_kp.astype(np.float32),
    )  # fmt: skip


def test_mask_ssim_pg2_and_patn_equal_the_released_scripts(real, tmp_path):
    gen, tgt, src_kp, tgt_kp, pairs = real
    values, _ = evaluate_set(_eval_set(gen, tgt, src_kp, tgt_kp, pairs, tmp_path), ["mask_ssim_pg2", "mask_ssim_patn"], bound=0)
    assert values["mask_ssim_pg2"] == pytest.approx(_ref_pg2_mask_ssim(gen, tgt, tgt_kp), abs=1e-6)
    ref_patn = _ref_patn_ssim(_ref_patn_masked(gen, tgt_kp), _ref_patn_masked(tgt, tgt_kp))
    assert values["mask_ssim_patn"] == pytest.approx(ref_patn, abs=1e-6)
    assert values["mask_ssim_pg2"] != pytest.approx(values["mask_ssim_patn"], abs=1e-3)  # two different protocols


def test_pg2_condition_mask_option_equals_the_released_score_script(real, tmp_path):
    gen, tgt, src_kp, tgt_kp, pairs = real
    data = _eval_set(gen, tgt, src_kp, tgt_kp, pairs, tmp_path)
    cond, _ = evaluate_set(data, ["mask_ssim_pg2"], bound=0, pg2_mask_of="condition")
    assert cond["mask_ssim_pg2"] == pytest.approx(_ref_pg2_mask_ssim(gen, tgt, src_kp), abs=1e-6)
    target, _ = evaluate_set(data, ["mask_ssim_pg2"], bound=0)
    assert target["mask_ssim_pg2"] != pytest.approx(cond["mask_ssim_pg2"], abs=1e-4)


def test_patn_bound_pads_ssim_as_the_fashion_script(mini_fashion):
    gen, tgt, _, _, _ = _real_pairs(mini_fashion)
    out = compute_metrics(gen, tgt, None, ["ssim_patn"], bound=40)
    assert out["ssim_patn"] == pytest.approx(_ref_patn_ssim(add_bounding(gen, 40), add_bounding(tgt, 40)), abs=1e-6)
    # addBounding: 40 white columns each side, the image in the middle
    padded = add_bounding(gen[:1], 40)[0]
    assert padded.shape == (256, 256, 3) and (padded[:, :40] == 255).all() and (padded[:, 216:] == 255).all()
    np.testing.assert_array_equal(padded[:, 40:216], gen[0])


def _tiny_inception():
    """A stand-in Inception: logits from the mean colour (which white padding and masks move)."""
    import torch

    class TinyInception(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(3.0))

        def forward(self, x):
            m = x.mean(dim=(2, 3))
            return m, self.scale * torch.cat([m, -m.sum(1, keepdim=True), torch.zeros_like(m[:, :1])], 1)

    return TinyInception().eval()


def test_patn_bound_pads_the_inception_score_too():
    """IS on the padded images (getMetrics_fashion.py line 102 scores the addBounding images)."""
    from posetransfer.evaluation.inception import inception_outputs

    rng = np.random.default_rng(1)
    gen = rng.integers(0, 256, (20, 16, 8, 3), dtype=np.uint8)
    net = _tiny_inception()
    padded_probs = inception_outputs(net, add_bounding(gen, 40))[1]
    plain_probs = inception_outputs(net, gen)[1]
    assert np.abs(padded_probs - plain_probs).max() > 1e-3  # the padding changes what the network sees
    padded = compute_metrics(gen, gen, None, ["is"], inception=net, bound=40)["is"]
    assert padded == pytest.approx(inception_score_from_probs(padded_probs)[0], abs=1e-9)
    plain = compute_metrics(gen, gen, None, ["is"], inception=net, bound=0)["is"]
    assert plain == pytest.approx(inception_score_from_probs(plain_probs)[0], abs=1e-9)


def test_mask_is_patn_scores_the_patn_masked_images(mini_market):
    """getMetrics_market.py lines 105-108: IS of create_masked_image(generated) (the patn mask)."""
    from posetransfer.evaluation.inception import inception_outputs

    gen, tgt, _, tgt_kp, _ = _real_pairs(mini_market)
    gen, tgt, tgt_kp = gen[:20], tgt[:20], tgt_kp[:20]
    net = _tiny_inception()
    from posetransfer.pose.masks import patn_mask, pg2_mask

    out = compute_metrics(gen, tgt, pg2_mask(tgt_kp, (128, 64)), ["mask_is", "mask_is_patn"], inception=net,
                          patn_masks=patn_mask(tgt_kp, (128, 64)))  # fmt: skip
    ref = inception_score_from_probs(inception_outputs(net, np.stack(_ref_patn_masked(gen, tgt_kp)))[1])[0]
    assert out["mask_is_patn"] == pytest.approx(ref, abs=1e-9)
    assert out["mask_is_patn"] != pytest.approx(out["mask_is"], abs=1e-6)
