"""Pose masks by protocol against routines written directly from the released scripts.

The references are in ``tests/reference_protocols.py`` (PG2's ``_getPoseMask`` of
charliememory/Pose-Guided-Person-Image-Generation ``utils.py`` lines 90-166; PATN's
``produce_ma_mask`` of tengteng95/Pose-Transfer ``tool/pose_utils.py`` lines 108-143). Masks
must be pixel-identical on every row of the field's annotation files: the slow per-pose
references ran once over all 36 700 rows and their digests are in
``tests/data/protocol_mask_digests.json`` (rerun ``python tests/reference_protocols.py`` to
recompute them); here our vectorised masks of every row are hashed the same way, and the
references also run live on a strided subset of rows and on synthetic poses.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from reference_protocols import (
    CHUNK,
    DIGESTS,
    FILE_SIZES,
    digest,
    read_annotations,
    reference_mask,
)

from posetransfer.cli import main
from posetransfer.pose.encodings import pose_mask
from posetransfer.pose.masks import _py2_coordinate, patn_mask, pg2_mask, pg2_torso_mask, protocol_mask
from posetransfer.pose.schema import KEYPOINT_INDEX, PG2_MASK_LIMBS, empty_pose

OURS = {"pg2": pg2_mask, "patn": patn_mask}


@pytest.fixture(scope="module")
def annotation_rows(annotations_dir):
    out = {}
    for name, size in FILE_SIZES.items():
        path = annotations_dir / name
        if path.is_file():
            out[name] = (size, *read_annotations(path))
    if not out:
        pytest.skip("no annotation files")
    return out


# ---------------------------------------------------------------- every row, pixel for pixel


@pytest.mark.parametrize("protocol", ["pg2", "patn"])
def test_every_annotation_row_equals_the_released_routine(annotation_rows, protocol):
    stored = json.loads(DIGESTS.read_text())
    for name, (size, names, poses) in annotation_rows.items():
        entry = stored[name]
        assert entry["rows"] == len(poses) and tuple(entry["size"]) == size and entry["chunk"] == CHUNK, name
        got = []
        for k, s in enumerate(range(0, len(poses), CHUNK)):  # a chunk at a time: bounded memory
            ours = OURS[protocol](poses[s : s + CHUNK], size)
            assert ours.shape == (len(poses[s : s + CHUNK]), *size)
            got.append(digest(ours))
            if k < len(entry[protocol]) and got[-1] != entry[protocol][k]:
                # name the first differing row (the live reference: slow, but only on a failure)
                for i in range(s, s + len(ours)):
                    ref = reference_mask(protocol, poses[i], size)
                    if not np.array_equal(ref, ours[i - s] > 0.5):
                        diff = np.argwhere(ref != (ours[i - s] > 0.5))
                        pytest.fail(f"{name} row {i} ({names[i]}): {len(diff)} pixels differ, first {diff[:3].tolist()}")
                pytest.fail(f"{name} rows {s}..: digest differs from the stored reference")
        assert got == entry[protocol]
        assert len(got) == len(entry[protocol])


@pytest.mark.parametrize("protocol", ["pg2", "patn"])
def test_live_reference_on_a_strided_subset_of_every_file(annotation_rows, protocol):
    for name, (size, names, poses) in annotation_rows.items():
        rows = np.arange(0, len(poses), 503)
        ours = OURS[protocol](poses[rows], size)
        for j, i in enumerate(rows):
            np.testing.assert_array_equal(ours[j] > 0.5, reference_mask(protocol, poses[i], size), err_msg=f"{name} {names[i]}")


def _synthetic_poses(rng, n, size, integral=True):
    h, w = size
    kp = np.stack([rng.uniform(-12, h + 12, (n, 18)), rng.uniform(-12, w + 12, (n, 18))], -1)
    if integral:
        kp = np.round(kp)
    kp[kp == -1] = 0  # -1 means missing: only drop keypoints on purpose
    kp[rng.random((n, 18)) < 0.25] = -1
    return kp


@pytest.mark.parametrize("protocol", ["pg2", "patn"])
def test_synthetic_poses_off_frame_and_fractional_equal_the_reference(protocol):
    """Present keypoints outside the frame (drawn where their disks / limbs reach in), negative
    coordinates (Python 2 floor division), fractional keypoints (float arithmetic) and
    coincident joints (PATN: a zero-length limb draws no polygon)."""
    rng = np.random.default_rng(0)
    size = (40, 24)
    poses = np.concatenate([_synthetic_poses(rng, 40, size), _synthetic_poses(rng, 20, size, integral=False)])
    poses[0, 16] = poses[0, 17] = (10, 10)  # ears on one point
    for i, kp in enumerate(poses):
        ref = reference_mask(protocol, kp if i >= 40 else kp.astype(np.int64), size)
        np.testing.assert_array_equal(OURS[protocol](kp, size) > 0.5, ref, err_msg=f"pose {i}: {kp.tolist()}")


# ---------------------------------------------------------------- hand-made cases


def test_python2_integer_arithmetic_of_the_sample_points():
    # r0 + (r1 - r0) * i / n with ints floors: 10 + (-7) // 2 = 6 (rounding 6.5 would give 7 in
    # the old code), 3 + 7 // 2 = 6; on floats it truncates the float result
    v = _py2_coordinate(np.array([10.0, 3.0, 10.5]), np.array([3.0, 10.0, 3.0]), np.array([1, 1, 1]), np.array([2, 2, 2]))
    assert v.tolist() == [6, 6, 6]
    assert _py2_coordinate(np.array([0.0]), np.array([-7.0]), np.array([1]), np.array([2])).tolist() == [-4]


def test_pg2_limbs_are_the_released_23():
    # 1-based limbSeq of utils.py line 102
    released = [[2, 3], [2, 6], [3, 4], [4, 5], [6, 7], [7, 8], [2, 9], [9, 10], [10, 11], [2, 12], [12, 13],
                [13, 14], [2, 1], [1, 15], [15, 17], [1, 16], [16, 18], [2, 17], [2, 18], [9, 12], [12, 6],
                [9, 3], [17, 18]]  # fmt: skip
    assert [(a + 1, b + 1) for a, b in PG2_MASK_LIMBS] == [tuple(x) for x in released]


def test_single_limb_hand_count():
    kp = empty_pose()
    kp[KEYPOINT_INDEX["right_ear"]] = (10, 10)
    kp[KEYPOINT_INDEX["left_ear"]] = (10, 10)  # ear-ear, zero length: one radius-4 disk
    assert pg2_mask(kp, (30, 30)).sum() == 49  # the disk (49 px) is closed under the 5x5 closing
    # skimage.draw.disk is strict (dy^2 + dx^2 < 16): 45 px; PATN adds no polygon for a point
    assert patn_mask(kp, (30, 30)).sum() == 45
    kp[KEYPOINT_INDEX["left_ear"]] = -1
    assert pg2_mask(kp, (30, 30)).sum() == 0  # a joint alone is in no limb of PG2's
    assert patn_mask(kp, (30, 30)).sum() == 45  # PATN draws every present joint


def test_a_present_keypoint_outside_the_frame_still_draws_inside():
    kp = empty_pose()
    kp[KEYPOINT_INDEX["neck"]] = (-3, 10)
    kp[KEYPOINT_INDEX["nose"]] = (-3, 20)
    m = pg2_mask(kp, (30, 30))
    # the radius-4 disks centred on row -3 reach rows 0 and 1; the encodings would drop both joints
    assert m[0, 10] == m[1, 10] == m[1, 15] == 1 and m[2:].sum() == 0
    np.testing.assert_array_equal(m > 0.5, reference_mask("pg2", kp.astype(np.int64), (30, 30)))


def test_torso_variant_fills_the_belly_and_is_not_a_default():
    kp = empty_pose()
    for name, yx in (("right_shoulder", (10, 10)), ("left_shoulder", (10, 50)), ("left_hip", (50, 50)),
                     ("right_hip", (50, 10))):  # fmt: skip
        kp[KEYPOINT_INDEX[name]] = yx
    torso, plain = pg2_torso_mask(kp, (64, 64)), pg2_mask(kp, (64, 64))
    assert torso[30, 30] == 1 and plain[30, 30] == 0 and (torso >= plain).all()
    np.testing.assert_array_equal(pose_mask(kp, (64, 64)), plain)  # the default mask is pg2
    np.testing.assert_array_equal(protocol_mask(kp, (64, 64), "pg2_torso"), torso)
    with pytest.raises(ValueError, match="unknown mask protocol"):
        protocol_mask(kp, (64, 64), "square")


def test_batches_and_dtypes(annotation_rows):
    size, _, poses = next(iter(annotation_rows.values()))
    kps = poses[:6].astype(np.float32).reshape(2, 3, 18, 2)
    for fn in (pg2_mask, patn_mask, pg2_torso_mask):
        out = fn(kps, size)
        assert out.shape == (2, 3, *size) and out.dtype == np.float32 and set(np.unique(out)) <= {0.0, 1.0}
        np.testing.assert_array_equal(out[1, 2], fn(kps[1, 2], size))


# ---------------------------------------------------------------- posetransfer pose mask


def test_pose_mask_command_writes_one_png_per_row_and_refuses_to_overwrite(mini_market, tmp_path, capsys):
    from posetransfer.pose.io import read_annotations as read_ours
    from posetransfer.utils.io import read_image

    ann = mini_market / "annotation.csv"
    rows = read_ours(ann)
    out = tmp_path / "masks"
    args = ["pose", "mask", str(ann), "--size", "128x64", "--protocol", "patn", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    files = sorted(out.glob("*.png"))
    assert len(files) == len(rows)
    name = sorted(rows)[0]
    from PIL import Image

    with Image.open(out / f"{name.rsplit('.', 1)[0]}.png") as im:
        assert im.mode == "L"
        png = np.asarray(im)
    assert set(np.unique(png)) <= {0, 255}
    np.testing.assert_array_equal(png == 255, patn_mask(rows[name], (128, 64)) > 0.5)
    assert read_image(files[0]).shape == (128, 64, 3)
    before = files[0].stat().st_mtime_ns
    assert main(args) != 0  # refuses: the masks exist
    assert "--overwrite" in capsys.readouterr().err
    assert files[0].stat().st_mtime_ns == before
    assert main([*args, "--overwrite"]) == 0
    # an --out that cannot be a folder is refused before any mask is computed, in one line
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    capsys.readouterr()
    assert main([*args[:-2], str(blocker / "masks"), "--no-progress"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.split(": error: ", 1)[1].startswith(f"{blocker}:"), err  # the folder, not a first mask file
