"""Market-1501 as downloaded -> the field's Market layout (``data import market``).

Market-1501 (Scalable Person Re-identification: A Benchmark, Zheng et al., ICCV 2015) unpacks to
``bounding_box_train/`` (12,936 images), ``bounding_box_test/`` (19,732) and ``query/``; names are
``<person>_c<camera>s<sequence>_<frame>_<box>.jpg``, 128x64. The field's pose-transfer layout
(PATN, GFLA; the keypoint files come from Deformable GAN) keeps the two bounding-box folders as
``train/`` and ``test/`` beside ``market-annotation-<split>.csv`` and ``market-pairs-<split>.csv``.

Left out, as PATN does when it builds its pairs (``tool/create_pairs_dataset.py`` lines 29-34):
distractors and junk boxes (names starting ``-1`` or ``0000``, line 32) and images without
keypoints (no row in the annotation, or a row of ``-1`` only). Unlike PATN's pair builder the
images with some keypoints but no full torso stay (in the images and the annotation; they are
only kept out of generated pairs, lines 18-20). ``query/`` is not part of the layout and is
only counted. Images are copied byte for byte (each one decoded first, so a corrupt file is
reported by name).

Pairs: the field's ``market-pairs-<split>.csv`` when given (rows naming a left-out image are
dropped), else generated as PATN does: every ordered pair of two images of one person with both
shoulders and both hips (lines 18-20, 37-49); for test a seeded sample of 12,000 (line 53, 72;
ours is drawn with numpy, not pandas, so it is not PATN's sample).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from posetransfer.data.importers.common import (
    ImportReport,
    SplitResult,
    extract_missing,
    finish_output,
    prepare_output,
    run_checks,
    write_once,
    write_split_keypoints,
)
from posetransfer.errors import DataError, PosetransferError
from posetransfer.pose.schema import MISSING

FOLDERS = {"train": "bounding_box_train", "test": "bounding_box_test"}
SPLITS = ("train", "test")
#: Images of the archive's folders (Zheng et al. 2015, section 3).
PUBLISHED_RAW = {"train": 12936, "test": 19732, "query": 3368}
#: Pairs in the field's market-pairs-test.csv (counted here); the written images have no published count.
PUBLISHED = {"test pairs": 12000}
TEST_PAIRS = 12000  #: PATN tool/create_pairs_dataset.py line 53 (the field's market-pairs-test.csv has 12,000)
ANNOTATION = "market-annotation-{s}.csv"
PAIRS = "market-pairs-{s}.csv"


def is_distractor(name: str) -> bool:
    """Distractor (``0000``) or junk (``-1``) box: PATN ``tool/create_pairs_dataset.py`` line 32."""
    return name.startswith("-1") or name.startswith("0000")


def find_market_root(raw: Path) -> Path:
    """The folder holding ``bounding_box_train/`` and ``bounding_box_test/`` (``raw`` or the one
    folder inside it, as the archive unpacks to ``Market-1501-v15.09.15/``)."""
    raw = Path(raw)
    if not raw.is_dir():
        raise DataError(raw, "Market-1501 folder does not exist" if not raw.exists() else "not a folder")
    if not (raw / FOLDERS["train"]).is_dir() and not (raw / FOLDERS["test"]).is_dir():
        inner = [p for p in raw.iterdir() if p.is_dir() and (p / FOLDERS["train"]).is_dir()]
        if len(inner) == 1:
            raw = inner[0]
    for folder in FOLDERS.values():
        if not (raw / folder).is_dir():
            raise DataError(raw / folder, "folder does not exist (the Market-1501 archive unpacks to "
                                          "bounding_box_train/, bounding_box_test/ and query/)")  # fmt: skip
    return raw


def _jpgs(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.lower().endswith(".jpg") and not n.startswith("."))


def import_market(
    raw: str | Path,
    out: str | Path,
    annotations: str | Path | None = None,
    extract: bool = False,
    backend=None,
    overwrite: bool = False,
    progress: bool = True,
    check: bool = True,
) -> ImportReport:
    """Import the Market-1501 archive ``raw`` into ``out`` (the field's Market layout); see the docstring.

    Keypoints come from ``annotations`` (a folder with ``market-annotation-train.csv`` / ``-test.csv``
    and optionally the pairs files); ``extract`` runs the pose extractor (``backend``) on the
    images they do not cover. Bad input is a :class:`DataError` naming the file.
    """
    from tqdm import tqdm

    from posetransfer.data.pairs import make_pairs
    from posetransfer.pose.io import read_annotations, read_pairs, write_pairs
    from posetransfer.utils.io import read_image

    raw, out = Path(raw), Path(out)
    root = find_market_root(raw)
    if out.resolve().is_relative_to(root.resolve()):
        raise DataError(out, f"the output folder must not be inside the Market-1501 folder {root}")
    if annotations is None and not extract:
        raise PosetransferError("market import needs keypoints: --annotations DIR (the field's "
                                "market-annotation-train.csv and -test.csv) and/or --extract-missing")  # fmt: skip
    field: dict[str, dict] = {}
    if annotations is not None:
        ann_dir = Path(annotations)
        if not ann_dir.is_dir():
            raise DataError(ann_dir, "annotations folder does not exist")
        for split in SPLITS:
            ann = ann_dir / ANNOTATION.format(s=split)
            if ann.is_file():
                pairs_path = ann_dir / PAIRS.format(s=split)
                field[split] = {"keypoints": read_annotations(ann), "file": ann, "pairs_file": pairs_path,
                                "pairs": read_pairs(pairs_path) if pairs_path.is_file() else None}  # fmt: skip
        if not field:
            raise DataError(ann_dir, f"holds no {ANNOTATION.format(s='train')} nor {ANNOTATION.format(s='test')}")

    on_disk = {split: _jpgs(root / FOLDERS[split]) for split in SPLITS}
    for split, given in field.items():  # checked before anything is written
        absent = sorted(set(given["keypoints"]) - set(on_disk[split]))
        if absent:
            raise DataError(given["file"], f"names {len(absent)} images absent from {root / FOLDERS[split]} "
                                           f"(e.g. {absent[0]}): is it the annotation of this archive?")  # fmt: skip
    outputs = [*SPLITS, *(p.format(s=s) for p in (ANNOTATION, PAIRS) for s in SPLITS),
               *(f"missing-keypoints-{s}.txt" for s in SPLITS), *(f".extracted-{s}.csv" for s in SPLITS)]  # fmt: skip
    options = {"dataset": "market", "raw": str(root.resolve()),
               "annotations": str(Path(annotations).resolve()) if annotations else None,
               "extract_missing": bool(extract)}  # fmt: skip
    resumed = prepare_output(out, options, overwrite, outputs)
    report = ImportReport(out, "Market-1501", {}, PUBLISHED, resumed=resumed)
    query = root / "query"
    if query.is_dir():
        report.notes.append(f"query/: {len(_jpgs(query)):,} images (published {PUBLISHED_RAW['query']:,}), "
                            "not part of the field's layout: not imported")  # fmt: skip

    backend_ready = None
    for split in SPLITS:
        src_dir = root / FOLDERS[split]
        names = on_disk[split]
        res = SplitResult(split, listed=len(names))
        report.splits[split] = res
        res.notes.append(f"{FOLDERS[split]}/ holds {len(names):,} images (published {PUBLISHED_RAW[split]:,})")
        people = [n for n in names if not is_distractor(n)]
        if len(people) < len(names):
            res.notes.append(f"{len(names) - len(people):,} distractor and junk images (0000, -1) left out")
        given = field.get(split, {})
        keypoints = {n: kp for n, kp in given.get("keypoints", {}).items() if n in set(people)}
        if not given and annotations is not None:
            res.notes.append(f"{annotations} has no {ANNOTATION.format(s=split)}")
        missing = [n for n in people if n not in keypoints or (keypoints[n] == MISSING).all()]
        if missing and extract:
            if backend_ready is None:
                from posetransfer.pose.extract import get_backend

                backend_ready = backend or get_backend("mediapipe")
            (out / split).mkdir(parents=True, exist_ok=True)
            found, missing = extract_missing(src_dir, missing, backend_ready, out / f".extracted-{split}.csv",
                                             progress, f"pose {split}")  # fmt: skip
            keypoints.update(found)
            res.extracted = len(found)
        missing_set = set(missing)
        kept = [n for n in people if n in keypoints and n not in missing_set]
        res.missing_keypoints = missing
        img_dir = out / split
        img_dir.mkdir(parents=True, exist_ok=True)
        for name in tqdm(kept, desc=f"market {split}", unit="img", disable=not progress):
            src = src_dir / name

            def produce(src=src) -> bytes:
                read_image(src)  # a corrupt file is a DataError naming it
                return src.read_bytes()

            if write_once(img_dir / name, produce):
                res.written += 1
            else:
                res.kept += 1
        kp_out = {n: np.asarray(keypoints[n], np.float32) for n in kept}
        res.annotated = len(kp_out)
        write_split_keypoints(out, ANNOTATION.format(s=split), kp_out, missing, split)

        if given.get("pairs") is not None:
            pairs = [(a, b) for a, b in given["pairs"] if a in kp_out and b in kp_out]
            res.pairs_source = f"from {given['pairs_file'].name}"
            if len(pairs) < len(given["pairs"]):
                res.notes.append(f"{len(given['pairs']) - len(pairs)} pairs of {given['pairs_file'].name} "
                                 "name a left-out image: dropped")  # fmt: skip
        else:
            pairs = make_pairs(kp_out, seed=0, require_torso=True, max_pairs=TEST_PAIRS if split == "test" else None)
            res.pairs_source = "generated as PATN: same person, torso visible" + (
                f", {TEST_PAIRS:,} sampled" if split == "test" else "")
        res.pairs = len(pairs)
        write_pairs(out / PAIRS.format(s=split), pairs)

    finish_output(out, {"options": options, "splits": {s: {"images": r.images, "annotated": r.annotated,
                                                           "pairs": r.pairs} for s, r in report.splits.items()}})
    if check:
        report.check_ok, report.check_lines = run_checks(out, SPLITS, progress)
    return report
