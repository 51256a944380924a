"""Pose masks by protocol: each one reproduces one released script, named after it.

Every function is pure and batched: keypoints ``(..., 18, 2)`` ``(y, x)`` and a frame size
``(H, W)`` in, a float32 ``(..., H, W)`` array in ``{0, 1}`` out. Unlike the encodings of
:mod:`posetransfer.pose.encodings`, a keypoint counts as *missing* only when a coordinate is
``-1`` (the annotation files' marker; both released scripts test exactly that): a present
keypoint outside the frame still draws the part of its disk / limb that falls inside, as the
released scripts do.

Protocols (docs/protocols.md cites each script and line):

* ``"pg2"`` (:func:`pg2_mask`): PG2's ``_getPoseMask`` (Ma et al., "Pose Guided Person Image
  Generation", the mask ``M_B`` of eq. 1 and of mask-SSIM / mask-IS, section 4): disks of radius
  4 at both ends of each of its 23 limbs and at ``sampleN - 1`` points between them, with the
  released code's Python 2 integer arithmetic, then a 5x5 dilation followed by a 5x5 erosion.
* ``"patn"`` (:func:`patn_mask`): PATN's ``produce_ma_mask`` (Zhu et al., "Progressive Pose
  Attention Transfer for Person Image Generation", the mask of its mask-SSIM / mask-IS): for the
  same 23 limbs a quadrilateral 4 px either side of the segment, a disk of radius 4 on every
  joint, then the same 5x5 closing.
* ``"pg2_torso"`` (:func:`pg2_torso_mask`): ``pg2`` plus the filled shoulders-hips quadrilateral.
  Our addition, never a default: it covers the belly the limb disks can miss.

Speed: masks are computed in the data loader for every sample and, in the protocol tests, for
every row of the annotation files (36 706 poses), so all three are vectorised over the batch:
sample centres / polygon spans are computed for all poses and limbs at once, the disks are
stamped by indexing, and the closing is one OpenCV dilation and erosion over the stacked batch.
The released routines run per pose in Python / scikit-image (3-5 ms a Market pose for ``patn``
measured here on the loaded shared machine); ``tests/test_pose_masks.py`` checks every row
pixel for pixel against routines written directly from the released scripts with those calls.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import cv2
import numpy as np

from posetransfer.pose.schema import MISSING, NUM_KEYPOINTS, PG2_MASK_LIMBS, TORSO

__all__ = ["MASK_PROTOCOLS", "MaskProtocol", "pg2_mask", "patn_mask", "pg2_torso_mask", "protocol_mask"]

MaskProtocol = Literal["pg2", "patn", "pg2_torso"]
MASK_PROTOCOLS: tuple[str, ...] = ("pg2", "patn", "pg2_torso")

_CHUNK = 1024  # poses per vectorised pass (bounds the temporary canvases to a few MB)


def _prepare(kp: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, ...], int, int]:
    kp = np.asarray(kp)
    if kp.ndim < 2 or kp.shape[-2:] != (NUM_KEYPOINTS, 2):
        raise ValueError(f"keypoints must have shape (..., {NUM_KEYPOINTS}, 2), got {kp.shape}")
    height, width = (int(s) for s in size)
    if height <= 0 or width <= 0:
        raise ValueError(f"size must be positive (height, width), got {size}")
    batch = kp.shape[:-2]
    return kp.reshape(-1, NUM_KEYPOINTS, 2).astype(np.float64), batch, height, width


def _present(flat: np.ndarray) -> np.ndarray:
    """``(N, 18)``: neither coordinate is the annotation files' ``-1`` (both scripts' test)."""
    return (flat[..., 0] != MISSING) & (flat[..., 1] != MISSING)


def _chunked(fn, kp, size) -> np.ndarray:
    flat, batch, height, width = _prepare(kp, size)
    out = np.empty((flat.shape[0], height, width), dtype=np.float32)
    for s in range(0, flat.shape[0], _CHUNK):
        out[s : s + _CHUNK] = fn(flat[s : s + _CHUNK], height, width)
    return out.reshape(*batch, height, width)


def _closing(masks: np.ndarray, k: int = 5) -> np.ndarray:
    """``erosion(dilation(m, square(k)), square(k))`` of every ``(H, W)`` mask of ``(N, H, W)`` uint8.

    scikit-image's ``dilation`` / ``erosion`` (the released scripts' calls) pad by reflection,
    which for a symmetric square amounts to taking the max / min over the part of the window
    inside the frame. OpenCV's default border does the same, so the batch is processed as one
    tall image with ``k // 2`` separator rows between frames: zeros for the dilation (they add
    nothing to a max), then ones for the erosion (they take nothing from a min).
    """
    n, height, width = masks.shape
    if n == 0 or k <= 1:
        return masks
    gap = k // 2
    tall = np.zeros((n, height + gap, width), dtype=np.uint8)
    tall[:, :height] = masks
    kernel = np.ones((k, k), dtype=np.uint8)
    tall = cv2.dilate(tall.reshape(n * (height + gap), width), kernel).reshape(n, height + gap, width)
    tall[:, height:] = 1
    tall = cv2.erode(tall.reshape(n * (height + gap), width), kernel).reshape(n, height + gap, width)
    return tall[:, :height]


@lru_cache(maxsize=8)
def _pg2_disk(radius: int) -> np.ndarray:
    """``_getSparseKeypoint``'s 'Solid' stencil: ``sqrt(i^2 + j^2) <= radius`` for ``|i|, |j| <= radius``."""
    d = np.arange(-radius, radius + 1)
    disk = np.sqrt((d[:, None] ** 2 + d[None, :] ** 2).astype(np.float64)) <= radius
    return disk.astype(np.uint8)


def _stamp_disks(n: int, height: int, width: int, idx, rows, cols, stencil: np.ndarray) -> np.ndarray:
    """Union over centres ``(idx, rows, cols)`` of ``stencil`` clipped to the frame, ``(n, H, W)`` uint8.

    The stencil's offsets are added to every distinct centre and the in-frame pixels set by one
    fancy-index assignment (a centre outside the frame, i.e. a present keypoint outside the
    picture, still stamps the part of its disk that reaches inside, as ``_getSparseKeypoint``'s
    bounds check does). A pose has a few hundred centres, many shared by several limbs, so this
    touches far fewer pixels than a dilation of the whole frame.
    """
    r = stencil.shape[0] // 2
    canvas = np.zeros((n, height, width), dtype=np.uint8)
    idx, rows, cols = (np.asarray(v, dtype=np.int64) for v in (idx, rows, cols))
    near = (rows >= -r) & (rows < height + r) & (cols >= -r) & (cols < width + r)  # others cannot reach in
    pw, ph = width + 2 * r, height + 2 * r
    key = np.unique((idx[near] * ph + rows[near] + r) * pw + cols[near] + r)
    if not len(key):
        return canvas
    idx, rest = np.divmod(key, ph * pw)
    rows, cols = np.divmod(rest, pw)
    rows, cols = rows - r, cols - r
    dy, dx = np.nonzero(stencil)
    dy, dx = dy - r, dx - r
    flat = canvas.reshape(-1)
    for s in range(0, len(key), 65536):  # bounded temporaries
        yy = rows[s : s + 65536, None] + dy[None]
        xx = cols[s : s + 65536, None] + dx[None]
        inside = (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
        pixel = (idx[s : s + 65536, None] * height + yy) * width + xx
        flat[pixel[inside]] = 1
    return canvas


def _limb_arrays() -> tuple[np.ndarray, np.ndarray]:
    return np.asarray([a for a, _ in PG2_MASK_LIMBS]), np.asarray([b for _, b in PG2_MASK_LIMBS])


def _py2_coordinate(v0: np.ndarray, v1: np.ndarray, i: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``int(v0 + (v1 - v0) * i / n)`` as the Python 2 original evaluates it.

    The released code reads integer peaks, so ``/`` is Python 2's floor division of ints; on
    non-integer keypoints (our augmentations) it would be a float division, truncated by
    ``int()`` in ``_getSparseKeypoint``. Both are reproduced, chosen per coordinate pair.
    """
    integral = (v0 == np.floor(v0)) & (v1 == np.floor(v1))
    a, b = v0.astype(np.int64), v1.astype(np.int64)
    as_int = a + np.floor_divide((b - a) * i, n)
    as_float = np.trunc(v0 + (v1 - v0) * i / n).astype(np.int64)
    return np.where(integral, as_int, as_float)


def _pg2_centres(flat: np.ndarray, radius: int):
    """Every disk centre of ``_getPoseMask``: ``(pose index, row, column)`` int arrays."""
    limb_a, limb_b = _limb_arrays()
    present = _present(flat)
    ok = present[:, limb_a] & present[:, limb_b]  # (N, L)
    pose, limb = np.nonzero(ok)
    p0 = flat[pose, limb_a[limb]]  # (M, 2) (r, c)
    p1 = flat[pose, limb_b[limb]]
    r0, c0, r1, c1 = p0[:, 0], p0[:, 1], p1[:, 0], p1[:, 1]
    # both ends: int(r) in _getSparseKeypoint truncates toward zero
    idx = [pose, pose]
    rows = [np.trunc(r0).astype(np.int64), np.trunc(r1).astype(np.int64)]
    cols = [np.trunc(c0).astype(np.int64), np.trunc(c1).astype(np.int64)]
    # sampleN = int(distance / radius); points i = 1 .. sampleN - 1 when sampleN > 1
    distance = np.sqrt((r0 - r1) ** 2 + (c0 - c1) ** 2)
    sample_n = (distance / radius).astype(np.int64)
    extra = np.maximum(sample_n - 1, 0)
    if extra.sum():
        seg = np.repeat(np.arange(len(extra)), extra)
        i = np.arange(len(seg)) - np.repeat(np.cumsum(extra) - extra, extra) + 1
        n = sample_n[seg]
        idx.append(pose[seg])
        rows.append(_py2_coordinate(r0[seg], r1[seg], i, n))
        cols.append(_py2_coordinate(c0[seg], c1[seg], i, n))
    return np.concatenate(idx), np.concatenate(rows), np.concatenate(cols)


def pg2_mask(kp: np.ndarray, size: tuple[int, int], radius: int = 4, closing: int = 5) -> np.ndarray:
    """PG2's pose mask (``_getPoseMask``, radius 4, 5x5 closing), float32 ``(..., H, W)`` in {0, 1}.

    For each of the 23 limbs of :data:`~posetransfer.pose.schema.PG2_MASK_LIMBS` whose two ends
    are present: the ``sqrt(i^2 + j^2) <= radius`` disk at both ends (coordinates truncated by
    ``int()``) and at ``r0 + (r1 - r0) * i / sampleN`` for ``i = 1 .. sampleN - 1``,
    ``sampleN = int(distance / radius)``, in the Python 2 integer arithmetic of the original
    (floor division). Then ``dilation(dense, square(5))`` and ``erosion(dense, square(5))``.
    ``radius`` is the routine's ``radius`` argument (PG2 also stores a radius-7 mask);
    ``closing`` its square (5 in the released code).
    """
    if radius < 1 or closing < 1:
        raise ValueError(f"radius and closing must be >= 1, got radius={radius}, closing={closing}")
    stencil = _pg2_disk(int(radius))

    def run(flat, height, width):
        idx, rows, cols = _pg2_centres(flat, int(radius))
        dense = _stamp_disks(len(flat), height, width, idx, rows, cols, stencil)
        return _closing(dense, closing)

    return _chunked(run, kp, size)


def _fill_spans(out: np.ndarray, idx, rows, lo, hi) -> None:
    """Set ``out[idx, row, lo..hi]`` (inclusive) for every span (spans need not be disjoint)."""
    n, height, width = out.shape
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, width - 1)
    keep = (rows >= 0) & (rows < height) & (lo <= hi)
    idx, rows, lo, hi = idx[keep], rows[keep], lo[keep], hi[keep]
    if not len(idx):
        return
    count = hi - lo + 1
    start = (idx * height + rows) * width + lo
    pixel = np.repeat(start - (np.cumsum(count) - count), count) + np.arange(int(count.sum()))
    out.reshape(-1)[pixel] = True


def _on_or_inside(py: np.ndarray, px: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """scikit-image's ``point_in_polygon(...) != OUTSIDE`` for points ``(py, px)`` of ``quads``.

    O'Rourke's crossing test as scikit-image computes it (right and left rays, a vertex within
    1e-12, the same floating-point expressions), vectorised over points; used for the pixels that
    lie within rounding of a quadrilateral's edge, where only the exact expression decides.
    """
    eps = 1e-12
    yp, xp = quads[..., 0], quads[..., 1]
    x1, y1 = xp[:, 3] - px, yp[:, 3] - py
    r_cross = np.zeros(len(px), dtype=np.int64)
    l_cross = np.zeros(len(px), dtype=np.int64)
    vertex = np.zeros(len(px), dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(quads.shape[1]):
            x0, y0 = xp[:, i] - px, yp[:, i] - py
            vertex |= (-eps < x0) & (x0 < eps) & (-eps < y0) & (y0 < eps)
            cross = (x0 * y1 - x1 * y0) / (y1 - y0)
            r_cross += ((y0 > 0) != (y1 > 0)) & (cross > 0)
            l_cross += ((y0 < 0) != (y1 < 0)) & (cross < 0)
            x1, y1 = x0, y0
    return vertex | ((r_cross & 1) != (l_cross & 1)) | ((r_cross & 1) == 1)


def _quad_spans(idx: np.ndarray, quads: np.ndarray, height: int, width: int):
    """Pixel spans of convex quadrilaterals ``(M, 4, 2)`` ``(y, x)``, edges and vertices included.

    scikit-image's ``polygon`` keeps the pixel centres ``(r, c)`` of the bounding box that its
    ``point_in_polygon`` (O'Rourke's crossing test) does not call OUTSIDE: inside, on an edge or
    on a vertex. For a convex polygon these are, on every row ``r``, the columns between the
    smallest and the largest abscissa where the edges meet the line ``y = r``, both included
    (an edge lying on the line contributes both ends). Evaluating that per row instead of per
    pixel is what makes it fast. A column within 1e-7 of either end is a pixel on (or within
    rounding of) an edge: it is decided by :func:`_on_or_inside`, the released test itself.
    """
    finite = np.isfinite(quads).all(axis=(1, 2))  # a zero-length limb gives NaN vertices: nothing drawn
    idx, quads = idx[finite], quads[finite]
    empty = np.zeros(0, dtype=np.int64)
    if not len(idx):
        return empty, empty, empty, empty
    ymin = np.maximum(np.ceil(quads[..., 0].min(axis=1)), 0).astype(np.int64)
    ymax = np.minimum(np.floor(quads[..., 0].max(axis=1)), height - 1).astype(np.int64)
    count = np.maximum(ymax - ymin + 1, 0)
    seg = np.repeat(np.arange(len(idx)), count)
    rows = ymin[seg] + np.arange(len(seg)) - np.repeat(np.cumsum(count) - count, count)
    y = rows.astype(np.float64)
    lo = np.full(len(seg), np.inf)
    hi = np.full(len(seg), -np.inf)
    for e in range(4):
        ya, xa = quads[seg, e, 0], quads[seg, e, 1]
        yb, xb = quads[seg, (e + 1) % 4, 0], quads[seg, (e + 1) % 4, 1]
        meets = (np.minimum(ya, yb) <= y) & (y <= np.maximum(ya, yb))
        flat_edge = ya == yb
        with np.errstate(divide="ignore", invalid="ignore"):
            x = xa + (y - ya) * (xb - xa) / (yb - ya)
        lo = np.where(meets, np.minimum(lo, np.where(flat_edge, np.minimum(xa, xb), x)), lo)
        hi = np.where(meets, np.maximum(hi, np.where(flat_edge, np.maximum(xa, xb), x)), hi)
    met = np.isfinite(lo)
    seg, rows, lo, hi = seg[met], rows[met], lo[met], hi[met]
    tol = 1e-7
    inner_lo = np.ceil(lo + tol).astype(np.int64)
    inner_hi = np.floor(hi - tol).astype(np.int64)
    # boundary candidates: the integer column within tol of each end (at most one per end)
    cand_seg, cand_row, cand_col = [], [], []
    for end in (lo, hi):
        col = np.rint(end)
        near = np.abs(col - end) <= tol
        cand_seg.append(seg[near])
        cand_row.append(rows[near])
        cand_col.append(col[near].astype(np.int64))
    cs, cr, cc = np.concatenate(cand_seg), np.concatenate(cand_row), np.concatenate(cand_col)
    onq = _on_or_inside(cr.astype(np.float64), cc.astype(np.float64), quads[cs])
    cs, cr, cc = cs[onq], cr[onq], cc[onq]
    return (np.concatenate([idx[seg], idx[cs]]), np.concatenate([rows, cr]),
            np.concatenate([inner_lo, cc]), np.concatenate([inner_hi, cc]))  # fmt: skip


def _ellipse_disks(out: np.ndarray, idx, centres: np.ndarray, radius: int) -> None:
    """scikit-image's ``disk((r, c), radius, shape)`` at every centre: ``((y-r)/R)^2 + ((x-c)/R)^2 < 1``."""
    n, height, width = out.shape
    if not len(idx):
        return
    d = np.arange(-radius - 1, radius + 2)
    base = np.floor(centres).astype(np.int64)  # (M, 2)
    yy = base[:, 0, None, None] + d[None, :, None]  # (M, K, 1)
    xx = base[:, 1, None, None] + d[None, None, :]  # (M, 1, K)
    inside = ((yy - centres[:, 0, None, None]) / radius) ** 2 + ((xx - centres[:, 1, None, None]) / radius) ** 2 < 1
    inside &= (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
    m, a, b = np.nonzero(inside)
    out[np.asarray(idx)[m], yy[m, a, 0], xx[m, 0, b]] = True


def patn_mask(kp: np.ndarray, size: tuple[int, int], point_radius: int = 4) -> np.ndarray:
    """PATN's mask (``produce_ma_mask``), float32 ``(..., H, W)`` in {0, 1}.

    For each of the 23 limbs (the same list as PG2's) with both ends present, the quadrilateral
    ``f + v, f - v, t - v, t + v`` with ``v`` the limb's normal scaled to ``point_radius``
    (scikit-image ``polygon``); a ``disk`` of ``point_radius`` on every present joint; then
    ``dilation`` and ``erosion`` with ``square(5)``.
    """
    if point_radius <= 0:
        raise ValueError(f"point_radius must be > 0, got {point_radius}")
    limb_a, limb_b = _limb_arrays()

    def run(flat, height, width):
        out = np.zeros((len(flat), height, width), dtype=bool)
        present = _present(flat)
        pose, limb = np.nonzero(present[:, limb_a] & present[:, limb_b])
        f, t = flat[pose, limb_a[limb]], flat[pose, limb_b[limb]]
        diff = f - t
        normal = np.stack([-diff[:, 1], diff[:, 0]], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            normal = point_radius * normal / np.sqrt((normal**2).sum(axis=1, keepdims=True))
        quads = np.stack([f + normal, f - normal, t - normal, t + normal], axis=1)
        _fill_spans(out, *_quad_spans(pose, quads, height, width))
        jp, jj = np.nonzero(present)
        _ellipse_disks(out, jp, flat[jp, jj], int(point_radius))
        return _closing(out.astype(np.uint8), 5)

    return _chunked(run, kp, size)


def pg2_torso_mask(kp: np.ndarray, size: tuple[int, int], radius: int = 4, closing: int = 5) -> np.ndarray:
    """:func:`pg2_mask` with the shoulders-hips quadrilateral filled before the closing (ours).

    Not a published protocol: kept under its own name for experiments, never a default.
    """
    flat, batch, height, width = _prepare(kp, size)
    stencil = _pg2_disk(int(radius))
    out = np.empty((flat.shape[0], height, width), dtype=np.float32)
    for s in range(0, flat.shape[0], _CHUNK):
        part = flat[s : s + _CHUNK]
        dense = _stamp_disks(len(part), height, width, *_pg2_centres(part, int(radius)), stencil)
        present = _present(part)
        for i in np.flatnonzero(present[:, list(TORSO)].all(axis=1)):
            quad = np.trunc(part[i, list(TORSO)][:, ::-1]).astype(np.int32)
            cv2.fillPoly(dense[i], [quad], 1)
        out[s : s + _CHUNK] = _closing(dense, closing)
    return out.reshape(*batch, height, width)


def protocol_mask(kp: np.ndarray, size: tuple[int, int], protocol: str = "pg2", radius: int = 4) -> np.ndarray:
    """The mask of ``protocol`` (one of :data:`MASK_PROTOCOLS`), ``radius`` its disk radius."""
    if protocol == "pg2":
        return pg2_mask(kp, size, radius=radius)
    if protocol == "patn":
        return patn_mask(kp, size, point_radius=radius)
    if protocol == "pg2_torso":
        return pg2_torso_mask(kp, size, radius=radius)
    raise ValueError(f"unknown mask protocol {protocol!r} (expected one of {', '.join(MASK_PROTOCOLS)})")
