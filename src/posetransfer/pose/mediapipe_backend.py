"""The ``mediapipe`` pose backend: mediapipe's legacy Pose solution mapped to the 18 OpenPose keypoints.

Why this one: ``mediapipe==0.10.21`` is the last release whose legacy ``solutions.pose`` bundles
its models inside the wheel (the detector and the "full" landmark model, ``model_complexity=1``),
so it runs offline; later releases download them. Install with ``pip install 'posetransfer[pose]'``
(it pins numpy<2, protobuf<5 and pulls jax, so it is an optional extra).

Mapping of mediapipe's 33 BlazePose landmarks to the field's 18 (OpenPose / COCO-18 order). Both use the
*person's* left/right (checked on the real DeepFashion annotations: on a front view the right
shoulder has the smaller x in both), so no swap is needed:

===================  ===========================================
18-keypoint index    mediapipe landmark
===================  ===========================================
0 nose               0 nose
1 neck               midpoint of 11 and 12 (OpenPose's neck is the mid-shoulder point; both must be visible)
2/5 r/l shoulder     12 / 11
3/6 r/l elbow        14 / 13
4/7 r/l wrist        16 / 15
8/11 r/l hip         24 / 23
9/12 r/l knee        26 / 25
10/13 r/l ankle      28 / 27
14/15 r/l eye        5 / 2   (the eye centres; 1-3 and 4-6 are inner/centre/outer)
16/17 r/l ear        8 / 7
===================  ===========================================

A landmark whose ``visibility`` is below the threshold, or that lies outside the image, is missing
(-1), the way OpenPose leaves occluded and cut-off joints out of the annotations.

The legacy solution finds one person per call. To notice a second one (``max_persons=2``, the
default) the found person's box (plus a margin) is blanked and the detector run again; a "person"
found inside an already blanked box is ignored (without that rule hair or a hand left beside the
box was found again in 74 of the 245 DeepFashion test photos; with it, in 1). On 10 composites of
two DeepFashion people side by side, 9 second persons were found.
:func:`posetransfer.pose.extract.extract_pose` keeps the largest and says so.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

import numpy as np

# mediapipe's C++ logging prints a few lines per model load; keep the user's terminal clean.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import mediapipe as mp  # noqa: F401  (ImportError here = the extra is missing; extract.get_backend reports it)
from mediapipe.python.solutions import pose as mp_pose

from posetransfer.pose.extract import Detection
from posetransfer.pose.schema import MISSING, NUM_KEYPOINTS

# MEDIAPIPE_INDEX[k] = the mediapipe landmark for keypoint k; the neck (k=1) is computed.
MEDIAPIPE_INDEX: tuple[int, ...] = (0, -1, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7)
NECK_FROM = (11, 12)
# The box of the landmarks stops at the eyes; this fraction of its height is added on top for the crown.
HEAD_EXTENSION = 0.08


def landmarks_to_keypoints(
    landmarks: np.ndarray, size: tuple[int, int], visibility_threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Map mediapipe's (33, 3) ``(x, y, visibility)`` normalised landmarks to (18, 2) ``(y, x)`` pixels.

    Returns (keypoints, confidence). Pixel coordinates use the convention of the annotation files
    (integer = pixel centre), so a normalised ``x`` becomes ``x * W - 0.5``.
    """
    h, w = size
    lm = np.asarray(landmarks, dtype=np.float64)
    xs = lm[:, 0] * w - 0.5
    ys = lm[:, 1] * h - 0.5
    vis = lm[:, 2]
    kp = np.full((NUM_KEYPOINTS, 2), MISSING, dtype=np.float32)
    conf = np.zeros(NUM_KEYPOINTS, dtype=np.float32)
    for k, m in enumerate(MEDIAPIPE_INDEX):
        if m >= 0:
            kp[k] = (ys[m], xs[m])
            conf[k] = vis[m]
        else:
            a, b = NECK_FROM
            kp[k] = ((ys[a] + ys[b]) / 2, (xs[a] + xs[b]) / 2)
            conf[k] = min(vis[a], vis[b])
    inside = (kp[:, 0] >= 0) & (kp[:, 0] <= h - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= w - 1)
    keep = inside & (conf >= visibility_threshold)
    kp[~keep] = MISSING
    conf[~keep] = 0.0
    return kp, conf


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Hide what mediapipe's C++ code prints to file descriptor 2 while loading its graph.

    Those lines are logged before absl is initialised, so GLOG_minloglevel cannot silence them
    (TFLite delegate info, "feedback manager" warnings); they would be printed on every command.
    Python exceptions are unaffected.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. captured by a test runner): nothing to hide
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class MediapipeBackend:
    """:class:`~posetransfer.pose.extract.PoseBackend` on mediapipe's legacy Pose (static images)."""

    name = "mediapipe"

    def __init__(
        self,
        visibility_threshold: float = 0.5,
        min_detection_confidence: float = 0.5,
        model_complexity: int = 1,
        max_persons: int = 2,
    ):
        if model_complexity != 1:
            # 0 (lite) and 2 (heavy) are downloaded at first use; only "full" ships in the wheel.
            raise ValueError("only model_complexity=1 is bundled with mediapipe 0.10.21 (the others need a download)")
        self.visibility_threshold = visibility_threshold
        self.max_persons = max_persons
        with _quiet_native_stderr():
            self._pose = mp_pose.Pose(
                static_image_mode=True,
                model_complexity=model_complexity,
                enable_segmentation=False,
                min_detection_confidence=min_detection_confidence,
            )
            # The graph loads its models in worker threads when it first runs: run it once here,
            # silenced, so their log lines do not appear later in the middle of the user's output.
            self._pose.process(np.zeros((64, 64, 3), np.uint8))

    def close(self) -> None:
        self._pose.close()

    def _run(self, image: np.ndarray) -> Detection | None:
        # Every call: the landmark model (and its log lines) loads at the first call that finds someone.
        with _quiet_native_stderr():
            result = self._pose.process(image)
        if result.pose_landmarks is None:
            return None
        lm = np.array([(p.x, p.y, p.visibility) for p in result.pose_landmarks.landmark], dtype=np.float64)
        h, w = image.shape[:2]
        kp, conf = landmarks_to_keypoints(lm, (h, w), self.visibility_threshold)
        # Box of all 33 landmarks (even the occluded ones, which mediapipe still places plausibly),
        # clipped to the image: it sizes the person for "keep the largest" and for cropping.
        # The topmost landmarks are the eyes and ears: extend the box upwards to cover the crown.
        xs = np.clip(lm[:, 0] * w, 0, w)
        ys = lm[:, 1] * h
        top = ys.min() - HEAD_EXTENSION * (ys.max() - ys.min())
        bbox = (float(np.clip(top, 0, h)), float(xs.min()), float(np.clip(ys.max(), 0, h)), float(xs.max()))
        score = float(conf[conf > 0].mean()) if (conf > 0).any() else 0.0
        return Detection(kp, conf, bbox, score)

    def extract(self, image: np.ndarray) -> list[Detection]:
        image = np.ascontiguousarray(image)
        found: list[Detection] = []
        blanked: list[tuple[int, int, int, int]] = []
        work = image
        for _ in range(self.max_persons):
            det = self._run(work)
            if det is None:
                break
            top, left, bottom, right = det.bbox
            cy, cx = (top + bottom) / 2, (left + right) / 2
            if any(t <= cy < b and l <= cx < r for t, l, b, r in blanked):
                break  # a leftover of a person already found (measured: hair or a hand), not a new one
            found.append(det)
            # Blank this person, with a margin, in the image's mean colour so the detector can find another.
            mh, mw = 0.1 * (bottom - top), 0.15 * (right - left)
            box = (max(0, int(top - mh)), max(0, int(left - mw)), int(bottom + mh) + 1, int(right + mw) + 1)
            blanked.append(box)
            if work is image:
                work = image.copy()
            work[box[0]:box[2], box[1]:box[3]] = image.reshape(-1, 3).mean(0).astype(np.uint8)
        return found
