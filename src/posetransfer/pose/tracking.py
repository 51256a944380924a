"""Pose sequences over time: choosing the person, filling short gaps, One-Euro smoothing, retargeting.

Pure functions on arrays of poses ``(T, 18, 2)`` ``(y, x)`` with ``-1`` for a missing joint (the
schema of :mod:`posetransfer.pose.schema`); the video reading and the pose backend live elsewhere
(:mod:`posetransfer.inference.animation`). A tracked sequence goes through:

1. :func:`pick_person`: per frame, the detection that overlaps the previous frame's person most
   (the largest one when nothing overlaps), so a passer-by does not steal the track;
2. :func:`interpolate_gaps`: a joint missing for at most ``max_gap`` frames between two frames
   where it is seen is filled by linear interpolation;
3. :func:`lost_frames`: frames with fewer than ``min_joints`` joints after filling are *lost*
   (every joint set missing; the caller holds the last pose or skips them, and says so);
4. :func:`one_euro_smooth`: the One-Euro filter of Casiez, Roussel and Vogel, "1 Euro Filter: A
   Simple Speed-based Low-pass Filter for Noisy Input in Interactive Systems" (CHI 2012), sec. 3,
   on every joint: a first-order low-pass whose cut-off rises with the joint's speed, so slow
   jitter is removed while fast motion keeps little lag. Coordinates are divided by ``scale``
   (the frame height) first, so the parameters do not depend on the video's resolution.

:func:`retarget_sequence` applies :func:`posetransfer.pose.retarget.retarget_pose` frame by frame
and keeps the driving person's travel (its neck's displacement from the first frame, scaled to
the source's body).

The annotation-file form of a track (:func:`write_track` / :func:`read_track`) is one row per
frame named by the frame index, lost frames as all ``-1`` rows, plus a ``<file>.json`` sidecar
with the frame rate, the frame size the poses are in, and the lost frames.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from posetransfer.errors import DataError
from posetransfer.pose.retarget import anchor, body_scale, retarget_pose
from posetransfer.pose.schema import MISSING, NUM_KEYPOINTS, visible

__all__ = [
    "SmoothingConfig",
    "Track",
    "bbox_iou",
    "pick_person",
    "interpolate_gaps",
    "lost_frames",
    "one_euro_smooth",
    "finish_track",
    "retarget_sequence",
    "joint_acceleration",
    "estimate_lag",
    "write_track",
    "read_track",
]


@dataclasses.dataclass(frozen=True)
class SmoothingConfig:
    """Parameters of the tracking post-processing (module doc).

    ``min_cutoff`` (Hz) and ``beta`` are the One-Euro filter's two parameters (sec. 3 of the paper:
    ``min_cutoff`` sets the jitter removed at rest, ``beta`` how fast the cut-off rises with speed,
    speed measured in frame heights per second); ``d_cutoff`` (Hz) smooths the speed estimate.
    ``enabled=False`` keeps the raw (gap-filled) poses.
    The defaults were tuned on the jittered walking sequence of ``tests/test_pose_tracking.py``
    (2 px jitter on a 256 px frame at 25 fps: acceleration falls 3x, lag about one frame;
    min_cutoff 1.0 / beta 0 removes more jitter, 7x, at 3 frames of lag).
    """

    enabled: bool = True
    min_cutoff: float = 2.0
    beta: float = 6.0
    d_cutoff: float = 1.0
    max_gap: int = 5
    min_joints: int = 4

    def __post_init__(self):
        if self.min_cutoff <= 0 or self.d_cutoff <= 0 or self.beta < 0:
            raise ValueError("One-Euro parameters: min_cutoff and d_cutoff must be > 0, beta >= 0")
        if self.max_gap < 0 or not 1 <= self.min_joints <= NUM_KEYPOINTS:
            raise ValueError(f"max_gap must be >= 0 and min_joints in 1..{NUM_KEYPOINTS}")


@dataclasses.dataclass
class Track:
    """A tracked pose sequence: ``keypoints`` (T, 18, 2) in a ``size`` = (H, W) frame at ``fps``.

    ``lost`` (T,) marks the frames without a usable person (their joints are all missing);
    ``detected`` (T,) the frames where the backend found a person at all (before gap filling).
    """

    keypoints: np.ndarray
    lost: np.ndarray
    detected: np.ndarray
    fps: float
    size: tuple[int, int] | None
    notes: list[str] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])


def _poses(seq: np.ndarray) -> np.ndarray:
    seq = np.asarray(seq, dtype=np.float64)
    if seq.ndim != 3 or seq.shape[1:] != (NUM_KEYPOINTS, 2):
        raise ValueError(f"a pose sequence must have shape (T, {NUM_KEYPOINTS}, 2), got {seq.shape}")
    return seq


# -- choosing the person ----------------------------------------------------------------------------


def bbox_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (top, left, bottom, right) boxes."""
    top, left = max(a[0], b[0]), max(a[1], b[1])
    bottom, right = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, bottom - top) * max(0.0, right - left)
    area = lambda r: max(0.0, r[2] - r[0]) * max(0.0, r[3] - r[1])  # noqa: E731
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def pick_person(bboxes: Sequence[Sequence[float]], previous: Sequence[float] | None, min_iou: float = 0.1) -> int | None:
    """Index of the detection to follow: best overlap with ``previous`` (>= ``min_iou``), else the largest."""
    if not bboxes:
        return None
    if previous is not None:
        ious = [bbox_iou(b, previous) for b in bboxes]
        best = int(np.argmax(ious))
        if ious[best] >= min_iou:
            return best
    areas = [max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1]) for b in bboxes]
    return int(np.argmax(areas))


# -- gaps and lost frames -------------------------------------------------------------------------


def interpolate_gaps(seq: np.ndarray, max_gap: int) -> tuple[np.ndarray, int]:
    """Fill runs of at most ``max_gap`` missing frames of a joint seen on both sides (linear).

    Returns (filled sequence float32, number of joint-frames filled). Gaps at the start or the end
    of the sequence, and longer gaps, stay missing.
    """
    out = _poses(seq).copy()
    vis = visible(out)
    filled = 0
    if max_gap <= 0:
        return out.astype(np.float32), 0
    for j in range(NUM_KEYPOINTS):
        seen = np.flatnonzero(vis[:, j])
        for a, b in zip(seen[:-1], seen[1:]):
            gap = b - a - 1
            if 0 < gap <= max_gap:
                t = (np.arange(1, gap + 1) / (gap + 1))[:, None]
                out[a + 1 : b, j] = out[a, j] * (1 - t) + out[b, j] * t
                filled += gap
    return out.astype(np.float32), filled


def lost_frames(seq: np.ndarray, min_joints: int) -> np.ndarray:
    """(T,) bool: frames with fewer than ``min_joints`` visible joints."""
    return visible(_poses(seq)).sum(axis=1) < min_joints


# -- One-Euro filter --------------------------------------------------------------------------------


def _alpha(cutoff: np.ndarray | float, rate: float) -> np.ndarray:
    # sec. 3 of the paper: alpha = 1 / (1 + tau / T_e), tau = 1 / (2 pi f_c), T_e = 1 / rate
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau * rate)


def one_euro_smooth(
    seq: np.ndarray,
    fps: float,
    min_cutoff: float = SmoothingConfig.min_cutoff,
    beta: float = SmoothingConfig.beta,
    d_cutoff: float = SmoothingConfig.d_cutoff,
    scale: float = 1.0,
) -> np.ndarray:
    """The One-Euro filter run forwards over every joint (module doc); missing joints stay missing.

    The filter state of a joint restarts after a frame where it is missing. The speed that raises
    the cut-off is the norm of the joint's 2-D velocity (in ``scale`` units per second), so both
    coordinates of a joint share one cut-off.
    """
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    seq = _poses(seq)
    vis = visible(seq)
    x = seq / scale
    out = seq.copy()
    prev = np.zeros((NUM_KEYPOINTS, 2))
    dprev = np.zeros((NUM_KEYPOINTS, 2))
    alive = np.zeros(NUM_KEYPOINTS, dtype=bool)
    a_d = _alpha(d_cutoff, fps)
    for t in range(seq.shape[0]):
        v = vis[t]
        start = v & ~alive
        cont = v & alive
        prev[start], dprev[start] = x[t, start], 0.0
        if cont.any():
            dx = (x[t, cont] - prev[cont]) * fps
            dhat = a_d * dx + (1 - a_d) * dprev[cont]
            cutoff = min_cutoff + beta * np.linalg.norm(dhat, axis=1)
            a = _alpha(cutoff, fps)[:, None]
            prev[cont] = a * x[t, cont] + (1 - a) * prev[cont]
            dprev[cont] = dhat
        out[t, v] = prev[v] * scale
        alive = v
    out[~vis] = MISSING
    return out.astype(np.float32)


def finish_track(
    raw: np.ndarray, detected: np.ndarray, fps: float, size: tuple[int, int] | None, config: SmoothingConfig
) -> Track:
    """Gap filling, lost-frame marking and smoothing (module doc, steps 2-4) of raw per-frame poses."""
    raw = _poses(raw)
    filled, n_filled = interpolate_gaps(raw, config.max_gap)
    lost = lost_frames(filled, config.min_joints)
    filled[lost] = MISSING
    scale = float(size[0]) if size else 1.0
    if config.enabled:
        kp = one_euro_smooth(filled, fps, config.min_cutoff, config.beta, config.d_cutoff, scale=scale)
    else:
        kp = filled.astype(np.float32)
    if size is not None:  # smoothing and interpolation stay inside the hull of seen points; clip for rounding
        vis = visible(kp)
        kp[..., 0] = np.where(vis, np.clip(kp[..., 0], 0, size[0] - 1), MISSING)
        kp[..., 1] = np.where(vis, np.clip(kp[..., 1], 0, size[1] - 1), MISSING)
    notes = []
    if n_filled:
        notes.append(f"{n_filled} missing joint position(s) interpolated (gaps of at most {config.max_gap} frames)")
    if lost.any():
        notes.append(f"person lost in {int(lost.sum())} of {len(lost)} frame(s)")
    return Track(kp, lost, np.asarray(detected, dtype=bool), float(fps), size, notes)


# -- retargeting a sequence -------------------------------------------------------------------------


def retarget_sequence(
    driving: np.ndarray, source: np.ndarray, size: tuple[int, int] | None = None, keep_travel: bool = True
) -> np.ndarray:
    """Every frame of ``driving`` retargeted to ``source``'s body (:func:`retarget_pose`).

    ``retarget_pose`` roots each frame at the source's neck; with ``keep_travel`` the driving
    neck's displacement from the first frame where it is seen, times the source/driving body scale
    (measured on that frame), is added back, so a person walking across the video walks across the
    result. All-missing frames stay all-missing; with ``size`` joints leaving the frame are missing.
    """
    driving = _poses(driving).astype(np.float32)
    source = np.asarray(source, dtype=np.float32)
    out = np.full_like(driving, MISSING)
    ref, scale = None, 1.0
    for t, kp in enumerate(driving):
        if not visible(kp).any():
            continue
        pose = retarget_pose(kp, source).astype(np.float64)
        neck = anchor(kp)
        if keep_travel and neck is not None:
            if ref is None:
                ref, scale = neck, body_scale(source, kp)
            vis = visible(pose)
            pose[vis] += (neck - ref) * scale
        if size is not None:
            vis = visible(pose)
            outside = vis & ((pose[:, 0] < 0) | (pose[:, 1] < 0) | (pose[:, 0] > size[0] - 1) | (pose[:, 1] > size[1] - 1))
            pose[outside] = MISSING
        out[t] = pose
    return out


# -- measurements -----------------------------------------------------------------------------------


def joint_acceleration(seq: np.ndarray) -> float:
    """Mean norm of the second frame-to-frame difference over joints visible in three frames in a row."""
    seq = _poses(seq)
    vis = visible(seq)
    ok = vis[2:] & vis[1:-1] & vis[:-2]
    acc = np.linalg.norm(seq[2:] - 2 * seq[1:-1] + seq[:-2], axis=-1)
    return float(acc[ok].mean()) if ok.any() else float("nan")


def estimate_lag(reference: np.ndarray, delayed: np.ndarray, max_lag: int = 10) -> float:
    """Delay (frames, sub-frame by parabolic fit) that best aligns ``delayed`` with ``reference``.

    Both are (T, 18, 2) with the same joints visible; the lag minimises the mean squared difference
    ``delayed[t] - reference[t - lag]``.
    """
    ref, dl = _poses(reference), _poses(delayed)
    vis = visible(ref) & visible(dl)
    lags = np.arange(0, max_lag + 1)
    err = []
    for lag in lags:
        a, b = ref[: len(ref) - lag], dl[lag:]
        ok = vis[: len(ref) - lag] & vis[lag:]
        err.append(float((np.square(b - a).sum(-1))[ok].mean()))
    i = int(np.argmin(err))
    if 0 < i < len(err) - 1:
        den = err[i - 1] - 2 * err[i] + err[i + 1]
        if den > 0:
            return float(lags[i] + 0.5 * (err[i - 1] - err[i + 1]) / den)
    return float(lags[i])


# -- files ------------------------------------------------------------------------------------------


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def write_track(path: str | Path, track: Track) -> None:
    """``path``: annotation rows named 0..T-1 (lost frames all -1); ``path.json``: fps, size, lost."""
    from posetransfer.pose.io import write_annotations
    from posetransfer.utils.io import atomic_write_json

    path = Path(path)
    kp = track.keypoints.copy()
    kp[track.lost] = MISSING
    atomic_write_json(_sidecar(path), {
        "format": "posetransfer pose track",
        "frames": len(track),
        "fps": track.fps,
        "size": list(track.size) if track.size else None,
        "lost": np.flatnonzero(track.lost).tolist(),
        "detected": int(track.detected.sum()),
    })  # fmt: skip
    write_annotations(path, {str(i): k for i, k in enumerate(kp)})


def read_track(path: str | Path, fps: float | None = None) -> Track:
    """A track written by :func:`write_track` (or any annotation file whose names are frame indices).

    Without the ``.json`` sidecar the poses are taken to be in the model's frame (``size`` None)
    and the frame rate is ``fps`` (25 when not given); the sidecar's rate comes first. Rows are ordered by their index; a name that
    is not an integer, a repeated index or a missing one is a :class:`DataError`.
    """
    from posetransfer.pose.io import read_annotations

    path = Path(path)
    rows = read_annotations(path)
    if not rows:
        raise DataError(path, "holds no pose row (expected one row per frame, named by the frame index)")
    try:
        index = {int(Path(name).stem): kp for name, kp in rows.items()}
    except ValueError:
        bad = next(n for n in rows if not Path(n).stem.lstrip("-").isdigit())
        raise DataError(path, f"row {bad!r} is not named by a frame index (0, 1, 2 ...)") from None
    order = sorted(index)
    if order != list(range(len(order))):
        missing = sorted(set(range(order[-1] + 1)) - set(order))[:5]
        raise DataError(path, f"frame indices must be 0, 1, 2 ... without holes (missing {missing})")
    kp = np.stack([index[i] for i in order]).astype(np.float32)
    meta = {}
    side = _sidecar(path)
    if side.is_file():
        try:
            meta = json.loads(side.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(side, f"not a JSON track description ({err})") from None
    size = tuple(int(v) for v in meta["size"]) if meta.get("size") else None
    rate = float(meta.get("fps") or fps or 25.0)
    lost = ~visible(kp).any(axis=1)
    return Track(kp, lost, ~lost, rate, size, [])
