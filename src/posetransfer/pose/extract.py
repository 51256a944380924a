"""Pose extraction from photos into the field's 18-keypoint format, behind a small backend interface.

The field's annotation files (18 keypoints, OpenPose / COCO-18 order) were made with OpenPose; no maintained package
ships OpenPose's COCO-18 model, so a *backend* turns a photo into :class:`Detection` s in that
format and everything above it (``pose extract``, ``data prepare``, ``transfer``) is
backend-agnostic. Two backends are registered: ``mediapipe`` (the optional extra
``posetransfer[pose]``), see :mod:`posetransfer.pose.mediapipe_backend`, and ``openpose`` (CMU's
COCO-18 body network with PATN's inference and grouping, given the converted weights
``body_pose_model.pth``), see :mod:`posetransfer.pose.openpose_backend`. Tests register fakes with
:func:`register_backend`.

What this module adds on top of a backend, for every backend alike:

- large photos are downscaled before detection (a 6000x4000 photo is not fed at full size; the
  detectors work at a few hundred pixels anyway) and the keypoints mapped back;
- small photos are upscaled and retried when nothing is found (mediapipe misses people shorter
  than ~``MIN_PERSON_HEIGHT`` px, e.g. the 128x64 Market-1501 crops);
- several persons: the largest (bounding-box area) is kept and the result says so;
- no person: :class:`NoPersonError`, a :class:`~posetransfer.errors.DataError` naming the file.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Callable, Iterable, Protocol, runtime_checkable

import cv2
import numpy as np

from posetransfer.errors import DataError, PosetransferError
from posetransfer.pose.schema import MISSING, NUM_KEYPOINTS, visible

# Largest side fed to a backend. The legacy mediapipe detector resizes its input to 224x224 and
# the landmark model to 256x256, so more pixels only cost time (a 6000x4000 photo is 24 Mpx).
MAX_SIDE = 1024
# Images shorter than this (px) are upscaled to UPSCALE_TO and tried again when nothing is found
# (measured on the 255 Market-1501 128x64 crops of real-mini: 139 found as they are, 144 with the
# retry; bigger upscales do not find more).
MIN_PERSON_HEIGHT = 256
UPSCALE_TO = 512


@dataclasses.dataclass
class Detection:
    """One person found in an image, in that image's pixel frame.

    ``keypoints`` (18, 2) float32 ``(y, x)`` with -1 for missing (below the visibility threshold
    or outside the frame); ``confidence`` (18,) float32 in [0, 1] (0 where missing);
    ``bbox`` = (top, left, bottom, right) in pixels; ``score`` = the detector's confidence.
    """

    keypoints: np.ndarray
    confidence: np.ndarray
    bbox: tuple[float, float, float, float]
    score: float

    @property
    def area(self) -> float:
        top, left, bottom, right = self.bbox
        return max(0.0, bottom - top) * max(0.0, right - left)

    def scaled(self, factor: float) -> "Detection":
        """The same detection in an image resized by ``factor`` (missing keypoints stay -1)."""
        kp = self.keypoints.astype(np.float32).copy()
        vis = visible(kp)
        kp[vis] *= factor
        return Detection(kp, self.confidence.copy(), tuple(float(v) * factor for v in self.bbox), self.score)


@runtime_checkable
class PoseBackend(Protocol):
    """What a pose estimator must provide: every person it finds in one RGB uint8 HxWx3 image."""

    name: str

    def extract(self, image: np.ndarray) -> list[Detection]: ...


@dataclasses.dataclass
class PoseResult:
    """The pose kept for one image, plus what the user should be told about it."""

    detection: Detection
    num_persons: int
    notes: list[str]

    @property
    def keypoints(self) -> np.ndarray:
        return self.detection.keypoints


class NoPersonError(DataError):
    """The backend found no person in the image."""


# name -> (module, factory attribute) for lazily imported backends, or a callable for registered ones.
_LAZY_BACKENDS: dict[str, tuple[str, str, str]] = {
    "mediapipe": ("posetransfer.pose.mediapipe_backend", "MediapipeBackend", "pip install 'posetransfer[pose]'"),
    # CMU's COCO-18 network as PATN runs it; needs body_pose_model.pth (weights registry, openpose_body)
    "openpose": ("posetransfer.pose.openpose_backend", "OpenPoseBackend", "pip install scikit-image scipy"),
}
_BACKENDS: dict[str, Callable[..., PoseBackend]] = {}


def register_backend(name: str, factory: Callable[..., PoseBackend]) -> None:
    """Make ``get_backend(name, **options)`` call ``factory(**options)`` (used by tests and plugins)."""
    _BACKENDS[name] = factory


def unregister_backend(name: str) -> None:
    _BACKENDS.pop(name, None)


def available_backends() -> list[str]:
    return sorted(set(_LAZY_BACKENDS) | set(_BACKENDS))


def get_backend(name: str = "mediapipe", **options) -> PoseBackend:
    """Build the named backend; a clear :class:`PosetransferError` when it is unknown or not installed."""
    if name in _BACKENDS:
        return _BACKENDS[name](**options)
    if name not in _LAZY_BACKENDS:
        raise PosetransferError(f"unknown pose backend {name!r}; available: {', '.join(available_backends())}")
    module, attr, hint = _LAZY_BACKENDS[name]
    try:
        factory = getattr(importlib.import_module(module), attr)
    except ImportError as err:
        raise PosetransferError(
            f"the {name!r} pose backend is not installed ({err}); install it with: {hint}"
        ) from None
    return factory(**options)


def _resize(image: np.ndarray, factor: float) -> np.ndarray:
    h, w = image.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))  # cv2 wants (width, height)
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, size, interpolation=interp)


def detect_persons(
    image: np.ndarray,
    backend: PoseBackend,
    max_side: int = MAX_SIDE,
    min_height: int = MIN_PERSON_HEIGHT,
    upscale_to: int = UPSCALE_TO,
) -> tuple[list[Detection], float]:
    """Run ``backend`` at a workable resolution; detections in ``image``'s frame, largest first.

    Returns (detections, factor) where ``factor`` is the scale the backend last ran at (1 = as is).
    Images larger than ``max_side`` are downscaled first; when nothing is found in an image shorter
    than ``min_height`` it is upscaled to ``upscale_to`` px tall and tried again.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {image.shape} {image.dtype}")
    h, w = image.shape[:2]
    factor = min(1.0, max_side / max(h, w))
    work = _resize(image, factor) if factor < 1 else image
    found = backend.extract(np.ascontiguousarray(work))
    if not found and h < min_height:
        factor = upscale_to / h
        if max(h, w) * factor > max_side:
            factor = max_side / max(h, w)
        if factor > 1:
            found = backend.extract(np.ascontiguousarray(_resize(image, factor)))
    dets = [d.scaled(1.0 / factor) if factor != 1 else d for d in found]
    for d in dets:  # a keypoint rounded just outside the frame on the way back counts as missing
        out = (d.keypoints[:, 0] > h - 0.5) | (d.keypoints[:, 1] > w - 0.5)
        d.keypoints[out] = MISSING
        d.confidence[out] = 0.0
    dets.sort(key=lambda d: d.area, reverse=True)
    return dets, factor


def extract_pose(image: np.ndarray, backend: PoseBackend, source: str | Path = "<image>", **kwargs) -> PoseResult:
    """The pose of the (largest) person in ``image``; :class:`NoPersonError` naming ``source`` if none.

    ``kwargs`` go to :func:`detect_persons`.
    """
    dets, _ = detect_persons(image, backend, **kwargs)
    if not dets or not visible(dets[0].keypoints).any():
        h = image.shape[0]
        hint = ""
        if getattr(backend, "name", "") == "mediapipe":
            tried = f", also tried upscaled to {UPSCALE_TO} px" if h < MIN_PERSON_HEIGHT else ""
            hint = (f" (the mediapipe backend needs a person at least ~{MIN_PERSON_HEIGHT // 2} px tall with "
                    f"most of the body visible; this photo is {h} px tall{tried}; it misses 45% of the 128x64 "
                    "Market-1501 crops: use larger photos)")
        raise NoPersonError(source, f"no person found{hint}")
    notes = []
    if len(dets) > 1:
        notes.append(f"{source}: {len(dets)} persons found, keeping the largest")
    return PoseResult(dets[0], len(dets), notes)


def extract_poses_from_files(
    paths: Iterable[str | Path], backend: PoseBackend, progress: bool = False
) -> tuple[dict[Path, PoseResult], dict[Path, str], dict[Path, str]]:
    """Extract one pose per image file.

    Returns (poses, no_person, unreadable): the last two map a path to its message. Nothing is
    raised for a single bad file so that a folder of photos is processed in one go; callers list them.
    """
    from tqdm import tqdm

    from posetransfer.utils.io import read_image

    paths = [Path(p) for p in paths]
    poses: dict[Path, PoseResult] = {}
    no_person: dict[Path, str] = {}
    unreadable: dict[Path, str] = {}
    for path in tqdm(paths, desc="pose", unit="img", disable=not progress):
        try:
            image = read_image(path)
        except DataError as err:
            unreadable[path] = str(err)
            continue
        try:
            poses[path] = extract_pose(image, backend, source=path)
        except NoPersonError as err:
            no_person[path] = str(err)
    return poses, no_person, unreadable


def draw_skeleton(image: np.ndarray, keypoints: np.ndarray, radius: int | None = None) -> np.ndarray:
    """A copy of ``image`` with the OpenPose-coloured limbs and joints drawn on it (for previews)."""
    from posetransfer.pose.schema import LIMB_COLORS, STICK_LIMBS

    out = np.ascontiguousarray(image.copy())
    h, w = out.shape[:2]
    r = radius or max(2, round(min(h, w) / 100))
    vis = visible(keypoints)
    pts = [(int(round(x)), int(round(y))) for y, x in keypoints]
    for (a, b), color in zip(STICK_LIMBS, LIMB_COLORS):
        if vis[a] and vis[b]:
            cv2.line(out, pts[a], pts[b], color, thickness=max(1, r // 1), lineType=cv2.LINE_AA)
    for i in np.flatnonzero(vis):
        cv2.circle(out, pts[i], r + 1, (255, 255, 255), -1, lineType=cv2.LINE_AA)
        cv2.circle(out, pts[i], r, LIMB_COLORS[i % len(LIMB_COLORS)], -1, lineType=cv2.LINE_AA)
    return out


# --------------------------------------------------------------------------------------------------
# Accuracy against the field's annotations


def evaluate_extractor(
    data_dir: str | Path, backend: PoseBackend | None = None, limit: int | None = None, progress: bool = False
) -> dict:
    """Compare the extractor with a plain-layout data set's ``annotation.csv`` (OpenPose keypoints).

    Per keypoint visible in both: the pixel error; PCK@0.05 (error <= 0.05 * max(H, W), the
    DeepFashion convention of PATN / GFLA's PCK) and PCKh@0.5 (error <= 0.5 * head size, head size
    = the annotation's nose-neck distance x 2, a stand-in for the head segment OpenPose lacks).
    Also counts keypoints only one side marks visible, and images with no person found.
    """
    from posetransfer.pose.io import read_annotations
    from posetransfer.utils.io import read_image

    data_dir = Path(data_dir)
    backend = backend or get_backend("mediapipe")
    annotations = read_annotations(data_dir / "annotation.csv")
    names = list(annotations)[:limit] if limit else list(annotations)
    errors, pck, pckh = [], [], []
    per_kp: list[list[float]] = [[] for _ in range(NUM_KEYPOINTS)]
    only_ours = only_theirs = both = 0
    no_person = []
    size = None
    from tqdm import tqdm

    for name in tqdm(names, desc="pose eval", unit="img", disable=not progress):
        image = read_image(data_dir / "images" / name)
        size = image.shape[:2]
        truth = annotations[name]
        try:
            pred = extract_pose(image, backend, source=name).keypoints
        except NoPersonError:
            no_person.append(name)
            continue
        vt, vp = visible(truth), visible(pred)
        only_ours += int((vp & ~vt).sum())
        only_theirs += int((vt & ~vp).sum())
        both += int((vt & vp).sum())
        err = np.linalg.norm(pred - truth, axis=-1)
        head = 2 * float(np.linalg.norm(truth[0] - truth[1])) if vt[0] and vt[1] else None
        for k in np.flatnonzero(vt & vp):
            e = float(err[k])
            errors.append(e)
            per_kp[k].append(e)
            pck.append(e <= 0.05 * max(size))
            if head:
                pckh.append(e <= 0.5 * head)
    from posetransfer.pose.schema import KEYPOINT_NAMES

    return {
        "images": len(names),
        "image_size": list(size) if size else None,
        "no_person": len(no_person),
        "keypoints_compared": both,
        "visible_only_in_extraction": only_ours,
        "visible_only_in_annotation": only_theirs,
        "median_error_px": float(np.median(errors)) if errors else float("nan"),
        "mean_error_px": float(np.mean(errors)) if errors else float("nan"),
        "pck@0.05": float(np.mean(pck)) if pck else float("nan"),
        "pckh@0.5": float(np.mean(pckh)) if pckh else float("nan"),
        "median_error_px_per_keypoint": {
            KEYPOINT_NAMES[k]: (float(np.median(v)) if v else None) for k, v in enumerate(per_kp)
        },
    }
