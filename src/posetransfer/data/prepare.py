"""Turn a folder of one's own photos into a data set in the plain layout (``data prepare``).

Framing: the field's data sets are person-centred, full-height crops. DeepFashion 256x176 is the
256x256 In-shop image (the person spanning the height, white product background) with 40 px cut
from each side; Market-1501 crops are the detector's person boxes resized to 128x64. A user's
photo is brought to such a frame by :func:`frame_window` + :func:`apply_frame`, one of:

- ``height`` (default, the DeepFashion convention): scale so the photo's height is the frame
  height, centre-crop the width (or pad it when the photo is narrower than the frame);
- ``person``: the window of the frame's aspect around the detected person (10 % margin), padded
  where it leaves the photo: the Market-1501 convention, best for wide or group photos;
- ``pad``: the whole photo fitted inside the frame, padding the short side (nothing is lost);
- ``crop``: the frame filled, centre-cropping the long side.

Padding (``fill``) repeats the border pixels (``edge``, default: neutral on any background) or is
white (``white``, DeepFashion's background). :class:`Frame` keeps the mapping so keypoints move
with the image and a generated image can be pasted back on the original canvas.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np

from posetransfer.errors import DataError, PosetransferError
from posetransfer.pose.schema import MISSING, visible

FrameMode = Literal["height", "person", "pad", "crop"]
# cv2 is imported where it is used: every CLI start-up reads FRAME_MODES and FILLS from here
# for its --help, and importing OpenCV took 0.11 s of it (python -X importtime).
FRAME_MODES = ("height", "person", "pad", "crop")
FILLS = ("edge", "white")
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
PERSON_MARGIN = 0.1


@dataclasses.dataclass(frozen=True)
class Frame:
    """The window ``[top, top + height) x [left, left + width)`` of a ``source_size`` photo
    (integers, possibly reaching past the photo = padding), resized to ``size`` = (H, W).

    Pixel coordinates follow OpenCV (integer = pixel centre), so a point moves as
    ``y' = (y - top + 0.5) * H / height - 0.5``.
    """

    top: int
    left: int
    height: int
    width: int
    size: tuple[int, int]
    source_size: tuple[int, int]

    @property
    def scale(self) -> tuple[float, float]:
        return self.size[0] / self.height, self.size[1] / self.width

    def keypoints_to_frame(self, kp: np.ndarray) -> np.ndarray:
        """Keypoints of the photo -> keypoints in the frame; those leaving it become missing."""
        kp = np.array(kp, dtype=np.float32)
        vis = visible(kp)
        sy, sx = self.scale
        out = np.empty_like(kp)
        out[..., 0] = (kp[..., 0] - self.top + 0.5) * sy - 0.5
        out[..., 1] = (kp[..., 1] - self.left + 0.5) * sx - 0.5
        h, w = self.size
        keep = vis & (out[..., 0] >= 0) & (out[..., 1] >= 0) & (out[..., 0] <= h - 1) & (out[..., 1] <= w - 1)
        out[~keep] = MISSING
        return out

    def keypoints_to_source(self, kp: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`keypoints_to_frame` (missing stays missing)."""
        kp = np.array(kp, dtype=np.float32)
        vis = visible(kp)
        sy, sx = self.scale
        out = np.empty_like(kp)
        out[..., 0] = (kp[..., 0] + 0.5) / sy - 0.5 + self.top
        out[..., 1] = (kp[..., 1] + 0.5) / sx - 0.5 + self.left
        out[~vis] = MISSING
        return out

    def paste(self, canvas: np.ndarray, framed: np.ndarray) -> np.ndarray:
        """A copy of ``canvas`` (the original photo) with ``framed`` (an image in this frame, e.g. the
        generated person) resized back and pasted over the part of the photo the frame showed."""
        import cv2

        h, w = self.source_size
        if canvas.shape[:2] != (h, w):
            raise ValueError(f"canvas is {canvas.shape[:2]}, this frame was made for {(h, w)}")
        if framed.shape[:2] != tuple(self.size):
            raise ValueError(f"framed image is {framed.shape[:2]}, expected {self.size}")
        sy, sx = self.scale
        # Canvas pixel -> frame pixel (the forward map); WARP_INVERSE_MAP makes OpenCV sample with it.
        m = np.array([[sx, 0, (0.5 - self.left) * sx - 0.5], [0, sy, (0.5 - self.top) * sy - 0.5]], np.float64)
        back = cv2.warpAffine(framed, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)
        out = canvas.copy()
        y0, y1 = max(0, self.top), min(h, self.top + self.height)
        x0, x1 = max(0, self.left), min(w, self.left + self.width)
        out[y0:y1, x0:x1] = back[y0:y1, x0:x1]
        return out


def frame_window(
    source_size: tuple[int, int],
    size: tuple[int, int],
    mode: FrameMode = "height",
    bbox: tuple[float, float, float, float] | None = None,
) -> Frame:
    """The :class:`Frame` that brings a ``source_size`` photo to ``size`` by ``mode`` (module doc).

    ``bbox`` = (top, left, bottom, right) of the person in the photo, required by ``person``.
    """
    h, w = source_size
    H, W = size
    aspect = W / H
    if mode not in FRAME_MODES:
        raise PosetransferError(f"unknown framing {mode!r}; choose one of {', '.join(FRAME_MODES)}")
    if mode == "person":
        if bbox is None:
            raise ValueError("framing 'person' needs the person's bounding box")
        top, left, bottom, right = bbox
        bh, bw = max(bottom - top, 1.0), max(right - left, 1.0)
        win_h = bh * (1 + 2 * PERSON_MARGIN)
        win_h = max(win_h, (bw + 2 * PERSON_MARGIN * bh) / aspect)
        win_w = win_h * aspect
        cy, cx = (top + bottom) / 2, (left + right) / 2
        ch, cw = max(1, round(win_h)), max(1, round(win_w))
        return Frame(round(cy - ch / 2), round(cx - cw / 2), ch, cw, (H, W), (h, w))
    wide = w / h > aspect
    if mode == "height" or (mode == "pad" and not wide) or (mode == "crop" and wide):
        ch, cw = h, max(1, round(h * aspect))
    else:  # the window spans the width
        ch, cw = max(1, round(w / aspect)), w
    return Frame((h - ch) // 2, (w - cw) // 2, ch, cw, (H, W), (h, w))


def apply_frame(image: np.ndarray, frame: Frame, fill: str = "edge") -> np.ndarray:
    """Cut ``frame``'s window out of ``image`` (padding outside it) and resize it to ``frame.size``.

    The crop is taken before resizing so a 6000x4000 photo is never resized whole more than once;
    ``INTER_AREA`` when shrinking (no aliasing), bicubic when enlarging.
    """
    import cv2

    if fill not in FILLS:
        raise PosetransferError(f"unknown padding {fill!r}; choose one of {', '.join(FILLS)}")
    h, w = image.shape[:2]
    if (h, w) != tuple(frame.source_size):
        raise ValueError(f"image is {(h, w)}, the frame was made for {frame.source_size}")
    y0, x0 = frame.top, frame.left
    y1, x1 = y0 + frame.height, x0 + frame.width
    crop = image[max(0, y0):min(h, y1), max(0, x0):min(w, x1)]
    pads = (max(0, -y0), max(0, y1 - h), max(0, -x0), max(0, x1 - w))
    if crop.size == 0:  # the window misses the photo entirely: all padding
        crop = np.full((frame.height, frame.width, 3), 255, np.uint8)
    elif any(pads):
        if fill == "edge":
            crop = cv2.copyMakeBorder(crop, *pads, borderType=cv2.BORDER_REPLICATE)
        else:
            crop = cv2.copyMakeBorder(crop, *pads, borderType=cv2.BORDER_CONSTANT, value=(255, 255, 255))
    H, W = frame.size
    interp = cv2.INTER_AREA if H < frame.height else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(crop), (W, H), interpolation=interp)


def parse_size(text: str) -> tuple[int, int]:
    """``"256x176"`` -> (256, 176) (height x width, the package's order)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 8 or int(m.group(2)) < 8:
        raise PosetransferError(f"size {text!r} must be HEIGHTxWIDTH in pixels, e.g. 256x176 (at least 8x8)")
    return int(m.group(1)), int(m.group(2))


# --------------------------------------------------------------------------------------------------
# data prepare


def find_images(raw_dir: Path) -> tuple[list[Path], list[Path]]:
    """(image files by extension, other files), recursively, sorted, hidden files and folders skipped."""
    images, others = [], []
    for p in sorted(raw_dir.rglob("*")):
        rel = p.relative_to(raw_dir)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        (images if p.suffix.lower() in IMAGE_EXTENSIONS else others).append(p)
    return images, others


def _clean(text: str) -> str:
    """Keep names safe for the annotation format (':' separated), CSV pairs and identity_of ('_')."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", text).strip("-") or "x"


def identity_for(rel: Path, identity: str) -> str | None:
    """The identity of the photo at ``rel`` (relative to the raw folder).

    ``subfolders``: its first folder (photos at the top level are each their own identity);
    ``filename``: the file-name rule of :func:`posetransfer.data.layouts.identity_of`;
    anything else is a regular expression searched in the relative path (``/`` separated): its
    first group, or the whole match. None when the expression does not match.
    """
    if identity == "subfolders":
        return rel.parts[0] if len(rel.parts) > 1 else rel.stem
    if identity == "filename":
        from posetransfer.data.layouts import identity_of

        return identity_of(rel.name)
    m = re.search(identity, rel.as_posix())
    if not m:
        return None
    return m.group(1) if m.groups() else m.group(0)


@dataclasses.dataclass
class PrepareReport:
    out_dir: Path
    train: int
    test: int
    identities: dict[str, int]
    pairs: dict[str, int]
    no_person: dict[str, str]
    unreadable: dict[str, str]
    no_identity: list[str]
    notes: list[str]

    def summary(self) -> str:
        lines = [
            f"wrote {self.out_dir}: train {self.train} images / {self.identities['train']} identities / "
            f"{self.pairs['train']} pairs, test {self.test} images / {self.identities['test']} identities / "
            f"{self.pairs['test']} pairs"
        ]
        if self.no_person:
            lines.append(f"{len(self.no_person)} photo(s) with no person found, left out (listed in no_person.txt)")
        if self.unreadable:
            lines.append(f"{len(self.unreadable)} unreadable file(s), left out (listed in unreadable.txt)")
        if self.no_identity:
            lines.append(f"{len(self.no_identity)} photo(s) the identity rule did not match, left out")
        lines += self.notes
        return "\n".join(lines)


def prepare_dataset(
    raw_dir: str | Path,
    out_dir: str | Path,
    size: tuple[int, int],
    identity: str = "subfolders",
    test_fraction: float = 0.2,
    backend=None,
    frame: FrameMode = "height",
    fill: str = "edge",
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = False,
) -> PrepareReport:
    """Frame every photo under ``raw_dir``, extract its keypoints and write ``out_dir/{train,test}``.

    Each split is in the plain layout (``images/``, ``annotation.csv``, ``pairs.csv`` with every
    ordered same-identity pair, :func:`posetransfer.data.pairs.make_pairs`). Identities, not
    photos, are split (a person is never in both), ``round(n * test_fraction)`` of them (at least
    one when there are two or more) go to test, chosen with ``default_rng(seed)``. Output names are
    ``<identity>_<original name>.png`` so ``identity_of`` recovers the identity. Photos with no
    person and unreadable files are left out and listed in ``no_person.txt`` / ``unreadable.txt``.

    Everything is written to a temporary folder beside ``out_dir`` and renamed at the end: an
    error or an interruption leaves no partial data set.
    """
    from tqdm import tqdm

    from posetransfer.data.pairs import make_pairs
    from posetransfer.pose.extract import NoPersonError, extract_pose, get_backend
    from posetransfer.pose.io import write_annotations, write_pairs
    from posetransfer.utils.io import atomic_write_text, read_image, save_image

    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    if not raw_dir.is_dir():
        raise DataError(raw_dir, "not a folder")
    if not 0 <= test_fraction < 1:
        raise PosetransferError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise DataError(out_dir, "already exists and is not empty (use --overwrite to replace it)")
    if out_dir.resolve().is_relative_to(raw_dir.resolve()):
        raise DataError(out_dir, f"the output folder must not be inside the photo folder {raw_dir}")
    images, _others = find_images(raw_dir)
    if not images:
        raise DataError(raw_dir, f"no image files found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
    backend = backend or get_backend("mediapipe")

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    from posetransfer.utils.io import umask_mode

    os.chmod(tmp, umask_mode(0o777))  # mkdtemp's 0700 would make the data set owner-only
    try:
        records: list[tuple[str, str, np.ndarray]] = []  # (identity, out name, keypoints)
        no_person: dict[str, str] = {}
        unreadable: dict[str, str] = {}
        no_identity: list[str] = []
        notes: list[str] = []
        used: set[str] = set()
        (tmp / "images").mkdir()
        for path in tqdm(images, desc="prepare", unit="img", disable=not progress):
            rel = path.relative_to(raw_dir)
            ident = identity_for(rel, identity)
            if ident is None:
                no_identity.append(rel.as_posix())
                continue
            try:
                image = read_image(path)
            except DataError as err:
                unreadable[rel.as_posix()] = err.problem
                continue
            try:
                result = extract_pose(image, backend, source=rel.as_posix())
            except NoPersonError as err:
                no_person[rel.as_posix()] = err.problem
                continue
            notes += result.notes
            win = frame_window(image.shape[:2], size, frame, bbox=result.detection.bbox)
            framed = apply_frame(image, win, fill)
            kp = win.keypoints_to_frame(result.keypoints)
            if not visible(kp).any():
                no_person[rel.as_posix()] = f"the person is outside the {frame!r} frame"
                continue
            ident = _clean(ident)
            stem = _clean(path.stem)
            if stem.startswith(ident + "-") and len(stem) > len(ident) + 1:  # id7_back.jpg -> id7_back.png
                stem = stem[len(ident) + 1:]
            name = f"{ident}_{stem}.png"
            k = 1
            while name in used:
                k += 1
                name = f"{ident}_{stem}-{k}.png"
            used.add(name)
            save_image(tmp / "images" / name, framed)
            records.append((ident, name, kp))

        if not records:
            raise DataError(raw_dir, f"no person found in any of the {len(images)} photo(s); nothing to write")
        ids = sorted({r[0] for r in records})
        rng = np.random.default_rng(seed)
        n_test = round(len(ids) * test_fraction)
        if test_fraction > 0 and len(ids) >= 2:
            n_test = min(max(n_test, 1), len(ids) - 1)
        test_ids = set(rng.permutation(ids)[:n_test].tolist())
        counts, id_counts, pair_counts = {}, {}, {}
        for split in ("train", "test"):
            split_dir = tmp / split
            (split_dir / "images").mkdir(parents=True)
            ann = {}
            for ident, name, kp in records:
                if (ident in test_ids) == (split == "test"):
                    shutil.move(tmp / "images" / name, split_dir / "images" / name)
                    ann[name] = kp
            write_annotations(split_dir / "annotation.csv", ann)
            pairs = make_pairs(ann, seed=seed)
            write_pairs(split_dir / "pairs.csv", pairs)
            counts[split] = len(ann)
            id_counts[split] = len({r[0] for r in records if r[1] in ann})
            pair_counts[split] = len(pairs)
            if ann and not pairs:
                notes.append(f"{split}: no identity has two photos with a person, so pairs.csv is empty")
        (tmp / "images").rmdir()
        if no_person:
            atomic_write_text(tmp / "no_person.txt", "".join(f"{k}\t{v}\n" for k, v in no_person.items()))
        if unreadable:
            atomic_write_text(tmp / "unreadable.txt", "".join(f"{k}\t{v}\n" for k, v in unreadable.items()))
        if out_dir.exists():
            shutil.rmtree(out_dir) if out_dir.is_dir() else out_dir.unlink()
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return PrepareReport(out_dir, counts["train"], counts["test"], id_counts, pair_counts, no_person, unreadable,
                         no_identity, notes)
