"""Data set layouts (plain, Market, DeepFashion), identity from file names, and pair generation."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from posetransfer.data.layouts import DatasetFiles, identity_of, list_images, resolve_dataset
from posetransfer.data.pairs import has_torso, make_pairs, pair_line_numbers
from posetransfer.errors import DataError
from posetransfer.pose.io import read_annotations, read_pairs, write_annotations, write_pairs
from posetransfer.pose.schema import KEYPOINT_INDEX, empty_pose


def _field_folder(src: Path, dst: Path, ann_name: str, pairs_name: str | None, image_dir: str, n: int = 6) -> list[str]:
    """Symlink ``n`` images of a real-mini folder into ``dst/image_dir`` and write field-named CSVs."""
    ann = read_annotations(src / "annotation.csv")
    names = sorted(ann)[:n]
    (dst / image_dir).mkdir(parents=True)
    for name in names:
        os.symlink(src / "images" / name, dst / image_dir / name)
    write_annotations(dst / ann_name, {k: ann[k] for k in names})
    if pairs_name:
        write_pairs(dst / pairs_name, [(names[0], names[1])])
    return names


def test_plain_layout_real_mini(mini_market, mini_fashion):
    files = resolve_dataset(mini_market)
    assert files.layout == "plain" and files.split is None
    assert files.images_dir == mini_market / "images"
    assert files.annotation_path == mini_market / "annotation.csv"
    assert files.pairs_path == mini_market / "pairs.csv"
    assert files.image_size() == (128, 64)
    assert len(files.image_names()) == 255
    assert resolve_dataset(mini_fashion).image_size() == (256, 176)
    # a given size is used as is (no image read)
    assert resolve_dataset(mini_fashion, size=(256, 176)).size == (256, 176)


def test_market_layout(tmp_path, mini_market):
    names = _field_folder(mini_market, tmp_path, "market-annotation-test.csv", "market-pairs-test.csv", "test")
    files = resolve_dataset(tmp_path, "test")
    assert files.layout == "market" and files.split == "test"
    assert files.images_dir == tmp_path / "test"
    assert files.annotation_path == tmp_path / "market-annotation-test.csv"
    assert files.pairs_path == tmp_path / "market-pairs-test.csv"
    assert files.image_size() == (128, 64)
    assert files.image_names() == names
    # one split only: the split may be left out
    assert resolve_dataset(tmp_path) == files
    with pytest.raises(DataError, match="no split 'train'.*market-annotation-train.csv"):
        resolve_dataset(tmp_path, "train")


def test_market_bounding_box_folder_without_pairs(tmp_path, mini_market):
    _field_folder(mini_market, tmp_path, "market-annotation-train.csv", None, "bounding_box_train")
    files = resolve_dataset(tmp_path, "train")
    assert files.layout == "market"
    assert files.images_dir == tmp_path / "bounding_box_train"
    assert files.pairs_path is None


@pytest.mark.parametrize(
    "ann, pairs",
    [
        ("fasion-resize-annotation-{}.csv", "fasion-resize-pairs-{}.csv"),  # 256x176, PATN / GFLA
        ("fasion-annotation-{}.csv", "fasion-pairs-{}.csv"),  # 256x256, Deformable GAN
    ],
)
def test_deepfashion_layout_both_splits(tmp_path, mini_fashion, ann, pairs):
    for split in ("train", "test"):
        _field_folder(mini_fashion, tmp_path, ann.format(split), pairs.format(split), split, n=3)
    with pytest.raises(DataError, match="holds the splits train, test"):
        resolve_dataset(tmp_path)
    files = resolve_dataset(tmp_path, "train")
    assert files.layout == "deepfashion"
    assert files.annotation_path.name == ann.format("train")
    assert files.pairs_path.name == pairs.format("train")
    assert files.image_size() == (256, 176)


def test_plain_splits_as_synth_writes(tmp_path, mini_market):
    for split in ("train", "test"):
        d = tmp_path / split
        _field_folder(mini_market, d, "annotation.csv", "pairs.csv", "images", n=4)
    files = resolve_dataset(tmp_path, "test")
    assert files == DatasetFiles(tmp_path / "test", tmp_path / "test" / "images", tmp_path / "test" / "annotation.csv",
                                 tmp_path / "test" / "pairs.csv", "plain", "test")  # fmt: skip
    with pytest.raises(DataError, match="--split"):
        resolve_dataset(tmp_path)


def test_unrecognised_folder_says_what_was_looked_for(tmp_path):
    (tmp_path / "images").mkdir()  # no annotation.csv
    with pytest.raises(DataError) as err:
        resolve_dataset(tmp_path)
    msg = str(err.value)
    assert str(tmp_path) in msg
    for expected in ("annotation.csv", "market-annotation-<split>.csv", "fasion-resize-annotation-<split>.csv"):
        assert expected in msg
    with pytest.raises(DataError, match="does not exist"):
        resolve_dataset(tmp_path / "nope")


def test_empty_image_folder_size_error(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "notes.txt").write_text("x")
    write_annotations(tmp_path / "annotation.csv", {})
    files = resolve_dataset(tmp_path)
    assert list_images(files.images_dir) == []
    with pytest.raises(DataError, match="holds no images"):
        files.image_size()


@pytest.mark.parametrize(
    "name, identity",
    [
        ("0001_c3s1_000551_03.png", "0001"),
        ("0364_c2s1_084546_01.jpg", "0364"),
        ("-1_c2s3_095277_02.jpg", "-1"),  # Market's junk images
        ("fashionMENJackets_Vestsid0000065304_1front.png", "fashionMENJackets_Vestsid0000065304"),
        ("fashionWOMENShortsid0000074801_2side.jpg", "fashionWOMENShortsid0000074801"),
        ("fashionWOMENRompers_Jumpsuitsid0000104507_7additional.jpg", "fashionWOMENRompers_Jumpsuitsid0000104507"),
        ("fashionWOMENSkirtsid0000062904_6flat.jpg", "fashionWOMENSkirtsid0000062904"),
        ("id00012_03.png", "id00012"),
        ("alice_beach_2.jpg", "alice"),
        ("portrait.png", "portrait"),
    ],
)
def test_identity_of(name, identity):
    assert identity_of(name) == identity


def test_identity_of_agrees_with_the_fields_real_pairs(annotations_dir):
    # The field's pair files join photos of the same person: every pair must share an identity.
    for pairs_file in ("market-pairs-test.csv", "fasion-resize-pairs-test.csv"):
        pairs = read_pairs(annotations_dir / pairs_file)
        assert len(pairs) > 1000
        assert all(identity_of(a) == identity_of(b) for a, b in pairs), pairs_file
    # and DeepFashion identities hold several views, not one per file
    names = list(read_annotations(annotations_dir / "fasion-resize-annotation-test.csv"))
    assert len({identity_of(n) for n in names}) < len(names) / 2


def _pose(torso: bool = True) -> np.ndarray:
    kp = empty_pose()
    kp[:] = [[10, 10]] * 18
    if not torso:
        kp[KEYPOINT_INDEX["left_hip"]] = -1
    return kp


def test_make_pairs_hand_computed():
    ann = {"a_1.png": _pose(), "a_2.png": _pose(), "a_3.png": _pose(False), "b_1.png": _pose(), "c_1.png": _pose()}
    pairs = make_pairs(ann, seed=0)
    assert sorted(pairs) == [
        ("a_1.png", "a_2.png"), ("a_1.png", "a_3.png"), ("a_2.png", "a_1.png"),
        ("a_2.png", "a_3.png"), ("a_3.png", "a_1.png"), ("a_3.png", "a_2.png"),
    ]  # fmt: skip
    assert sorted(make_pairs(ann, require_torso=True)) == [("a_1.png", "a_2.png"), ("a_2.png", "a_1.png")]
    assert has_torso(_pose()) and not has_torso(_pose(False))


def test_make_pairs_real_market_deterministic(mini_market):
    ann = read_annotations(mini_market / "annotation.csv")
    pairs = make_pairs(ann, seed=3)
    assert all(identity_of(a) == identity_of(b) and a != b for a, b in pairs)
    assert len(set(pairs)) == len(pairs)
    # same seed -> same list, whatever the dict order; other seed -> other order, same set
    shuffled = dict(reversed(list(ann.items())))
    assert make_pairs(shuffled, seed=3) == pairs
    other = make_pairs(ann, seed=4)
    assert other != pairs and sorted(other) == sorted(pairs)
    assert make_pairs(ann, seed=3, max_pairs=10) == pairs[:10]
    # every real-mini Market photo shows its torso; hide a hip on the first photos of some people
    assert all(has_torso(kp) for kp in ann.values())
    hidden = {a for a, _ in pairs[:5]}
    for name in hidden:
        ann[name] = ann[name].copy()
        ann[name][KEYPOINT_INDEX["right_hip"]] = -1
    torso = make_pairs(ann, seed=3, require_torso=True)
    assert sorted(torso) == sorted(p for p in pairs if not hidden & set(p))
    with pytest.raises(ValueError):
        make_pairs(ann, max_pairs=-1)


def test_pair_line_numbers_skip_blank_rows(tmp_path):
    p = tmp_path / "pairs.csv"
    p.write_text("from,to\na.png,b.png\n\nc.png,d.png\n , \ne.png,f.png\n")
    assert read_pairs(p) == [("a.png", "b.png"), ("c.png", "d.png"), ("e.png", "f.png")]
    assert pair_line_numbers(p) == [2, 4, 6]
