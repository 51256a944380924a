"""Picture helpers for grids of samples, generated images and reports (uint8 RGB arrays in and out).

Used by ``data show``, ``generate``, the evaluation reports and the demo. Drawing uses OpenCV
(anti-aliased lines, text); nothing here writes files (use :func:`posetransfer.utils.io.save_image`).
Nothing here knows about poses (``utils`` is the lowest layer): skeletons are drawn by
:func:`posetransfer.pose.draw.draw_skeleton`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np


def as_numpy(x: Any) -> np.ndarray:
    """A torch tensor (without importing torch here) or array-like as a numpy array."""
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def to_uint8(image: Any) -> np.ndarray:
    """An image as H x W x 3 uint8 RGB.

    Accepts a torch tensor or numpy array, CHW or HWC (or HW / 1HW / HW1 gray, repeated to RGB).
    Float values are the models' range [-1, 1], mapped to 0..255 and clipped; uint8 passes
    through. The layout is CHW when the first axis has 1 or 3 entries and the last does not.
    """
    a = as_numpy(image)
    if a.ndim == 2:
        a = a[:, :, None]
    elif a.ndim == 3:
        if a.shape[0] in (1, 3) and a.shape[2] not in (1, 3):
            a = a.transpose(1, 2, 0)
    else:
        raise ValueError(f"expected an image of 2 or 3 dimensions (CHW or HWC), got shape {a.shape}")
    if a.shape[2] not in (1, 3):
        raise ValueError(f"expected 1 or 3 channels, got shape {a.shape}")
    if a.dtype != np.uint8:
        a = np.clip(np.rint((a.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a)


def overlay_mask(
    image: Any,
    mask: Any,
    color: tuple[int, int, int] = (255, 0, 255),
    alpha: float = 0.45,
) -> np.ndarray:
    """Blend ``color`` over ``image`` where ``mask`` > 0.5 (``alpha`` = colour weight there).

    ``mask`` is H x W, 1 x H x W or H x W x 1 (tensor or array), e.g. PG2's pose mask ``M_B``.
    """
    out = to_uint8(image)
    m = np.squeeze(as_numpy(mask))
    if m.shape != out.shape[:2]:
        raise ValueError(f"mask shape {m.shape} does not match the image {out.shape[:2]}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    sel = m > 0.5
    blended = out.astype(np.float32)
    blended[sel] = (1.0 - alpha) * blended[sel] + alpha * np.asarray(color, dtype=np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def make_grid(
    rows: Sequence[Sequence[Any]],
    pad: int = 2,
    labels: Sequence[str] | None = None,
    pad_value: int = 255,
    label_height: int | None = None,
) -> np.ndarray:
    """Tile images into one uint8 H x W x 3 picture.

    ``rows`` is a list of rows, each a list of images of equal height (any form :func:`to_uint8`
    takes). Columns are as wide as their widest cell and cells are left-aligned; short rows leave
    blank cells. ``labels``, when given, are column headers drawn above the first row with
    ``cv2.putText`` (clipped to the column). ``pad`` pixels of ``pad_value`` separate the cells.
    """
    if not rows or not any(rows):
        raise ValueError("make_grid needs at least one image")
    cells = [[to_uint8(im) for im in row] for row in rows]
    for r, row in enumerate(cells):
        heights = {im.shape[0] for im in row}
        if len(heights) > 1:
            raise ValueError(f"row {r} holds images of different heights {sorted(heights)}")
    ncols = max(len(row) for row in cells)
    col_w = [max((row[c].shape[1] for row in cells if c < len(row)), default=0) for c in range(ncols)]
    row_h = [row[0].shape[0] if row else 0 for row in cells]
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.4
    header = 0
    if labels:
        (_, text_h), baseline = cv2.getTextSize("Ag", font, scale, 1)
        header = label_height if label_height is not None else text_h + baseline + 6
    width = sum(col_w) + pad * (ncols + 1)
    height = header + sum(row_h) + pad * (len(cells) + 1)
    grid = np.full((height, width, 3), pad_value, dtype=np.uint8)
    xs = np.cumsum([pad] + [w + pad for w in col_w])[:-1]
    if labels:
        for c, text in enumerate(labels[:ncols]):
            # draw into a column-wide strip so long labels are clipped, not spilled onto neighbours
            strip = np.full((header, col_w[c], 3), pad_value, dtype=np.uint8)
            (tw, th), _ = cv2.getTextSize(str(text), font, scale, 1)
            x0 = max(0, (col_w[c] - tw) // 2)
            ink = (0, 0, 0) if pad_value > 127 else (255, 255, 255)
            cv2.putText(strip, str(text), (x0, (header + th) // 2), font, scale, ink, 1, cv2.LINE_AA)
            grid[pad : pad + header, xs[c] : xs[c] + col_w[c]] = strip
    y = header + pad
    for row, h in zip(cells, row_h):
        for c, im in enumerate(row):
            grid[y : y + h, xs[c] : xs[c] + im.shape[1]] = im
        y += h + pad
    return grid
