"""Drawing a pose over an image (previews, ``data show``): the OpenPose skeleton in the limb
colours of the stick figures (:mod:`posetransfer.pose.encodings`)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from posetransfer.pose.encodings import JOINT_COLORS
from posetransfer.pose.schema import LIMB_COLORS, STICK_LIMBS
from posetransfer.utils.viz import as_numpy, to_uint8

__all__ = ["draw_skeleton"]


def draw_skeleton(
    image: Any,
    keypoints: Any,
    thickness: int | None = None,
    radius: int | None = None,
) -> np.ndarray:
    """A copy of ``image`` with the OpenPose skeleton drawn on it (limb colours of the stick figures).

    ``keypoints`` (18, 2) are (y, x); missing (-1) or out-of-frame keypoints are skipped, with
    the limbs that touch them. Thickness and dot radius grow with the image height.
    """
    out = to_uint8(image).copy()
    kp = as_numpy(keypoints).astype(np.float64)
    h, w = out.shape[:2]
    thick = thickness if thickness is not None else max(1, round(h / 96))
    rad = radius if radius is not None else thick + 1
    present = (kp[:, 0] >= 0) & (kp[:, 1] >= 0) & (kp[:, 0] < h) & (kp[:, 1] < w)
    pts = [(int(round(x)), int(round(y))) for y, x in kp]  # cv2 points are (x, y)
    for (a, b), colour in zip(STICK_LIMBS, LIMB_COLORS):
        if present[a] and present[b]:
            cv2.line(out, pts[a], pts[b], colour, thickness=thick, lineType=cv2.LINE_AA)
    for j in np.flatnonzero(present):
        cv2.circle(out, pts[j], rad, (255, 255, 255), thickness=-1, lineType=cv2.LINE_AA)
        cv2.circle(out, pts[j], max(1, rad - 1), JOINT_COLORS[j], thickness=-1, lineType=cv2.LINE_AA)
    return out
