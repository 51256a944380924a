"""Framing of one's own photos and ``data prepare`` (with a fake pose backend: no extra needed)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from PIL import Image

from posetransfer.commands.prepare import register_prepare
from posetransfer.data import prepare as dp
from posetransfer.data.layouts import identity_of
from posetransfer.errors import DataError, PosetransferError
from posetransfer.pose import extract as ex
from posetransfer.pose.io import read_annotations, read_pairs
from posetransfer.pose.schema import visible


class BoxBackend:
    """Finds one "person" = the bright pixels of the image (none in a dark image); keypoints spread
    over that box, so framing results can be checked exactly."""

    name = "box"

    def extract(self, image):
        ys, xs = np.nonzero(image.mean(axis=2) > 100)
        if len(ys) == 0:
            return []
        top, left, bottom, right = ys.min(), xs.min(), ys.max(), xs.max()
        kp = np.stack([np.linspace(top, bottom, 18), np.linspace(left, right, 18)], axis=1).astype(np.float32)
        return [ex.Detection(kp, np.ones(18, np.float32), (float(top), float(left), float(bottom + 1), float(right + 1)), 1.0)]


def _photo(path, size=(300, 200), box=(50, 60, 250, 140), value=200):
    """A dark photo with a bright rectangle (top, left, bottom, right) as the person; None = no person."""
    image = np.full((*size, 3), 20, np.uint8)
    if box is not None:
        image[box[0]:box[2], box[1]:box[3]] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


# -- framing -----------------------------------------------------------------------------------


def test_height_framing_is_the_deepfashion_convention():
    # A 256x256 DeepFashion image -> 256x176: the same pixels as the field's 40 px side crop.
    f = dp.frame_window((256, 256), (256, 176), "height")
    assert (f.top, f.left, f.height, f.width) == (0, 40, 256, 176)
    image = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    np.testing.assert_array_equal(dp.apply_frame(image, f), image[:, 40:216])
    # a narrow photo is padded on both sides
    f = dp.frame_window((512, 200), (256, 176), "height")
    assert (f.top, f.left, f.height, f.width) == (0, -76, 512, 352)


def test_pad_crop_and_person_windows():
    assert dp.frame_window((100, 400), (128, 64), "pad") == dp.Frame(-350, 0, 800, 400, (128, 64), (100, 400))
    assert dp.frame_window((100, 400), (128, 64), "crop") == dp.Frame(0, 175, 100, 50, (128, 64), (100, 400))
    f = dp.frame_window((1000, 3000), (128, 64), "person", bbox=(400, 1000, 800, 1100))
    # 400 px tall person + 10 % margins -> a 480 x 240 window centred on the box
    assert (f.height, f.width) == (480, 240) and (f.top, f.left) == (360, 930)
    with pytest.raises(PosetransferError, match="unknown framing 'zoom'"):
        dp.frame_window((10, 10), (8, 8), "zoom")


def test_padding_fill_white_and_edge():
    image = np.zeros((100, 50, 3), np.uint8)
    image[:, 0] = 90
    f = dp.frame_window((100, 50), (100, 100), "height")  # 25 px of padding on each side
    white = dp.apply_frame(image, f, fill="white")
    edge = dp.apply_frame(image, f, fill="edge")
    assert (white[:, :20] == 255).all() and (white[:, 30:70] == 0).all()
    assert (edge[:, :20] == 90).all()
    with pytest.raises(PosetransferError, match="unknown padding"):
        dp.apply_frame(image, f, fill="blue")


def test_keypoints_move_with_the_image_and_back():
    f = dp.frame_window((400, 300), (128, 64), "height")  # window x in [50, 250), scale 0.32
    kp = np.full((18, 2), -1, np.float32)
    kp[0] = (199.5, 149.5)  # centre of the photo -> centre of the frame
    kp[1] = (10.0, 20.0)  # outside the window -> missing
    kp[2] = (10.0, 60.0)
    out = f.keypoints_to_frame(kp)
    np.testing.assert_allclose(out[0], (63.5, 31.5))
    assert not visible(out)[1] and not visible(out)[3]
    np.testing.assert_allclose(out[2], ((10 + 0.5) * 0.32 - 0.5, (60 - 50 + 0.5) * 0.32 - 0.5), atol=1e-5)
    back = f.keypoints_to_source(out)
    np.testing.assert_allclose(back[[0, 2]], kp[[0, 2]], atol=1e-4)


def test_paste_back_on_the_canvas():
    rng = np.random.default_rng(1)
    canvas = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    f = dp.frame_window((300, 400), (150, 100), "height")  # window x in [100, 300), scale 0.5
    generated = np.full((150, 100, 3), 7, np.uint8)
    out = f.paste(canvas, generated)
    assert out.shape == canvas.shape
    assert (out[:, 100:300] == 7).all()
    np.testing.assert_array_equal(out[:, :100], canvas[:, :100])
    np.testing.assert_array_equal(out[:, 300:], canvas[:, 300:])


def test_parse_size():
    assert dp.parse_size("256x176") == (256, 176)
    with pytest.raises(PosetransferError, match="HEIGHTxWIDTH"):
        dp.parse_size("256")


# -- data prepare ---------------------------------------------------------------------------


def _raw(tmp_path):
    raw = tmp_path / "raw"
    for person in ("alice", "bob", "carol", "dave", "eve"):
        for k in range(3):
            _photo(raw / person / f"IMG_{k}.jpg", box=(40 + 5 * k, 50, 260, 150))
    _photo(raw / "bob" / "wall.png", box=None)  # no person
    (raw / "carol" / "broken.jpg").write_text("not an image")
    (raw / "carol" / "notes.txt").write_text("ignored: not an image extension")
    return raw


def test_prepare_writes_splits_by_identity(tmp_path):
    raw = _raw(tmp_path)
    out = tmp_path / "ds"
    report = dp.prepare_dataset(raw, out, (128, 64), test_fraction=0.4, backend=BoxBackend())
    assert report.train + report.test == 15 and report.identities == {"train": 3, "test": 2}
    assert list(report.no_person) == ["bob/wall.png"] and list(report.unreadable) == ["carol/broken.jpg"]
    ids = {}
    for split in ("train", "test"):
        ann = read_annotations(out / split / "annotation.csv")
        names = sorted(p.name for p in (out / split / "images").iterdir())
        assert names == sorted(ann)
        for name in names:
            assert Image.open(out / split / "images" / name).size == (64, 128)
            assert visible(ann[name]).all()
        pairs = read_pairs(out / split / "pairs.csv")
        assert all(identity_of(a) == identity_of(b) and a != b for a, b in pairs)
        assert len(pairs) == 6 * len({identity_of(n) for n in names})  # 3 photos -> 6 ordered pairs
        ids[split] = {identity_of(n) for n in names}
    assert not ids["train"] & ids["test"] and ids["train"] | ids["test"] == {"alice", "bob", "carol", "dave", "eve"}
    assert "bob/wall.png\t" in (out / "no_person.txt").read_text()
    assert "carol/broken.jpg\tnot an image" in (out / "unreadable.txt").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_prepare_keypoints_follow_the_framing(tmp_path):
    raw = tmp_path / "raw"
    _photo(raw / "p" / "a.png", size=(400, 300), box=(100, 120, 300, 180))
    dp.prepare_dataset(raw, tmp_path / "ds", (128, 64), test_fraction=0.0, backend=BoxBackend())
    kp = read_annotations(tmp_path / "ds" / "train" / "annotation.csv")["p_a.png"]
    f = dp.frame_window((400, 300), (128, 64), "height")
    raw_kp = BoxBackend().extract(np.asarray(Image.open(raw / "p" / "a.png")))[0].keypoints
    np.testing.assert_allclose(kp, np.round(f.keypoints_to_frame(raw_kp)))


def test_prepare_identity_regex_and_unmatched(tmp_path):
    raw = tmp_path / "raw"
    for name in ("id7_front.png", "id7_back.png", "id9_side.png", "misc.png"):
        _photo(raw / name)
    report = dp.prepare_dataset(raw, tmp_path / "ds", (64, 32), identity=r"^(id\d+)_", test_fraction=0.0,
                                backend=BoxBackend())  # fmt: skip
    assert report.no_identity == ["misc.png"]
    ann = read_annotations(tmp_path / "ds" / "train" / "annotation.csv")
    assert sorted(ann) == ["id7_back.png", "id7_front.png", "id9_side.png"]
    assert len(read_pairs(tmp_path / "ds" / "train" / "pairs.csv")) == 2


def test_prepare_refuses_bad_inputs_and_leaves_nothing(tmp_path):
    raw = tmp_path / "raw"
    _photo(raw / "a" / "x.png", box=None)
    with pytest.raises(DataError, match="no person found in any of the 1 photo"):
        dp.prepare_dataset(raw, tmp_path / "ds", (64, 32), backend=BoxBackend())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]
    with pytest.raises(DataError, match="not a folder"):
        dp.prepare_dataset(tmp_path / "missing", tmp_path / "ds", (64, 32), backend=BoxBackend())
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files found"):
        dp.prepare_dataset(tmp_path / "empty", tmp_path / "ds", (64, 32), backend=BoxBackend())
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "keep.txt").write_text("x")
    _photo(raw / "a" / "y.png")
    with pytest.raises(DataError, match="already exists and is not empty"):
        dp.prepare_dataset(raw, tmp_path / "ds", (64, 32), backend=BoxBackend())
    assert (tmp_path / "ds" / "keep.txt").read_text() == "x"


def test_register_prepare_cli(tmp_path, capsys):
    ex.register_backend("box", BoxBackend)
    try:
        parser = argparse.ArgumentParser()
        register_prepare(parser.add_subparsers(dest="action"))
        raw = _raw(tmp_path)
        args = parser.parse_args(["prepare", str(raw), "--out", str(tmp_path / "ds"), "--size", "128x64",
                                  "--backend", "box", "--no-progress"])  # fmt: skip
        assert args.func(args) == 0
        captured = capsys.readouterr()
        assert "no person: bob/wall.png" in captured.err and "unreadable: carol/broken.jpg" in captured.err
        assert "wrote" in captured.out and (tmp_path / "ds" / "test" / "pairs.csv").is_file()
        with pytest.raises(SystemExit):
            parser.parse_args(["prepare", str(raw), "--out", "x", "--size", "big"])
    finally:
        ex.unregister_backend("box")
