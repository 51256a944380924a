"""SSIM and LPIPS conventions of the tables that use GFLA's evaluation script (GFLA, PIDM, CFLD),
each under its own name. ``fid_gfla`` is in :mod:`.inception_gfla` / :mod:`.fid`.

``ssim_gfla``
    GFLA ``script/metrics.py`` ``Reconstruction_Metrics`` (``data_range=1, win_size=51,
    multichannel=True``; ``calculate_from_disk``): ``compare_ssim(img_gt, img_pred, data_range=1,
    win_size=51, multichannel=True)`` on ``imread(...).astype(np.float32) / 255.0``: a 51x51
    uniform window, the sample covariance (scikit-image's default), data range 1. CFLD
    ``models/metrics.py`` computes the same (``win_size=51, channel_axis=0`` on [0, 1] tensors) and
    reports it as "SSIM" (today's scikit-image keeps CFLD's float32 tensors in float32, so its
    values can differ from this float64 computation in the sixth decimal); GFLA and PIDM print it
    as ``SSIM``.
``ssim_256`` of GFLA / CFLD
    ``compare_ssim(img_gt*255, img_pred*255, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, multichannel=True, data_range=img_pred_256.max() -
    img_pred_256.min())``: PATN's convention on the same pixel values, i.e. ``ssim_patn`` with
    ``bound=0`` (no separate name).
``ssim_pidm``
    PIDM ``utils/metrics.py`` changes that call to ``sigma=1.2`` (a 9-tap window instead of 11);
    everything else as ``ssim_256``.
``lpips_gfla``
    GFLA's ``LPIPS.calculate_from_disk`` (and PIDM's copy): LPIPS-Alex (``net-lin``, v0.1 heads) on
    images scaled to [-1, 1], in batches of 64 over the sorted generated files, **the last
    incomplete batch dropped** (``n_batches = d0 // batch_size``), then the mean. CFLD averages all
    pairs, which is our ``lpips``.

All functions take uint8 ``(N, H, W, 3)`` arrays in the generated files' sorted order (as
:func:`.evaluate.load_evaluation_set` reads them) and return per-pair values (SSIM) or the score.
"""

from __future__ import annotations

import numpy as np
import torch

from posetransfer.evaluation.ssim import DEFAULT_BATCH, _as_nchw, _check_pair, ssim_torch

GFLA_WIN = 51
PIDM_SIGMA = 1.2
GFLA_BATCH = 64


def _unit_float32(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``imread(...).astype(np.float32) / 255.0`` as NCHW."""
    return _as_nchw(images).to(torch.float32) / 255.0


def ssim_gfla(generated: np.ndarray, target: np.ndarray, *, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
    """GFLA's ``ssim`` per pair (module doc) -> ``(N,)`` float64, computed in float64 as the
    scikit-image of GFLA's time (``compare_ssim`` cast its inputs to float64)."""
    _check_pair(generated, target)
    out = [
        ssim_torch(
            _unit_float32(target[i : i + batch_size]).double(), _unit_float32(generated[i : i + batch_size]).double(),
            data_range=1.0, gaussian_weights=False, win_size=GFLA_WIN, use_sample_covariance=True,
            dtype=torch.float64,
        )  # fmt: skip
        for i in range(0, len(generated), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros(0)


def ssim_pidm(generated: np.ndarray, target: np.ndarray, *, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
    """PIDM's ``ssim_256`` per pair (module doc) -> ``(N,)`` float64."""
    _check_pair(generated, target)
    out = []
    for i in range(0, len(generated), batch_size):
        g = (_unit_float32(generated[i : i + batch_size]) * 255.0).double()  # img_pred * 255.0 in float32
        t = (_unit_float32(target[i : i + batch_size]) * 255.0).double()
        flat = g.reshape(g.shape[0], -1)
        data_range = flat.amax(dim=1) - flat.amin(dim=1)
        out.append(ssim_torch(t, g, data_range=data_range, gaussian_weights=True, sigma=PIDM_SIGMA,
                              use_sample_covariance=False, dtype=torch.float64))  # fmt: skip
    return torch.cat(out).numpy() if out else np.zeros(0)


def gfla_used_pairs(n: int, batch_size: int = GFLA_BATCH) -> int:
    """Pairs GFLA's batched loops use: whole batches of ``min(batch_size, n)``."""
    bs = min(batch_size, n)
    return 0 if bs == 0 else (n // bs) * bs


def lpips_gfla(per_pair_lpips: np.ndarray) -> float:
    """GFLA's LPIPS from the per-pair LPIPS-Alex distances (in sorted generated-file order)."""
    d = np.asarray(per_pair_lpips, dtype=np.float64)
    used = gfla_used_pairs(len(d))
    return float(d[:used].mean()) if used else float("nan")
