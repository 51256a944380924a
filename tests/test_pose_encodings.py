"""Pose encodings: hand-computed cases, real annotations (the protocol masks: test_pose_masks.py)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.morphology import dilation, erosion

from posetransfer.pose.encodings import (
    JOINT_COLORS,
    coordinate_vector,
    disk_heatmaps,
    gaussian_heatmaps,
    pose_heatmaps,
    pose_mask,
    stick_figure,
)
from posetransfer.pose.io import read_annotations
from posetransfer.pose.schema import KEYPOINT_INDEX, LIMB_COLORS, STICK_LIMBS, empty_pose


def one_joint(j: int, y: float, x: float) -> np.ndarray:
    kp = empty_pose()
    kp[j] = (y, x)
    return kp


@pytest.fixture(scope="module")
def market_poses(mini_market) -> dict[str, np.ndarray]:
    return read_annotations(mini_market / "annotation.csv")


# ---- disk heatmaps (PG2) ----


def test_disk_radius_4_has_49_pixels_in_the_right_place():
    maps = disk_heatmaps(one_joint(0, 10, 10), (30, 30))
    assert maps.shape == (18, 30, 30) and maps.dtype == np.float32
    # lattice points with dy^2 + dx^2 <= 16: rows of half-width 0,2,3,3,4,3,3,2,0 -> 1+5+7+7+9+7+7+5+1
    assert maps[0].sum() == 49
    assert set(np.unique(maps)) == {0.0, 1.0}
    ys, xs = np.nonzero(maps[0])
    assert ys.min() == 6 and ys.max() == 14 and xs.min() == 6 and xs.max() == 14
    assert maps[0, 10, 14] == 1 and maps[0, 13, 13] == 0  # 16 <= 16 inside; 9 + 9 = 18 > 16 outside
    assert maps[1:].sum() == 0


def test_disk_clipped_at_the_border_and_rounded_centre():
    maps = disk_heatmaps(one_joint(3, 0, 0), (20, 20), radius=4)
    # only the quarter disk dy, dx >= 0 is in the frame: rows dy = 0..4 hold 5 + 4 + 4 + 3 + 1
    assert maps[3].sum() == 17
    assert maps[3, 0, 4] == 1 and maps[3, 4, 0] == 1 and maps[3, 3, 3] == 0
    a = disk_heatmaps(one_joint(0, 10.4, 9.6), (30, 30))
    b = disk_heatmaps(one_joint(0, 10, 10), (30, 30))
    np.testing.assert_array_equal(a, b)


def test_missing_and_out_of_frame_keypoints_give_empty_channels():
    kp = empty_pose()
    kp[0] = (5, 40)  # x >= W
    kp[1] = (-3, 5)
    kp[2] = (30, 5)  # y == H
    for maps in (disk_heatmaps(kp, (30, 30)), gaussian_heatmaps(kp, (30, 30))):
        assert maps.shape == (18, 30, 30) and not maps.any()
    assert not stick_figure(kp, (30, 30)).any()


def test_batch_dims_match_single_samples(market_poses):
    kps = np.stack(list(market_poses.values())[:6]).reshape(2, 3, 18, 2)
    size = (128, 64)
    for fn, shape in (
        (disk_heatmaps, (18, 128, 64)),
        (gaussian_heatmaps, (18, 128, 64)),
        (stick_figure, (3, 128, 64)),
        (pose_mask, (128, 64)),
        (coordinate_vector, (36,)),
    ):
        batch = fn(kps, size)
        assert batch.shape == (2, 3, *shape) and batch.dtype == np.float32, fn.__name__
        np.testing.assert_array_equal(batch[1, 2], fn(kps[1, 2], size), err_msg=fn.__name__)


def test_bad_shape_is_rejected():
    with pytest.raises(ValueError, match="18, 2"):
        disk_heatmaps(np.zeros((17, 2)), (10, 10))
    with pytest.raises(ValueError, match="heatmap kind"):
        pose_heatmaps(empty_pose(), (10, 10), kind="square")


# ---- gaussian heatmaps (PATN) ----


def test_gaussian_exact_values_and_float32():
    sigma = 6.0
    maps = gaussian_heatmaps(one_joint(5, 10, 20), (32, 40), sigma=sigma)
    assert maps.dtype == np.float32 and maps.shape == (18, 32, 40)
    assert maps[5, 10, 20] == 1.0
    np.testing.assert_allclose(maps[5, 11, 20], np.exp(-1 / (2 * sigma**2)), rtol=1e-6)
    np.testing.assert_allclose(maps[5, 10, 19], np.exp(-1 / (2 * sigma**2)), rtol=1e-6)
    np.testing.assert_allclose(maps[5, 13, 24], np.exp(-25 / (2 * sigma**2)), rtol=1e-6)
    # far from the joint the value is small but not truncated to 0 (PATN's uint8 bug)
    np.testing.assert_allclose(maps[5, 31, 0], np.exp(-(21**2 + 20**2) / (2 * sigma**2)), rtol=1e-5)
    assert 0 < maps[5, 31, 0] < 1e-3
    assert np.unravel_index(maps[5].argmax(), maps[5].shape) == (10, 20)
    np.testing.assert_array_equal(pose_heatmaps(one_joint(5, 10, 20), (32, 40), kind="gaussian"), maps)


# ---- stick figure (multi-view) ----


def test_stick_figure_draws_limb_colours_and_nothing_else():
    kp = empty_pose()
    kp[KEYPOINT_INDEX["neck"]] = (10, 10)
    kp[KEYPOINT_INDEX["right_shoulder"]] = (10, 40)
    fig = stick_figure(kp, (32, 64), thickness=1)
    assert fig.shape == (3, 32, 64) and fig.dtype == np.float32
    assert fig.min() >= 0 and fig.max() <= 1
    limb = STICK_LIMBS.index((1, 2))
    colour = np.asarray(LIMB_COLORS[limb], np.float32) / 255
    np.testing.assert_allclose(fig[:, 10, 25], colour)  # middle of the segment, away from the dots
    assert not fig[:, 20:, :].any() and not fig[:, :, 45:].any()  # nothing beyond the limb
    # the joint dots carry the joint colours
    np.testing.assert_allclose(fig[:, 10, 40], np.asarray(JOINT_COLORS[2], np.float32) / 255)


def test_stick_figure_default_thickness_scales_with_size():
    kp = empty_pose()
    kp[KEYPOINT_INDEX["neck"]] = (40, 40)
    kp[KEYPOINT_INDEX["right_hip"]] = (200, 40)
    small = stick_figure(kp * 0.5, (128, 64))  # thickness 2
    big = stick_figure(kp, (256, 128))  # thickness 4
    width_small = (small[:, 60].sum(0) > 0).sum()
    width_big = (big[:, 120].sum(0) > 0).sum()
    assert width_big > width_small >= 2


# ---- pose mask: the protocol masks are tested in test_pose_masks.py against the released scripts ----


def test_opencv_closing_equals_skimage_at_the_border():
    rng = np.random.default_rng(3)
    blob = (rng.random((24, 20)) < 0.3).astype(np.uint8)
    blob[0, :] = 1  # touching the frame edge, where border handling differs if done wrong
    import cv2

    square5 = np.ones((5, 5), np.uint8)
    np.testing.assert_array_equal(cv2.dilate(blob, square5), dilation(blob, square5))
    np.testing.assert_array_equal(cv2.erode(blob, square5), erosion(blob, square5))


# ---- coordinate vector (PG2 CE ablation) ----


def test_coordinate_vector_values():
    kp = empty_pose()
    kp[0] = (32, 16)
    kp[1] = (127, 63)
    kp[2] = (128, 10)  # out of frame -> missing
    vec = coordinate_vector(kp, (128, 64))
    assert vec.shape == (36,) and vec.dtype == np.float32
    np.testing.assert_allclose(vec[:4], [0.25, 0.25, 127 / 128, 63 / 64])
    np.testing.assert_array_equal(vec[4:], -1)


# ---- posetransfer bench encodings (a smoke run: speed goals live in the command, not in tests) ----


def test_bench_encodings_reports_json(capsys, mini_market):
    import argparse
    import json

    from posetransfer.commands import bench

    parser = argparse.ArgumentParser()
    bench.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", "encodings", "--size", "32x24", "--repeat", "3", "--json"])
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["size"] == [32, 24] and report["samples"] == 3
    assert set(report["ms_per_sample"]) == {"disk_heatmaps", "gaussian_heatmaps", "pose_mask", "stick_figure"}
    args = parser.parse_args(["bench", "encodings", "--size", "128x64", "--repeat", "2",
                              "--annotations", str(mini_market / "annotation.csv")])  # fmt: skip
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "pose encodings at 128x64, 2 samples" in out and "goal of 2.0 ms" in out
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "encodings", "--size", "32by24"])
