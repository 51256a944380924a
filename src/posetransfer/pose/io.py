"""Reading and writing the field's annotation and pair files, with strict validation.

Annotation files (PATN, GFLA, PIDM, CFLD ...) look like::

    name:keypoints_y:keypoints_x
    0001_c3s1_000551_03.png: [12, 25, ...]: [38, 29, ...]

with ``:`` as separator and two lists of 18 integers (rows, then columns), ``-1`` for a missing
keypoint. Pair files are CSV with the header ``from,to``. A malformed row is a
:class:`~posetransfer.errors.DataError` naming the file, the line and what is wrong.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from posetransfer.errors import DataError
from posetransfer.pose.schema import MISSING, NUM_KEYPOINTS
from posetransfer.utils.io import atomic_write_text

ANNOTATION_HEADER = "name:keypoints_y:keypoints_x"
#: largest |coordinate| accepted: far beyond any frame the pixel limit of ``utils.io.read_image``
#: lets through (100 MP), yet small enough that every later integer/float computation stays exact
MAX_ABS_COORDINATE = 100_000
PAIRS_HEADER = ("from", "to")


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(path, "file does not exist")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(path, f"not a text file ({err.reason} at byte {err.start})") from None


def _parse_coords(text: str, path: Path, lineno: int, axis: str) -> list[int]:
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        raise DataError(path, f"keypoints_{axis} is not a list of integers: {text.strip()[:60]!r}", lineno) from None
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise DataError(path, f"keypoints_{axis} is not a list of numbers: {text.strip()[:60]!r}", lineno)
    if len(values) != NUM_KEYPOINTS:
        raise DataError(path, f"keypoints_{axis} has {len(values)} values, expected {NUM_KEYPOINTS}", lineno)
    for v in values:
        # json.loads reads NaN, Infinity and 1e400 (= inf) as floats: refuse them before int()
        if isinstance(v, float) and not math.isfinite(v):
            raise DataError(path, f"keypoints_{axis} holds a non-finite value {v}", lineno)
        if abs(v) > MAX_ABS_COORDINATE:
            raise DataError(path, f"keypoints_{axis} holds an absurd coordinate {v} (|value| > {MAX_ABS_COORDINATE})", lineno)
        if v != int(v):
            raise DataError(path, f"keypoints_{axis} holds a non-integer value {v}", lineno)
    return [int(v) for v in values]


def parse_annotation_line(line: str, path: Path, lineno: int) -> tuple[str, np.ndarray]:
    """Parse one ``name:[ys]:[xs]`` row into (name, keypoints (18, 2) float32 as (y, x))."""
    parts = line.split(":")
    if len(parts) != 3:
        raise DataError(path, f"expected 3 fields separated by ':' (name:keypoints_y:keypoints_x), found {len(parts)}", lineno)
    name = parts[0].strip()
    if not name:
        raise DataError(path, "empty image name", lineno)
    ys = _parse_coords(parts[1], path, lineno, "y")
    xs = _parse_coords(parts[2], path, lineno, "x")
    kp = np.stack([np.asarray(ys, np.float32), np.asarray(xs, np.float32)], axis=-1)
    # The field's files hold a few coordinates outside the frame (e.g. x = -18 on DeepFashion); they
    # are kept as read. Only -1 marks a missing keypoint; one missing coordinate makes both missing.
    kp[(kp[:, 0] == MISSING) | (kp[:, 1] == MISSING)] = MISSING
    return name, kp


def read_annotations(path: str | Path) -> dict[str, np.ndarray]:
    """Read an annotation file into ``{image name: keypoints (18, 2) float32 (y, x)}``, file order kept."""
    path = Path(path)
    lines = _read_lines(path)
    if not lines or lines[0].strip().replace(" ", "") != ANNOTATION_HEADER:
        found = lines[0][:60] if lines else "an empty file"
        raise DataError(path, f"expected the header {ANNOTATION_HEADER!r}, found {found!r}", 1)
    out: dict[str, np.ndarray] = {}
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        name, kp = parse_annotation_line(line, path, lineno)
        if name in out:
            raise DataError(path, f"image {name!r} is annotated twice", lineno)
        out[name] = kp
    return out


def format_annotation_line(name: str, keypoints: np.ndarray) -> str:
    kp = np.asarray(keypoints)
    if kp.shape != (NUM_KEYPOINTS, 2):
        raise ValueError(f"keypoints for {name!r} have shape {kp.shape}, expected ({NUM_KEYPOINTS}, 2)")
    if ":" in name or "\n" in name:
        raise ValueError(f"image name {name!r} contains ':' or a newline")
    kp = np.where((kp[:, :1] < 0) | (kp[:, 1:] < 0), MISSING, np.round(kp)).astype(int)
    return f"{name}:{kp[:, 0].tolist()}:{kp[:, 1].tolist()}"


def write_annotations(path: str | Path, annotations: dict[str, np.ndarray]) -> None:
    """Write ``{name: (18, 2) keypoints}`` in the field's format (coordinates rounded), atomically."""
    lines = [ANNOTATION_HEADER] + [format_annotation_line(n, kp) for n, kp in annotations.items()]
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_pairs(path: str | Path) -> list[tuple[str, str]]:
    """Read a ``from,to`` CSV into a list of (source name, target name)."""
    path = Path(path)
    lines = _read_lines(path)
    rows = list(csv.reader(lines))
    if not rows or tuple(c.strip() for c in rows[0]) != PAIRS_HEADER:
        found = lines[0][:60] if lines else "an empty file"
        raise DataError(path, f"expected the header 'from,to', found {found!r}", 1)
    pairs = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 2:
            raise DataError(path, f"expected 2 comma-separated names (from,to), found {len(row)} fields", lineno)
        a, b = row[0].strip(), row[1].strip()
        if not a or not b:
            raise DataError(path, "empty image name", lineno)
        pairs.append((a, b))
    return pairs


def write_pairs(path: str | Path, pairs: list[tuple[str, str]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(PAIRS_HEADER)
    w.writerows(pairs)
    atomic_write_text(path, buf.getvalue())
