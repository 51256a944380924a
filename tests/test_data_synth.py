"""Tests for the synthetic people data set (posetransfer.data.synth)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from posetransfer.data import synth
from posetransfer.data.synth import (
    VIEWS,
    photo_name,
    render_person,
    render_photo,
    sample_appearance,
    sample_pose,
    split_identities,
    synthesize,
    view_plan,
)
from posetransfer.errors import DataError, PosetransferError
from posetransfer.pose.io import read_annotations, read_pairs
from posetransfer.pose.schema import KEYPOINT_INDEX as K
from posetransfer.pose.schema import visible
from posetransfer.utils.io import read_image

SMALL = dict(size=(64, 32), identities=6, views=4, progress=False)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "set"
    summary = synthesize(out, seed=3, **SMALL)
    return out, summary


def test_same_seed_same_bytes_and_different_seed_differs(tmp_path, small_set):
    out, _ = small_set
    again = synthesize(tmp_path / "again", seed=3, **SMALL)
    assert again["train"]["images"] + again["test"]["images"] == 24
    a, b = _files(out), _files(tmp_path / "again")
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []

    synthesize(tmp_path / "other", seed=4, **SMALL)
    c = _files(tmp_path / "other")
    images_a = {k: v for k, v in a.items() if k.endswith(".png")}
    images_c = {k: v for k, v in c.items() if k.endswith(".png")}
    common = images_a.keys() & images_c.keys()
    assert common and all(images_a[k] != images_c[k] for k in common)


def test_photo_does_not_depend_on_processing_order(small_set):
    out, _ = small_set
    name = photo_name(2, 3)
    split = "train" if (out / "train" / "images" / name).exists() else "test"
    on_disk = read_image(out / split / "images" / name)
    image, kp, _ = render_photo(3, 2, 3, 4, (64, 32), "varied")  # rendered alone, out of order
    np.testing.assert_array_equal(on_disk, image)
    np.testing.assert_array_equal(read_annotations(out / split / "annotation.csv")[name], kp)


def test_layout_format_and_identity_split(small_set):
    out, summary = small_set
    ids = {}
    for split in ("train", "test"):
        folder = out / split
        ann = read_annotations(folder / "annotation.csv")
        pairs = read_pairs(folder / "pairs.csv")
        images = sorted(p.name for p in (folder / "images").iterdir())
        assert images == sorted(ann)
        for name, kp in ann.items():
            assert read_image(folder / "images" / name, size=(64, 32)).shape == (64, 32, 3)
            vis = visible(kp)
            assert ((kp[vis, 0] <= 63) & (kp[vis, 1] <= 31)).all()
        ids[split] = {n.split("_")[0] for n in ann}
        # All ordered pairs of distinct photos of one identity: 4 * 3 per identity.
        assert len(pairs) == len(ids[split]) * 4 * 3 == summary[split]["pairs"]
        assert len(set(pairs)) == len(pairs)
        for a, b in pairs:
            assert a != b and a in ann and b in ann and a.split("_")[0] == b.split("_")[0]
        assert summary[split]["images"] == len(ann) == 4 * len(ids[split])
        marker = json.loads((folder / "synth.json").read_text())
        assert marker["generator"] == "posetransfer.data.synth" and marker["split"] == split
    assert ids["train"] and ids["test"] and not ids["train"] & ids["test"]
    assert ids["train"] | ids["test"] == {f"id{i:05d}" for i in range(6)}
    assert sorted(p.name for p in out.iterdir()) == ["test", "train"]  # no temporary folders left


def test_split_sizes():
    assert split_identities(0, 2, 0.01) == split_identities(0, 2, 0.01)
    train, test = split_identities(0, 2, 0.01)
    assert len(train) == 1 and len(test) == 1
    train, test = split_identities(0, 10, 0.99)
    assert len(train) == 1 and len(test) == 9
    train, test = split_identities(5, 40, 0.2)
    assert len(test) == 8 and sorted(train + test) == list(range(40))
    assert split_identities(0, 1, 0.5) == ([0], [])


def test_every_view_once_before_repeats():
    plan = view_plan(0, 7, 6)
    assert sorted(plan[:4]) == sorted(VIEWS) and len(plan) == 6
    assert sorted(view_plan(0, 7, 2)) == sorted(plan[:2])


def _photos(seed: int, n_ids: int, views: int, size, background):
    for ident in range(n_ids):
        for v in range(views):
            image, kp, view = render_photo(seed, ident, v, views, size, background)
            yield ident, image, kp, view


def test_keypoints_lie_on_the_person_on_plain_background():
    checked = 0
    for _, image, kp, _ in _photos(1, 6, 4, (128, 64), "plain"):
        bg = np.median(image[0].astype(float), axis=0)
        for joint in ("right_hip", "left_hip", "right_shoulder", "left_shoulder", "neck"):
            y, x = kp[K[joint]]
            if y < 0:
                continue
            pixel = image[int(y), int(x)].astype(float)
            assert np.abs(pixel - bg).max() > 12, (joint, pixel, bg)
            checked += 1
    assert checked >= 6 * 4 * 4


def test_view_dependent_keypoints():
    seen = set()
    for _, _, kp, view in _photos(2, 6, 4, (128, 64), "varied"):
        seen.add(view)
        rs, ls, rh, lh = kp[K["right_shoulder"]], kp[K["left_shoulder"]], kp[K["right_hip"]], kp[K["left_hip"]]
        face = [K["nose"], K["right_eye"], K["left_eye"]]
        if view == "back":
            assert (kp[face] == -1).all()
            assert rs[1] > ls[1] and rh[1] > lh[1]  # the person's right is on the image's right
        elif view == "front":
            assert (kp[face] >= 0).all()
            assert rs[1] < ls[1] and rh[1] < lh[1]  # mirror: the person's right on the image's left
        else:
            eyes = kp[[K["right_eye"], K["left_eye"]], 0] >= 0
            assert eyes.sum() <= 1
            if view == "right":  # the near side is the right one: its eye is the visible one
                assert kp[K["left_eye"], 0] == -1
            else:
                assert kp[K["right_eye"], 0] == -1
    assert seen == set(VIEWS)


def test_keypoints_outside_the_frame_are_missing():
    rng = np.random.default_rng(0)
    app = sample_appearance(rng)
    pose = dataclasses.replace(sample_pose(rng, "front"), height_frac=1.7, y_margin=0.0)
    image, kp = render_person(app, pose, (128, 64), "plain", rng)
    assert image.shape == (128, 64, 3) and image.dtype == np.uint8
    assert (kp[[K["right_ankle"], K["left_ankle"]]] == -1).all()
    assert (kp[[K["neck"], K["nose"]]] >= 0).all()


def test_clothing_is_consistent_within_an_identity():
    """Colour statistics of the body (torso and thighs) are closer within an identity than across."""
    feats: dict[int, list[np.ndarray]] = {}
    for ident, image, kp, _ in _photos(5, 6, 4, (128, 64), "varied"):
        pts = []
        if (kp[[K["neck"], K["right_hip"], K["left_hip"]]] >= 0).all():
            hip = (kp[K["right_hip"]] + kp[K["left_hip"]]) / 2
            pts.append(kp[K["neck"]] + 0.6 * (hip - kp[K["neck"]]))
        for h, k in (("right_hip", "right_knee"), ("left_hip", "left_knee")):
            if kp[K[h], 0] >= 0 and kp[K[k], 0] >= 0:
                pts.append((kp[K[h]] + kp[K[k]]) / 2)
        assert len(pts) == 3
        patches = [image[int(y) - 2 : int(y) + 3, int(x) - 1 : int(x) + 2].reshape(-1, 3).mean(0) for y, x in pts]
        feats.setdefault(ident, []).append(np.concatenate(patches))
    within, between = [], []
    ids = sorted(feats)
    for i in ids:
        for a in range(4):
            for b in range(a + 1, 4):
                within.append(np.linalg.norm(feats[i][a] - feats[i][b]))
            for j in ids:
                if j > i:
                    between.append(np.linalg.norm(feats[i][a] - feats[j][a]))
    assert np.mean(within) < 0.5 * np.mean(between)


def test_sizes_are_exact_for_both_data_set_shapes():
    for size in ((128, 64), (256, 176), (256, 256), (64, 32)):
        image, kp, _ = render_photo(0, 0, 0, 4, size, "plain")
        assert image.shape == (*size, 3)
        assert kp.shape == (18, 2) and kp.dtype == np.float32


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(size=(0, 64)),
        dict(size=(128,)),
        dict(size="128x64"),
        dict(size=(128.5, 64)),
        dict(identities=0),
        dict(identities=True),
        dict(views=1),
        dict(seed=-1),
        dict(background="street"),
        dict(test_fraction=0.0),
        dict(test_fraction=1.0),
        dict(test_fraction="0.2"),
    ],
)
def test_bad_arguments_raise(tmp_path, kwargs):
    args = dict(SMALL, **kwargs)
    with pytest.raises(PosetransferError):
        synthesize(tmp_path / "x", **args)
    assert not (tmp_path / "x").exists()


def test_refuses_to_overwrite_foreign_folder_but_replaces_its_own(tmp_path):
    out = tmp_path / "set"
    (out / "train").mkdir(parents=True)
    (out / "train" / "precious.txt").write_text("keep me")
    with pytest.raises(DataError, match="refusing to overwrite"):
        synthesize(out, **SMALL)
    assert (out / "train" / "precious.txt").read_text() == "keep me"
    assert not (out / "test").exists()

    (out / "train" / "precious.txt").unlink()
    synthesize(out, seed=0, **SMALL)
    first = _files(out)
    synthesize(out, seed=1, **SMALL)  # our own output: replaced
    second = _files(out)
    assert first.keys() != second.keys() or any(first[k] != second[k] for k in first)
    assert sorted(p.name for p in out.iterdir()) == ["test", "train"]


def test_interrupted_run_leaves_no_complete_looking_split(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = synth.render_photo

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(synth, "render_photo", flaky)
    with pytest.raises(KeyboardInterrupt):
        synthesize(tmp_path / "set", **SMALL)
    assert list((tmp_path / "set").iterdir()) == []
