"""check_dataset: a clean copy passes; each kind of breakage is reported, naming its file and line."""

from __future__ import annotations

import json

import pytest
from _helpers import copy_plain_subset
from PIL import Image

from posetransfer.data.check import check_dataset
from posetransfer.data.layouts import DatasetFiles, identity_of
from posetransfer.errors import DataError


def _kinds(report) -> dict[str, list]:
    out: dict[str, list] = {}
    for p in report.problems:
        out.setdefault(p.kind, []).append(p)
    return out


def test_real_mini_is_clean(mini_market):
    report = check_dataset(mini_market, progress=False)
    assert report.ok and report.problems == []
    assert (report.images, report.readable, report.annotated, report.pairs) == (255, 255, 255, 134)
    assert report.identities == 88 and report.size == (128, 64)
    assert report.visible_per_joint[1] == 255  # every Market mini photo shows its neck
    assert report.summary_lines()[-1] == "OK: 0 errors, 0 warnings, 0 notes"


def test_clean_copy_passes(tmp_path, mini_fashion):
    copy_plain_subset(mini_fashion, tmp_path)
    report = check_dataset(tmp_path, progress=False)
    assert report.ok, [p.format() for p in report.problems]
    assert report.images == report.annotated == 8 and report.size == (256, 176)
    assert {p.kind for p in report.problems} <= {"single-photo-identity"}


def test_truncated_and_non_image_files(tmp_path, mini_market):
    names = copy_plain_subset(mini_market, tmp_path)
    trunc = tmp_path / "images" / names[2]
    trunc.write_bytes(trunc.read_bytes()[:300])
    fake = tmp_path / "images" / names[3]
    fake.write_text("this is not a picture")
    (tmp_path / "images" / "README.txt").write_text("notes")
    report = check_dataset(tmp_path, progress=False)
    assert not report.ok and report.readable == 6 and report.images == 8
    bad = {p.path: p for p in _kinds(report)["unreadable-image"]}
    assert set(bad) == {trunc, fake}
    assert "not an image" in bad[fake].message
    assert "unreadable image" in bad[trunc].message
    assert bad[fake].format().startswith(f"error: {fake}: ")
    [ignored] = _kinds(report)["not-an-image-file"]
    assert ignored.severity == "info" and ignored.path.name == "README.txt"


def test_malformed_row_stops_parsing_and_is_reported(tmp_path, mini_market):
    copy_plain_subset(mini_market, tmp_path)
    ann = tmp_path / "annotation.csv"
    lines = ann.read_text().splitlines()
    lines.insert(4, "broken.png: [1, 2, 3]: [4, 5, 6]")
    ann.write_text("\n".join(lines) + "\n")
    report = check_dataset(tmp_path, progress=False)
    [p] = report.errors
    assert (p.kind, p.path, p.line) == ("malformed-annotation", ann, 5)
    assert "keypoints_y has 3 values, expected 18" in p.message
    assert p.format().startswith(f"error: {ann}, line 5: ")
    assert report.annotated == 0  # nothing after the malformed row is trusted


def test_wrong_size_image(tmp_path, mini_market):
    names = copy_plain_subset(mini_market, tmp_path)
    bad = tmp_path / "images" / names[4]
    Image.open(bad).resize((64, 64)).save(bad)
    report = check_dataset(tmp_path, progress=False)
    [p] = report.errors
    assert p.kind == "wrong-size" and p.path == bad
    assert p.message == "wrong image size 64x64 (height x width), the data set's is 128x64"


def test_pair_naming_unknown_image(tmp_path, mini_market):
    names = copy_plain_subset(mini_market, tmp_path, n=12)
    stranger = next(n for n in names if identity_of(n) != identity_of(names[0]))
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(pairs.read_text() + f"{names[0]},nobody.png\n{names[0]},{stranger}\n")
    report = check_dataset(tmp_path, progress=False)
    [p] = report.errors
    assert (p.kind, p.path, p.line) == ("unknown-pair-image", pairs, 4)
    assert "'nobody.png' is not in the annotation annotation.csv" in p.message
    # two different people: suspicious, not fatal
    [w] = report.warnings
    assert (w.kind, w.line) == ("cross-identity-pair", 5)


def test_annotated_image_without_file_and_image_without_annotation(tmp_path, mini_market):
    names = copy_plain_subset(mini_market, tmp_path)
    (tmp_path / "images" / names[6]).rename(tmp_path / "images" / names[6].replace(".png", ".jpg"))
    report = check_dataset(tmp_path, progress=False)
    [missing] = report.errors
    assert missing.kind == "missing-image" and missing.path == tmp_path / "annotation.csv" and missing.line == 8
    assert "names must match the files exactly" in missing.message
    [extra] = report.warnings
    assert extra.kind == "unannotated-image" and extra.path.name == names[6].replace(".png", ".jpg")


def test_out_of_frame_keypoints_warn_or_fail_when_strict(tmp_path, mini_market):
    names = copy_plain_subset(mini_market, tmp_path)
    # written by hand: write_annotations turns any negative coordinate into the -1 marker
    path = tmp_path / "annotation.csv"
    lines = path.read_text().splitlines()
    name, ys, xs = lines[3].split(":")
    assert name == names[2]
    ys, xs = json.loads(ys), json.loads(xs)
    ys[3], xs[3] = 40, -18
    ys[4], xs[4] = 128, 10
    lines[3] = f"{name}:{ys}:{xs}"
    path.write_text("\n".join(lines) + "\n")
    report = check_dataset(tmp_path, progress=False)
    assert report.ok and report.out_of_frame == 2
    [w] = report.warnings
    assert (w.kind, w.path, w.line) == ("out-of-frame", tmp_path / "annotation.csv", 4)
    assert w.message == (
        f"{names[2]}: keypoints outside the 128x64 frame: right_elbow (y=40, x=-18), right_wrist (y=128, x=10)"
    )
    strict = check_dataset(tmp_path, strict=True, progress=False)
    assert not strict.ok and [p.kind for p in strict.errors] == ["out-of-frame"]


def test_real_deepfashion_annotation_out_of_frame_count(tmp_path, annotations_dir):
    # The field's DeepFashion test keypoints at 256x176: 11 negative x and 8 past the right edge.
    (tmp_path / "test").mkdir()
    files = DatasetFiles(tmp_path, tmp_path / "test", annotations_dir / "fasion-resize-annotation-test.csv",
                         None, "deepfashion", "test", size=(256, 176))  # fmt: skip
    report = check_dataset(files, progress=False)
    assert report.annotated == 4038 and report.out_of_frame == 19
    assert len(_kinds(report)["out-of-frame"]) == 19  # one keypoint per image here
    assert len(_kinds(report)["missing-image"]) == 4038  # no image files in this folder


def test_not_a_dataset_raises(tmp_path):
    with pytest.raises(DataError, match="not a recognised data set folder"):
        check_dataset(tmp_path, progress=False)
