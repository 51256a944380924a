"""pose.tracking: One-Euro smoothing (measured: acceleration and lag), gap filling, lost frames,
person choice, sequence retargeting and the track file round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest

from posetransfer.errors import DataError
from posetransfer.pose.library import library_pose
from posetransfer.pose.retarget import body_scale, retarget_pose
from posetransfer.pose.schema import MISSING, visible
from posetransfer.pose.tracking import (
    SmoothingConfig,
    Track,
    bbox_iou,
    estimate_lag,
    finish_track,
    interpolate_gaps,
    joint_acceleration,
    lost_frames,
    one_euro_smooth,
    pick_person,
    read_track,
    retarget_sequence,
    write_track,
)

H, W = 256, 176
FPS = 25.0


def walking_sequence(frames: int = 100, fps: float = FPS) -> np.ndarray:
    """A standing pose whose wrists, elbows, knees and ankles swing at one stride a second while the
    body sways 20 px across the frame and bobs 3 px: (T, 18, 2) float64 in a 256x176 frame."""
    base = library_pose("standing_front", (H, W)).astype(np.float64)
    t = np.arange(frames) / fps
    seq = np.repeat(base[None], frames, axis=0)
    phase = 2 * np.pi * t
    seq[:, :, 1] += (20 * np.sin(2 * np.pi * 0.25 * t))[:, None]
    for joint, side in [(4, 1), (7, -1), (10, -1), (13, 1), (3, 0.5), (6, -0.5), (9, -0.5), (12, 0.5)]:
        seq[:, joint, 1] += 14 * side * np.sin(phase)
        seq[:, joint, 0] += 4 * side * np.cos(phase)
    seq[:, :, 0] += (3 * np.abs(np.sin(phase)))[:, None]
    return seq


def test_smoothing_halves_the_acceleration_with_under_two_frames_of_lag():
    clean = walking_sequence()
    noisy = clean + np.random.default_rng(0).normal(0, 2.0, clean.shape)  # 2 px detector jitter
    smooth = one_euro_smooth(noisy, FPS, scale=H)  # the defaults of SmoothingConfig
    ratio = joint_acceleration(smooth) / joint_acceleration(noisy)
    lag = estimate_lag(clean, smooth)
    assert ratio <= 0.5, ratio  # measured 0.33
    assert lag < 2.0, lag  # measured 0.99
    assert np.abs(smooth - clean).mean() < np.abs(noisy - clean).mean()
    # the jittered input itself has no lag, a plain delay is measured as such
    assert abs(estimate_lag(clean, noisy)) < 0.3
    delayed = np.concatenate([clean[:3], clean[:-3]])
    assert estimate_lag(clean, delayed) == pytest.approx(3.0, abs=0.05)


def test_one_euro_first_steps_by_hand():
    # one joint, fps 1: x = 0, then 1. The derivative 1 is low-passed with alpha(d_cutoff=1) =
    # 1 / (1 + 1 / (2 pi)); the cut-off is min_cutoff + beta * |dhat|; x1 = alpha(cutoff) * 1.
    seq = np.full((2, 18, 2), MISSING, np.float64)
    seq[:, 0] = [[0.0, 10.0], [1.0, 10.0]]
    out = one_euro_smooth(seq, fps=1.0, min_cutoff=1.0, beta=0.5, d_cutoff=1.0)
    a_d = 1 / (1 + 1 / (2 * math.pi))
    cutoff = 1.0 + 0.5 * a_d
    a = 1 / (1 + 1 / (2 * math.pi * cutoff))
    assert out[1, 0, 0] == pytest.approx(a, rel=1e-6)
    assert out[1, 0, 1] == pytest.approx(10.0)
    assert out[0, 0].tolist() == [0.0, 10.0]
    assert (out[:, 1:] == MISSING).all()


def test_one_euro_keeps_a_still_pose_and_restarts_after_a_gap():
    seq = np.repeat(library_pose("standing_front", (H, W))[None].astype(np.float64), 10, axis=0)
    np.testing.assert_allclose(one_euro_smooth(seq, FPS, scale=H), seq, atol=1e-4)
    seq[5:, 4] += 30.0  # the right wrist jumps, after a frame where it is missing
    seq[4, 4] = MISSING
    out = one_euro_smooth(seq, FPS, scale=H)
    assert (out[4, 4] == MISSING).all()
    np.testing.assert_allclose(out[5, 4], seq[5, 4], atol=1e-4)  # restarted: no pull towards the old place


def test_interpolate_gaps_fills_short_gaps_linearly_only():
    seq = np.full((9, 18, 2), MISSING, np.float64)
    seq[:, 1] = np.arange(9)[:, None] * [2.0, 1.0] + 10  # neck seen throughout
    seq[[0, 3], 4] = [[0.0, 0.0], [30.0, 60.0]]  # wrist: 2-frame gap between 0 and 3
    seq[[4, 8], 7] = [[5.0, 5.0], [5.0, 9.0]]  # left wrist: a 3-frame gap, longer than max_gap=2
    out, n = interpolate_gaps(seq, max_gap=2)
    np.testing.assert_allclose(out[1, 4], [10.0, 20.0])
    np.testing.assert_allclose(out[2, 4], [20.0, 40.0])
    assert (out[4:, 4] == MISSING).all()  # nothing after the last sighting
    assert (out[5:8, 7] == MISSING).all() and (out[:4, 7] == MISSING).all()
    assert n == 2
    out3, n3 = interpolate_gaps(seq, max_gap=3)
    np.testing.assert_allclose(out3[5:8, 7], [[5, 6], [5, 7], [5, 8]])
    assert n3 == 5


def test_lost_frames_and_finish_track_notes():
    seq = np.repeat(library_pose("standing_front", (H, W))[None].astype(np.float32), 12, axis=0)
    seq[3] = MISSING  # one frame lost: filled from both sides
    seq[6:12] = MISSING  # the person leaves for good
    seq[6, :3] = seq[5, :3]  # three joints only: fewer than min_joints
    assert lost_frames(seq, 4).tolist() == [False] * 3 + [True] + [False] * 2 + [True] * 6
    detected = visible(seq).any(axis=1)
    track = finish_track(seq, detected, FPS, (H, W), SmoothingConfig())
    assert track.lost.tolist() == [False] * 6 + [True] * 6
    assert (track.keypoints[6:] == MISSING).all()
    np.testing.assert_allclose(track.keypoints[3], seq[2], atol=1e-3)  # still pose: the fill is the pose
    assert any("interpolated" in n for n in track.notes)
    assert any("lost in 6 of 12" in n for n in track.notes)
    assert track.detected.sum() == 6
    raw = finish_track(seq, detected, FPS, (H, W), SmoothingConfig(enabled=False, max_gap=0))
    assert raw.lost[3] and (raw.keypoints[3] == MISSING).all()


def test_pick_person_follows_the_overlap_not_the_size():
    assert bbox_iou((0, 0, 10, 10), (0, 5, 10, 15)) == pytest.approx(50 / 150)
    assert bbox_iou((0, 0, 1, 1), (5, 5, 6, 6)) == 0.0
    boxes = [(0, 0, 100, 100), (10, 150, 60, 180)]  # a big passer-by and the small tracked person
    assert pick_person(boxes, previous=None) == 0
    assert pick_person(boxes, previous=(12, 148, 62, 178)) == 1
    assert pick_person(boxes, previous=(300, 300, 310, 310)) == 0  # nothing overlaps: the largest
    assert pick_person([], previous=None) is None


def test_retarget_sequence_keeps_the_travel_scaled_to_the_source():
    driving = np.repeat(library_pose("walking", (H, W))[None].astype(np.float32), 3, axis=0)
    driving[1] += [0.0, 10.0]  # the driving person walks 10 px right, then 20
    driving[2] += [0.0, 20.0]
    source = library_pose("standing_front", (H // 2, W // 2)).astype(np.float32) + [20.0, 30.0]  # half the size
    out = retarget_sequence(driving, source)
    first = retarget_pose(driving[0], source)
    np.testing.assert_allclose(out[0], first, atol=1e-4)
    scale = body_scale(source, driving[0])
    assert scale == pytest.approx(0.5, abs=0.03)  # the source's body is about half the driving one
    vis = visible(first)
    np.testing.assert_allclose(out[2][vis] - first[vis], np.broadcast_to([0.0, 20 * scale], (vis.sum(), 2)), atol=1e-3)
    # no travel kept: every frame stands on the source's neck
    still = retarget_sequence(driving, source, keep_travel=False)
    np.testing.assert_allclose(still[2][1], source[1], atol=1e-4)
    # a lost frame stays lost; joints leaving the frame become missing
    driving[1] = MISSING
    out = retarget_sequence(driving, source, size=(H // 2, 40))
    assert (out[1] == MISSING).all()
    assert (out[0][visible(out[0])][:, 1] <= 39).all() and not visible(out[0]).all()


def test_track_file_round_trip_and_errors(tmp_path):
    kp = walking_sequence(6).astype(np.float32).round()
    lost = np.array([False, False, True, False, False, False])
    kp[lost] = MISSING
    track = Track(kp, lost, ~lost, 12.5, (H, W))
    path = tmp_path / "poses.csv"
    write_track(path, track)
    lines = path.read_text().splitlines()
    assert len(lines) == 7 and lines[1].startswith("0:") and lines[3] == "2:" + str([-1] * 18) + ":" + str([-1] * 18)
    back = read_track(path)
    np.testing.assert_array_equal(back.keypoints, kp)
    assert back.lost.tolist() == lost.tolist() and back.fps == 12.5 and back.size == (H, W)
    (tmp_path / "poses.csv.json").unlink()
    bare = read_track(path)
    assert bare.size is None and bare.fps == 25.0 and read_track(path, fps=8).fps == 8.0

    bad = tmp_path / "bad.csv"
    bad.write_text(lines[0] + "\n" + lines[1].replace("0:", "first.png:", 1) + "\n")
    with pytest.raises(DataError, match="bad.csv: row 'first.png' is not named by a frame index"):
        read_track(bad)
    bad.write_text("\n".join([lines[0], lines[1], lines[3].replace("2:", "5:", 1)]) + "\n")
    with pytest.raises(DataError, match=r"without holes \(missing \[1, 2, 3, 4\]\)"):
        read_track(bad)
    (tmp_path / "bad.csv.json").write_text("{not json")
    bad.write_text("\n".join(lines[:3]) + "\n")
    with pytest.raises(DataError, match="bad.csv.json: not a JSON track description"):
        read_track(bad)
