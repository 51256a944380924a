"""A small library of named target poses, so ``transfer --pose walking`` works without a pose file.

Poses are stored in a normalised frame independent of the image size: ``v = y / H`` (0 = top,
1 = bottom) and ``u = (x - W / 2) / H`` (horizontal offset from the vertical centre line, in units
of the *height*), so a person keeps their proportions in a 256x176 DeepFashion frame and in a
128x64 Market-1501 frame alike. ``None`` = missing keypoint (as OpenPose leaves occluded joints out).

The standing poses are the medians of the real DeepFashion test annotations in
``shared/data/real-mini/mini_fashion_256x176`` (``*_4full``: full body, ``*_1front``: the close-up
upper-body shots that make up most of DeepFashion), made left/right symmetric; the others
(walking, arms up, arms out, side, back) are derived from them by hand.
Left/right are the *person's*, as in the annotations: in a front view the right shoulder is on the
image's left (negative ``u``).
"""

from __future__ import annotations

import numpy as np

from posetransfer.errors import PosetransferError
from posetransfer.pose.schema import MISSING, NUM_KEYPOINTS

_P = tuple[float, float] | None

# Order: nose, neck, r_shoulder, r_elbow, r_wrist, l_shoulder, l_elbow, l_wrist, r_hip, r_knee,
# r_ankle, l_hip, l_knee, l_ankle, r_eye, l_eye, r_ear, l_ear. Entries are (v, u).
_STANDING: tuple[_P, ...] = (
    (0.100, 0.000), (0.205, 0.000),
    (0.205, -0.078), (0.353, -0.100), (0.478, -0.094),
    (0.205, 0.078), (0.353, 0.100), (0.478, 0.094),
    (0.470, -0.049), (0.682, -0.056), (0.879, -0.027),
    (0.470, 0.049), (0.682, 0.056), (0.879, 0.027),
    (0.086, -0.018), (0.086, 0.018), (0.098, -0.041), (0.098, 0.041),
)  # fmt: skip

_UPPER_FRONT: tuple[_P, ...] = (
    (0.137, 0.000), (0.301, 0.000),
    (0.301, -0.125), (0.539, -0.156), (0.747, -0.166),
    (0.301, 0.125), (0.539, 0.156), (0.747, 0.166),
    (0.742, -0.080), None, None,
    (0.742, 0.080), None, None,
    (0.105, -0.030), (0.105, 0.030), (0.120, -0.064), (0.120, 0.064),
)  # fmt: skip


def _mirror_to_back(pose: tuple[_P, ...]) -> tuple[_P, ...]:
    """Seen from behind, the person's right is on the image's right and the face is hidden."""
    out = [None if p is None else (p[0], -p[1]) for p in pose]
    for k in (0, 14, 15):  # nose, eyes
        out[k] = None
    return tuple(out)


_ARMS_UP = list(_STANDING)
_ARMS_UP[3], _ARMS_UP[4] = (0.115, -0.125), (0.030, -0.110)
_ARMS_UP[6], _ARMS_UP[7] = (0.115, 0.125), (0.030, 0.110)

_ARMS_OUT = list(_STANDING)
_ARMS_OUT[3], _ARMS_OUT[4] = (0.210, -0.200), (0.215, -0.310)
_ARMS_OUT[6], _ARMS_OUT[7] = (0.210, 0.200), (0.215, 0.310)

# Profile facing the image's left: the left side faces the camera, the right arm is hidden.
_SIDE: tuple[_P, ...] = (
    (0.100, -0.040), (0.205, 0.000),
    (0.205, -0.010), None, None,
    (0.205, 0.012), (0.350, 0.020), (0.475, 0.000),
    (0.470, -0.005), (0.682, -0.010), (0.879, -0.015),
    (0.470, 0.005), (0.682, 0.012), (0.879, 0.020),
    None, (0.088, -0.028), None, (0.098, 0.012),
)  # fmt: skip

# Mid-stride in profile, facing the image's left: right leg forward, left arm forward.
_WALKING: tuple[_P, ...] = (
    (0.100, -0.040), (0.205, 0.000),
    (0.205, -0.010), (0.350, 0.040), (0.460, 0.070),
    (0.205, 0.012), (0.345, -0.030), (0.455, -0.075),
    (0.470, -0.005), (0.670, -0.060), (0.870, -0.110),
    (0.470, 0.005), (0.680, 0.030), (0.865, 0.095),
    None, (0.088, -0.028), None, (0.098, 0.012),
)  # fmt: skip

POSES: dict[str, tuple[_P, ...]] = {
    "standing_front": _STANDING,
    "upper_front": _UPPER_FRONT,
    "back": _mirror_to_back(_STANDING),
    "side": _SIDE,
    "walking": _WALKING,
    "arms_up": tuple(_ARMS_UP),
    "arms_out": tuple(_ARMS_OUT),
}
for _name, _pose in POSES.items():
    assert len(_pose) == NUM_KEYPOINTS, _name


def pose_names() -> list[str]:
    return list(POSES)


def library_pose(name: str, size: tuple[int, int], fit: bool = True, margin: float = 1.0) -> np.ndarray:
    """The named pose as (18, 2) float32 ``(y, x)`` pixels in an ``size`` = (H, W) frame.

    With ``fit`` (the default) a pose wider than the frame (``arms_out`` in a 128x64 Market frame)
    is shrunk about the frame centre until every keypoint is inside ``margin`` px of the border;
    without it, keypoints outside the frame are missing, like everywhere else in the package.
    """
    if name not in POSES:
        raise PosetransferError(f"unknown pose {name!r}; the built-in poses are: {', '.join(POSES)}")
    h, w = size
    kp = np.full((NUM_KEYPOINTS, 2), MISSING, dtype=np.float32)
    vis = np.array([p is not None for p in POSES[name]])  # not visible(kp): x may be < 0 before the fit
    for k, p in enumerate(POSES[name]):
        if p is not None:
            kp[k] = (p[0] * h, w / 2 + p[1] * h)
    if fit:
        cy, cx = (h - 1) / 2, (w - 1) / 2
        half = np.abs(kp[vis] - (cy, cx)).max(axis=0)  # furthest extent from the centre per axis
        limit = np.array([cy - margin, cx - margin])
        scale = float(min(1.0, *(limit / np.maximum(half, 1e-6))))
        kp[vis] = (kp[vis] - (cy, cx)) * scale + (cy, cx)
    inside = (kp[:, 0] >= 0) & (kp[:, 0] <= h - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= w - 1)
    kp[~(vis & inside)] = MISSING
    return kp
