"""Pose encodings the models consume, computed from keypoints alone (PG2 sec. 3.1; the multi-view paper sec. 3.1).

Every function is pure: keypoints ``(..., 18, 2)`` float32 ``(y, x)`` and a frame size
``(H, W)`` in, a float32 array out, with the same leading batch dimensions. A keypoint is
missing when it is ``-1`` *or* lies outside the frame (``y < 0``, ``x < 0``, ``y >= H``,
``x >= W``): the field's annotation files hold a few such coordinates, and an augmentation may
push a joint out of the picture. A missing keypoint contributes nothing (an all-zero heatmap
channel, no limb, no mask disk).

Encodings and where they come from:

* :func:`disk_heatmaps`: PG2 (Ma et al. 2017, section 3.1): "18 heatmaps, each 1 in a radius of
  4 pixels around the keypoint and 0 elsewhere".
* :func:`gaussian_heatmaps`: PATN's Gaussian maps (sigma 6). Kept in float32: PATN's
  preprocessing script once stored them as uint8, which truncated every value below 1 to 0.
* :func:`pose_mask`: the pose mask ``M_B`` of the pose-mask loss (PG2 eq. 1) and of mask-SSIM,
  by protocol (:mod:`posetransfer.pose.masks`: PG2's released ``_getPoseMask`` by default).
* :func:`stick_figure`: the RGB stick-figure map of the multi-view generator (its section 3,
  the input of the pose encoder ``E_P``), in OpenPose's colours.
* :func:`coordinate_vector`: the raw normalised coordinates of PG2's "CE" ablation (Table 1).

Speed matters: a training sample needs heatmaps (or a stick figure) and a mask, computed in the
data loader for every sample, so the per-sample paths stamp small precomputed stencils or call
OpenCV instead of building full-image distance grids per joint (``posetransfer bench encodings``
measures it).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import cv2
import numpy as np

from posetransfer.pose.schema import LIMB_COLORS, NUM_KEYPOINTS, STICK_LIMBS

__all__ = [
    "JOINT_COLORS",
    "in_frame",
    "disk_heatmaps",
    "gaussian_heatmaps",
    "pose_heatmaps",
    "stick_figure",
    "pose_mask",
    "coordinate_vector",
]

# OpenPose's 18-colour palette: the 17 limb colours plus the last one, used for the joint dots.
JOINT_COLORS: tuple[tuple[int, int, int], ...] = (*LIMB_COLORS, (255, 0, 85))


def _check(kp: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, int, int]:
    kp = np.asarray(kp, dtype=np.float32)
    if kp.ndim < 2 or kp.shape[-2:] != (NUM_KEYPOINTS, 2):
        raise ValueError(f"keypoints must have shape (..., {NUM_KEYPOINTS}, 2), got {kp.shape}")
    height, width = (int(s) for s in size)
    if height <= 0 or width <= 0:
        raise ValueError(f"size must be positive (height, width), got {size}")
    return kp, height, width


def in_frame(kp: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Boolean ``(..., 18)``: the keypoint is present and inside the ``(H, W)`` frame."""
    kp = np.asarray(kp)
    height, width = size
    y, x = kp[..., 0], kp[..., 1]
    return (y >= 0) & (x >= 0) & (y < height) & (x < width)


def _round(values: np.ndarray) -> np.ndarray:
    """Round half up to int (``np.rint`` rounds half to even, which would make 2.5 and 3.5 differ)."""
    return np.floor(np.asarray(values, dtype=np.float64) + 0.5).astype(np.int64)


def _per_sample(fn, kp: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray:
    """Apply ``fn(kp (18, 2)) -> out_shape`` over the leading batch dimensions of ``kp``."""
    batch = kp.shape[:-2]
    if not batch:
        return fn(kp)
    flat = kp.reshape(-1, NUM_KEYPOINTS, 2)
    out = np.empty((flat.shape[0], *out_shape), dtype=np.float32)
    for i, sample in enumerate(flat):
        out[i] = fn(sample)
    return out.reshape(*batch, *out_shape)


@lru_cache(maxsize=16)
def _disk(radius: int) -> np.ndarray:
    """The ``(2r+1, 2r+1)`` stencil ``dy^2 + dx^2 <= r^2`` (PG2's ``_getSparseKeypoint``, mode 'Solid')."""
    d = np.arange(-radius, radius + 1)
    disk = (d[:, None] ** 2 + d[None, :] ** 2) <= radius * radius
    disk.setflags(write=False)
    return disk


def _stamp(canvas: np.ndarray, cy: int, cx: int, stencil: np.ndarray) -> None:
    """Set ``canvas`` to 1 where the stencil centred on ``(cy, cx)`` is True, clipped to the frame."""
    r = stencil.shape[0] // 2
    height, width = canvas.shape
    y0, y1 = max(cy - r, 0), min(cy + r + 1, height)
    x0, x1 = max(cx - r, 0), min(cx + r + 1, width)
    if y0 >= y1 or x0 >= x1:
        return
    window = canvas[y0:y1, x0:x1]
    window[stencil[y0 - cy + r : y1 - cy + r, x0 - cx + r : x1 - cx + r]] = 1


def disk_heatmaps(kp: np.ndarray, size: tuple[int, int], radius: int = 4) -> np.ndarray:
    """PG2's pose heatmaps ``(..., 18, H, W)``: 1 inside the disk ``dy^2 + dx^2 <= radius^2``.

    The disk is centred on the keypoint's pixel (coordinates rounded half up) and clipped to
    the frame; a missing keypoint gives an all-zero channel (PG2 section 3.1).
    """
    kp, height, width = _check(kp, size)
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    stencil = _disk(int(radius))

    def one(sample: np.ndarray) -> np.ndarray:
        maps = np.zeros((NUM_KEYPOINTS, height, width), dtype=np.float32)
        centres = _round(sample)
        for j in np.flatnonzero(in_frame(sample, (height, width))):
            _stamp(maps[j], int(centres[j, 0]), int(centres[j, 1]), stencil)
        return maps

    return _per_sample(one, kp, (NUM_KEYPOINTS, height, width))


def gaussian_heatmaps(kp: np.ndarray, size: tuple[int, int], sigma: float = 6.0) -> np.ndarray:
    """PATN's heatmaps ``(..., 18, H, W)``: ``exp(-((y-ky)^2 + (x-kx)^2) / (2 sigma^2))``, float32.

    The Gaussian is separable, so each channel is the outer product of a column and a row
    profile (``H + W`` exponentials instead of ``H * W``); the value is exact over the whole
    frame (no truncation), 1 at the keypoint. A missing keypoint gives an all-zero channel.
    """
    kp, height, width = _check(kp, size)
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    batch = kp.shape[:-2]
    flat = kp.reshape(-1, NUM_KEYPOINTS, 2).astype(np.float64)
    present = in_frame(flat, (height, width))
    ys = np.arange(height, dtype=np.float64)
    xs = np.arange(width, dtype=np.float64)
    gy = np.exp(-((ys - flat[..., 0:1]) ** 2) / (2.0 * sigma**2)).astype(np.float32)  # (B, 18, H)
    gx = np.exp(-((xs - flat[..., 1:2]) ** 2) / (2.0 * sigma**2)).astype(np.float32)  # (B, 18, W)
    gy[~present] = 0.0
    maps = gy[..., :, None] * gx[..., None, :]
    return maps.reshape(*batch, NUM_KEYPOINTS, height, width)


def pose_heatmaps(
    kp: np.ndarray,
    size: tuple[int, int],
    kind: Literal["disk", "gaussian"] = "disk",
    radius: int = 4,
    sigma: float = 6.0,
) -> np.ndarray:
    """The 18 pose heatmaps of the configured ``kind``: PG2's disks (default) or PATN's Gaussians."""
    if kind == "disk":
        return disk_heatmaps(kp, size, radius=radius)
    if kind == "gaussian":
        return gaussian_heatmaps(kp, size, sigma=sigma)
    raise ValueError(f"unknown heatmap kind {kind!r} (expected 'disk' or 'gaussian')")


def default_thickness(size: tuple[int, int]) -> int:
    """Stick-figure line thickness growing with the image: 2 px at 128, 4 px at 256 rows."""
    return max(1, round(size[0] / 64))


def stick_figure(kp: np.ndarray, size: tuple[int, int], thickness: int | None = None) -> np.ndarray:
    """The multi-view generator's RGB stick-figure map ``(..., 3, H, W)``, float32 in ``[0, 1]``.

    Each limb of :data:`STICK_LIMBS` whose two ends are present is a line segment in its own
    colour (:data:`LIMB_COLORS`, OpenPose's palette, so left and right limbs differ); each
    present joint gets a small dot of its colour on top. Black background. Lines are drawn
    without anti-aliasing so every drawn pixel holds exactly its limb's colour (the colour, not
    a blend, tells the pose encoder which limb it sees).
    ``thickness`` defaults to :func:`default_thickness`.
    """
    kp, height, width = _check(kp, size)
    thick = default_thickness((height, width)) if thickness is None else int(thickness)
    if thick < 1:
        raise ValueError(f"thickness must be >= 1, got {thickness}")
    dot = max(1, thick // 2 + 1)

    def one(sample: np.ndarray) -> np.ndarray:
        canvas = np.zeros((height, width, 3), dtype=np.uint8)
        present = in_frame(sample, (height, width))
        pts = _round(sample[:, ::-1])  # cv2 wants (x, y)
        for (a, b), colour in zip(STICK_LIMBS, LIMB_COLORS):
            if present[a] and present[b]:
                cv2.line(canvas, (int(pts[a, 0]), int(pts[a, 1])), (int(pts[b, 0]), int(pts[b, 1])),
                         colour, thickness=thick, lineType=cv2.LINE_8)  # fmt: skip
        for j in np.flatnonzero(present):
            cv2.circle(canvas, (int(pts[j, 0]), int(pts[j, 1])), dot, JOINT_COLORS[j], thickness=-1,
                       lineType=cv2.LINE_8)  # fmt: skip
        return canvas.transpose(2, 0, 1).astype(np.float32) * np.float32(1.0 / 255.0)

    return _per_sample(one, kp, (3, height, width))


def pose_mask(
    kp: np.ndarray,
    size: tuple[int, int],
    radius: int = 4,
    closing: int = 5,
    protocol: str = "pg2",
) -> np.ndarray:
    """The pose mask ``M_B`` ``(..., H, W)`` in ``{0, 1}`` of ``protocol`` (:mod:`posetransfer.pose.masks`).

    ``"pg2"`` (default; PG2's eq. 1 loss and mask-SSIM / mask-IS) is the released
    ``_getPoseMask`` exactly; ``"patn"`` PATN's ``produce_ma_mask``; ``"pg2_torso"`` ours (pg2
    plus a filled torso). ``radius`` is the disk radius (4 in both scripts), ``closing`` the
    square of PG2's closing (5; PATN's is fixed at 5). Unlike the other encodings, a keypoint
    is missing only when a coordinate is -1: the released scripts draw the in-frame part of a
    present keypoint's disk even when the keypoint itself lies outside the picture.
    """
    from posetransfer.pose import masks

    if protocol == "pg2":
        return masks.pg2_mask(kp, size, radius=radius, closing=closing)
    if protocol == "pg2_torso":
        return masks.pg2_torso_mask(kp, size, radius=radius, closing=closing)
    if protocol == "patn":
        return masks.patn_mask(kp, size, point_radius=radius)
    raise ValueError(f"unknown mask protocol {protocol!r} (expected one of {', '.join(masks.MASK_PROTOCOLS)})")


def coordinate_vector(kp: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """PG2's "CE" input ``(..., 36)``: ``(y / H, x / W)`` per joint, interleaved, ``-1`` when missing."""
    kp, height, width = _check(kp, size)
    out = kp / np.asarray([height, width], dtype=np.float32)
    out[~in_frame(kp, (height, width))] = -1.0
    return out.reshape(*kp.shape[:-2], 2 * NUM_KEYPOINTS).astype(np.float32)
