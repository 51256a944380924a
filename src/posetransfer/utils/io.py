"""File helpers shared by the whole package: atomic writes, output checks, image reading with clear errors.

* :func:`atomic_path` and the ``atomic_write_*`` / :func:`save_image` helpers write under a hidden
  temporary name (``.NAME.XXXXXXXX.tmp``) renamed onto the target at the end, so an interrupted
  command never leaves a half-written file; the files get the user's umask.
* :func:`check_output` is called by every command that writes, *before* its work starts: it refuses
  an existing output without ``--overwrite``, a file where a folder is needed (and the reverse) and
  an unwritable place, and removes the temporary files an interrupted earlier run left there.
* :func:`read_image` refuses images over the pixel limit (:func:`max_pixels`) from their header,
  before decoding a byte of pixel data.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from posetransfer.errors import ConfigError, DataError, OutputError

#: environment variable overriding the pixel limit of :func:`read_image`
MAX_PIXELS_ENV = "POSETRANSFER_MAX_PIXELS"
#: default pixel limit: 100 megapixels (a 12000 x 8000 photo passes; decoded as RGB it is 300 MB). A
#: 20000 x 20000 "decompression bomb" PNG (400 MP, 1.2 GB decoded, a few hundred kB on disk) does not.
DEFAULT_MAX_PIXELS = 100_000_000


def max_pixels() -> int:
    """The largest width x height :func:`read_image` decodes (``$POSETRANSFER_MAX_PIXELS``, default 100 M)."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(text))
    except ValueError:
        raise ConfigError(f"${MAX_PIXELS_ENV}: expected a number of pixels, got {text!r}") from None
    if value < 1:
        raise ConfigError(f"${MAX_PIXELS_ENV}: must be >= 1, got {text!r}")
    return value


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` less the process's umask: the permissions an ordinary ``open()``/``mkdir()`` gives."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def _named(err: OSError, path: Path) -> OSError:
    """``err`` naming ``path`` when the system did not name a file (a write() on a full disk)."""
    if err.filename is None and err.errno is not None:
        named = type(err)(err.errno, err.strerror or os.strerror(err.errno), str(path))
        named.__cause__ = err
        return named
    return err


def _temp_glob(name: str) -> str:
    return f".{name}.*.tmp"


def clean_temporaries(folder: str | Path, name: str | None = None, recursive: bool = False) -> list[Path]:
    """Remove the ``.NAME.XXXXXXXX.tmp`` files interrupted :func:`atomic_path` writes left in ``folder``.

    ``name`` limits it to one target's leftovers. Only files of exactly that pattern are touched.
    Returns what was removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = _temp_glob(name) if name is not None else ".*.tmp"
    found = folder.rglob(pattern) if recursive else folder.glob(pattern)
    removed = []
    for p in found:
        if p.is_symlink():
            continue
        with contextlib.suppress(OSError):
            if p.is_file():
                p.unlink()
                removed.append(p)
            elif p.is_dir() and name is not None:  # e.g. data prepare's unfinished ``.OUT.XXXX.tmp`` folder
                shutil.rmtree(p)
                removed.append(p)
    return removed


def _existing_ancestor(path: Path) -> Path:
    probe = path
    while not probe.exists() and not probe.is_symlink():
        parent = probe.parent
        if parent == probe:
            break
        probe = parent
    return probe


def check_writable_folder(folder: Path) -> None:
    """The folder ``folder`` (or its nearest existing ancestor, where it will be created) accepts new files.

    Raises an OSError naming the folder (EACCES, EROFS, ENOTDIR, ...) that the command line reports
    in one line. Creates and removes one empty hidden probe file: ``os.access`` alone says yes to
    root on a read-only mount's files and knows nothing of some network file systems.
    """
    anchor = _existing_ancestor(folder)
    if not anchor.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a folder (cannot hold the output)", str(anchor))
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "permission denied (the folder is not writable)", str(anchor))
    try:
        fd, probe = tempfile.mkstemp(prefix=".posetransfer-probe-", suffix=".tmp", dir=anchor)
    except OSError as err:
        raise type(err)(err.errno, err.strerror or os.strerror(err.errno or 0), str(anchor)) from None
    os.close(fd)
    os.unlink(probe)


def check_output(path: str | Path, *, kind: str = "file", overwrite: bool = False, option: str = "--out") -> Path:
    """Check an output before a command does any work; returns ``path`` as a :class:`Path`.

    ``kind="file"``: ``path`` must not be a folder, nor an existing file unless ``overwrite``.
    ``kind="dir"``: ``path`` must not be a file, nor a non-empty folder unless ``overwrite``
    (hidden leftovers of interrupted writes do not count). Either way the place must be writable
    (:func:`check_writable_folder`), and the temporary files an interrupted earlier write of this
    output left behind are removed. Refusals are :class:`~posetransfer.errors.OutputError`.
    """
    if kind not in ("file", "dir"):
        raise ValueError(f"kind must be 'file' or 'dir', got {kind!r}")
    path = Path(path)
    if kind == "file":
        if path.is_dir():
            raise OutputError(f"{path}: is a folder; {option} needs a file name")
        if path.exists() and not overwrite:
            raise OutputError(f"{path}: already exists; pass --overwrite to replace it")
        check_writable_folder(path.parent)
        clean_temporaries(path.parent, path.name)
        return path
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: exists and is not a folder; {option} needs a folder")
    clean_temporaries(path.parent, path.name)
    if path.is_dir():
        clean_temporaries(path, recursive=True)
        if not overwrite and any(not p.name.startswith(".") for p in path.iterdir()):
            raise OutputError(f"{path}: folder already holds files; pass --overwrite to replace them or choose another {option}")
    check_writable_folder(path)
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    A crash or an exception leaves the old file (if any) untouched and no half-written file:
    the rename is atomic on POSIX file systems. Parent folders are created.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:  # name the output, not the temporary name it was to be written under
        if err.errno is None:
            raise
        raise type(err)(err.errno, err.strerror or os.strerror(err.errno), str(path)) from None
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates the file readable by its owner only; give the final file the permissions
    # an ordinary open() would (0o666 less the umask).
    os.chmod(tmp_path, umask_mode(0o666))
    try:
        try:
            yield tmp_path
            with open(tmp_path, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp_path, path)
        except OSError as err:  # e.g. ENOSPC from a write(): name the file being written
            raise _named(err, path) from None
    finally:
        if tmp_path.exists():
            with contextlib.suppress(OSError):
                tmp_path.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json_object(path: str | Path, what: str) -> dict[str, Any]:
    """A JSON file holding one object, or a :class:`DataError` naming the file and ``what`` it
    should be ("metrics file", "generation record" ...)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(path, f"unreadable {what} ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise DataError(path, f"a {what} must hold a JSON object")
    return data


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
    limit = max_pixels()
    try:
        with warnings.catch_warnings():
            # PIL's own bomb guard (a warning above 89 MP, an error above 179 MP) is replaced by
            # the configurable check below, which also runs on the header only
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                im_cm = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = previous
        with im_cm as im:
            w, h = im.size  # from the header: nothing decoded yet
            if w * h > limit:
                raise DataError(path, _too_many_pixels(w, h, limit))
            im.load()
            im = ImageOps.exif_transpose(im)
            arr = _to_rgb8(im)
    except Image.DecompressionBombError:
        raise DataError(path, f"image over the pixel limit of {limit} (set ${MAX_PIXELS_ENV} to raise it)") from None
    except UnidentifiedImageError:
        raise DataError(path, "not an image (unrecognised format)") from None
    except IsADirectoryError:
        raise DataError(path, "is a folder, not an image") from None
    except PermissionError:
        raise DataError(path, "permission denied (cannot read the image)") from None
    except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt data
        raise DataError(path, f"unreadable image ({err})") from None
    if size is not None and arr.shape[:2] != tuple(size):
        raise DataError(
            path,
            f"wrong image size {arr.shape[0]}x{arr.shape[1]} (height x width), expected {size[0]}x{size[1]}",
        )
    return arr


def _too_many_pixels(w: int, h: int, limit: int) -> str:
    return (f"image of {h}x{w} (height x width) = {w * h} pixels is over the limit of {limit} (a decompression bomb?); "
            f"set ${MAX_PIXELS_ENV} to allow larger images")


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
