"""DeepFashion In-shop as downloaded -> the field's DeepFashion layout (``data import deepfashion``).

The In-shop Clothes Retrieval Benchmark (DeepFashion: Powering Robust Clothes Recognition and
Retrieval with Rich Annotations, Liu et al., CVPR 2016) ships ``img.zip`` (256x256 images) and the
password-protected ``img_highres.zip``, both unpacking to ``<GENDER>/<Category>/id_<8 digits>/
<NN>_<V>_<view>.jpg``. The field (PATN, GFLA, PIDM ...) flattens each path into one name and
splits by its ``train.lst`` / ``test.lst``:

- Name (PATN ``tool/generate_fashion_datasets.py`` lines 49-53; GFLA
  ``script/generate_fashion_datasets.py`` lines 51-55): the parts of ``fashion/<GENDER>/<Category>/
  <id>/<file>`` joined without separators, the id's ``_`` removed and, in the file name, every
  ``_`` but the first: ``img/WOMEN/Blouses_Shirts/id_00000740/03_1_front.jpg`` ->
  ``fashionWOMENBlouses_Shirtsid0000074003_1front.jpg``. The category keeps its ``_``: the
  script's indices only line up when it walks a relative ``fashion`` folder (as called, with
  ``./fashion``, index 3 would be the category; every one of the 52,712 names in the field's lists
  keeps it, e.g. ``Blouses_Shirts``, so the lists define the rule implemented here).
- Frame 256x176 (``--size 256x176``, the default: the field's annotations are in this frame):
  columns 40..215 of the 256x256 image, PIL's ``img.crop((40, 0, 216, 256))`` (PATN, same file,
  line 56). 256x256 (``--size 256x256``, PG2's DeepFashion frame): the image as is. PATN's
  ``tool/resize_fashion.py`` (lines 25-39, ``crop_bord=40`` with a ratio of 1) confirms the
  256x176 annotations are the 256x256 ones less 40 in x, so keypoints move by 40 px between the
  frames (:func:`shift_keypoints`).
- ``img_highres/`` (portrait photos, e.g. 750x1101): scaled by ``256 / max(h, w)`` (area interpolation) and centred on a
  white 256x256 canvas, the frame of the ``img/`` images (a person spanning the height on the
  white product background). This is our reconstruction of how the 256x256 set relates to the
  high-resolution one; no released script of the field does it (GFLA stretches ``img_highres`` to
  its load size, ``data/base_dataset.py`` line 62).
- Images are written as JPEG (``--format jpg``, default) under the field's names, so the field's
  annotation and pairs files apply unchanged; a crop is re-encoded at PIL's default quality as
  PATN's script does, while a 256x256 ``img/`` image is copied byte for byte. ``--format png``
  writes lossless PNGs and renames them (and every annotation and pairs row) to ``.png``.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np

from posetransfer.data.importers.common import (
    ImportReport,
    SplitResult,
    abandon_output,
    encode,
    extract_missing,
    fetch_verified,
    finish_output,
    prepare_output,
    read_list,
    run_checks,
    with_extension,
    write_list,
    write_once,
    write_split_keypoints,
)
from posetransfer.errors import DataError, PosetransferError
from posetransfer.pose.schema import MISSING

FRAME = 256  #: In-shop ``img/`` images are 256x256
CROP_LEFT, CROP_RIGHT = 40, 216  #: PATN ``tool/generate_fashion_datasets.py`` line 56: crop((40, 0, 216, 256))
SHIFT = CROP_LEFT
SIZES = {"256x176": (256, 176), "256x256": (256, 256)}
SPLITS = ("train", "test")

# The field's train/test lists, as PATN publishes them (``fashion_data/``), pinned to a commit and
# checked by SHA-256 (the same bytes as the lists in GFLA's annotation download).
LISTS_COMMIT = "281ee2d3f9381299220989207dcfb4217298d8f5"
LIST_URL = "https://raw.githubusercontent.com/tengteng95/Pose-Transfer/{commit}/fashion_data/{name}"
LIST_SHA256 = {
    "train.lst": "50f41143dc61c730935a4f97c02bf4c221b030e72af1dcfd6838949227f361d8",
    "test.lst": "336650cb7febac6ea0456b9b8c85e1759454fb96bfe14f95243738a81008febf",
}
#: Counts of the field's files: images in train.lst + test.lst (48,674 + 4,038), pairs in
#: fasion-resize-pairs-train.csv / -test.csv.
PUBLISHED = {"images": 52712, "train": 48674, "test": 4038, "train pairs": 101966, "test pairs": 8570}

# (annotation, pairs, frame width) of the field's files, 256x176 first; {s} = split.
FIELD_FILES = (
    ("fasion-resize-annotation-{s}.csv", "fasion-resize-pairs-{s}.csv", 176),
    ("fasion-annotation-{s}.csv", "fasion-pairs-{s}.csv", 256),
)
SOURCES = ("img", "img_highres")

_NAME = re.compile(r"^fashion(MEN|WOMEN)(.+)id(\d{8})(\d+)_(\d+)([A-Za-z]+)(\.[A-Za-z]+)$")


def field_name(gender: str, category: str, item: str, filename: str) -> str:
    """The field's flat name of ``<gender>/<category>/<item>/<filename>`` (see the module docstring)."""
    head, *rest = filename.split("_")
    return "fashion" + gender + category + item.replace("_", "") + head + "_" + "".join(rest)


def raw_relpath(name: str) -> Path | None:
    """The In-shop path (below ``img/``) a field name comes from, or None for a name of another form.

    ``fashionWOMENBlouses_Shirtsid0000074003_1front.jpg`` -> ``WOMEN/Blouses_Shirts/id_00000740/
    03_1_front.jpg`` (the inverse of :func:`field_name`, for messages about absent images).
    """
    m = _NAME.match(name)
    if not m:
        return None
    gender, category, digits, nn, v, view, ext = m.groups()
    return Path(gender, category, f"id_{digits}", f"{nn}_{v}_{view}{ext}")


def find_image_root(raw: Path, source: str = "auto") -> tuple[Path, str]:
    """The folder holding ``<GENDER>/...`` and whether it is ``img`` or ``img_highres``."""
    raw = Path(raw)
    if not raw.is_dir():
        raise DataError(raw, "In-shop folder does not exist" if not raw.exists() else "not a folder")
    wanted = SOURCES if source == "auto" else (source,)
    for name in wanted:
        for candidate in (raw / name, raw / "Img" / name):
            if candidate.is_dir():
                return candidate, name
    if raw.name in wanted and any((raw / g).is_dir() for g in ("MEN", "WOMEN")):
        return raw, raw.name
    looked = ", ".join(f"{n}/" for n in wanted)
    raise DataError(raw, f"holds no In-shop image folder (looked for {looked} and Img/{wanted[0]}/: "
                         "unpack img.zip or img_highres.zip of the In-shop Clothes Retrieval Benchmark here)")  # fmt: skip


def scan_tree(root: Path) -> dict[str, Path]:
    """``{field name: raw path}`` of every ``<GENDER>/<Category>/<id>/<file>.jpg`` below ``root``."""
    found: dict[str, Path] = {}
    for gender in sorted(os.listdir(root)):
        gdir = root / gender
        if not gdir.is_dir():
            continue
        for dirpath, _dirs, files in os.walk(gdir):
            parts = Path(dirpath).relative_to(root).parts
            if len(parts) != 3:
                continue
            for f in files:
                if f.lower().endswith((".jpg", ".jpeg", ".png")) and not f.startswith("."):
                    found[field_name(parts[0], parts[1], parts[2], f)] = Path(dirpath) / f
    return found


def fit_highres(image: np.ndarray) -> np.ndarray:
    """A high-resolution In-shop image brought to the 256x256 ``img/`` frame (see the docstring)."""
    import cv2

    h, w = image.shape[:2]
    scale = FRAME / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    canvas = np.full((FRAME, FRAME, 3), 255, np.uint8)
    top, left = (FRAME - nh) // 2, (FRAME - nw) // 2
    canvas[top : top + nh, left : left + nw] = small
    return canvas


def shift_keypoints(kp: np.ndarray, from_width: int, to_width: int) -> np.ndarray:
    """Keypoints (18, 2) (y, x) moved between the 256x256 frame and its 256x176 crop.

    256 -> 176: ``x - 40``; 176 -> 256: ``x + 40``; y is unchanged and ``-1`` (missing) stays
    ``-1``, as in PATN ``tool/resize_fashion.py`` lines 31-36. A 256x256 keypoint at x = 39 lands
    on -1, i.e. missing, there too; the field's 256x176 file keeps other negative x as they are.
    """
    kp = np.array(kp, dtype=np.float32, copy=True)
    if from_width == to_width:
        return kp
    if {from_width, to_width} != {176, 256}:
        raise ValueError(f"no DeepFashion frame change from width {from_width} to {to_width}")
    missing = (kp == MISSING).any(axis=-1)
    kp[:, 1] += SHIFT if to_width == 256 else -SHIFT
    kp[missing | (kp == MISSING).any(axis=-1)] = MISSING  # a shift onto -1 reads back as missing
    return kp


def output_files(size: tuple[int, int]) -> tuple[str, str]:
    """(annotation, pairs) name patterns the layout resolver knows for this frame."""
    for ann, pairs, width in FIELD_FILES:
        if width == size[1]:
            return ann, pairs
    raise ValueError(f"no DeepFashion layout at {size}")


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_lists(lists_dir: Path | None, out: Path, progress: bool) -> dict[str, Path]:
    """``{split: list file}``: from ``lists_dir``, or downloaded into ``out`` (SHA-256 checked)."""
    paths = {}
    for split in SPLITS:
        name = f"{split}.lst"
        if lists_dir is not None:
            if not Path(lists_dir).is_dir():
                raise DataError(lists_dir, "lists folder does not exist (it should hold train.lst and test.lst)")
            paths[split] = Path(lists_dir) / name
            if not paths[split].is_file():
                raise DataError(paths[split], "list file does not exist")
        else:
            url = LIST_URL.format(commit=LISTS_COMMIT, name=name)
            paths[split] = fetch_verified(
                url, LIST_SHA256[name], out / name, name,
                hint="download train.lst and test.lst by hand (PATN's fashion_data/ or GFLA's annotation "
                     "archive) and pass their folder with --lists DIR",
            )  # fmt: skip
    return paths


def load_field_annotations(ann_dir: Path, size: tuple[int, int]) -> dict[str, dict]:
    """Per split: ``{"keypoints": {name: (18, 2) in the output frame}, "pairs": list | None, "file": Path}``.

    Reads the 256x176 files when present, else the 256x256 ones, and shifts the keypoints to the
    output frame. A split without any of the files is left out.
    """
    from posetransfer.pose.io import read_annotations, read_pairs

    ann_dir = Path(ann_dir)
    if not ann_dir.is_dir():
        raise DataError(ann_dir, "annotations folder does not exist")
    out: dict[str, dict] = {}
    for split in SPLITS:
        for ann_pat, pairs_pat, width in FIELD_FILES:
            ann = ann_dir / ann_pat.format(s=split)
            if not ann.is_file():
                continue
            kps = {n: shift_keypoints(kp, width, size[1]) for n, kp in read_annotations(ann).items()}
            pairs_path = ann_dir / pairs_pat.format(s=split)
            pairs = read_pairs(pairs_path) if pairs_path.is_file() else None
            out[split] = {"keypoints": kps, "pairs": pairs, "file": ann, "pairs_file": pairs_path}
            break
    if not out:
        looked = ", ".join(a.format(s="<split>") for a, _, _ in FIELD_FILES)
        raise DataError(ann_dir, f"holds no DeepFashion annotation file (looked for {looked})")
    return out


def import_deepfashion(
    raw: str | Path,
    out: str | Path,
    size: tuple[int, int] = (256, 176),
    lists: str | Path | None = None,
    annotations: str | Path | None = None,
    extract: bool = False,
    backend=None,
    fmt: str = "jpg",
    source: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
    check: bool = True,
) -> ImportReport:
    """Import the In-shop tree ``raw`` into ``out`` (the field's DeepFashion layout); see the module docstring.

    ``backend`` is the pose backend ``extract`` uses (built with ``get_backend("mediapipe")`` when
    None). Bad input (a missing folder, an unreadable image, a list naming an absent image) is a
    :class:`DataError` naming the file; images written before it are kept for a rerun to resume.
    """
    from tqdm import tqdm

    from posetransfer.data.pairs import make_pairs
    from posetransfer.pose.io import write_pairs
    from posetransfer.utils.io import read_image

    raw, out = Path(raw), Path(out)
    size = tuple(size)
    if size not in SIZES.values():
        raise PosetransferError(f"--size must be 256x176 or 256x256, got {size[0]}x{size[1]}")
    if fmt not in ("jpg", "png"):
        raise PosetransferError(f"--format must be jpg or png, got {fmt!r}")
    root, src_kind = find_image_root(raw, source)
    if out.resolve().is_relative_to(root.resolve()):
        raise DataError(out, f"the output folder must not be inside the image folder {root}")
    ann_name, pairs_name = output_files(size)
    outputs = ["train", "test", "train.lst", "test.lst", *(f"missing-keypoints-{s}.txt" for s in SPLITS),
               *(f".extracted-{s}.csv" for s in SPLITS),
               *(p.format(s=s) for a, b, _ in FIELD_FILES for p in (a, b) for s in SPLITS)]  # fmt: skip

    field_ann = load_field_annotations(annotations, size) if annotations is not None else {}
    # The options a resumed run must share (lists by content: the download lands in out/ later).
    list_digests = {}
    if lists is not None:
        list_paths = load_lists(Path(lists), out, progress)
        list_digests = {s: _file_digest(p) for s, p in list_paths.items()}
    options = {"dataset": "deepfashion", "raw": str(root.resolve()), "source": src_kind, "size": list(size),
               "format": fmt, "annotations": str(Path(annotations).resolve()) if annotations else None,
               "extract_missing": bool(extract), "lists": list_digests or "published"}  # fmt: skip
    resumed = prepare_output(out, options, overwrite, outputs, ignorable=("train.lst", "test.lst"))
    report = ImportReport(out, "DeepFashion In-shop", {}, PUBLISHED, resumed=resumed)
    try:  # bad lists or a bad tree: found before any image is written
        if lists is None:
            list_paths = load_lists(None, out, progress)

        tree = scan_tree(root)
        listed: dict[str, list[str]] = {}
        seen: dict[str, str] = {}
        for split in SPLITS:
            path = list_paths[split]
            names = []
            for name, line in read_list(path):
                if name in seen:
                    raise DataError(path, f"names {name} again (already in {seen[name]})", line)
                seen[name] = f"{split}.lst"
                if name not in tree:
                    rel = raw_relpath(name)
                    where = f"{root / rel} does not exist" if rel else f"no image of {root} has that name"
                    raise DataError(path, f"names {name}, but {where}", line)
                names.append(name)
            listed[split] = names
        unlisted = len(tree) - len(seen)
        if unlisted:
            report.notes.append(f"{unlisted} images of {root} are in neither list: left out, as the field does")
    except BaseException:
        abandon_output(out, resumed)
        raise
    if lists is not None:  # the lists go beside the data, as in the field's folders
        for split, path in list_paths.items():
            if list_digests[split] != LIST_SHA256[f"{split}.lst"]:
                report.notes.append(f"{path} differs from the field's {split}.lst "
                                    f"(SHA-256 {list_digests[split][:12]}...)")  # fmt: skip
            write_list(out / f"{split}.lst", [n for n, _ in read_list(path)])

    backend_ready = None
    for split in SPLITS:
        res = SplitResult(split, listed=len(listed[split]))
        report.splits[split] = res
        img_dir = out / split
        img_dir.mkdir(parents=True, exist_ok=True)
        for name in tqdm(listed[split], desc=f"deepfashion {split}", unit="img", disable=not progress):
            src = tree[name]

            def produce(src=src) -> bytes:
                image = read_image(src)
                if src_kind == "img":
                    if image.shape[:2] != (FRAME, FRAME):
                        raise DataError(src, f"is {image.shape[0]}x{image.shape[1]} (height x width), expected "
                                             f"{FRAME}x{FRAME} like every image of the In-shop img/ folder")  # fmt: skip
                    if size == (FRAME, FRAME) and fmt == "jpg" and src.suffix.lower() in (".jpg", ".jpeg"):
                        return src.read_bytes()
                else:
                    image = fit_highres(image)
                if size[1] != FRAME:
                    image = np.ascontiguousarray(image[:, CROP_LEFT:CROP_RIGHT])
                return encode(image, fmt)

            if write_once(img_dir / with_extension(name, fmt), produce):
                res.written += 1
            else:
                res.kept += 1

        # -- keypoints: the field's, then the extractor's for the rest -------------------------
        written = [with_extension(n, fmt) for n in listed[split]]
        given = field_ann.get(split, {})
        by_field = {with_extension(n, fmt): kp for n, kp in given.get("keypoints", {}).items()}
        keypoints = {n: by_field[n] for n in written if n in by_field}
        if given:
            outside = len(by_field) - len(keypoints)
            if outside:
                res.notes.append(f"{outside} rows of {given['file'].name} name images not in {split}.lst: left out")
        elif annotations is not None:
            res.notes.append(f"{annotations} has no annotation file for {split} (looked for "
                             + ", ".join(a.format(s=split) for a, _, _ in FIELD_FILES) + ")")
        # a row of the field's file with no keypoint at all (the test file has some) counts as missing
        missing = [n for n in written if n not in keypoints or (keypoints[n] == MISSING).all()]
        if missing and extract:
            if backend_ready is None:
                from posetransfer.pose.extract import get_backend

                backend_ready = backend or get_backend("mediapipe")
            found, missing = extract_missing(img_dir, missing, backend_ready, out / f".extracted-{split}.csv",
                                             progress, f"pose {split}")  # fmt: skip
            keypoints.update(found)  # replaces the field's rows without keypoints
            res.extracted = len(found)
            keypoints = {n: keypoints[n] for n in written if n in keypoints}
        res.missing_keypoints = missing
        res.annotated = len(keypoints)
        write_split_keypoints(out, ann_name.format(s=split), keypoints, missing, split)

        # -- pairs: the field's (both images annotated), else generated -----------------------
        if given.get("pairs") is not None:
            pairs = [(with_extension(a, fmt), with_extension(b, fmt)) for a, b in given["pairs"]]
            kept = [(a, b) for a, b in pairs if a in keypoints and b in keypoints]
            res.pairs_source = f"from {given['pairs_file'].name}"
            if len(kept) < len(pairs):
                res.notes.append(f"{len(pairs) - len(kept)} pairs of {given['pairs_file'].name} name an image "
                                 "without file or keypoints: left out")  # fmt: skip
        else:
            kept = make_pairs(keypoints, seed=0, require_torso=True)
            res.pairs_source = "generated: every same-outfit pair with a visible torso"
        res.pairs = len(kept)
        write_pairs(out / pairs_name.format(s=split), kept)

    manifest = {"options": options, "lists_commit": LISTS_COMMIT,
                "splits": {s: {"images": r.images, "annotated": r.annotated, "pairs": r.pairs}
                           for s, r in report.splits.items()}}  # fmt: skip
    finish_output(out, manifest)
    if check:
        report.check_ok, report.check_lines = run_checks(out, SPLITS, progress)
    return report
