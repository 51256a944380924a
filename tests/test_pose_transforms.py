"""Keypoint transforms: flips with the left/right swap, resize, crop, rotation, affine, missing joints."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from posetransfer.pose.io import read_annotations
from posetransfer.pose.schema import FLIP_PERMUTATION, KEYPOINT_INDEX, KEYPOINT_NAMES, empty_pose
from posetransfer.pose.transforms import (
    affine_keypoints,
    crop_keypoints,
    flip_keypoints,
    resize_keypoints,
    rotate_keypoints,
)


@pytest.fixture(scope="module")
def market_poses(mini_market) -> np.ndarray:
    return np.stack(list(read_annotations(mini_market / "annotation.csv").values()))


def test_flip_twice_is_identity(market_poses):
    once = flip_keypoints(market_poses, 64)
    assert once.shape == market_poses.shape and once.dtype == np.float32
    assert not np.array_equal(once, market_poses)
    np.testing.assert_array_equal(flip_keypoints(once, 64), market_poses)


def test_flip_mirrors_x_and_swaps_left_and_right():
    kp = empty_pose()
    rs, ls = KEYPOINT_INDEX["right_shoulder"], KEYPOINT_INDEX["left_shoulder"]
    kp[rs] = (20, 10)
    kp[ls] = (20, 50)
    kp[KEYPOINT_INDEX["nose"]] = (5, 30)
    out = flip_keypoints(kp, 64)
    # the joint at x = 10 (right shoulder) lands at x = 53 and is now the left shoulder
    np.testing.assert_array_equal(out[ls], (20, 53))
    np.testing.assert_array_equal(out[rs], (20, 13))
    np.testing.assert_array_equal(out[KEYPOINT_INDEX["nose"]], (5, 33))
    assert (out[KEYPOINT_INDEX["left_ear"]] == -1).all()
    # the permutation swaps every left_* with its right_*
    for i, j in enumerate(FLIP_PERMUTATION):
        assert KEYPOINT_NAMES[i].replace("left", "X").replace("right", "left").replace("X", "right") == KEYPOINT_NAMES[j]


def test_resize_scales_and_keeps_missing():
    kp = empty_pose((2,))
    kp[0, 0] = (10, 20)
    kp[1, 3] = (127, 63)
    out = resize_keypoints(kp, (128, 64), (256, 176))
    assert out.shape == (2, 18, 2)
    np.testing.assert_allclose(out[0, 0], (20, 20 * 176 / 64))
    np.testing.assert_allclose(out[1, 3], (254, 63 * 176 / 64))
    assert (out[0, 1:] == -1).all() and (out[1, :3] == -1).all()


def test_crop_shifts_and_drops_what_leaves():
    kp = empty_pose()
    kp[0] = (10, 10)
    kp[1] = (40, 30)
    kp[2] = (2, 30)  # above the window
    out = crop_keypoints(kp, 5, 8, (40, 30))
    np.testing.assert_array_equal(out[0], (5, 2))
    np.testing.assert_array_equal(out[1], (35, 22))
    np.testing.assert_array_equal(out[2], (-1, -1))
    # a window reaching past the image (padding) moves joints the other way
    np.testing.assert_array_equal(crop_keypoints(kp, -4, -2, (60, 40))[0], (14, 12))


def test_rotate_matches_cv2_convention_and_drops_corners():
    size = (65, 65)  # centre (32, 32)
    kp = empty_pose()
    kp[0] = (32, 52)  # 20 px right of the centre
    kp[1] = (0, 0)  # a corner: leaves the frame at 45 degrees
    out = rotate_keypoints(kp, 90, size)
    # counter-clockwise by 90 degrees on screen: right of centre -> above the centre
    np.testing.assert_allclose(out[0], (12, 32), atol=1e-4)
    np.testing.assert_array_equal(out[1], (-1, -1))
    assert (rotate_keypoints(kp, 45, size)[1] == -1).all()
    np.testing.assert_allclose(rotate_keypoints(kp, 0, size), kp)


def test_affine_uses_cv2_x_y_matrix_and_out_size():
    kp = empty_pose()
    kp[0] = (10, 20)
    m = np.array([[2.0, 0.0, 5.0], [0.0, 0.5, 1.0]])  # x' = 2x + 5, y' = y / 2 + 1
    out = affine_keypoints(kp, m, (40, 50))
    np.testing.assert_allclose(out[0], (6, 45))
    assert (out[1:] == -1).all()
    assert (affine_keypoints(kp, m, (40, 45))[0] == -1).all()  # x' = 45 is outside a 45-wide frame
    with pytest.raises(ValueError, match="2 x 3"):
        affine_keypoints(kp, np.eye(3), (40, 50))


def test_rotation_agrees_with_cv2_transform(market_poses):
    size = (128, 64)
    m = cv2.getRotationMatrix2D((31.5, 63.5), 17.0, 1.0)
    out = rotate_keypoints(market_poses, 17.0, size)
    kp = market_poses[0]
    vis = (kp >= 0).all(-1)
    xy = cv2.transform(kp[vis][:, None, ::-1].astype(np.float64), m)[:, 0]
    kept = (out[0][vis] >= 0).all(-1)
    np.testing.assert_allclose(out[0][vis][kept], xy[kept][:, ::-1], atol=1e-4)


def test_inputs_are_not_modified(market_poses):
    before = market_poses.copy()
    flip_keypoints(market_poses, 64)
    crop_keypoints(market_poses, 3, 3, (100, 50))
    resize_keypoints(market_poses, (128, 64), (64, 32))
    np.testing.assert_array_equal(market_poses, before)
