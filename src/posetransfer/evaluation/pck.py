"""PCKh and PCK: the share of target keypoints that a pose estimator finds again in the generated image.

The keypoints of the generated images come from a pose estimator (not part of this module); these
functions only score ``(N, 18, 2)`` ``(y, x)`` arrays with -1 for missing keypoints.
"""

from __future__ import annotations

import numpy as np

from posetransfer.pose.schema import KEYPOINT_INDEX, MISSING, visible

# PATN's PARTS_SEL: nose, neck, eyes, ears (COCO-18 indices 0, 1, 14, 15, 16, 17).
HEAD_PARTS = (
    KEYPOINT_INDEX["nose"], KEYPOINT_INDEX["neck"], KEYPOINT_INDEX["right_eye"],
    KEYPOINT_INDEX["left_eye"], KEYPOINT_INDEX["right_ear"], KEYPOINT_INDEX["left_ear"],
)  # fmt: skip


def _check(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if pred.shape != target.shape or pred.shape[-2:] != (18, 2):
        raise ValueError(f"expected two (N, 18, 2) keypoint arrays, got {pred.shape} and {target.shape}")
    return pred.reshape(-1, 18, 2), target.reshape(-1, 18, 2)


def _extent(points: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """(N, 2) = (height, width) of the box of the visible points; 0 where none is visible."""
    hi = np.where(vis[..., None], points, -np.inf).max(axis=1)
    lo = np.where(vis[..., None], points, np.inf).min(axis=1)
    return np.where(vis.any(axis=1)[:, None], hi - lo, 0.0)


def pckh(pred_kp: np.ndarray, target_kp: np.ndarray, alpha: float = 0.5) -> tuple[float, int, int]:
    """PCKh as PATN's ``tool/calPCKH_fashion.py`` / ``calPCKH_market.py`` compute it (GFLA reuses it).

    Per image, the *head box* is the bounding box of the target's present head parts (nose, neck,
    eyes, ears; present = not -1, as the script: out-of-frame coordinates count); an image with
    fewer than two of them is skipped. A keypoint is correct when it is
    present in both arrays and ``|px - tx| < alpha * box_width`` **and** ``|py - ty| < alpha *
    box_height`` (per axis, strict). The denominator counts every visible target keypoint of the
    scored images. Returns ``(score, n_correct, n_total)``; the score is NaN when nothing is scored.
    """
    pred, target = _check(pred_kp, target_kp)
    # calPCKH calls a keypoint missing only when a coordinate is exactly -1 (isRight, get_head_wh;
    # ValidPoints looks at y alone): a target keypoint outside the frame (negative, as 11 of the
    # field's DeepFashion test keypoints) counts, unlike posetransfer.pose.schema.visible.
    tvis = (target != MISSING).all(axis=-1)
    pvis = (pred != MISSING).all(axis=-1)
    head_vis = tvis[:, HEAD_PARTS]
    heads = target[:, HEAD_PARTS]
    scored = head_vis.sum(axis=1) >= 2
    size = _extent(heads, head_vis)
    size = np.where(scored[:, None], size, 0.0)  # (N, 2) = (height, width) of the head box
    diff = np.abs(pred - target)
    ok = (diff < alpha * size[:, None, :]).all(axis=-1) & tvis & pvis & scored[:, None]
    n_total = int(((target[..., 0] != MISSING) & scored[:, None]).sum())  # ValidPoints(tycords)
    n_correct = int(ok.sum())
    return (n_correct / n_total if n_total else float("nan")), n_correct, n_total


def pck(pred_kp: np.ndarray, target_kp: np.ndarray, alpha: float = 0.1) -> tuple[float, int, int]:
    """PCK with the person's box: a keypoint is correct when ``||p - t|| <= alpha * max(h, w)`` of the
    bounding box of the target's visible keypoints (Yang and Ramanan's normalisation; ``alpha = 0.1``
    is its usual value). Images with fewer than two visible target keypoints are skipped.
    Returns ``(score, n_correct, n_total)``."""
    pred, target = _check(pred_kp, target_kp)
    tvis = visible(target)
    pvis = visible(pred)
    scored = tvis.sum(axis=1) >= 2
    thr = alpha * np.where(scored, _extent(target, tvis).max(axis=-1), 0.0)
    dist = np.linalg.norm(pred - target, axis=-1)
    ok = (dist <= thr[:, None]) & tvis & pvis & scored[:, None]
    n_total = int((tvis & scored[:, None]).sum())
    n_correct = int(ok.sum())
    return (n_correct / n_total if n_total else float("nan")), n_correct, n_total
