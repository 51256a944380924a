"""Retargeting on hand-made poses: bone lengths are the source's, bone directions the target's."""

import numpy as np
import pytest

from posetransfer.pose.retarget import KINEMATIC_TREE, body_scale, bone_lengths, retarget_pose
from posetransfer.pose.schema import MISSING, NUM_KEYPOINTS, visible


def _standing(neck=(20.0, 32.0), s=1.0):
    """A T-ish pose drawn by hand: every joint an offset (dy, dx) from the neck times s."""
    off = {
        0: (-8, 0), 1: (0, 0), 2: (0, -6), 3: (10, -8), 4: (20, -9), 5: (0, 6), 6: (10, 8),
        7: (20, 9), 8: (24, -4), 9: (38, -4), 10: (52, -4), 11: (24, 4), 12: (38, 4),
        13: (52, 4), 14: (-10, -2), 15: (-10, 2), 16: (-9, -4), 17: (-9, 4),
    }
    kp = np.zeros((NUM_KEYPOINTS, 2), np.float32)
    for j, (dy, dx) in off.items():
        kp[j] = (neck[0] + dy * s, neck[1] + dx * s)
    return kp


def _arms_up(neck=(30.0, 40.0), s=1.3):
    kp = _standing(neck, s)
    kp[3] = (neck[0] - 9 * s, neck[1] - 9 * s)
    kp[4] = (neck[0] - 20 * s, neck[1] - 11 * s)
    kp[6] = (neck[0] - 9 * s, neck[1] + 9 * s)
    kp[7] = (neck[0] - 20 * s, neck[1] + 11 * s)
    kp[9] = (neck[0] + 36 * s, neck[1] - 12 * s)  # a step to the side
    return kp


def _direction(kp, p, c):
    v = kp[c].astype(np.float64) - kp[p]
    return v / np.linalg.norm(v)


def test_lengths_are_the_sources_and_angles_the_targets():
    source, target = _standing(), _arms_up()
    out = retarget_pose(target, source)
    np.testing.assert_allclose(bone_lengths(out), bone_lengths(source), atol=1e-4)
    for p, c in KINEMATIC_TREE:
        np.testing.assert_allclose(_direction(out, p, c), _direction(target, p, c), atol=1e-5)
    np.testing.assert_allclose(out[1], source[1])  # placed at the source's neck


def test_same_body_is_a_translation():
    source = _standing(neck=(20, 30))
    target = _standing(neck=(50, 10))
    out = retarget_pose(target, source)
    np.testing.assert_allclose(out, source, atol=1e-4)


def test_bone_hidden_in_source_takes_scaled_target_length():
    source = _standing(s=1.0)
    source[4] = MISSING  # right wrist hidden: the forearm's length is unknown
    target = _arms_up(neck=(60.0, 40.0), s=2.0)
    out = retarget_pose(target, source)
    assert body_scale(source, target) == pytest.approx(0.5, rel=1e-5)
    forearm = np.linalg.norm(out[4].astype(np.float64) - out[3])
    assert forearm == pytest.approx(0.5 * np.linalg.norm(target[4].astype(np.float64) - target[3]), rel=1e-4)


def test_missing_target_joints_stay_missing_and_children_attach_to_ancestor():
    source, target = _standing(), _arms_up()
    target[3] = MISSING  # elbow missing, wrist shown
    out = retarget_pose(target, source)
    assert not visible(out)[3] and visible(out)[4]
    scale = body_scale(source, target)
    np.testing.assert_allclose(out[4], out[2] + (target[4] - target[2]) * scale, atol=1e-4)


def test_missing_neck_anchors_on_shoulders_and_stays_missing():
    source, target = _standing(), _arms_up()
    target[1] = MISSING
    out = retarget_pose(target, source)
    assert not visible(out)[1]
    assert visible(out)[2] and visible(out)[5]


def test_nothing_to_anchor_returns_target_and_frame_clips():
    source = np.full((NUM_KEYPOINTS, 2), MISSING, np.float32)
    target = _arms_up()
    np.testing.assert_array_equal(retarget_pose(target, source), target)
    out = retarget_pose(_arms_up(), _standing(neck=(2.0, 32.0)), size=(64, 64))
    assert not visible(out)[4]  # the raised wrist leaves the top of the frame
    with pytest.raises(ValueError, match="shape"):
        retarget_pose(np.zeros((17, 2)), source)
