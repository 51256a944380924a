"""Retargeting: a target pose re-drawn with the source person's body.

A driving pose (a library pose, another photo's pose, a frame of a video) belongs to a body with
its own proportions; fed as it is, the generator must stretch the source person's limbs to fit.
:func:`retarget_pose` keeps the target's *joint angles* (the direction of every bone) and takes
the *bone lengths* from the source, walking the COCO-18 kinematic tree outwards from the neck,
which is placed where the source's neck is. The result stands where the source stands and is as
tall as the source, in the source's frame.

Bones whose length the source does not show (a hidden forearm) take the target's length times
the body scale: the median ratio of source to target length over the bones both poses show.
A joint missing in the target stays missing; a joint whose parent is missing in the target is
placed from its nearest visible ancestor with the scaled target offset.
"""

from __future__ import annotations

import numpy as np

from posetransfer.pose.schema import MISSING, NUM_KEYPOINTS, visible

__all__ = ["KINEMATIC_TREE", "retarget_pose", "bone_lengths", "body_scale"]

# (parent, child) bones of the COCO-18 skeleton, parents before children, rooted at the neck (1).
KINEMATIC_TREE: tuple[tuple[int, int], ...] = (
    (1, 2), (2, 3), (3, 4),        # right arm
    (1, 5), (5, 6), (6, 7),        # left arm
    (1, 8), (8, 9), (9, 10),       # right leg
    (1, 11), (11, 12), (12, 13),   # left leg
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),  # head
)  # fmt: skip
_PARENT = {child: parent for parent, child in KINEMATIC_TREE}
ROOT = 1


def _pose(kp: np.ndarray, name: str) -> np.ndarray:
    kp = np.asarray(kp, dtype=np.float32)
    if kp.shape != (NUM_KEYPOINTS, 2):
        raise ValueError(f"{name} pose must have shape ({NUM_KEYPOINTS}, 2), got {kp.shape}")
    if not np.isfinite(kp).all():
        raise ValueError(f"{name} pose has non-finite coordinates")
    return kp


def bone_lengths(kp: np.ndarray) -> np.ndarray:
    """Length of every bone of :data:`KINEMATIC_TREE` (``nan`` where an end is missing)."""
    kp = _pose(kp, "the")
    vis = visible(kp)
    out = np.full(len(KINEMATIC_TREE), np.nan, dtype=np.float64)
    for i, (p, c) in enumerate(KINEMATIC_TREE):
        if vis[p] and vis[c]:
            out[i] = float(np.hypot(*(kp[c].astype(np.float64) - kp[p])))
    return out


def body_scale(source: np.ndarray, target: np.ndarray) -> float:
    """Median source/target bone-length ratio over the bones both show (1.0 when none)."""
    ls, lt = bone_lengths(source), bone_lengths(target)
    ok = np.isfinite(ls) & np.isfinite(lt) & (lt > 0)
    return float(np.median(ls[ok] / lt[ok])) if ok.any() else 1.0


def anchor(kp: np.ndarray, vis: np.ndarray | None = None) -> np.ndarray | None:
    """The neck, or the shoulders' midpoint when the neck is missing (``vis``: :func:`visible` of ``kp``)."""
    if vis is None:
        vis = visible(kp)
    if vis[ROOT]:
        return kp[ROOT].astype(np.float64)
    if vis[2] and vis[5]:
        return (kp[2].astype(np.float64) + kp[5]) / 2.0
    return None


def retarget_pose(
    target: np.ndarray,
    source: np.ndarray,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """``target``'s joint angles with ``source``'s bone lengths, rooted at ``source``'s neck.

    Both poses are ``(18, 2)`` ``(y, x)`` with ``-1`` for missing joints, in the same frame.
    With ``size = (H, W)``, joints that land outside the frame become missing. When either pose
    has neither a neck nor both shoulders, there is nothing to anchor on and the target is
    returned unchanged.
    """
    target = _pose(target, "target")
    source = _pose(source, "source")
    vis_t, vis_s = visible(target), visible(source)
    root_t, root_s = anchor(target, vis_t), anchor(source, vis_s)
    if root_t is None or root_s is None:
        return target.copy()
    scale = body_scale(source, target)
    src_len = bone_lengths(source)
    out = np.full((NUM_KEYPOINTS, 2), np.nan, dtype=np.float64)
    out[ROOT] = root_s
    placed = np.zeros(NUM_KEYPOINTS, dtype=bool)
    placed[ROOT] = True
    # the target position each placed joint stands for (the neck may be the shoulders' midpoint)
    tpos = target.astype(np.float64).copy()
    tpos[ROOT] = root_t
    for i, (p, c) in enumerate(KINEMATIC_TREE):
        if not vis_t[c]:
            continue
        anc = p
        while not placed[anc]:  # nearest ancestor already placed (the root always is)
            anc = _PARENT[anc]
        offset = tpos[c] - tpos[anc]
        norm = float(np.hypot(*offset))
        if anc == p and np.isfinite(src_len[i]) and norm > 0:
            out[c] = out[p] + offset / norm * src_len[i]
        else:
            out[c] = out[anc] + offset * scale
        placed[c] = True
    if not vis_t[ROOT]:
        placed[ROOT] = False  # an anchor only: the target shows no neck
    result = np.where(placed[:, None], out, MISSING).astype(np.float32)
    if size is not None:
        h, w = size
        inside = (
            (result[:, 0] >= 0) & (result[:, 0] <= h - 1) & (result[:, 1] >= 0) & (result[:, 1] <= w - 1)
        )
        result[~inside] = MISSING
    return result
