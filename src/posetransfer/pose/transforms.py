"""Keypoint transforms that move exactly as the image does (``data.transforms`` applies both).

Keypoints are ``(..., 18, 2)`` float32 ``(y, x)`` pixel coordinates, ``-1`` = missing; sizes are
``(H, W)``. The conventions follow OpenCV's, since ``data.transforms`` warps the images with it:
pixel ``(y, x)`` is the pixel *centre*, a horizontal flip maps column ``x`` to ``W - 1 - x``, and
affine matrices are OpenCV's ``2 x 3`` matrices acting on ``(x, y, 1)``. Rotations turn about the
image centre ``((W - 1) / 2, (H - 1) / 2)``, positive angles counter-clockwise on screen, like
``cv2.getRotationMatrix2D``.

A missing keypoint stays missing (it is never moved), and any keypoint that leaves the output
frame becomes missing (``-1`` in both coordinates), so every encoding sees only joints it can draw.
The multi-view paper augments with random crops, left-right flips and rotations, "keypoints
moving with the image" (its section 4); PG2 trains with left-right flips (section 4.1).
"""

from __future__ import annotations

import cv2
import numpy as np

from posetransfer.pose.schema import FLIP_PERMUTATION, MISSING, NUM_KEYPOINTS, visible

__all__ = [
    "flip_keypoints",
    "resize_keypoints",
    "crop_keypoints",
    "rotation_matrix",
    "rotate_keypoints",
    "affine_keypoints",
]


def _as_pose(kp: np.ndarray) -> np.ndarray:
    kp = np.array(kp, dtype=np.float32)  # a copy: the transforms never touch their input
    if kp.ndim < 2 or kp.shape[-2:] != (NUM_KEYPOINTS, 2):
        raise ValueError(f"keypoints must have shape (..., {NUM_KEYPOINTS}, 2), got {kp.shape}")
    return kp


def _finish(moved: np.ndarray, present: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Mark as missing what was missing or what left the ``(H, W)`` frame."""
    height, width = size
    y, x = moved[..., 0], moved[..., 1]
    keep = present & (y >= 0) & (x >= 0) & (y < height) & (x < width)
    moved[~keep] = MISSING
    return moved


def flip_keypoints(kp: np.ndarray, width: int) -> np.ndarray:
    """Horizontal flip of an image ``width`` pixels wide: ``x -> W - 1 - x`` and the left/right swap.

    After mirroring, the joint drawn where the left shoulder was is the person's right shoulder,
    so joints are re-indexed by :data:`FLIP_PERMUTATION`; without that swap a flip would teach the
    model mirrored anatomy (the field's flip convention). Flipping twice is the identity.
    """
    kp = _as_pose(kp)
    present = visible(kp)
    kp[..., 1] = (width - 1) - kp[..., 1]
    kp = _finish(kp, present, (np.inf, width))
    return kp[..., list(FLIP_PERMUTATION), :]


def resize_keypoints(kp: np.ndarray, src_size: tuple[int, int], dst_size: tuple[int, int]) -> np.ndarray:
    """Scale coordinates from an ``src_size`` image to a ``dst_size`` one: ``y * H2 / H1``, ``x * W2 / W1``.

    This is the field's convention for rescaling annotations (e.g. DeepFashion 256 -> 128); it
    differs from OpenCV's pixel-centre mapping ``(y + 0.5) * s - 0.5`` by less than ``s / 2`` px.
    """
    kp = _as_pose(kp)
    present = visible(kp)
    scale = np.asarray([dst_size[0] / src_size[0], dst_size[1] / src_size[1]], dtype=np.float32)
    return _finish(kp * scale, present, dst_size)


def crop_keypoints(kp: np.ndarray, top: int, left: int, size: tuple[int, int]) -> np.ndarray:
    """Keypoints in the ``size`` window whose top-left corner is ``(top, left)`` of the old image.

    ``top`` / ``left`` may be negative (the window reaches past the image: padding).
    """
    kp = _as_pose(kp)
    present = visible(kp)
    kp -= np.asarray([top, left], dtype=np.float32)
    return _finish(kp, present, size)


def rotation_matrix(angle_deg: float, size: tuple[int, int], scale: float = 1.0) -> np.ndarray:
    """OpenCV's ``2 x 3`` matrix rotating by ``angle_deg`` (counter-clockwise) about the image centre."""
    height, width = size
    return cv2.getRotationMatrix2D(((width - 1) / 2.0, (height - 1) / 2.0), float(angle_deg), float(scale))


def rotate_keypoints(kp: np.ndarray, angle_deg: float, size: tuple[int, int]) -> np.ndarray:
    """Rotate by ``angle_deg`` degrees (counter-clockwise) about the centre of a ``size`` image.

    The image keeps its size, so joints rotated out of the corners become missing.
    """
    return affine_keypoints(kp, rotation_matrix(angle_deg, size), size)


def affine_keypoints(kp: np.ndarray, matrix: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """Apply an OpenCV ``2 x 3`` affine matrix (acting on ``(x, y, 1)``) into an ``out_size`` frame.

    The same matrix given to ``cv2.warpAffine`` moves the image identically.
    """
    kp = _as_pose(kp)
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (2, 3):
        raise ValueError(f"affine matrix must be 2 x 3, got {m.shape}")
    present = visible(kp)
    y, x = kp[..., 0].astype(np.float64), kp[..., 1].astype(np.float64)
    new_x = m[0, 0] * x + m[0, 1] * y + m[0, 2]
    new_y = m[1, 0] * x + m[1, 1] * y + m[1, 2]
    moved = np.stack([new_y, new_x], axis=-1).astype(np.float32)
    return _finish(moved, present, out_size)
