"""Where a data set's files are: the on-disk layouts of the field, recognised from a folder.

Three layouts are recognised (the field's released data files):

``plain``
    The package's own layout (``data synth`` and ``data/real-mini`` use it)::

        DIR/images/*.png   DIR/annotation.csv   DIR/pairs.csv (optional for some uses)

    A folder holding ``train/`` and ``test/`` plain-layout subfolders (what ``data synth`` writes)
    resolves with ``split``.

``market``
    Market-1501 as PATN / GFLA / Deformable GAN distribute its keypoints::

        DIR/market-annotation-<split>.csv   DIR/market-pairs-<split>.csv
        DIR/<split>/  (or DIR/bounding_box_<split>/, the name in the Market-1501 archive)

``deepfashion``
    DeepFashion In-shop as PATN / GFLA distribute it (256x176 crop)::

        DIR/fasion-resize-annotation-<split>.csv   DIR/fasion-resize-pairs-<split>.csv   DIR/<split>/

    and the 256x256 variant of Deformable GAN, ``fasion-annotation-<split>.csv`` /
    ``fasion-pairs-<split>.csv``. (``fasion`` is the field's spelling, kept so the files are
    found under the names they are downloaded with.)

Names in the annotation and pairs files must match the image files exactly: the field's CSVs name
``.jpg`` files, and a folder converted to ``.png`` needs its CSVs rewritten too.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from posetransfer.errors import DataError

#: Extensions treated as images when a folder is listed.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})

SPLITS = ("train", "test")

# Market-1501 names: 4-digit person id (or -1 / 0000 for junk and distractors), camera, sequence,
# frame, box index: ``0001_c3s1_000551_03.jpg``.
_MARKET_NAME = re.compile(r"^(-1|\d{4})_c\d+s\d+_")
# DeepFashion In-shop names flattened by the field: ``fashion<GENDER><Category>id<item>_<view>.jpg``
# with view = <n><front|side|back|full|flat|additional>; the category itself may hold ``_``.
_FASHION_NAME = re.compile(r"^(.+)_\d+(?:front|side|back|full|flat|additional)(?:\.[A-Za-z0-9]+)?$")


def identity_of(name: str) -> str:
    """The person/outfit an image shows, from its file name (the field's naming conventions).

    Market-1501: the first 4 digits (``0001_c3s1_000551_03.jpg`` -> ``0001``; junk images give
    ``-1``). DeepFashion: the name up to the view suffix
    (``fashionMENJackets_Vestsid0000065304_1front.png`` -> ``fashionMENJackets_Vestsid0000065304``).
    Anything else: the part before the first ``_`` (synthetic ``id00012_03.png`` -> ``id00012``),
    or the whole stem when there is no ``_``.
    """
    base = os.path.basename(name)
    m = _MARKET_NAME.match(base)
    if m:
        return m.group(1)
    m = _FASHION_NAME.match(base)
    if m:
        return m.group(1)
    if "_" in base:
        return base.split("_", 1)[0]
    return os.path.splitext(base)[0]


@dataclass(frozen=True)
class DatasetFiles:
    """The files of one split of a data set.

    ``size`` (height, width) is the image size when given; otherwise :meth:`image_size` reads it
    from the first image (all images of a data set must share one size).
    """

    root: Path
    images_dir: Path
    annotation_path: Path
    pairs_path: Path | None
    layout: str
    split: str | None
    size: tuple[int, int] | None = field(default=None, compare=False)

    def image_names(self) -> list[str]:
        """Sorted names of the image files in ``images_dir`` (hidden files skipped)."""
        return list_images(self.images_dir)

    def image_size(self) -> tuple[int, int]:
        """(height, width) of the data set: ``size`` when given, else the most common size among
        the headers of the first :data:`SIZE_SAMPLE` images (so one odd image, e.g. a 1x1 file
        listed first, is the one blamed later, not every correct image after it)."""
        if self.size is not None:
            return (int(self.size[0]), int(self.size[1]))
        from collections import Counter

        from posetransfer.utils.io import read_image  # PIL import kept out of module import

        names = self.image_names()
        if not names:
            raise DataError(self.images_dir, "holds no images (looked for " + ", ".join(sorted(IMAGE_EXTENSIONS)) + ")")
        sizes = Counter(s for s in (_header_size(self.images_dir / n) for n in names[:SIZE_SAMPLE]) if s is not None)
        if not sizes:  # every sampled header unreadable: read_image names the first file's problem
            h, w = read_image(self.images_dir / names[0]).shape[:2]
            return (h, w)
        return sizes.most_common(1)[0][0]

    def describe(self) -> str:
        split = f", split {self.split}" if self.split else ""
        return f"{self.layout} layout{split}: images {self.images_dir}, annotation {self.annotation_path.name}" + (
            f", pairs {self.pairs_path.name}" if self.pairs_path else ", no pairs file"
        )


#: images whose headers decide a data set's image size when none is given
SIZE_SAMPLE = 32


def _header_size(path: Path, exif: bool = True) -> tuple[int, int] | None:
    """(height, width) from an image's header (nothing decoded), or None when unreadable.

    ``exif``: apply the EXIF orientation (for some formats finding it reads much of the file:
    1.3-3.2 ms an image against 0.12 ms without, docs/benchmarks.md)."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                w, h = im.size
                orientation = im.getexif().get(0x0112, 1) if exif else 1
    except Exception:  # noqa: BLE001 - unreadable here; read_image reports it with its reason
        return None
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def list_images(folder: Path) -> list[str]:
    """Sorted image file names in ``folder`` (by extension; hidden files skipped)."""
    try:
        entries = os.listdir(folder)
    except OSError as err:
        raise DataError(folder, f"cannot list the image folder ({err.strerror})") from None
    return sorted(
        n for n in entries if not n.startswith(".") and os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS
    )


def image_files(folder: Path) -> list[Path]:
    """The image files of a folder given where photos are expected (``pose extract DIR``,
    ``transfer --source DIR``): :func:`list_images`, as paths; none is an error naming the folder."""
    found = [folder / n for n in list_images(folder)]
    if not found:
        raise DataError(folder, "holds no image files (.jpg, .png, ...)")
    return found


def _plain(folder: Path, split: str | None) -> DatasetFiles | None:
    images, annotation = folder / "images", folder / "annotation.csv"
    if images.is_dir() and annotation.is_file():
        pairs = folder / "pairs.csv"
        return DatasetFiles(folder, images, annotation, pairs if pairs.is_file() else None, "plain", split)
    return None


# (layout, annotation pattern, pairs pattern, image folder candidates); {s} = split.
_FIELD_LAYOUTS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("market", "market-annotation-{s}.csv", "market-pairs-{s}.csv", ("{s}", "bounding_box_{s}")),
    ("deepfashion", "fasion-resize-annotation-{s}.csv", "fasion-resize-pairs-{s}.csv", ("{s}",)),
    ("deepfashion", "fasion-annotation-{s}.csv", "fasion-pairs-{s}.csv", ("{s}",)),
)


def _field(folder: Path, split: str) -> DatasetFiles | None:
    for layout, ann, pairs, image_dirs in _FIELD_LAYOUTS:
        annotation = folder / ann.format(s=split)
        if not annotation.is_file():
            continue
        for d in image_dirs:
            images = folder / d.format(s=split)
            if images.is_dir():
                p = folder / pairs.format(s=split)
                return DatasetFiles(folder, images, annotation, p if p.is_file() else None, layout, split)
    return None


def _looked_for(folder: Path, split: str | None) -> str:
    s = split or "<split>"
    parts = ["images/ + annotation.csv (+ pairs.csv)"]
    if split is not None:
        parts.append(f"{s}/images/ + {s}/annotation.csv")
    for _, ann, pairs, dirs in _FIELD_LAYOUTS:
        parts.append(f"{ann.format(s=s)} + {pairs.format(s=s)} beside " + " or ".join(d.format(s=s) + "/" for d in dirs))
    return "; ".join(parts)


def resolve_dataset(path: str | Path, split: str | None = None, size: tuple[int, int] | None = None) -> DatasetFiles:
    """Find the images, annotation and pairs of a data set folder (see the module docstring).

    ``split`` picks ``train``/``test`` (any name works for plain-layout subfolders); it may be left
    out when the folder holds only one split. ``size`` = (height, width) skips reading the first
    image to learn it. An unrecognised folder is a :class:`DataError` listing what was looked for.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(folder, "data set folder does not exist" if not folder.exists() else "not a folder")

    def sized(files: DatasetFiles) -> DatasetFiles:
        if size is None:
            return files
        return DatasetFiles(files.root, files.images_dir, files.annotation_path, files.pairs_path,
                            files.layout, files.split, (int(size[0]), int(size[1])))  # fmt: skip

    if split is None:
        found = _plain(folder, None)
        if found:
            return sized(found)
        candidates = [s for s in SPLITS if _plain(folder / s, s) or _field(folder, s)]
        if len(candidates) == 1:
            split = candidates[0]
        elif candidates:
            raise DataError(folder, f"holds the splits {', '.join(candidates)}: choose one (--split)")
        else:
            raise DataError(folder, f"not a recognised data set folder; looked for {_looked_for(folder, None)}")

    found = _plain(folder / split, split) or _field(folder, split)
    if found is None:
        plain_here = _plain(folder, None)
        hint = " (the folder is a plain-layout data set without splits: leave the split out)" if plain_here else ""
        raise DataError(folder, f"no split {split!r} found{hint}; looked for {_looked_for(folder, split)}")
    return sized(found)
