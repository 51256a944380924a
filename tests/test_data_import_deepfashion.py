"""``data import deepfashion``: a fake In-shop tree built from the real-mini photos -> the field's layout.

The real-mini DeepFashion photos are the field's 256x176 crops; the fake ``img/`` tree puts them
back under their raw In-shop paths and pads them back to 256x256 (with noise, so that a crop off by
one column shows). References are written from PATN's released script
(github.com/tengteng95/Pose-Transfer, ``tool/generate_fashion_datasets.py``: the name at lines
49-53, the crop at line 56, the save at lines 58-60; ``tool/resize_fashion.py`` lines 31-39: the
40-pixel keypoint shift), not from our code.
"""

from __future__ import annotations

import io
import re
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import posetransfer.data.importers.deepfashion as df
from posetransfer.data.importers.common import write_annotations as write_field_annotations
from posetransfer.cli import main
from posetransfer.errors import DataError, PosetransferError
from posetransfer.pose import extract as ex
from posetransfer.pose.io import read_annotations, read_pairs, write_annotations, write_pairs

# -- references from PATN's tool/generate_fashion_datasets.py -----------------------------------


def patn_name(rel: str) -> str:
    """Lines 49-53, on the path the script's indices expect: a relative ``fashion/<G>/<C>/<id>/<file>``."""
    path_names = rel.split("/")
    path_names[3] = path_names[3].replace("_", "")
    path_names[4] = path_names[4].split("_")[0] + "_" + "".join(path_names[4].split("_")[1:])
    return "".join(path_names)


def patn_crop(path: Path) -> Image.Image:
    """Line 56: ``img.crop((40, 0, 216, 256))``."""
    return Image.open(path).crop((40, 0, 216, 256))


def patn_saved_jpg(path: Path) -> np.ndarray:
    """Lines 58-60: the crop saved under its ``.jpg`` name (PIL's default JPEG settings), decoded."""
    buf = io.BytesIO()
    patn_crop(path).save(buf, format="JPEG")
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


_FIELD = re.compile(r"^fashion(MEN|WOMEN)(.+)id(\d{8})(\d{2})_(\d+)([a-z]+)\.\w+$")


def raw_rel(name: str) -> str:
    """The In-shop path of a field name, written by hand for the fake tree (e.g. ``WOMEN/Dresses/
    id_00000740/03_1_front.jpg``)."""
    g, c, digits, nn, v, view = _FIELD.match(name).groups()
    return f"{g}/{c}/id_{digits}/{nn}_{v}_{view}.jpg"


# -- the fake download ---------------------------------------------------------------------------


def _jpg(name: str) -> str:
    return name.rsplit(".", 1)[0] + ".jpg"


@pytest.fixture()
def inshop(tmp_path, mini_fashion):
    """raw/img/ (12 listed images + 1 unlisted), lists/, ann/ (256x176 annotation; pairs for train only)."""
    ann = read_annotations(mini_fashion / "annotation.csv")
    groups: dict[str, list[str]] = {}
    for n in sorted(ann):
        groups.setdefault(_FIELD.match(n).group(0).rsplit("_", 1)[0], []).append(n)
    people = [g for g in groups.values() if len(g) >= 2][:5]
    train = [n for g in people[:4] for n in g]
    test = people[4]
    rng = np.random.default_rng(0)
    raw = tmp_path / "raw"
    for n in [*train, *test, sorted(ann)[-1]]:
        crop = np.asarray(Image.open(mini_fashion / "images" / n).convert("RGB"))
        assert crop.shape == (256, 176, 3)
        frame = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
        frame[:, 40:216] = crop
        dst = raw / "img" / raw_rel(n)
        dst.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(frame).save(dst, quality=95)
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.lst").write_text("".join(_jpg(n) + "\n" for n in train))
    (lists / "test.lst").write_text("".join(_jpg(n) + "\n" for n in test))
    adir = tmp_path / "ann"
    no_row = train[1]  # a listed image the annotation does not cover
    for split, names in (("train", train), ("test", test)):
        write_annotations(adir / f"fasion-resize-annotation-{split}.csv",
                          {_jpg(n): ann[n] for n in names if n != no_row})  # fmt: skip
    pairs = [(_jpg(a), _jpg(b)) for a, b in read_pairs(mini_fashion / "pairs.csv") if a in train and b in train]
    assert pairs
    write_pairs(adir / "fasion-resize-pairs-train.csv", pairs)
    return {"raw": raw, "lists": lists, "ann": adir, "train": train, "test": test, "no_row": no_row,
            "annotation": ann, "pairs": pairs, "tmp": tmp_path}  # fmt: skip


def _run(inshop, out, **kw):
    kw = {"lists": inshop["lists"], "annotations": inshop["ann"], "progress": False, **kw}
    return df.import_deepfashion(inshop["raw"], inshop["tmp"] / out, **kw)


# -- names ---------------------------------------------------------------------------------------


def test_names_of_every_listed_image_follow_patn(annotations_dir):
    names = [line for f in ("train.lst", "test.lst") for line in (annotations_dir / f).read_text().split()]
    assert len(names) == df.PUBLISHED["images"] == 52712
    for name in names:
        rel = df.raw_relpath(name)
        assert patn_name("fashion/" + rel.as_posix()) == name
        assert df.field_name(*rel.parts) == name
    assert df.raw_relpath("fashionWOMENBlouses_Shirtsid0000074003_1front.jpg") == Path(
        "WOMEN/Blouses_Shirts/id_00000740/03_1_front.jpg")
    assert df.raw_relpath("0001_c1s1_000001_01.jpg") is None


def test_lists_checksums_are_those_of_the_field(annotations_dir):
    import hashlib

    for name, digest in df.LIST_SHA256.items():
        assert hashlib.sha256((annotations_dir / name).read_bytes()).hexdigest() == digest


# -- the import ----------------------------------------------------------------------------------


def test_import_256x176_png_names_pixels_keypoints_splits(inshop):
    report = _run(inshop, "out", fmt="png")
    out = inshop["tmp"] / "out"
    for split in ("train", "test"):
        assert sorted(p.name for p in (out / split).iterdir()) == sorted(inshop[split])
    for n in inshop["train"] + inshop["test"]:
        split = "train" if n in inshop["train"] else "test"
        got = np.asarray(Image.open(out / split / n))
        ref = np.asarray(patn_crop(inshop["raw"] / "img" / raw_rel(n)).convert("RGB"))
        assert got.shape == (256, 176, 3) and np.array_equal(got, ref)
    ann = read_annotations(out / "fasion-resize-annotation-train.csv")
    assert sorted(ann) == sorted(n for n in inshop["train"] if n != inshop["no_row"])
    for n, kp in ann.items():
        assert np.array_equal(kp, inshop["annotation"][n])
    assert (out / "missing-keypoints-train.txt").read_text().split() == [inshop["no_row"]]
    pairs = read_pairs(out / "fasion-resize-pairs-train.csv")
    expected = [(a[:-4] + ".png", b[:-4] + ".png") for a, b in inshop["pairs"]]
    assert pairs == [p for p in expected if inshop["no_row"] not in p]
    assert report.splits["test"].pairs_source.startswith("generated")
    assert all(a.rsplit("_", 1)[0] == b.rsplit("_", 1)[0] for a, b in read_pairs(out / "fasion-resize-pairs-test.csv"))
    assert (out / "import-manifest.json").is_file() and not (out / ".import-progress.json").exists()
    assert (out / "train.lst").read_text() == (inshop["lists"] / "train.lst").read_text()
    assert report.check_ok, report.check_lines
    text = "\n".join(report.lines())
    assert "published 52,712" in text and "published 101,966" in text and "1 images without keypoints" in text
    assert "1 images of" in text and "in neither list" in text  # the unlisted raw image


def test_import_jpg_is_patns_saved_crop_and_256x256_copies_bytes(inshop):
    _run(inshop, "crop")
    n = inshop["test"][0]
    raw = inshop["raw"] / "img" / raw_rel(n)
    got = np.asarray(Image.open(inshop["tmp"] / "crop" / "test" / _jpg(n)).convert("RGB"))
    assert np.array_equal(got, patn_saved_jpg(raw))
    report = _run(inshop, "full", size=(256, 256))
    assert (inshop["tmp"] / "full" / "test" / _jpg(n)).read_bytes() == raw.read_bytes()
    assert report.check_ok and (inshop["tmp"] / "full" / "fasion-annotation-test.csv").is_file()
    from posetransfer.data.datasets import PairDataset
    from posetransfer.data.layouts import resolve_dataset

    files = resolve_dataset(inshop["tmp"] / "full", "train")  # what the 256x256 recipes read
    assert files.layout == "deepfashion" and files.annotation_path.name == "fasion-annotation-train.csv"
    item = PairDataset(files)[0]
    assert tuple(item["target_image"].shape) == (3, 256, 256)


def test_keypoints_move_40_px_between_the_frames_and_back(inshop):
    _run(inshop, "crop", fmt="png")
    _run(inshop, "full", fmt="png", size=(256, 256))
    crop_dir, full_dir = inshop["tmp"] / "crop", inshop["tmp"] / "full"
    ann176 = read_annotations(crop_dir / "fasion-resize-annotation-train.csv")
    ann256 = read_annotations(full_dir / "fasion-annotation-train.csv")
    assert sorted(ann176) == sorted(ann256)
    checked = 0
    for n, kp in ann176.items():
        vis = (kp != -1).all(axis=1)
        assert np.array_equal(ann256[n][vis, 0], kp[vis, 0])
        assert np.array_equal(ann256[n][vis, 1], kp[vis, 1] + 40)
        assert (ann256[n][~vis] == -1).all()
        small, big = np.asarray(Image.open(crop_dir / "train" / n)), np.asarray(Image.open(full_dir / "train" / n))
        for (y, x), (y2, x2) in zip(kp[vis].astype(int), ann256[n][vis].astype(int)):
            if 0 <= x < 176 and 0 <= y < 256:
                assert np.array_equal(small[y, x], big[y2, x2])  # the same pixel under the keypoint
                checked += 1
    assert checked > 50
    # and back: the 256x256 output as the annotations of a 256x176 import
    _run(inshop, "back", fmt="png", annotations=full_dir)
    back = read_annotations(inshop["tmp"] / "back" / "fasion-resize-annotation-train.csv")
    assert back.keys() == ann176.keys() and all(np.array_equal(back[n], ann176[n]) for n in back)
    kp = np.full((18, 2), -1, np.float32)
    kp[0], kp[1] = (10, 39), (20, 0)
    shifted = df.shift_keypoints(kp, 256, 176)
    assert shifted[:2].tolist() == [[-1, -1], [20, -40]]  # x = 39 lands on -1 (missing), as in PATN's
    assert df.shift_keypoints(shifted, 176, 256)[:2].tolist() == [[-1, -1], [20, 0]]
    write_field_annotations(inshop["tmp"] / "neg.csv", {"a.jpg": shifted})  # x < 0 is kept, not dropped
    assert read_annotations(inshop["tmp"] / "neg.csv")["a.jpg"][1].tolist() == [20, -40]


def test_interrupted_import_resumes_and_finished_one_needs_overwrite(inshop, monkeypatch):
    calls = {"n": 0}
    real = df.encode

    def flaky(image, fmt):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(image, fmt)

    monkeypatch.setattr(df, "encode", flaky)
    with pytest.raises(KeyboardInterrupt):
        _run(inshop, "out", fmt="png")
    out = inshop["tmp"] / "out"
    assert (out / ".import-progress.json").is_file() and not (out / "import-manifest.json").exists()
    assert len(list((out / "train").iterdir())) == 4 and not list((out / "train").glob(".*"))
    with pytest.raises(DataError, match="interrupted import with other options"):
        _run(inshop, "out", fmt="jpg")
    report = _run(inshop, "out", fmt="png")
    assert report.resumed and report.splits["train"].kept == 4
    assert report.splits["train"].images == len(inshop["train"]) and report.check_ok
    with pytest.raises(DataError, match="holds a finished import"):
        _run(inshop, "out", fmt="png")
    keep = out / "notes.txt"
    keep.write_text("mine")
    report = _run(inshop, "out", overwrite=True, size=(256, 256))
    assert not report.resumed and keep.read_text() == "mine"
    assert not (out / "fasion-resize-annotation-train.csv").exists() and (out / "fasion-annotation-train.csv").is_file()
    (inshop["tmp"] / "other").mkdir()
    (inshop["tmp"] / "other" / "x").write_text("x")
    with pytest.raises(DataError, match="already exists and is not empty"):
        _run(inshop, "other")


class FixedBackend:
    name = "fixed"

    def extract(self, image):
        kp = np.stack([np.linspace(30, 220, 18), np.linspace(60, 110, 18)], axis=1).astype(np.float32)
        return [ex.Detection(kp, np.ones(18, np.float32), (30.0, 60.0, 221.0, 111.0), 1.0)]


def test_extract_missing_annotates_what_the_field_does_not(inshop):
    report = _run(inshop, "out", fmt="png", extract=True, backend=FixedBackend())
    out = inshop["tmp"] / "out"
    ann = read_annotations(out / "fasion-resize-annotation-train.csv")
    assert sorted(ann) == sorted(inshop["train"]) and report.splits["train"].extracted == 1
    assert np.allclose(ann[inshop["no_row"]][:, 1], np.round(np.linspace(60, 110, 18)))
    assert not (out / "missing-keypoints-train.txt").exists()


# -- downloads and bad input -----------------------------------------------------------------------


def test_lists_are_downloaded_checked_and_offline_is_one_line(inshop, monkeypatch, annotations_dir):
    def offline(url, timeout=None):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(PosetransferError, match=r"cannot download train.lst from https://raw.githubusercontent.com/"
                                                 r"tengteng95/Pose-Transfer/\w+/fashion_data/train.lst \(no network\); .*--lists DIR"):  # fmt: skip
        _run(inshop, "out", lists=None)

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: Response(b"not the list\n"))
    with pytest.raises(PosetransferError, match="has SHA-256 .*, expected 50f41143"):
        _run(inshop, "out2", lists=None)
    served = lambda url, timeout=None: Response((annotations_dir / url.rsplit("/", 1)[1]).read_bytes())  # noqa: E731
    monkeypatch.setattr(urllib.request, "urlopen", served)
    # the real lists name 52,712 images the fake tree lacks: the first one is named with its line
    first = (annotations_dir / "train.lst").read_text().split()[0]
    with pytest.raises(DataError, match=rf"train.lst, line 1: names {first}, but .*/img/"
                                        rf"{re.escape(raw_rel(first))} does not exist"):  # fmt: skip
        _run(inshop, "out3", lists=None)
    # nothing but the checked lists is left, and the rerun after the fix starts afresh with them
    assert sorted(p.name for p in (inshop["tmp"] / "out3").iterdir()) == ["test.lst", "train.lst"]
    assert (inshop["tmp"] / "out3" / "train.lst").read_bytes() == (annotations_dir / "train.lst").read_bytes()
    monkeypatch.setattr(urllib.request, "urlopen", offline)  # the lists are not fetched again
    with pytest.raises(DataError, match="train.lst, line 1"):
        _run(inshop, "out3", lists=None)


def test_bad_inputs_are_one_clear_line(inshop, capsys):
    tmp = inshop["tmp"]
    with pytest.raises(DataError, match="In-shop folder does not exist"):
        df.import_deepfashion(tmp / "nowhere", tmp / "o1", lists=inshop["lists"], progress=False)
    (tmp / "empty").mkdir()
    with pytest.raises(DataError, match="holds no In-shop image folder"):
        df.import_deepfashion(tmp / "empty", tmp / "o1", lists=inshop["lists"], progress=False)
    with pytest.raises(DataError, match="lists folder does not exist"):
        _run(inshop, "o1", lists=tmp / "nolists")
    with pytest.raises(DataError, match="annotations folder does not exist"):
        _run(inshop, "o1", annotations=tmp / "noann")
    # a list naming an absent image
    with (inshop["lists"] / "test.lst").open("a") as fh:
        fh.write("fashionWOMENDressesid0000999901_1front.jpg\n")
    with pytest.raises(DataError, match=r"test.lst, line 3: names fashionWOMENDressesid0000999901_1front.jpg, "
                                        r"but .*WOMEN/Dresses/id_00009999/01_1_front.jpg does not exist"):  # fmt: skip
        _run(inshop, "o2")
    assert not (tmp / "o2").exists()  # refused before anything was written
    (inshop["lists"] / "test.lst").write_text("".join(_jpg(n) + "\n" for n in inshop["test"]))
    # an unreadable image, then a wrong-sized one: named, and the rerun resumes after the fix
    bad = inshop["raw"] / "img" / raw_rel(inshop["test"][0])
    good = bad.read_bytes()
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    assert main(["data", "import", "deepfashion", str(inshop["raw"]), "--out", str(tmp / "o3"), "--lists",
                 str(inshop["lists"]), "--annotations", str(inshop["ann"]), "--no-progress"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"posetransfer data: error: {bad}: ") and "\n" not in err
    Image.new("RGB", (100, 80)).save(bad, format="JPEG")
    with pytest.raises(DataError, match=r"is 80x100 \(height x width\), expected 256x256"):
        _run(inshop, "o3")
    bad.write_bytes(good)
    assert main(["data", "import", "deepfashion", str(inshop["raw"]), "--out", str(tmp / "o3"), "--lists",
                 str(inshop["lists"]), "--annotations", str(inshop["ann"]), "--no-progress"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "resumed an interrupted import" in printed and "data check train: OK" in printed


def test_highres_images_are_fitted_into_the_256x256_frame():
    image = np.zeros((1101, 750, 3), np.uint8)
    fitted = df.fit_highres(image)
    # 750 * 256 / 1101 = 174.4 -> 174 columns of photo, centred: 41 white columns each side
    assert fitted.shape == (256, 256, 3)
    assert (fitted[:, :41] == 255).all() and (fitted[:, 215:] == 255).all()
    assert (fitted[:, 41:215] == 0).all()


def test_the_fields_test_annotation_fits_the_256x256_frame(annotations_dir):
    """On the real file: 19 keypoints lie outside the 256x176 frame (x < 0 or x >= 176), none
    outside 256x256 once moved by 40 px, so PG2's 256x256 recipes keep them all."""

    def outside(kp, width):
        vis = (kp != -1).all(axis=-1)
        return int((vis & ((kp[..., 1] < 0) | (kp[..., 1] >= width) | (kp[..., 0] < 0) | (kp[..., 0] >= 256))).sum())

    crop = df.load_field_annotations(annotations_dir, (256, 176))["test"]
    full = df.load_field_annotations(annotations_dir, (256, 256))["test"]
    assert len(crop["keypoints"]) == df.PUBLISHED["test"] and len(crop["pairs"]) == df.PUBLISHED["test pairs"]
    assert outside(np.stack(list(crop["keypoints"].values())), 176) == 19
    assert outside(np.stack(list(full["keypoints"].values())), 256) == 0


def test_img_highres_tree_is_fitted_named_and_split(tmp_path):
    rng = np.random.default_rng(1)
    names = ["fashionMENDenimid0000008001_1front.jpg", "fashionMENDenimid0000008002_2side.jpg"]
    raws = []
    for n in names:
        image = rng.integers(0, 256, (1101, 750, 3), dtype=np.uint8)
        path = tmp_path / "InShop" / "img_highres" / raw_rel(n)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path, quality=95)
        raws.append(path)
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "train.lst").write_text(names[0] + "\n")
    (tmp_path / "lists" / "test.lst").write_text(names[1] + "\n")
    report = df.import_deepfashion(tmp_path / "InShop", tmp_path / "out", size=(256, 256), fmt="png",
                                   lists=tmp_path / "lists", progress=False)  # fmt: skip
    for split, n, raw in (("train", names[0], raws[0]), ("test", names[1], raws[1])):
        got = np.asarray(Image.open(tmp_path / "out" / split / (n[:-4] + ".png")))
        assert np.array_equal(got, df.fit_highres(np.asarray(Image.open(raw).convert("RGB"))))
    assert report.splits["train"].missing_keypoints == [names[0][:-4] + ".png"]  # no --annotations
