"""The 18-keypoint pose schema of the field (OpenPose / COCO-18 order).

A pose is a float32 array of shape ``(..., 18, 2)`` holding ``(y, x)`` = (row, column) pixel
coordinates, the order of the annotation files. A missing keypoint has both coordinates ``-1``
(:data:`MISSING`). Every function in :mod:`posetransfer.pose` accepts leading batch dimensions.
"""

from __future__ import annotations

import numpy as np

NUM_KEYPOINTS = 18
MISSING = -1

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "neck",
    "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)  # fmt: skip
KEYPOINT_INDEX = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

# Left/right swap applied by a horizontal flip: FLIP_PERMUTATION[i] is the joint that takes
# joint i's place (the right shoulder of a flipped person was its left shoulder).
FLIP_PERMUTATION: tuple[int, ...] = (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16)

# Limbs of the OpenPose skeleton (0-based), as drawn in stick figures by PATN / Deformable GAN:
# arms, legs, neck-hips, head. The last two (shoulder-ear) are OpenPose's auxiliary limbs,
# not drawn in stick figures (STICK_LIMBS).
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
    (2, 16), (5, 17),
)  # fmt: skip
STICK_LIMBS = LIMBS[:17]

# One colour per stick limb (RGB), the palette of OpenPose's renderer used across the field.
LIMB_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170),
)  # fmt: skip

# The 23 limbs of PG2's released ``_getPoseMask`` (its 1-based ``limbSeq`` minus one;
# Pose-Guided-Person-Image-Generation ``utils.py`` line 102), which PATN's ``produce_ma_mask``
# reuses (Pose-Transfer ``tool/pose_utils.py`` line 111): OpenPose's 17 drawn limbs, neck-ears,
# the hips-shoulders torso outline (hip-hip, left hip-left shoulder, right hip-right shoulder)
# and ear-ear.
PG2_MASK_LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
    (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (1, 16), (1, 17), (8, 11), (11, 5),
    (8, 2), (16, 17),
)  # fmt: skip

TORSO = (KEYPOINT_INDEX["right_shoulder"], KEYPOINT_INDEX["left_shoulder"],
         KEYPOINT_INDEX["left_hip"], KEYPOINT_INDEX["right_hip"])  # fmt: skip


def visible(keypoints: np.ndarray) -> np.ndarray:
    """Boolean array ``(..., 18)``: True where the keypoint is present (not -1)."""
    kp = np.asarray(keypoints)
    return (kp[..., 0] >= 0) & (kp[..., 1] >= 0)


def empty_pose(batch_shape: tuple[int, ...] = ()) -> np.ndarray:
    """A pose with every keypoint missing."""
    return np.full((*batch_shape, NUM_KEYPOINTS, 2), MISSING, dtype=np.float32)
