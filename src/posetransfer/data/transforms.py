"""Joint image + keypoint transforms, and the training augmentation built from them.

Each transform takes a uint8 ``H x W x 3`` image (``H x W`` works too) and its keypoints
``(..., 18, 2)`` ``(y, x)`` and returns both moved identically: the image with OpenCV, the
keypoints with the matching function of :mod:`posetransfer.pose.transforms` (same pixel-centre
conventions, same matrix for warps). Keypoints that leave the frame become missing.

:class:`Augment` is the random augmentation of the papers: PG2 flips left-right (section 4.1);
the multi-view generator uses "random crop, left-right flip and random rotation" with the
keypoints moving with the image (section 4). It is seeded by the caller's
``np.random.Generator``, keeps the image size, and can apply one drawn transform to several
images (:meth:`Augment.sample` + :meth:`Augment.apply`), which the multi-view data set needs
when all views of a person should move together, or draws one per view when they should not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import cv2
import numpy as np

from posetransfer.errors import ConfigError
from posetransfer.pose.transforms import (
    affine_keypoints,
    crop_keypoints,
    flip_keypoints,
    resize_keypoints,
    rotation_matrix,
)

__all__ = ["Border", "hflip", "resize", "crop", "rotate", "affine", "AugmentParams", "Augment"]

# How pixels from outside the source image are filled: "replicate" copies the nearest edge pixel
# (no black wedges the discriminator could learn to spot), or a fill colour (R, G, B).
Border = Union[str, tuple[int, int, int]]


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 H x W (x C) image, got {image.dtype} with shape {image.shape}")
    return np.ascontiguousarray(image)


def _border(border: Border, channels: int) -> tuple[int, tuple[float, ...]]:
    if isinstance(border, str):
        if border != "replicate":
            raise ValueError(f"border must be 'replicate' or an (R, G, B) fill colour, got {border!r}")
        return cv2.BORDER_REPLICATE, (0.0,) * 4
    colour = tuple(float(c) for c in border)
    if len(colour) not in (1, 3) or not all(0 <= c <= 255 for c in colour):
        raise ValueError(f"fill colour must be 1 or 3 values in 0..255, got {border!r}")
    if len(colour) == 1:
        colour = colour * max(channels, 1)
    return cv2.BORDER_CONSTANT, colour


def hflip(image: np.ndarray, kp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right; keypoints mirrored and their left/right labels swapped."""
    image = _check_image(image)
    return cv2.flip(image, 1), flip_keypoints(kp, image.shape[1])


def resize(
    image: np.ndarray, kp: np.ndarray, size: tuple[int, int], interpolation: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Resize to ``size = (H, W)``; area averaging when shrinking (no aliasing), bilinear otherwise."""
    image = _check_image(image)
    height, width = (int(s) for s in size)
    src = image.shape[:2]
    if interpolation is None:
        shrinking = height < src[0] or width < src[1]
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    out = cv2.resize(image, (width, height), interpolation=interpolation)
    return out, resize_keypoints(kp, src, (height, width))


def crop(
    image: np.ndarray,
    kp: np.ndarray,
    top: int,
    left: int,
    size: tuple[int, int],
    border: Border = "replicate",
) -> tuple[np.ndarray, np.ndarray]:
    """Cut the ``size`` window at ``(top, left)``; parts of it outside the image are padded by ``border``."""
    image = _check_image(image)
    height, width = image.shape[:2]
    top, left = int(top), int(left)
    ch, cw = (int(s) for s in size)
    if ch <= 0 or cw <= 0:
        raise ValueError(f"crop size must be positive, got {size}")
    y0, y1 = max(top, 0), min(top + ch, height)
    x0, x1 = max(left, 0), min(left + cw, width)
    if y0 >= y1 or x0 >= x1:
        raise ValueError(f"crop window {ch}x{cw} at ({top}, {left}) misses the {height}x{width} image")
    out = image[y0:y1, x0:x1]
    pads = (y0 - top, top + ch - y1, x0 - left, left + cw - x1)
    if any(pads):
        mode, value = _border(border, 1 if image.ndim == 2 else image.shape[2])
        out = cv2.copyMakeBorder(np.ascontiguousarray(out), *pads, mode, value=value)
    else:
        out = out.copy()
    return out, crop_keypoints(kp, top, left, (ch, cw))


def affine(
    image: np.ndarray,
    kp: np.ndarray,
    matrix: np.ndarray,
    out_size: tuple[int, int] | None = None,
    border: Border = "replicate",
    interpolation: int = cv2.INTER_LINEAR,
) -> tuple[np.ndarray, np.ndarray]:
    """Warp by an OpenCV ``2 x 3`` matrix (source -> output, on ``(x, y, 1)``) into ``out_size``."""
    image = _check_image(image)
    height, width = image.shape[:2] if out_size is None else (int(s) for s in out_size)
    mode, value = _border(border, 1 if image.ndim == 2 else image.shape[2])
    m = np.asarray(matrix, dtype=np.float64)
    out = cv2.warpAffine(image, m, (width, height), flags=interpolation, borderMode=mode, borderValue=value)
    return out, affine_keypoints(kp, m, (height, width))


def rotate(
    image: np.ndarray, kp: np.ndarray, angle_deg: float, border: Border = "replicate"
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate by ``angle_deg`` (counter-clockwise) about the image centre, keeping the size."""
    image = _check_image(image)
    return affine(image, kp, rotation_matrix(angle_deg, image.shape[:2]), border=border)


@dataclass(frozen=True)
class AugmentParams:
    """One drawn augmentation for images of ``size``: flip first, then crop box, then rotation.

    ``crop = (top, left, height, width)`` is resized back to ``size``; ``None`` means no crop.
    """

    size: tuple[int, int]
    flip: bool = False
    crop: tuple[int, int, int, int] | None = None
    angle: float = 0.0

    def matrix(self) -> np.ndarray | None:
        """The ``2 x 3`` warp (crop + resize back + rotation) after the flip, or None if identity."""
        if self.crop is None and self.angle == 0.0:
            return None
        height, width = self.size
        m = np.eye(3)
        if self.crop is not None:
            top, left, ch, cw = self.crop
            sx, sy = width / cw, height / ch
            # pixel centres: x' = (x - left + 0.5) * sx - 0.5, as cv2.resize maps them
            m = np.array([[sx, 0.0, (0.5 - left) * sx - 0.5], [0.0, sy, (0.5 - top) * sy - 0.5], [0, 0, 1]])
        if self.angle != 0.0:
            m = np.vstack([rotation_matrix(self.angle, self.size), [0, 0, 1]]) @ m
        return m[:2]


@dataclass(frozen=True)
class Augment:
    """Random flip / crop / rotation, a seeded callable ``(image, kp, rng) -> (image, kp)``.

    Args:
        flip: probability of a left-right flip (0.5 in both papers).
        crop: ``(min_scale, max_scale)``: a window of ``scale * H`` by ``scale * W`` (same scale on
            both axes, so the aspect ratio is kept) at a uniform position, resized back to
            ``H x W``; ``None`` = no crop.
        rotation: maximum angle in degrees; the angle is uniform in ``[-rotation, rotation]``.
        border: how pixels coming from outside the image are filled (see :data:`Border`).
        pair: for a data set of image pairs, draw ONE transform per pair and apply it to both
            images (:meth:`apply_pair`). The released PG2 data flips the two images of a pair
            together (its ``convert_market.py`` / ``convert_DF.py`` add the pairs of a separately
            flipped image folder, ``bounding_box_train_flip``, to the unflipped pairs), so a
            flipped condition image never meets an unflipped target. ``False``: each image of a
            pair gets its own draw.

    The output always has the input's size. All randomness comes from the ``rng`` argument, so
    a data set seeding one generator per sample is reproducible across workers.
    """

    flip: float = 0.5
    crop: tuple[float, float] | None = None
    rotation: float = 0.0
    border: Border = "replicate"
    pair: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.flip <= 1.0:
            raise ConfigError(f"augment flip must be a probability in [0, 1], got {self.flip}")
        if self.crop is not None:
            if len(self.crop) != 2 or not 0.0 < self.crop[0] <= self.crop[1] <= 1.0:
                raise ConfigError(f"augment crop must be (min_scale, max_scale) with 0 < min <= max <= 1, got {self.crop}")
        if not 0.0 <= self.rotation <= 180.0:
            raise ConfigError(f"augment rotation must be a maximum angle in [0, 180] degrees, got {self.rotation}")
        try:
            _border(self.border, 3)
        except ValueError as err:
            raise ConfigError(f"augment {err}") from None

    def sample(self, rng: np.random.Generator, size: tuple[int, int]) -> AugmentParams:
        """Draw one transform for images of ``size = (H, W)``."""
        height, width = (int(s) for s in size)
        flip = bool(rng.random() < self.flip) if self.flip > 0 else False
        box = None
        if self.crop is not None:
            scale = rng.uniform(self.crop[0], self.crop[1])
            ch, cw = max(1, round(scale * height)), max(1, round(scale * width))
            if (ch, cw) != (height, width):
                top = int(rng.integers(0, height - ch + 1))
                left = int(rng.integers(0, width - cw + 1))
                box = (top, left, ch, cw)
        angle = float(rng.uniform(-self.rotation, self.rotation)) if self.rotation > 0 else 0.0
        return AugmentParams(size=(height, width), flip=flip, crop=box, angle=angle)

    def apply(self, params: AugmentParams, image: np.ndarray, kp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Apply a drawn transform; call it on each image that should move the same way.

        Always returns a new image array (never the caller's), even for an identity draw.
        """
        image = _check_image(image)
        if tuple(image.shape[:2]) != tuple(params.size):
            raise ValueError(f"augmentation drawn for size {params.size}, applied to an image of {image.shape[:2]}")
        kp = np.asarray(kp, dtype=np.float32)
        if params.flip:
            image, kp = hflip(image, kp)
        matrix = params.matrix()
        if matrix is not None:
            image, kp = affine(image, kp, matrix, border=self.border)
        elif not params.flip:
            image, kp = image.copy(), kp.copy()
        return image, kp

    def __call__(
        self, image: np.ndarray, kp: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.apply(self.sample(rng, np.asarray(image).shape[:2]), image, kp)

    def apply_pair(
        self, first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray], rng: np.random.Generator
    ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """One draw applied to both ``(image, kp)`` of a pair (the images must have one size)."""
        if np.asarray(first[0]).shape[:2] != np.asarray(second[0]).shape[:2]:
            raise ValueError(f"pair images differ in size: {np.asarray(first[0]).shape[:2]} vs {np.asarray(second[0]).shape[:2]}")
        params = self.sample(rng, np.asarray(first[0]).shape[:2])
        return self.apply(params, *first), self.apply(params, *second)
