"""SSIM in torch, batched, equal to scikit-image's ``structural_similarity`` under the two
conventions of the field (the PG2 and PATN evaluation scripts).

* **PG2** (Ma et al. 2017, Table 1 "SSIM"): ``structural_similarity(target, generated,
  channel_axis=-1)`` on uint8 images with scikit-image's defaults: a 7x7 uniform window, the sample
  covariance (``N / (N - 1)`` with ``N = 49``) and ``data_range = 255`` taken from the uint8 dtype.
* **PATN** (Zhu et al. 2019, ``tool/getMetrics_*.py``): ``compare_ssim(target, generated,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, multichannel=True,
  data_range=generated.max() - generated.min())``: an 11-tap Gaussian window (``2 * int(3.5 * 1.5 +
  0.5) + 1``), the population covariance of Wang et al. 2004, and the data range of each *generated*
  image. On the 176-wide DeepFashion crop PATN first pads both images with 40 white columns on each
  side (its ``addBounding``), which changes the score; :func:`add_bounding` does the same.

Why not call scikit-image: it filters one channel of one image at a time with scipy, about 1.5 ms
per 128x64 image and convention, so the 12,000 Market test pairs x 4 SSIM variants take minutes; the
batched torch version below does the same arithmetic on whole batches. It is tested equal to
scikit-image to 1e-6 (``tests/test_evaluation_ssim.py``).

Equality with scikit-image rests on one observation: scikit-image filters with ``mode="reflect"``
and then crops ``(win_size - 1) // 2`` pixels from every border before averaging the SSIM map, so
every pixel that enters the mean has its whole window inside the image. A *valid* (unpadded)
convolution therefore yields exactly the cropped map, and the border mode never matters.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

K1 = 0.01
K2 = 0.03
PATN_SIGMA = 1.5
PATN_BOUND = 40  # white columns PATN adds on each side of 176-wide DeepFashion images


def gaussian_window(sigma: float = PATN_SIGMA, truncate: float = 3.5) -> np.ndarray:
    """The 1-D kernel of ``scipy.ndimage.gaussian_filter`` (which scikit-image's SSIM uses).

    scipy truncates at ``int(truncate * sigma + 0.5)`` taps on each side and normalises the sum to 1;
    scikit-image's SSIM fixes ``truncate = 3.5`` so that sigma 1.5 gives Wang et al.'s 11 taps.
    """
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def _separable_valid_filter(maps: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Filter every map of ``(M, H, W)`` with ``window (k,)`` along both axes, without padding
    -> ``(M, H-k+1, W-k+1)``.

    float32 runs as one depthwise (grouped) convolution over M channels, which oneDNN vectorises;
    float64 has no such kernel (a grouped float64 conv is ~10x slower), so it runs as a
    single-channel convolution over a batch of M maps.
    """
    m, h, w = maps.shape
    k = window.numel()
    if maps.dtype == torch.float32:
        col = window.view(1, 1, k, 1).expand(m, 1, k, 1)
        row = window.view(1, 1, 1, k).expand(m, 1, 1, k)
        return F.conv2d(F.conv2d(maps.unsqueeze(0), col, groups=m), row, groups=m).squeeze(0)
    x = F.conv2d(F.conv2d(maps.unsqueeze(1), window.view(1, 1, k, 1)), window.view(1, 1, 1, k))
    return x.squeeze(1)


def ssim_torch(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: float | torch.Tensor,
    gaussian_weights: bool,
    sigma: float = PATN_SIGMA,
    win_size: int = 7,
    use_sample_covariance: bool,
    dtype: torch.dtype = torch.float32,
    formula_dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Mean SSIM per image of two batches ``(N, C, H, W)`` on the same scale -> ``(N,)`` float64.

    Follows scikit-image 0.26 ``structural_similarity`` step by step (Wang et al. 2004, eq. 13 with
    ``C1 = (K1 R)^2``, ``C2 = (K2 R)^2``): per-channel SSIM maps averaged over the cropped area, then
    over channels (the mean of equal-sized channel means is the mean over all of them).
    ``data_range`` is a number or a per-image tensor ``(N,)``. ``win_size`` is used only by the
    uniform window; the Gaussian window's size follows from ``sigma`` as in scikit-image.

    ``dtype`` is the precision of the filtering; the SSIM formula after it always runs in float64.
    Two things keep float32 close to scikit-image's float64:

    * both images are shifted by the same integer (the rounded mean of the pair, per channel)
      before filtering. Variances and the covariance do not change under a common shift and the
      means are shifted back, but ``E[x^2] - E[x]^2`` then cancels far smaller numbers;
    * the uniform window filters with a window of ones (sums, divided by ``k^2`` in float64): on
      integer images every partial sum is an integer below 2^24, exact in float32, so PG2's
      convention is reproduced to float64 rounding. The Gaussian window has irrational weights and
      agrees to ~1e-6 in float32 (measured in tests/test_evaluation_ssim.py); use float64 for more.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"expected two (N, C, H, W) batches of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    n, c, h, w = x.shape
    if gaussian_weights:
        window_np = gaussian_window(sigma)
        scale = 1.0
    else:
        window_np = np.ones(win_size)  # box sums, normalised below (exact on integer images)
        scale = 1.0 / win_size**2
    k = window_np.size
    if h < k or w < k:
        raise ValueError(f"images of {h}x{w} are smaller than the {k}x{k} SSIM window")
    window = torch.as_tensor(window_np, dtype=dtype, device=x.device)
    # scikit-image's cov_norm: NP = win_size ** ndim on a 2-D channel.
    np_ = k * k
    cov_norm = np_ / (np_ - 1) if use_sample_covariance else 1.0

    x = x.to(dtype, memory_format=torch.contiguous_format)
    y = y.to(dtype, memory_format=torch.contiguous_format)
    shift = torch.round((x.mean(dim=(2, 3), keepdim=True) + y.mean(dim=(2, 3), keepdim=True)) / 2)
    xc = x - shift
    yc = y - shift
    # x^2 and y^2 enter only through vx + vy, so one filtered map of x^2 + y^2 serves both. The
    # four maps are stacked on a leading axis so that each filtered map is a contiguous block.
    sq = xc * xc
    sq.addcmul_(yc, yc)
    maps = torch.stack([xc, yc, sq, xc * yc]).view(4 * n * c, h, w)
    f = _separable_valid_filter(maps, window).to(formula_dtype)
    if scale != 1.0:
        f.mul_(scale)
    ux, uy, uxxyy, uxy = f.view(4, n, c, h - k + 1, w - k + 1).unbind(0)
    # In place from here on: this elementwise tail, not the convolution, dominates the run time.
    vxvy = uxxyy.sub_(ux * ux).sub_(uy * uy)  # (vx + vy) / cov_norm, on the shifted images
    vxy = uxy.sub_(ux * uy)  # vxy / cov_norm
    shift = shift.to(formula_dtype)
    ux.add_(shift)
    uy.add_(shift)

    r = torch.as_tensor(data_range, dtype=formula_dtype, device=x.device)
    if r.dim() == 1:  # one data range per image
        r = r.view(n, 1, 1, 1)
    c1 = (K1 * r) ** 2
    c2 = (K2 * r) ** 2
    a1 = (ux * uy).mul_(2).add_(c1)
    b1 = (ux * ux).addcmul_(uy, uy).add_(c1)
    a2 = vxy.mul_(2 * cov_norm).add_(c2)
    b2 = vxvy.mul_(cov_norm).add_(c2)
    ssim_map = a1.mul_(a2).div_(b1.mul_(b2))
    return ssim_map.reshape(n, -1).mean(dim=1, dtype=torch.float64)


def add_bounding(images: np.ndarray, bound: int = PATN_BOUND) -> np.ndarray:
    """PATN's ``addBounding``: pad ``(..., H, W, 3)`` uint8 images with ``bound`` white (255) columns
    on the left and the right (176-wide DeepFashion becomes 256 wide)."""
    images = np.asarray(images)
    pad = [(0, 0)] * images.ndim
    pad[-2] = (bound, bound)
    return np.pad(images, pad, mode="constant", constant_values=255)


def _as_nchw(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    t = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(images))
    if t.dtype != torch.uint8:
        raise TypeError(f"the SSIM conventions are defined on uint8 images, got {t.dtype}")
    if t.dim() == 3:
        t = t.unsqueeze(0)
    if t.dim() != 4 or t.shape[-1] != 3:
        raise ValueError(f"expected uint8 images (N, H, W, 3), got shape {tuple(t.shape)}")
    return t.permute(0, 3, 1, 2)


def _check_pair(generated: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> None:
    if tuple(generated.shape) != tuple(target.shape):
        raise ValueError(f"generated images {tuple(generated.shape)} and targets {tuple(target.shape)} differ in shape")


# 32 Market images x 12 maps x 128x64 float32 = 12 MB: small enough to stay in cache between the
# two filter passes, large enough to amortise the per-call overhead (measured, docs/benchmarks.md).
DEFAULT_BATCH = 32


def ssim_pg2(
    generated: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    *,
    batch_size: int = DEFAULT_BATCH,
    dtype: torch.dtype = torch.float32,
) -> np.ndarray:
    """PG2's SSIM per pair: scikit-image defaults on uint8 ``(N, H, W, 3)`` -> ``(N,)`` float64.

    Exact (to float64 rounding) in float32 too: see :func:`ssim_torch`.
    """
    _check_pair(generated, target)
    out = [
        ssim_torch(
            _as_nchw(target[i : i + batch_size]),
            _as_nchw(generated[i : i + batch_size]),
            data_range=255.0,  # scikit-image's dtype_range of uint8
            gaussian_weights=False,
            win_size=7,
            use_sample_covariance=True,
            dtype=dtype,
        )
        for i in range(0, len(generated), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros(0)


def ssim_patn(
    generated: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    *,
    bound: int = 0,
    batch_size: int = DEFAULT_BATCH,
    dtype: torch.dtype = torch.float32,
) -> np.ndarray:
    """PATN's SSIM per pair on uint8 ``(N, H, W, 3)`` -> ``(N,)`` float64.

    ``bound=40`` applies PATN's white padding first (its DeepFashion protocol on 256x176 images);
    the data range is ``max - min`` of each (padded) generated image, as in PATN's script.
    Agrees with scikit-image to ~1e-6 in float32 and ~1e-13 in float64.
    """
    _check_pair(generated, target)
    out = []
    for i in range(0, len(generated), batch_size):
        g = _as_nchw(generated[i : i + batch_size])
        t = _as_nchw(target[i : i + batch_size])
        if bound:
            g = F.pad(g, (bound, bound), value=255)
            t = F.pad(t, (bound, bound), value=255)
        flat = g.reshape(g.shape[0], -1)
        data_range = (flat.amax(dim=1).double() - flat.amin(dim=1).double())
        out.append(
            ssim_torch(
                t, g, data_range=data_range, gaussian_weights=True, sigma=PATN_SIGMA,
                use_sample_covariance=False, dtype=dtype,
            )
        )
    return torch.cat(out).numpy() if out else np.zeros(0)


def apply_mask(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """``images (N, H, W, 3) uint8 * masks (N, H, W) in {0, 1}`` -> uint8, as PG2's and PATN's
    mask-SSIM / mask-IS do (both images times the *target's* pose mask)."""
    images, masks = np.asarray(images), np.asarray(masks)
    if masks.shape != images.shape[:-1]:
        raise ValueError(f"masks of shape {masks.shape} do not match images of shape {images.shape}")
    return np.where((masks > 0.5)[..., None], images, np.uint8(0)).astype(np.uint8, copy=False)
