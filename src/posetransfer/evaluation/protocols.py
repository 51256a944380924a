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
``mask_lpips_gfla``
    GFLA's ``LPIPS.calculate_mask_lpips`` (``script/metrics.py`` lines 509-567, run with
    ``--calculate_mask``, lines 650-651): for every pair the mask of the **target's** keypoints
    (the annotation row of the ground-truth file's basename, line 524) by GFLA's copy of PATN's
    ``produce_ma_mask`` (lines 571-607, identical to PATN's ``tool/pose_utils.py`` lines 108-143
    but for its default ``img_size=(128, 64)``; our ``patn`` mask), then **both** images scaled to
    [-1, 1] (``/ 127.5 - 1``) and multiplied by it (lines 526-527: masked-out pixels become 0,
    mid-grey, not black), then the batching and mean of ``lpips_gfla``. GFLA draws the mask at
    128x64 whatever the images' size (line 616 passes no size), so on any other size its script
    fails; here another size is an error naming the size (``mask_ssim_patn`` masks at any size).

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


# GFLA's produce_ma_mask default img_size (script/metrics.py line 571), the only size its
# create_masked_image draws (line 616): Market's 128x64.
GFLA_MASK_SIZE = (128, 64)


def check_gfla_mask_size(size: tuple[int, int]) -> None:
    """``mask_lpips_gfla`` is defined on Market's 128x64 images only: ``ValueError`` otherwise."""
    h, w = (int(v) for v in size)
    if (h, w) != GFLA_MASK_SIZE:
        raise ValueError(
            f"mask_lpips_gfla is GFLA's Market protocol, defined on 128x64 images (its produce_ma_mask "
            f"draws at 128x64 only), got {h}x{w} images; mask_ssim_patn masks at any size"
        )


def gfla_masked_signed(images: np.ndarray | torch.Tensor, masks: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``(imread(f).astype(np.float32) / 127.5 - 1) * mask`` (GFLA ``calculate_mask_lpips``) as
    float32 NCHW: uint8 ``(N, H, W, 3)`` images, ``(N, H, W)`` masks in {0, 1}."""
    x = _as_nchw(images).to(torch.float32) / 127.5 - 1
    m = torch.as_tensor(np.asarray(masks), dtype=torch.float32)
    if m.dim() == 2:
        m = m.unsqueeze(0)
    if tuple(m.shape) != (x.shape[0], x.shape[2], x.shape[3]):
        raise ValueError(f"masks {tuple(m.shape)} do not match images {tuple(x.shape)} (N, H, W)")
    return x * m.unsqueeze(1)


@torch.no_grad()
def mask_lpips_gfla_distances(
    model, generated: np.ndarray, target: np.ndarray, masks: np.ndarray, *, batch_size: int = GFLA_BATCH
) -> np.ndarray:
    """LPIPS per pair of both images times the target's ``patn`` mask on the [-1, 1] scale
    (``(N,)`` float64, every pair; :func:`mask_lpips_gfla` keeps GFLA's whole batches).

    ``model(x, y)``: images ``(B, 3, H, W)`` in [-1, 1] -> ``(B,)`` (:class:`.lpips.LPIPSAlex`).
    The masked float images are made one batch at a time (a whole test set of them would not fit).
    """
    _check_pair(generated, target)
    check_gfla_mask_size(generated.shape[1:3])
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(generated), batch_size):
        m = masks[i : i + batch_size]
        g = gfla_masked_signed(generated[i : i + batch_size], m).to(device)
        t = gfla_masked_signed(target[i : i + batch_size], m).to(device)
        out.append(model(g, t).reshape(-1).double().cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)


def mask_lpips_gfla(per_pair_mask_lpips: np.ndarray) -> float:
    """GFLA's mask-LPIPS from :func:`mask_lpips_gfla_distances` (sorted generated-file order):
    ``np.average`` of the per-image results of its whole batches of 64 (lines 538-565), as
    :func:`lpips_gfla`."""
    return lpips_gfla(per_pair_mask_lpips)
