"""``data import market``: a fake Market-1501 archive built from the real-mini photos -> the field's layout.

The real-mini Market photos are renamed back to the archive's ``.jpg`` names; distractor (``0000``)
and junk (``-1``) boxes and images without keypoints are added. What is left out, and the pairs
generated without a pairs file, are checked against a reference written from PATN's released
``tool/create_pairs_dataset.py`` (github.com/tengteng95/Pose-Transfer): ``filter_not_valid``
(lines 29-34: the torso check of lines 18-27 and the distractor test of line 32) and
``make_pairs`` (lines 37-49: every ordered pair of two images of one person).
"""

from __future__ import annotations

from itertools import permutations

import numpy as np
import pytest
from PIL import Image

import posetransfer.data.importers.market as mk
from posetransfer.cli import main
from posetransfer.errors import DataError, PosetransferError
from posetransfer.pose.io import read_annotations, read_pairs, write_annotations, write_pairs

# -- reference from PATN's tool/create_pairs_dataset.py -----------------------------------------

LABELS = ["nose", "neck", "Rsho", "Relb", "Rwri", "Lsho", "Lelb", "Lwri",
          "Rhip", "Rkne", "Rank", "Lhip", "Lkne", "Lank", "Leye", "Reye", "Lear", "Rear"]  # fmt: skip


def patn_valid(name: str, kp: np.ndarray) -> bool:
    """Lines 10-34: all of Rhip, Lhip, Lsho, Rsho present (neither coordinate -1), not a distractor."""
    present = {LABELS[i] for i in range(18) if kp[i][0] != -1 and kp[i][1] != -1}
    distractor = name.startswith("-1") or name.startswith("0000")
    return all(k in present for k in ["Rhip", "Lhip", "Lsho", "Rsho"]) and not distractor


def patn_pairs(names: list[str]) -> set[tuple[str, str]]:
    """Lines 37-49: the person is ``name.split('_')[0]``; all 2-permutations of each person's names."""
    persons: dict[str, list[str]] = {}
    for n in names:
        persons.setdefault("_".join(n.split("_")[0:1]), []).append(n)
    return {p for group in persons.values() for p in permutations(group, 2)}


# -- the fake archive ----------------------------------------------------------------------------


def _jpg(name: str) -> str:
    return name.rsplit(".", 1)[0] + ".jpg"


@pytest.fixture()
def archive(tmp_path, mini_market):
    ann = read_annotations(mini_market / "annotation.csv")
    persons: dict[str, list[str]] = {}
    for n in sorted(ann):
        persons.setdefault(n[:4], []).append(n)
    groups = [g for g in persons.values() if len(g) >= 3 and not g[0].startswith("0000")]
    train, test = [n for g in groups[:3] for n in g], [n for g in groups[3:5] for n in g]
    root = tmp_path / "dl" / "Market-1501-v15.09.15"
    keypoints = {}

    def put(folder, name, src):
        dst = root / folder / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        Image.open(mini_market / "images" / src).convert("RGB").save(dst, quality=95)

    for split, names in (("train", train), ("test", test)):
        for n in names:
            put(f"bounding_box_{split}", _jpg(n), n)
            keypoints[_jpg(n)] = ann[n]
    # distractor and junk boxes (annotated, as in the field's file), one image with a row of -1
    # only, one without a row; and a query image
    put("bounding_box_test", "0000_c1s1_000151_01.jpg", test[0])
    put("bounding_box_test", "-1_c1s1_000401_03.jpg", test[1])
    keypoints["0000_c1s1_000151_01.jpg"] = ann[test[0]]
    keypoints["-1_c1s1_000401_03.jpg"] = ann[test[1]]
    no_kp, no_row = _jpg(train[0]), _jpg(train[1])
    keypoints[no_kp] = np.full((18, 2), -1, np.float32)
    del keypoints[no_row]
    put("query", _jpg(test[2]), test[2])
    adir = tmp_path / "ann"
    for split, names in (("train", train), ("test", test)):
        folder = root / f"bounding_box_{split}"
        write_annotations(adir / f"market-annotation-{split}.csv",
                          {n: keypoints[n] for n in sorted(p.name for p in folder.iterdir()) if n in keypoints})  # fmt: skip
    test_pairs = sorted(patn_pairs([_jpg(n) for n in test]))[:6] + [("0000_c1s1_000151_01.jpg", _jpg(test[0]))]
    write_pairs(adir / "market-pairs-test.csv", test_pairs)
    return {"dl": tmp_path / "dl", "root": root, "ann": adir, "train": [_jpg(n) for n in train],
            "test": [_jpg(n) for n in test], "keypoints": keypoints, "no_kp": no_kp, "no_row": no_row,
            "test_pairs": test_pairs, "tmp": tmp_path}  # fmt: skip


def test_import_leaves_out_distractors_and_images_without_keypoints(archive):
    out = archive["tmp"] / "market"
    report = mk.import_market(archive["dl"], out, annotations=archive["ann"], progress=False)
    left_out = {archive["no_kp"], archive["no_row"]}
    assert sorted(p.name for p in (out / "train").iterdir()) == sorted(set(archive["train"]) - left_out)
    assert sorted(p.name for p in (out / "test").iterdir()) == sorted(archive["test"])
    for split in ("train", "test"):
        for p in (out / split).iterdir():
            assert p.read_bytes() == (archive["root"] / f"bounding_box_{split}" / p.name).read_bytes()
        ann = read_annotations(out / f"market-annotation-{split}.csv")
        assert sorted(ann) == sorted(p.name for p in (out / split).iterdir())
        assert all(np.array_equal(kp, archive["keypoints"][n]) for n, kp in ann.items())
    assert sorted((out / "missing-keypoints-train.txt").read_text().split()) == sorted(left_out)
    # test: the field's pairs less the one naming a distractor; train: generated as PATN does
    assert read_pairs(out / "market-pairs-test.csv") == archive["test_pairs"][:-1]
    ann = read_annotations(out / "market-annotation-train.csv")
    valid = [n for n, kp in ann.items() if patn_valid(n, kp)]
    assert len(valid) >= 4 and set(read_pairs(out / "market-pairs-train.csv")) == patn_pairs(valid)
    assert report.check_ok, report.check_lines
    text = "\n".join(report.lines())
    assert "bounding_box_train/ holds 14 images (published 12,936)" in text
    assert "bounding_box_test/ holds 10 images (published 19,732)" in text
    assert "2 distractor and junk images (0000, -1) left out" in text
    assert "query/: 1 images (published 3,368)" in text and "data check test: OK" in text


def test_generated_test_pairs_are_a_sample_of_patns(archive, monkeypatch):
    (archive["ann"] / "market-pairs-test.csv").unlink()
    monkeypatch.setattr(mk, "TEST_PAIRS", 5)
    out = archive["tmp"] / "market"
    mk.import_market(archive["root"], out, annotations=archive["ann"], progress=False, check=False)
    pairs = read_pairs(out / "market-pairs-test.csv")
    ann = read_annotations(out / "market-annotation-test.csv")
    assert len(pairs) == 5 == len(set(pairs)) and set(pairs) <= patn_pairs([n for n, kp in ann.items() if patn_valid(n, kp)])


def test_cli_resume_and_overwrite(archive, capsys, monkeypatch):
    out = archive["tmp"] / "m"
    args = ["data", "import", "market", str(archive["dl"]), "--out", str(out), "--annotations", str(archive["ann"]),
            "--no-progress"]  # fmt: skip
    real = mk.write_once
    calls = {"n": 0}

    def flaky(path, produce):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(path, produce)

    monkeypatch.setattr(mk, "write_once", flaky)
    assert main(args) == 130  # Ctrl-C: "interrupted"
    assert (out / ".import-progress.json").is_file() and len(list((out / "train").iterdir())) == 3
    monkeypatch.setattr(mk, "write_once", real)
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "resumed an interrupted import" in printed and "3 kept from the interrupted run" in printed
    assert main(args) == 2
    assert "holds a finished import (import-manifest.json); use --overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_bad_inputs_are_one_clear_line(archive, capsys):
    tmp, root = archive["tmp"], archive["root"]
    with pytest.raises(DataError, match="Market-1501 folder does not exist"):
        mk.import_market(tmp / "nowhere", tmp / "o", annotations=archive["ann"], progress=False)
    with pytest.raises(PosetransferError, match="needs keypoints: --annotations DIR"):
        mk.import_market(root, tmp / "o", progress=False)
    with pytest.raises(DataError, match="annotations folder does not exist"):
        mk.import_market(root, tmp / "o", annotations=tmp / "noann", progress=False)
    # an annotation naming an absent image
    extra = read_annotations(archive["ann"] / "market-annotation-test.csv")
    extra["1501_c6s4_001902_01.jpg"] = next(iter(extra.values()))
    (tmp / "ann2").mkdir()
    write_annotations(tmp / "ann2" / "market-annotation-test.csv", extra)
    with pytest.raises(DataError, match=r"market-annotation-test.csv: names 1 images absent from .*bounding_box_test "
                                        r"\(e.g. 1501_c6s4_001902_01.jpg\)"):  # fmt: skip
        mk.import_market(root, tmp / "o", annotations=tmp / "ann2", progress=False)
    assert not (tmp / "o").exists()
    # an unreadable image: named by the command in one line
    bad = root / "bounding_box_test" / archive["test"][0]
    bad.write_bytes(b"garbage")
    assert main(["data", "import", "market", str(root), "--out", str(tmp / "o2"), "--annotations",
                 str(archive["ann"]), "--no-progress"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"posetransfer data: error: {bad}: ") and "\n" not in err
    # a missing folder
    import shutil

    shutil.rmtree(root / "bounding_box_test")
    with pytest.raises(DataError, match=r"bounding_box_test: folder does not exist \(the Market-1501 archive"):
        mk.import_market(root, tmp / "o3", annotations=archive["ann"], progress=False)


def test_the_fields_files_left_out_counts(annotations_dir):
    """The real annotation files cover every box of the archive (the published 12,936 / 19,732);
    the importer leaves out 0 + 419 (train) and 6,617 + 380 (test) distractors + images without
    keypoints, and the field's 12,000 test pairs name none of them."""
    counts = {}
    for split in ("train", "test"):
        ann = read_annotations(annotations_dir / f"market-annotation-{split}.csv")
        assert len(ann) == mk.PUBLISHED_RAW[split]
        dis = sum(mk.is_distractor(n) for n in ann)
        nokp = sum(not mk.is_distractor(n) and bool((kp == -1).all()) for n, kp in ann.items())
        counts[split] = (dis, nokp)
    assert counts == {"train": (0, 419), "test": (6617, 380)}
    ann = read_annotations(annotations_dir / "market-annotation-test.csv")
    pairs = read_pairs(annotations_dir / "market-pairs-test.csv")
    assert len(pairs) == mk.PUBLISHED["test pairs"]
    assert all(not mk.is_distractor(n) and (ann[n] != -1).any() for p in pairs for n in p)


class FixedBackend:
    name = "fixed"

    def extract(self, image):
        from posetransfer.pose.extract import Detection

        kp = np.stack([np.linspace(10, 120, 18), np.linspace(8, 56, 18)], axis=1).astype(np.float32)
        return [Detection(kp, np.ones(18, np.float32), (10.0, 8.0, 121.0, 57.0), 1.0)]


def test_extract_missing_keeps_the_images_it_annotates(archive):
    out = archive["tmp"] / "market"
    report = mk.import_market(archive["root"], out, annotations=archive["ann"], extract=True,
                              backend=FixedBackend(), progress=False)  # fmt: skip
    assert sorted(p.name for p in (out / "train").iterdir()) == sorted(archive["train"])
    ann = read_annotations(out / "market-annotation-train.csv")
    assert np.array_equal(ann[archive["no_row"]][:, 0], np.round(np.linspace(10, 120, 18)))
    assert report.splits["train"].extracted == 2 and not (out / "missing-keypoints-train.txt").exists()
    assert not (out / "test" / "0000_c1s1_000151_01.jpg").exists()  # distractors are never annotated
