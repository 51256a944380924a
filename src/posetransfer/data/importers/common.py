"""What both importers share: a resumable output folder, pose extraction, the closing check.

Resuming. An import writes, in this order: ``.import-progress.json`` (the options, so that a rerun
knows it continues the same import), every image under its final name (each one atomically, so a
file under its final name is complete), the annotation and pairs files, ``import-manifest.json``
(counts and options), and it then removes the progress marker. A rerun with the same options on a
folder holding the marker skips the images already there; a folder holding the manifest is a
finished import, replaced only with ``--overwrite``; any other non-empty folder is refused.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from posetransfer.errors import DataError, PosetransferError
from posetransfer.utils.io import atomic_path, atomic_write_json, atomic_write_text

_UMASK = os.umask(0)
os.umask(_UMASK)
PROGRESS_MARKER = ".import-progress.json"
MANIFEST = "import-manifest.json"


def prepare_output(
    out: Path, options: dict, overwrite: bool, outputs: Iterable[str], ignorable: Iterable[str] = ()
) -> bool:
    """Make ``out`` ready for an import with ``options``; True when an interrupted one is resumed.

    ``outputs`` are the names (files or folders) an import writes in ``out``; ``--overwrite``
    removes those (and only those: other files of the user's are left alone). A folder holding
    only ``ignorable`` names (lists an earlier attempt downloaded) counts as empty.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(out, "exists and is not a folder")
    marker, manifest = out / PROGRESS_MARKER, out / MANIFEST
    resuming = False
    if overwrite and out.is_dir():
        for name in [PROGRESS_MARKER, MANIFEST, *outputs]:
            p = out / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
    elif manifest.is_file():
        raise DataError(out, f"holds a finished import ({MANIFEST}); use --overwrite to replace it")
    elif marker.is_file():
        try:
            previous = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            previous = None
        if previous != options:
            diff = _describe_difference(previous, options)
            raise DataError(out, f"holds an interrupted import with other options ({diff}); rerun it with "
                                 "the same options to continue it, or use --overwrite to start again")  # fmt: skip
        resuming = True
    elif out.is_dir() and any(p.name not in set(ignorable) for p in out.iterdir()):
        raise DataError(out, "already exists and is not empty (use --overwrite to replace it)")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(marker, options)
    return resuming


def _describe_difference(previous, options: dict) -> str:
    if not isinstance(previous, dict):
        return f"its {PROGRESS_MARKER} is unreadable"
    keys = [k for k in sorted(set(previous) | set(options)) if previous.get(k) != options.get(k)]
    return ", ".join(f"{k}: {previous.get(k)!r} then, {options.get(k)!r} now" for k in keys[:3])


def abandon_output(out: Path, resumed: bool) -> None:
    """After bad input found before any image was written: drop the progress marker of a fresh
    import (and its folder when nothing else is in it), so that the fixed rerun starts cleanly."""
    if resumed:
        return
    (Path(out) / PROGRESS_MARKER).unlink(missing_ok=True)
    try:
        Path(out).rmdir()
    except OSError:
        pass


def finish_output(out: Path, manifest: dict) -> None:
    """Write the manifest (the last file of an import) and drop the progress marker."""
    os.sync()  # the images were written without fsync (see write_once)
    atomic_write_json(Path(out) / MANIFEST, manifest)
    (Path(out) / PROGRESS_MARKER).unlink(missing_ok=True)


def write_once(path: Path, produce: Callable[[], bytes]) -> bool:
    """Write ``produce()`` to ``path`` atomically unless ``path`` exists; True when written.

    An existing file is complete (every write is a rename of a finished temporary file) and was
    written by this import (the progress marker holds the same options), so a resumed import keeps
    it without decoding it. Unlike ``utils.io.atomic_path`` there is no fsync per image: it took
    75 % of an import's time (12 ms per image, measured on this machine), and the rename alone is
    what an interruption (Ctrl-C, a kill) needs. :func:`finish_output` syncs once before the
    manifest, and the closing ``data check`` decodes every image, so a file lost to a power cut
    before that is reported by name.
    """
    if path.is_file():
        return False
    data = produce()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True


def encode(image: np.ndarray, fmt: str) -> bytes:
    """PNG (lossless) or JPEG at PIL's default quality (75), as PATN's ``imgcrop.save(...)`` writes
    its ``.jpg`` files (``tool/generate_fashion_datasets.py``, lines 58-60)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG" if fmt == "png" else "JPEG")
    return buf.getvalue()


def with_extension(name: str, fmt: str) -> str:
    """``name`` with the extension of the written format (the field's names end in ``.jpg``)."""
    return os.path.splitext(name)[0] + "." + fmt


def read_list(path: Path) -> list[tuple[str, int]]:
    """Names (with their line numbers) of a ``train.lst`` / ``test.lst``: the ``.jpg`` lines, as
    PATN reads them (``tool/generate_fashion_datasets.py``, lines 29-33)."""
    if not path.is_file():
        raise DataError(path, "list file does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(path, f"not a text file ({err.reason} at byte {err.start})") from None
    out = [(line.strip(), i) for i, line in enumerate(lines, start=1) if line.strip().endswith(".jpg")]
    if not out:
        raise DataError(path, "names no .jpg image")
    return out


@dataclass
class SplitResult:
    """What an import wrote for one split."""

    name: str
    listed: int = 0  #: images the split should hold (list rows, or raw images kept)
    written: int = 0  #: images written by this run
    kept: int = 0  #: images already there from an interrupted run
    annotated: int = 0
    extracted: int = 0  #: of which annotated by the pose extractor
    pairs: int = 0
    pairs_source: str = ""
    missing_keypoints: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def images(self) -> int:
        return self.written + self.kept

def _published(published: dict[str, int], key: str) -> str:
    return f", published {published[key]:,}" if key in published else ""


@dataclass
class ImportReport:
    """What an import did, and the lines the command prints."""

    out: Path
    dataset: str
    splits: dict[str, SplitResult]
    published: dict[str, int]
    resumed: bool = False
    notes: list[str] = field(default_factory=list)
    check_ok: bool = True
    check_lines: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        lines = [f"imported {self.dataset} into {self.out}" + (" (resumed an interrupted import)" if self.resumed else "")]
        for s in self.splits.values():
            kept = f", {s.kept} kept from the interrupted run" if s.kept else ""
            ext = f" ({s.extracted} by the pose extractor)" if s.extracted else ""
            lines.append(f"  {s.name}: {s.images:,} images{_published(self.published, s.name)}{kept}; "
                         f"annotated {s.annotated:,}{ext}; pairs {s.pairs:,} ({s.pairs_source}"
                         f"{_published(self.published, s.name + ' pairs')})")  # fmt: skip
            if s.missing_keypoints:
                lines.append(f"  {s.name}: {len(s.missing_keypoints)} images without keypoints, listed in "
                             f"missing-keypoints-{s.name}.txt (--extract-missing annotates them)")  # fmt: skip
            lines += [f"  {s.name}: {n}" for n in s.notes]
        if "images" in self.published:
            total = sum(s.images for s in self.splits.values())
            lines.append(f"  all splits: {total:,} images{_published(self.published, 'images')}")
        lines += [f"  {n}" for n in self.notes]
        return lines + self.check_lines



def extract_missing(
    images_dir: Path,
    names: list[str],
    backend,
    cache: Path,
    progress: bool,
    desc: str,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Keypoints of ``names`` (files in ``images_dir``) by the pose extractor, resumably.

    Results go to ``cache`` (an annotation file) every 100 images, so an interrupted extraction
    continues where it stopped. Returns (keypoints by name, names where no person was found).
    """
    from tqdm import tqdm

    from posetransfer.pose.extract import NoPersonError, extract_pose
    from posetransfer.pose.io import read_annotations
    from posetransfer.pose.schema import MISSING, NUM_KEYPOINTS
    from posetransfer.utils.io import read_image

    done: dict[str, np.ndarray] = read_annotations(cache) if cache.is_file() else {}
    none = np.full((NUM_KEYPOINTS, 2), MISSING, np.float32)
    todo = [n for n in names if n not in done]
    for i, n in enumerate(tqdm(todo, desc=desc, unit="img", disable=not progress)):
        try:
            done[n] = extract_pose(read_image(images_dir / n), backend, source=images_dir / n).keypoints
        except NoPersonError:
            done[n] = none  # recorded, so a resumed run does not try again
        if (i + 1) % 100 == 0:
            write_annotations(cache, done)
    if todo:
        write_annotations(cache, done)
    found = {n: done[n] for n in names if n in done and (done[n] != MISSING).any()}
    return found, [n for n in names if n not in found]


def run_checks(out: Path, splits: Iterable[str], progress: bool) -> tuple[bool, list[str]]:
    """``data check`` on each written split: (all OK, the lines to print)."""
    from posetransfer.data.check import check_dataset

    ok, lines = True, []
    for split in splits:
        report = check_dataset(out, split=split, progress=progress)
        ok = ok and report.ok
        lines.append(f"data check {split}: " + report.summary_lines()[-1])
        lines += [f"  {line}" for line in report.summary_lines()[1:-1]]
        kinds: dict[str, int] = {}
        for p in report.problems:
            kinds[p.kind] = kinds.get(p.kind, 0) + 1
            if kinds[p.kind] <= 3 and p.severity == "error":
                lines.append(f"  {p.format()}")
        if kinds:
            lines.append("  problems: " + ", ".join(f"{v} {k}" for k, v in sorted(kinds.items())))
    return ok, lines


def fetch_verified(url: str, sha256: str, dest: Path, what: str, hint: str, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` (atomically) and check its SHA-256; reuse ``dest`` when it matches.

    Offline, or on a checksum mismatch, one clear line says what to do by hand (``hint``).
    """
    import hashlib
    import urllib.error
    import urllib.request

    if dest.is_file() and hashlib.sha256(dest.read_bytes()).hexdigest() == sha256:
        return dest
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (a fixed https URL)
            data = response.read()
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise PosetransferError(f"cannot download {what} from {url} ({reason}); {hint}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise PosetransferError(f"{what} downloaded from {url} has SHA-256 {digest}, expected {sha256}; {hint}")
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return dest


def write_annotations(path: Path, annotations: dict[str, np.ndarray]) -> None:
    """Write an annotation file in the field's format, keeping coordinates outside the frame.

    ``posetransfer.pose.io.write_annotations`` marks any negative coordinate missing; the field's
    DeepFashion file holds keypoints at x < 0 in the 256x176 frame (x = -18) that lie inside the
    256x256 frame, so an import keeps them as they are (only ``-1`` marks a missing keypoint).
    """
    from posetransfer.pose.io import ANNOTATION_HEADER
    from posetransfer.pose.schema import MISSING

    lines = [ANNOTATION_HEADER]
    for name, kp in annotations.items():
        kp = np.round(np.asarray(kp, np.float64)).astype(int)
        kp[(kp == MISSING).any(axis=-1)] = MISSING
        lines.append(f"{name}:{kp[:, 0].tolist()}:{kp[:, 1].tolist()}")
    atomic_write_text(path, "\n".join(lines) + "\n")


def write_list(path: Path, names: list[str]) -> None:
    atomic_write_text(path, "".join(n + "\n" for n in names))


def write_split_keypoints(out: Path, annotation_name: str, keypoints: dict[str, np.ndarray],
                          missing: list[str], split: str) -> None:  # fmt: skip
    """The split's annotation file, and ``missing-keypoints-<split>.txt`` listing the images
    without keypoints (removed when there are none, so a rerun never keeps a stale list)."""
    write_annotations(out / annotation_name, keypoints)
    listing = out / f"missing-keypoints-{split}.txt"
    listing.unlink(missing_ok=True)
    if missing:
        write_list(listing, missing)

