"""Video reading and writing through PyAV (the ``video`` extra: ``pip install 'posetransfer[video]'``).

PyAV's wheels bundle their own FFmpeg (libx264 included), so no system ffmpeg is assumed. Frames
stream: :class:`VideoReader` decodes one frame at a time, :class:`VideoWriter` encodes each frame
as it comes, so an hour-long video never sits in memory. Inputs:

- a video file (anything FFmpeg decodes): frames are RGB uint8, downscaled on decoding when their
  longer side exceeds ``max_side`` (a 4K video is brought to ``max_side`` by FFmpeg's scaler);
- a folder of images (sorted by name, the frames of a clip), at a given frame rate.

Outputs by extension: ``.mp4`` / ``.mov`` / ``.m4v`` (H.264 via libx264, yuv420p so that every
player reads it; odd sizes are padded by one edge pixel row/column) and ``.gif`` (each frame gets
its own 256-colour palette; GIF delays are in 1/100 s, so the frame rate is rounded to that).
The output is written to a temporary file beside the target and renamed at the end
(:func:`posetransfer.utils.io.atomic_path`): a failure leaves no partial file.

Every problem is a :class:`~posetransfer.errors.DataError` naming the file.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from posetransfer.errors import DataError, PosetransferError

VIDEO_EXTENSIONS = {".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".gif", ".mpg", ".mpeg", ".wmv", ".flv"}
WRITE_FORMATS = {".mp4": "mp4", ".mov": "mov", ".m4v": "mp4", ".gif": "gif"}
# Longest side decoded frames are brought to by default: pose detection runs at <= 1024 px anyway
# (posetransfer.pose.extract.MAX_SIDE) and the generator's frame is a few hundred pixels.
MAX_SIDE = 1024
DEFAULT_FPS = 25.0


def _av():
    try:
        import av
    except ImportError as err:
        raise PosetransferError(f"video needs PyAV ({err}); install it with: pip install 'posetransfer[video]'") from None
    return av


def _image_files(folder: Path) -> list[Path]:
    from PIL import Image

    exts = {e for e, f in Image.registered_extensions().items() if f in Image.OPEN}
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts and not p.name.startswith("."))


def _scaled_size(h: int, w: int, max_side: int | None) -> tuple[int, int]:
    if max_side is None or max(h, w) <= max_side:
        return h, w
    f = max_side / max(h, w)
    return max(1, round(h * f)), max(1, round(w * f))


class VideoReader:
    """Frames of a video file or of a folder of images, one at a time (module doc).

    ``fps``: the video's average frame rate (``fps`` given for a folder, or to override);
    ``size``: (H, W) of the frames yielded (after downscaling); ``source_size``: as stored;
    ``frames``: the count the container declares (None when it does not; the real count is known
    once iterated). Opening decodes the first frame, so a file without any is an error here.
    """

    def __init__(self, path: str | Path, max_side: int | None = MAX_SIDE, fps: float | None = None, limit: int | None = None):
        self.path = Path(path)
        self.max_side = max_side
        self.limit = limit
        self._files: list[Path] | None = None
        if not self.path.exists():
            raise DataError(self.path, "does not exist")
        if self.path.is_dir():
            self._files = _image_files(self.path)
            if not self._files:
                raise DataError(self.path, "folder holds no image (expected the frames of a clip: 000.png, 001.png ...)")
            from posetransfer.utils.io import read_image

            first = read_image(self._files[0])
            self.source_size = first.shape[:2]
            self.fps = float(fps or DEFAULT_FPS)
            self.frames = len(self._files)
        else:
            av = _av()
            try:
                with av.open(str(self.path)) as c:
                    if not c.streams.video:
                        raise DataError(self.path, "holds no video stream")
                    s = c.streams.video[0]
                    rate = s.average_rate or s.guessed_rate or s.base_rate
                    self.fps = float(fps or (float(rate) if rate else DEFAULT_FPS))
                    self.frames = int(s.frames) or None
                    first = next(iter(c.decode(s)), None)
                    if first is None:
                        raise DataError(self.path, "video holds no frame")
                    self.source_size = (first.height, first.width)
            except av.error.InvalidDataError as err:
                raise DataError(self.path, f"not a video FFmpeg can read ({err.strerror or err})") from None
            except (av.error.FFmpegError, OSError) as err:
                raise DataError(self.path, f"unreadable video ({err})") from None
        if self.fps <= 0:
            raise DataError(self.path, f"frame rate {self.fps} is not positive")
        if limit is not None and self.frames is not None:
            self.frames = min(self.frames, limit)
        self.size = _scaled_size(*self.source_size, max_side)

    @property
    def downscaled(self) -> bool:
        return self.size != tuple(self.source_size)

    def __iter__(self) -> Iterator[np.ndarray]:
        n = 0
        for frame in self._iter_all():
            if self.limit is not None and n >= self.limit:
                return
            n += 1
            yield frame

    def _iter_all(self) -> Iterator[np.ndarray]:
        h, w = self.size
        if self._files is not None:
            import cv2

            from posetransfer.utils.io import read_image

            for p in self._files:
                img = read_image(p)
                if img.shape[:2] != tuple(self.source_size):
                    raise DataError(p, f"frame size {img.shape[0]}x{img.shape[1]} differs from the first frame's "
                                    f"{self.source_size[0]}x{self.source_size[1]}")  # fmt: skip
                if (h, w) != img.shape[:2]:
                    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
                yield img
            return
        av = _av()
        try:
            with av.open(str(self.path)) as c:
                s = c.streams.video[0]
                s.thread_type = "AUTO"
                for frame in c.decode(s):
                    if (frame.height, frame.width) != tuple(self.source_size):
                        frame = frame.reformat(width=self.source_size[1], height=self.source_size[0])
                    yield frame.to_ndarray(format="rgb24", width=w, height=h, interpolation="AREA")
        except av.error.FFmpegError as err:
            raise DataError(self.path, f"video could not be decoded to the end ({err})") from None


def output_format(path: str | Path) -> str:
    """The container for an output path's extension; a :class:`DataError` for an unsupported one."""
    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(path, f"cannot write {path.suffix or 'files without an extension'}: use one of "
                        f"{', '.join(sorted(WRITE_FORMATS))}")  # fmt: skip
    return fmt


def check_output(path: str | Path, overwrite: bool = False) -> None:
    """Fail before any work when ``path`` cannot be written (exists without ``overwrite``, bad folder)."""
    path = Path(path)
    output_format(path)
    if path.is_dir():
        raise DataError(path, "is a folder; give a file name such as out.mp4")
    if path.exists() and not overwrite:
        raise DataError(path, "already exists (use --overwrite to replace it)")
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(path, f"cannot be written: its folder cannot be created ({err.strerror or err})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DataError(path, f"cannot be written: no write permission in {parent}")


class VideoWriter:
    """``with VideoWriter(path, fps) as w: w.write(frame)``: an MP4 (H.264) or GIF written atomically.

    Nothing appears at ``path`` until the ``with`` block ends without an exception. All frames must
    have the size of the first one.
    """

    def __init__(self, path: str | Path, fps: float, overwrite: bool = False, crf: int = 18):
        self.path = Path(path)
        self.format = output_format(self.path)
        check_output(self.path, overwrite)
        if fps <= 0:
            raise PosetransferError(f"frame rate must be > 0, got {fps}")
        self.fps = fps
        self.crf = crf
        self.frames = 0
        self._ctx = None
        self._container = None
        self._stream = None
        self._size: tuple[int, int] | None = None

    def __enter__(self) -> "VideoWriter":
        from posetransfer.utils.io import atomic_path

        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        try:
            self._container = _av().open(str(tmp), "w", format=self.format)
        except Exception as err:
            self._ctx.__exit__(type(err), err, err.__traceback__)
            raise DataError(self.path, f"cannot be written ({err})") from None
        return self

    def _open_stream(self, h: int, w: int) -> None:
        rate = Fraction(self.fps).limit_denominator(1001)
        if self.format == "gif":
            s = self._container.add_stream("gif", rate=rate)
            s.pix_fmt = "pal8"
            s.width, s.height = w, h
        else:
            s = self._container.add_stream("libx264", rate=rate)
            s.pix_fmt = "yuv420p"
            s.width, s.height = w + w % 2, h + h % 2
            s.options = {"crf": str(self.crf), "preset": "medium"}
        self._stream = s
        self._size = (h, w)

    def write(self, frame: np.ndarray) -> None:
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"a video frame must be HxWx3 uint8 RGB, got {frame.shape} {frame.dtype}")
        if self._stream is None:
            self._open_stream(*frame.shape[:2])
        elif frame.shape[:2] != self._size:
            raise ValueError(f"frame {self.frames} is {frame.shape[:2]}, the video is {self._size}")
        av = _av()
        if self.format == "gif":
            vf = av.VideoFrame.from_ndarray(_palettized(frame), format="pal8")
        else:
            if frame.shape[0] % 2 or frame.shape[1] % 2:
                frame = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), mode="edge")
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames += 1

    def __exit__(self, exc_type, exc, tb) -> bool:
        error = exc
        try:
            if error is None and self.frames == 0:
                error = DataError(self.path, "no frame to write; nothing written")
            if error is None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
        except Exception as err:  # noqa: BLE001 - reported below, after the temporary file is gone
            error = err
        finally:
            try:
                self._container.close()
            except Exception as err:  # noqa: BLE001
                error = error or err
        if error is None:
            self._ctx.__exit__(None, None, None)  # renames the finished file onto the target
            return False
        self._ctx.__exit__(type(error), error, error.__traceback__)  # removes the temporary file
        if error is not exc:
            if isinstance(error, PosetransferError):
                raise error
            raise DataError(self.path, f"could not be written ({error})") from error
        return False


def _palettized(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(indices HxW uint8, palette 256x4 uint8) for PyAV's ``pal8`` frames, one palette per frame.

    FFmpeg's scaler cannot convert to ``pal8`` itself (swscale has no palette quantiser), hence
    Pillow's median-cut quantisation. PyAV takes the palette as rows of (A, R, G, B) bytes
    (checked by ``tests/test_utils_video.py``, which reads the colours back).
    """
    from PIL import Image

    q = Image.fromarray(frame).quantize(256, method=Image.Quantize.MEDIANCUT)
    rgb = np.asarray(q.getpalette() or [], dtype=np.uint8).reshape(-1, 3)[:256]
    pal = np.zeros((256, 4), np.uint8)
    pal[:, 0] = 255
    pal[: len(rgb), 1:] = rgb
    return np.ascontiguousarray(np.asarray(q, dtype=np.uint8)), pal


def video_info(path: str | Path) -> dict:
    """Frame count (decoded), frame rate and size (H, W) of a video: for tests and the README's checks."""
    av = _av()
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        rate = s.average_rate or s.guessed_rate
        n = sum(1 for _ in c.decode(s))
        return {"frames": n, "fps": float(rate) if rate else None, "size": (s.height, s.width)}
