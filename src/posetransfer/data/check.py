"""Validate a data set folder before training on it (``posetransfer data check``).

Training jobs that die after an hour on a truncated JPEG, or silently learn from keypoints that
fall outside the picture, are what this prevents. :func:`check_dataset` decodes every image and
cross-checks the images, the annotation and the pairs; it returns a :class:`CheckReport` (counts
plus one :class:`Problem` per finding, each naming its file and line) that the CLI prints.

Severities: ``error`` (the data set cannot be used as is: unreadable or missing images, a
malformed annotation row, a wrong image size, a pair naming an unknown image), ``warning``
(usable but suspicious: keypoints outside the frame, images without annotation, pairs joining two
identities) and ``info``. ``strict`` turns out-of-frame keypoints into errors; the field's real
DeepFashion test annotation holds such coordinates, which is why they are only warnings by
default (the loaders treat them as missing). Counted as out of frame: any keypoint that is not the
``-1`` marker and lies outside ``0 <= y < H``, ``0 <= x < W`` (that file has 11 negative
coordinates and 8 past the right edge at 256x176).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from posetransfer.data.layouts import DatasetFiles, identity_of, list_images, resolve_dataset
from posetransfer.data.pairs import group_by_identity, pair_line_numbers
from posetransfer.errors import DataError
from posetransfer.pose.encodings import in_frame
from posetransfer.pose.io import read_annotations, read_pairs
from posetransfer.pose.schema import KEYPOINT_NAMES, MISSING, NUM_KEYPOINTS
from posetransfer.utils.io import read_image

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Problem:
    """One finding; ``kind`` is a stable identifier (tests and scripts match on it)."""

    severity: Severity
    kind: str
    path: Path
    message: str
    line: int | None = None

    def format(self) -> str:
        where = f"{self.path}" if self.line is None else f"{self.path}, line {self.line}"
        return f"{self.severity}: {where}: {self.message}"


@dataclass
class CheckReport:
    """What :func:`check_dataset` found: counts and problems."""

    files: DatasetFiles
    images: int = 0  #: image files in the image folder
    readable: int = 0  #: of which decoded without error
    annotated: int = 0  #: annotation rows (0 when the file could not be parsed)
    pairs: int = 0
    identities: int = 0  #: identities among the annotated images with a file
    size: tuple[int, int] | None = None  #: (height, width) of the data set
    visible_per_joint: list[int] = field(default_factory=lambda: [0] * NUM_KEYPOINTS)
    out_of_frame: int = 0  #: keypoints (not -1) outside the frame
    problems: list[Problem] = field(default_factory=list)

    def add(self, severity: Severity, kind: str, path: Path, message: str, line: int | None = None) -> None:
        self.problems.append(Problem(severity, kind, Path(path), message, line))

    def of(self, severity: Severity) -> list[Problem]:
        return [p for p in self.problems if p.severity == severity]

    @property
    def errors(self) -> list[Problem]:
        return self.of("error")

    @property
    def warnings(self) -> list[Problem]:
        return self.of("warning")

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary_lines(self) -> list[str]:
        size = f"{self.size[0]}x{self.size[1]} (height x width)" if self.size else "unknown"
        lines = [
            f"data set: {self.files.root} ({self.files.describe()})",
            f"images: {self.images} ({self.readable} readable), size {size}",
            f"annotated: {self.annotated}, pairs: {self.pairs}, identities: {self.identities}",
        ]
        if self.annotated:
            per = [f"{n} {c}" for n, c in zip(KEYPOINT_NAMES, self.visible_per_joint)]
            lines.append(f"keypoints visible per joint (of {self.annotated}): " + ", ".join(per))
        if self.out_of_frame:
            lines.append(f"keypoints outside the frame: {self.out_of_frame}")
        n_err, n_warn, n_info = len(self.errors), len(self.warnings), len(self.of("info"))
        lines.append(f"{'OK' if self.ok else 'FAILED'}: {n_err} errors, {n_warn} warnings, {n_info} notes")
        return lines


def _annotation_lines(path: Path) -> dict[str, int]:
    """``{name: line number}`` of an annotation file (first field of each row), for messages."""
    out: dict[str, int] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return out
    for lineno, line in enumerate(text.splitlines()[1:], start=2):
        name = line.split(":", 1)[0].strip()
        if name:
            out.setdefault(name, lineno)
    return out


def check_dataset(
    path: str | Path | DatasetFiles,
    split: str | None = None,
    strict: bool = False,
    progress: bool = True,
) -> CheckReport:
    """Check a data set folder (any layout :func:`resolve_dataset` knows) and report every problem.

    A folder that is not a data set at all raises :class:`DataError`; everything else is
    reported in the returned :class:`CheckReport`. ``progress`` shows a tqdm bar while decoding.
    """
    files = path if isinstance(path, DatasetFiles) else resolve_dataset(path, split)
    report = CheckReport(files)
    img_dir = files.images_dir

    # -- images: decode every one (truncated files only fail when fully decoded) --------------
    names = list_images(img_dir)
    others = sorted(n for n in set(os.listdir(img_dir)) - set(names) if not n.startswith(".") and (img_dir / n).is_file())
    for n in others:
        report.add("info", "not-an-image-file", img_dir / n, "no image extension: ignored")
    report.images = len(names)
    sizes: dict[str, tuple[int, int]] = {}
    for n in tqdm(names, desc="decoding images", unit="img", disable=not progress, leave=False):
        try:
            sizes[n] = read_image(img_dir / n).shape[:2]
        except DataError as err:
            report.add("error", "unreadable-image", err.path, err.problem)
    report.readable = len(sizes)
    on_disk = set(names)

    if files.size is not None:
        report.size = (int(files.size[0]), int(files.size[1]))
    elif sizes:
        report.size = Counter(sizes.values()).most_common(1)[0][0]
    if report.size is not None:
        h, w = report.size
        for n, s in sizes.items():
            if s != report.size:
                report.add("error", "wrong-size", img_dir / n,
                           f"wrong image size {s[0]}x{s[1]} (height x width), the data set's is {h}x{w}")  # fmt: skip

    # -- annotation ----------------------------------------------------------------------------
    annotations: dict[str, np.ndarray] | None
    try:
        annotations = read_annotations(files.annotation_path)
    except DataError as err:
        report.add("error", "malformed-annotation", err.path, err.problem, err.line)
        annotations = None
    stems = {os.path.splitext(n)[0]: n for n in names}

    def no_file(name: str) -> str:
        other = stems.get(os.path.splitext(name)[0])
        hint = f" (a file named {other!r} exists: names must match the files exactly)" if other else ""
        return f"image {name!r} has no file in {img_dir}{hint}"

    if annotations is not None:
        report.annotated = len(annotations)
        ann_lines = _annotation_lines(files.annotation_path)
        for n, kp in annotations.items():
            if n not in on_disk:
                report.add("error", "missing-image", files.annotation_path, no_file(n), ann_lines.get(n))
        for n in names:
            if n not in annotations:
                report.add("warning", "unannotated-image", img_dir / n, "image has no row in " + files.annotation_path.name)
        if report.size is not None and annotations:
            kps = np.stack(list(annotations.values()))
            inside = in_frame(kps, report.size)
            # not the -1 marker yet outside: negative (x = -18 on DeepFashion) or past the edge
            outside = ~(kps == MISSING).all(axis=-1) & ~inside
            report.visible_per_joint = inside.sum(axis=0).astype(int).tolist()
            report.out_of_frame = int(outside.sum())
            h, w = report.size
            ann_names = list(annotations)
            for i in np.flatnonzero(outside.any(axis=1)):
                n = ann_names[i]
                joints = ", ".join(
                    f"{KEYPOINT_NAMES[j]} (y={kps[i, j, 0]:g}, x={kps[i, j, 1]:g})" for j in np.flatnonzero(outside[i])
                )
                report.add("error" if strict else "warning", "out-of-frame", files.annotation_path,
                           f"{n}: keypoints outside the {h}x{w} frame: {joints}", ann_lines.get(n))  # fmt: skip
        groups = group_by_identity([n for n in annotations if n in on_disk])
        report.identities = len(groups)
        for ident, members in groups.items():
            if len(members) == 1:
                report.add("info", "single-photo-identity", img_dir / members[0],
                           f"identity {ident!r} has a single photo (no pair possible)")  # fmt: skip

    # -- pairs ---------------------------------------------------------------------------------
    if files.pairs_path is None:
        report.add("info", "no-pairs-file", files.root, "no pairs file (write one with `posetransfer data pairs`)")
    else:
        try:
            pairs = read_pairs(files.pairs_path)
        except DataError as err:
            report.add("error", "malformed-pairs", err.path, err.problem, err.line)
            pairs = []
        report.pairs = len(pairs)
        line_numbers = pair_line_numbers(files.pairs_path) if pairs else []
        for (a, b), lineno in zip(pairs, line_numbers):
            known = True
            for n in (a, b):
                if annotations is not None and n not in annotations:
                    report.add("error", "unknown-pair-image", files.pairs_path,
                               f"image {n!r} is not in the annotation {files.annotation_path.name}", lineno)  # fmt: skip
                    known = False
                elif n not in on_disk:
                    report.add("error", "unknown-pair-image", files.pairs_path, no_file(n), lineno)
                    known = False
            if not known:
                continue
            if a == b:
                report.add("warning", "self-pair", files.pairs_path, f"pair of {a!r} with itself", lineno)
            elif identity_of(a) != identity_of(b):
                report.add("warning", "cross-identity-pair", files.pairs_path,
                           f"pair joins two identities ({identity_of(a)!r}, {identity_of(b)!r})", lineno)  # fmt: skip
    return report
