"""The metrics of PG2's Table 1 and of later work, each named for the protocol it reproduces.

Names (the keys of ``metrics.json``):

=================  ==========================================================================
``ssim_pg2``       SSIM, scikit-image defaults on uint8 (PG2, Ma et al. 2017, Table 1)
``ssim_patn``      SSIM, Gaussian sigma 1.5, population covariance, data range of the generated
                   image (PATN, Zhu et al. 2019 ``getMetrics_*.py``); with ``bound=40`` PATN's
                   white padding of 176-wide DeepFashion (:func:`.ssim.add_bounding`)
``mask_ssim_pg2``  ``ssim_pg2`` on both images times the pg2 pose mask (PG2's released ``_getPoseMask``)
                   of the target's keypoints (PG2 Table 1 "mask-SSIM", ``score_mask.py``)
``mask_ssim_patn`` ``ssim_patn`` on both images times the patn mask (PATN's ``produce_ma_mask``) of
                   the target's keypoints (PATN's ``getMetrics_market.py``)
``psnr``           PSNR on uint8, data range 255, per image then averaged
``l1``             mean |generated - target| on the [-1, 1] scale (PATN's ``l1_score``)
``masked_l1``      the same over the target's pose-mask pixels only (pairs with an empty mask skipped)
``is``             Inception Score, 10 splits (Salimans et al. 2016), TF-Inception 1008-way softmax;
                   with ``bound=40`` on the white-padded images (PATN's ``getMetrics_fashion.py``)
``mask_is``        the IS of the generated images times the pg2 mask (PG2 Table 1 "mask-IS")
``mask_is_patn``   the IS of the generated images times the patn mask (PATN's ``getMetrics_market.py``)
``fid``            FID (Heusel et al. 2017), 2048-d pool3 features, real statistics of a real set
``lpips``          LPIPS-Alex v0.1, per pair then averaged
``pckh``           PCKh (PATN's ``calPCKH_*.py``) with the keypoints of the OpenPose network that made
                   the annotations (the ``openpose`` pose backend)
``pckh_mediapipe`` the same PCKh with mediapipe's keypoints (when the OpenPose weights are absent)
``fid_gfla``       FID with torchvision's Inception v3 as GFLA's ``script/metrics.py`` (.inception_gfla)
``fid_cfld``       the same network with every image, as CFLD's ``models/metrics.py`` (.fid)
``ssim_gfla``      GFLA's ``ssim``: float images in [0, 1], data range 1, 51x51 uniform window
``ssim_pidm``      PIDM's ``ssim_256``: PATN's convention with a Gaussian sigma of 1.2 instead of 1.5
``lpips_gfla``     LPIPS-Alex v0.1 over GFLA's batches of 64, the last incomplete batch dropped
``mask_lpips_gfla`` ``lpips_gfla`` on both images times the patn mask of the target's keypoints, on
                   the [-1, 1] scale (GFLA's ``calculate_mask_lpips``; Market's 128x64 images only)
=================  ==========================================================================

Every image function takes uint8 ``(N, H, W, 3)`` arrays; masks are ``(N, H, W)`` in {0, 1}.
docs/protocols.md names the released script and line each number reproduces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import linalg
from scipy.special import rel_entr

from posetransfer.evaluation.ssim import add_bounding, apply_mask, ssim_patn, ssim_pg2

CHEAP_METRICS = ("ssim_pg2", "ssim_patn", "mask_ssim_pg2", "mask_ssim_patn", "psnr", "l1", "masked_l1")
INCEPTION_METRICS = ("is", "mask_is", "mask_is_patn", "fid")
# Named conventions of later tables (GFLA, PIDM, CFLD), computed by evaluation.evaluate / .protocols.
PROTOCOL_METRICS = ("fid_gfla", "fid_cfld", "ssim_gfla", "ssim_pidm", "lpips_gfla", "pckh_mediapipe", "mask_lpips_gfla")
ALL_METRICS = CHEAP_METRICS + INCEPTION_METRICS + ("lpips", "pckh") + PROTOCOL_METRICS
COMPUTED_BY_COMPUTE_METRICS = CHEAP_METRICS + INCEPTION_METRICS + ("lpips",)
MASK_METRICS = ("mask_ssim_pg2", "mask_ssim_patn", "masked_l1", "mask_is", "mask_is_patn")
PG2_MASK_METRICS = ("mask_ssim_pg2", "masked_l1", "mask_is")  # the pg2 mask (``masks``)
PATN_MASK_METRICS = ("mask_ssim_patn", "mask_is_patn")  # the patn mask (``patn_masks``)
# Which way is better, for the report's best/worst pairs and the comparison table.
HIGHER_IS_BETTER = {
    "ssim_pg2": True, "ssim_patn": True, "mask_ssim_pg2": True, "mask_ssim_patn": True,
    "psnr": True, "l1": False, "masked_l1": False, "is": True, "mask_is": True, "mask_is_patn": True,
    "fid": False, "lpips": False, "pckh": True,
    "fid_gfla": False, "fid_cfld": False, "ssim_gfla": True, "ssim_pidm": True, "lpips_gfla": False, "pckh_mediapipe": True,
    "mask_lpips_gfla": False,
}  # fmt: skip


# ----------------------------------------------------------------------------- pixel metrics


def psnr(generated: np.ndarray, target: np.ndarray) -> np.ndarray:
    """PSNR per pair in dB on uint8 (``skimage.metrics.peak_signal_noise_ratio`` with data range
    255, vectorised): ``10 log10(255^2 / MSE)``; identical images give ``inf``."""
    d = generated.astype(np.float64) - target.astype(np.float64)
    mse = (d * d).reshape(len(d), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(255.0**2 / mse)


def l1(generated: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Mean absolute difference per pair on the [-1, 1] scale (PATN's ``l1_score``: |2(a/255 - .5)
    - 2(b/255 - .5)| = |a - b| / 127.5)."""
    d = np.abs(generated.astype(np.float64) - target.astype(np.float64)) / 127.5
    return d.reshape(len(d), -1).mean(axis=1)


def masked_l1(generated: np.ndarray, target: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Mean |generated - target| on the [-1, 1] scale over the mask's pixels (all three channels),
    per pair; NaN where the mask is empty."""
    m = (np.asarray(masks) > 0.5).astype(np.float64)
    d = np.abs(generated.astype(np.float64) - target.astype(np.float64)).sum(axis=-1) / 127.5
    area = m.reshape(len(m), -1).sum(axis=1)
    total = (d * m).reshape(len(m), -1).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(area > 0, total / (3.0 * area), np.nan)


# ----------------------------------------------------------------------------- IS and FID


def inception_score_from_probs(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """IS = exp(E_x KL(p(y|x) || p(y))) on each of ``splits`` consecutive parts; (mean, std).

    Salimans et al. 2016, as in openai/improved-gan's ``inception_score.py`` (copied by PG2 and
    PATN): part ``i`` is ``probs[i*N//splits : (i+1)*N//splits]``; the standard protocol uses 10.
    ``rel_entr`` gives 0 log 0 = 0 where the original code would give NaN for exact zeros.
    """
    probs = np.asarray(probs, dtype=np.float64)
    n = len(probs)
    if n < splits:
        raise ValueError(f"the Inception Score needs at least {splits} images for {splits} splits, got {n}")
    scores = []
    for i in range(splits):
        part = probs[i * n // splits : (i + 1) * n // splits]
        py = part.mean(axis=0, keepdims=True)
        kl = rel_entr(part, py).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (``np.cov(rowvar=False)``, N-1 normalised) of ``(N, D)`` features, as
    pytorch-fid's ``calculate_activation_statistics``."""
    features = np.asarray(features, dtype=np.float64)
    if len(features) < 2:
        raise ValueError(f"FID statistics need at least 2 images, got {len(features)}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), pytorch-fid's ``calculate_frechet_distance``.

    As there: when ``sqrtm`` of the product is not finite (a singular product), ``eps`` is added to
    both diagonals and the root taken again; an imaginary part above 1e-3 on the diagonal is an
    error, a smaller one (numerical noise) is dropped.
    """
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError("the two sets of statistics have different dimensions")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag))} in the FID matrix square root")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """FID between two feature sets ``(N1, D)`` and ``(N2, D)``."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


# ----------------------------------------------------------------------------- all at once


def _nanmean(values: np.ndarray) -> float:
    """Mean over the pairs that have a value (NaN = undefined, e.g. an empty mask); inf stays inf."""
    values = np.asarray(values, dtype=np.float64)
    keep = ~np.isnan(values)
    return float(values[keep].mean()) if keep.any() else float("nan")


def compute_metrics(
    generated: np.ndarray,
    target: np.ndarray,
    masks: np.ndarray | None = None,
    metrics: Sequence[str] = CHEAP_METRICS,
    *,
    patn_masks: np.ndarray | None = None,
    bound: int = 0,
    inception: object | None = None,
    real_stats: tuple[np.ndarray, np.ndarray] | None = None,
    lpips_model: object | None = None,
    is_splits: int = 10,
    per_pair: dict[str, np.ndarray] | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Dataset-level metrics of generated vs target images, for the CLI and for in-memory callers.

    ``generated``, ``target``: uint8 ``(N, H, W, 3)``; ``masks``: the pg2 pose masks ``(N, H, W)``
    (of the targets' keypoints: PG2's protocol) for ``mask_ssim_pg2`` / ``mask_is`` / ``masked_l1``;
    ``patn_masks``: the patn masks for ``mask_ssim_patn`` / ``mask_is_patn``; ``bound``: PATN's white padding for
    ``ssim_patn`` / ``mask_ssim_patn`` and ``is`` (40 on 176-wide DeepFashion, 0 elsewhere:
    PATN's ``getMetrics_fashion.py`` pads before both IS and SSIM). ``inception``
    (:func:`.inception.load_fid_inception`) is needed by ``is`` / ``mask_is`` / ``fid``, ``real_stats``
    (mean, covariance of real pool3 features) by ``fid``, ``lpips_model`` by ``lpips``. ``pckh`` is
    computed elsewhere (it needs a pose estimator). Per-pair values, where a metric has them, are
    written into ``per_pair`` when given. Returns ``{name: value}`` plus ``pairs`` (N); ``is`` and
    ``mask_is`` come with ``is_std`` / ``mask_is_std``.
    """
    generated = np.asarray(generated)
    target = np.asarray(target)
    if generated.dtype != np.uint8 or target.dtype != np.uint8:
        raise TypeError("compute_metrics expects uint8 images")
    if generated.shape != target.shape or generated.ndim != 4 or generated.shape[-1] != 3:
        raise ValueError(f"generated {generated.shape} and target {target.shape} must both be (N, H, W, 3)")
    unknown = [m for m in metrics if m not in ALL_METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {', '.join(ALL_METRICS)}")
    if masks is None and any(m in PG2_MASK_METRICS for m in metrics):
        raise ValueError(f"the metrics {[m for m in metrics if m in PG2_MASK_METRICS]} need the pg2 pose masks")
    if patn_masks is None and any(m in PATN_MASK_METRICS for m in metrics):
        raise ValueError(f"the metrics {[m for m in metrics if m in PATN_MASK_METRICS]} need the patn pose masks")
    if per_pair is None:
        per_pair = {}

    masked_g = masked_t = patn_g = patn_t = None
    if masks is not None and any(m in PG2_MASK_METRICS for m in metrics):
        masked_g, masked_t = apply_mask(generated, masks), apply_mask(target, masks)
    if patn_masks is not None and any(m in PATN_MASK_METRICS for m in metrics):
        patn_g, patn_t = apply_mask(generated, patn_masks), apply_mask(target, patn_masks)

    per_pair_fns: dict[str, Callable[[], np.ndarray]] = {
        "ssim_pg2": lambda: ssim_pg2(generated, target),
        "ssim_patn": lambda: ssim_patn(generated, target, bound=bound),
        "mask_ssim_pg2": lambda: ssim_pg2(masked_g, masked_t),
        "mask_ssim_patn": lambda: ssim_patn(patn_g, patn_t, bound=bound),
        "psnr": lambda: psnr(generated, target),
        "l1": lambda: l1(generated, target),
        "masked_l1": lambda: masked_l1(generated, target, masks),
    }
    out: dict[str, float] = {}
    for name in metrics:
        if name in per_pair_fns:
            values = per_pair_fns[name]()
            per_pair[name] = values
            out[name] = _nanmean(values)
        elif name == "lpips":
            if lpips_model is None:
                raise ValueError("lpips needs an LPIPS model (evaluation.lpips.load_lpips_alex)")
            from posetransfer.evaluation.lpips import lpips_distances

            per_pair[name] = lpips_distances(lpips_model, generated, target)
            out[name] = float(per_pair[name].mean())

    wanted_inception = [m for m in metrics if m in INCEPTION_METRICS]
    if wanted_inception:
        if inception is None:
            raise ValueError(f"{wanted_inception} need the FID Inception (evaluation.inception.load_fid_inception)")
        from posetransfer.evaluation.inception import inception_outputs

        feats, probs = inception_outputs(inception, generated, progress=progress)
        if "is" in metrics:
            if bound:  # PATN's DeepFashion IS: on the white-padded images, as its SSIM
                _, probs = inception_outputs(inception, add_bounding(generated, bound), progress=progress)
            out["is"], out["is_std"] = inception_score_from_probs(probs, is_splits)
        if "fid" in metrics:
            if real_stats is None:
                raise ValueError("fid needs the statistics of a real image set")
            out["fid"] = frechet_distance(*feature_statistics(feats), *real_stats)
        if "mask_is" in metrics:
            _, mprobs = inception_outputs(inception, masked_g, progress=progress)
            out["mask_is"], out["mask_is_std"] = inception_score_from_probs(mprobs, is_splits)
        if "mask_is_patn" in metrics:
            _, pprobs = inception_outputs(inception, patn_g, progress=progress)
            out["mask_is_patn"], out["mask_is_patn_std"] = inception_score_from_probs(pprobs, is_splits)
    out["pairs"] = int(len(generated))
    return out
