"""Backgrounds of the synthetic photos: street-like clutter (Market-1501) or a studio (DeepFashion)."""

from __future__ import annotations

import cv2
import numpy as np

from posetransfer.data.synth.body import _hsv


def _background(
    rng: np.random.Generator, size: tuple[int, int], kind: str, feet: np.ndarray, unit: float
) -> np.ndarray:
    """A float32 HxWx3 background: a street-like clutter ('varied') or a near-white studio ('plain')."""
    H, W = size
    if kind == "plain":
        tint = rng.uniform(-4, 4, size=3)
        level = rng.uniform(236, 250)
        bg = np.empty((H, W, 3), np.float32)
        bg[:] = np.clip(level + tint, 0, 255)
        # A faint floor shadow, as on a studio sweep.
        _shadow(bg, feet, unit, 0.12)
        return bg
    horizon = rng.uniform(0.35, 0.8) * H
    wall0, wall1 = (np.array(_hsv(rng.uniform(), rng.uniform(0, 0.35), rng.uniform(0.3, 0.95)), np.float32) for _ in range(2))
    ground = np.array(_hsv(rng.uniform(0.05, 0.15), rng.uniform(0, 0.2), rng.uniform(0.3, 0.75)), np.float32)
    ground2 = ground * rng.uniform(0.8, 1.15)
    t = np.linspace(0, 1, H, dtype=np.float32)[:, None]
    col = np.where(
        np.arange(H)[:, None] < horizon,
        wall0 * (1 - t) + wall1 * t,
        ground * (1 - t) + ground2 * t,
    )
    bg = np.repeat(col[:, None, :], W, axis=1).astype(np.float32)
    for _ in range(int(rng.integers(2, 10))):  # clutter: shop fronts, bins, bikes, cars
        x0, y0 = rng.uniform(-0.2, 1.0) * W, rng.uniform(-0.1, 0.9) * H
        w, h = rng.uniform(0.1, 0.7) * W, rng.uniform(0.05, 0.5) * H
        c = _hsv(rng.uniform(), rng.uniform(0, 0.7), rng.uniform(0.1, 0.95))
        cv2.rectangle(bg, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)), tuple(float(v) for v in c), -1)
    for _ in range(int(rng.integers(0, 4))):  # poles
        x = rng.uniform(0, W)
        c = _hsv(rng.uniform(), rng.uniform(0, 0.3), rng.uniform(0.1, 0.8))
        cv2.rectangle(bg, (int(x), 0), (int(x + rng.uniform(0.02, 0.06) * W), H), tuple(float(v) for v in c), -1)
    for _ in range(int(rng.integers(0, 4))):  # road markings below the horizon
        y = rng.uniform(horizon, H)
        cv2.rectangle(bg, (0, int(y)), (W, int(y + rng.uniform(0.01, 0.03) * H)), (220.0, 220.0, 215.0), -1)
    bg = cv2.GaussianBlur(bg, (0, 0), max(0.5, 0.6 * H / 128))
    _shadow(bg, feet, unit, rng.uniform(0.2, 0.4))
    return bg


def _shadow(bg: np.ndarray, feet: np.ndarray, unit: float, strength: float) -> None:
    """Darken a blurred ellipse under the feet (in place), computed on its bounding box only."""
    H, W = bg.shape[:2]
    ax, ay = max(1, int(1.2 * unit)), max(1, int(0.25 * unit))
    sigma = max(0.5, 0.25 * unit)
    pad = int(3 * sigma) + 1
    cx, cy = int(feet[0]), int(feet[1] + 0.1 * unit)
    x0, x1 = max(0, cx - ax - pad), min(W, cx + ax + pad + 1)
    y0, y1 = max(0, cy - ay - pad), min(H, cy + ay + pad + 1)
    if x0 >= x1 or y0 >= y1:
        return
    shadow = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.ellipse(shadow, (cx - x0, cy - y0), (ax, ay), 0, 0, 360, 1.0, -1)
    shadow = cv2.GaussianBlur(shadow, (0, 0), sigma)
    bg[y0:y1, x0:x1] *= (1 - strength * shadow)[..., None]
