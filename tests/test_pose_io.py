"""Annotation and pair files: every real file of the field parses; round trips; malformed rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posetransfer.errors import DataError
from posetransfer.pose.io import read_annotations, read_pairs, write_annotations, write_pairs
from posetransfer.pose.schema import FLIP_PERMUTATION, KEYPOINT_NAMES, LIMBS, NUM_KEYPOINTS

EXPECTED_ROWS = {
    "market-annotation-train.csv": 12936,
    "market-annotation-test.csv": 19732,
    "fasion-resize-annotation-test.csv": 4038,
}
EXPECTED_PAIRS = {"market-pairs-test.csv": 12000, "fasion-resize-pairs-test.csv": 8570}


def test_schema_is_consistent():
    assert len(KEYPOINT_NAMES) == NUM_KEYPOINTS == len(FLIP_PERMUTATION)
    perm = np.array(FLIP_PERMUTATION)
    assert (perm[perm] == np.arange(NUM_KEYPOINTS)).all()  # an involution
    for i, j in enumerate(FLIP_PERMUTATION):
        a, b = KEYPOINT_NAMES[i], KEYPOINT_NAMES[j]
        assert a.replace("right", "X").replace("left", "X") == b.replace("right", "X").replace("left", "X")
        assert (a == b) == ("right" not in a and "left" not in a)
    assert all(0 <= i < NUM_KEYPOINTS and 0 <= j < NUM_KEYPOINTS for i, j in LIMBS)


@pytest.mark.parametrize("name,rows", sorted(EXPECTED_ROWS.items()))
def test_every_real_annotation_row_parses(annotations_dir, name, rows):
    ann = read_annotations(annotations_dir / name)
    assert len(ann) == rows
    kp = np.stack(list(ann.values()))
    assert kp.shape == (rows, NUM_KEYPOINTS, 2) and kp.dtype == np.float32
    # a missing keypoint is missing in both coordinates
    assert ((kp[..., 0] == -1) == (kp[..., 1] == -1)).all()


def test_real_annotation_values(annotations_dir):
    ann = read_annotations(annotations_dir / "market-annotation-train.csv")
    kp = ann["0432_c5s1_105323_05.jpg"]  # the first row of the file
    assert kp[0].tolist() == [48, 32]  # nose (y, x)
    assert kp[6].tolist() == [-1, -1]  # left elbow missing
    assert kp[:, 0].max() <= 127 and kp[:, 1].max() <= 63


@pytest.mark.parametrize("name,rows", sorted(EXPECTED_PAIRS.items()))
def test_every_real_pair_row_parses(annotations_dir, name, rows):
    pairs = read_pairs(annotations_dir / name)
    assert len(pairs) == rows
    ann_name = name.replace("pairs", "annotation")
    ann = read_annotations(annotations_dir / ann_name)
    assert all(a in ann and b in ann for a, b in pairs)


def test_round_trip(tmp_path, mini_market):
    ann = read_annotations(mini_market / "annotation.csv")
    write_annotations(tmp_path / "a.csv", ann)
    back = read_annotations(tmp_path / "a.csv")
    assert list(back) == list(ann)
    assert all(np.array_equal(back[k], ann[k]) for k in ann)
    pairs = read_pairs(mini_market / "pairs.csv")
    write_pairs(tmp_path / "p.csv", pairs)
    assert read_pairs(tmp_path / "p.csv") == pairs


GOOD = "a.png:" + str([1] * 18) + ":" + str([2] * 18)


@pytest.mark.parametrize(
    "row,problem",
    [
        ("a.png:[1, 2]:[1, 2]", "keypoints_y has 2 values, expected 18"),
        ("a.png:" + str([1] * 18), "expected 3 fields"),
        ("a.png:[1, x]:" + str([2] * 18), "keypoints_y is not a list of integers"),
        ("a.png:" + str([1] * 18) + ":" + str([2.5] * 18), "non-integer"),
        (":" + str([1] * 18) + ":" + str([2] * 18), "empty image name"),
        ("a.png:" + str([1] * 18) + ":" + json.dumps(["a"] * 18), "not a list of numbers"),
    ],
)
def test_malformed_annotation_rows_name_file_and_line(tmp_path, row, problem):
    path = tmp_path / "bad.csv"
    path.write_text("name:keypoints_y:keypoints_x\n" + GOOD.replace("a.png", "ok.png") + "\n" + row + "\n")
    with pytest.raises(DataError) as err:
        read_annotations(path)
    assert str(err.value).startswith(f"{path}, line 3: ")
    assert problem in str(err.value)


def test_annotation_file_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_annotations(tmp_path / "none.csv")
    (tmp_path / "h.csv").write_text("name,y,x\n")
    with pytest.raises(DataError, match="line 1: expected the header"):
        read_annotations(tmp_path / "h.csv")
    (tmp_path / "d.csv").write_text("name:keypoints_y:keypoints_x\n" + GOOD + "\n" + GOOD + "\n")
    with pytest.raises(DataError, match="line 3: image 'a.png' is annotated twice"):
        read_annotations(tmp_path / "d.csv")
    (tmp_path / "b.csv").write_bytes(b"name:keypoints_y:keypoints_x\n\xff\xfe\n")
    with pytest.raises(DataError, match="not a text file"):
        read_annotations(tmp_path / "b.csv")


def test_pairs_file_errors(tmp_path):
    (tmp_path / "p.csv").write_text("from,to\na.png,b.png,c.png\n")
    with pytest.raises(DataError, match="line 2: expected 2 comma-separated names"):
        read_pairs(tmp_path / "p.csv")
    (tmp_path / "q.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="expected the header 'from,to'"):
        read_pairs(tmp_path / "q.csv")
