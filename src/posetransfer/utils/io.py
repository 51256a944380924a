"""File helpers shared by the whole package: atomic writes and image reading with clear errors."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from posetransfer.errors import DataError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    A crash or an exception leaves the old file (if any) untouched and no half-written file:
    the rename is atomic on POSIX file systems. Parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates the file readable by its owner only; give the final file the permissions
    # an ordinary open() would (0o666 less the umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_image(path: str | Path, image: np.ndarray) -> None:
    """Write an HxWx3 (or HxW) uint8 array as PNG, atomically."""
    path = Path(path)
    if image.dtype != np.uint8:
        raise TypeError(f"save_image expects uint8, got {image.dtype}")
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def read_image(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read an image as an HxWx3 uint8 RGB array.

    EXIF orientation is applied; grayscale, RGBA, CMYK, palette and 16-bit images are converted to
    8-bit RGB. ``size`` = (height, width), when given, must match exactly: a data set with a wrong
    image size is an error, not a silent resize. Every failure is a :class:`DataError` naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "image file does not exist")
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            arr = _to_rgb8(im)
    except UnidentifiedImageError:
        raise DataError(path, "not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt data
        raise DataError(path, f"unreadable image ({err})") from None
    if size is not None and arr.shape[:2] != tuple(size):
        raise DataError(
            path,
            f"wrong image size {arr.shape[0]}x{arr.shape[1]} (height x width), expected {size[0]}x{size[1]}",
        )
    return arr


def _to_rgb8(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        a = np.clip(np.round(a / peak * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        # Composite on white, the usual background of product photos.
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, rgba)
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
