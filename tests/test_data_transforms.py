"""Joint image + keypoint transforms: a painted dot must stay on its keypoint through every transform."""

from __future__ import annotations

import numpy as np
import pytest

from posetransfer.data.transforms import Augment, AugmentParams, affine, crop, hflip, resize, rotate
from posetransfer.errors import ConfigError
from posetransfer.pose.io import read_annotations
from posetransfer.pose.schema import KEYPOINT_INDEX, empty_pose
from posetransfer.utils.io import read_image

SIZE = (64, 48)
JOINT = KEYPOINT_INDEX["right_wrist"]


def dot_image(y: int, x: int, size=SIZE) -> tuple[np.ndarray, np.ndarray]:
    """A black image with a 3x3 white dot centred on (y, x), and a pose with the right wrist there."""
    image = np.zeros((*size, 3), np.uint8)
    image[y - 1 : y + 2, x - 1 : x + 2] = 255
    kp = empty_pose()
    kp[JOINT] = (y, x)
    return image, kp


def dot_centre(image: np.ndarray) -> np.ndarray:
    """Intensity-weighted centre (y, x) of the dot."""
    w = image[..., 0].astype(np.float64)
    ys, xs = np.indices(w.shape)
    return np.array([(w * ys).sum(), (w * xs).sum()]) / w.sum()


def assert_dot_on(image: np.ndarray, kp: np.ndarray, joint: int, atol: float) -> None:
    assert (kp[joint] >= 0).all(), "the joint should still be in the frame"
    np.testing.assert_allclose(dot_centre(image), kp[joint], atol=atol)


@pytest.mark.parametrize("y, x", [(10, 12), (40, 30), (55, 5)])
def test_hflip_keeps_the_dot_on_the_swapped_joint(y, x):
    image, kp = dot_image(y, x)
    out, okp = hflip(image, kp)
    assert out.shape == image.shape and out.dtype == np.uint8
    # the right wrist of the mirrored person is the left wrist
    assert (okp[JOINT] == -1).all()
    assert_dot_on(out, okp, KEYPOINT_INDEX["left_wrist"], atol=1e-9)
    np.testing.assert_array_equal(hflip(*hflip(image, kp))[0], image)


@pytest.mark.parametrize("dst", [(128, 96), (32, 24), (64, 80)])
def test_resize_keeps_the_dot_on_the_joint(dst):
    image, kp = dot_image(30, 20)
    out, okp = resize(image, kp, dst)
    assert out.shape == (*dst, 3)
    # simple coordinate scaling vs OpenCV's pixel-centre mapping: at most half the scale apart
    # when enlarging, under half an output pixel when shrinking (area averaging blurs the dot)
    scale = max(dst[0] / SIZE[0], dst[1] / SIZE[1], 1.0)
    assert_dot_on(out, okp, JOINT, atol=0.5 * scale + 1e-6)


def test_crop_keeps_the_dot_and_pads_with_the_border():
    image, kp = dot_image(30, 20)
    out, okp = crop(image, kp, 10, 5, (40, 30))
    assert out.shape == (40, 30, 3)
    assert_dot_on(out, okp, JOINT, atol=1e-9)
    image[...] = 7
    image[28:33, 18:23] = 255
    padded, pkp = crop(image, kp, -6, -4, (50, 60), border=(1, 2, 3))
    assert padded.shape == (50, 60, 3)
    np.testing.assert_array_equal(pkp[JOINT], (36, 24))
    np.testing.assert_array_equal(padded[0, 0], (1, 2, 3))  # filled
    np.testing.assert_array_equal(padded[6, 4], (7, 7, 7))  # the image's corner
    replicated, _ = crop(image, kp, -6, -4, (50, 60))
    np.testing.assert_array_equal(replicated[0, 0], (7, 7, 7))
    with pytest.raises(ValueError, match="misses"):
        crop(image, kp, 100, 0, (10, 10))


def test_crop_out_of_frame_makes_the_joint_missing():
    image, kp = dot_image(30, 20)
    _, okp = crop(image, kp, 0, 25, (30, 20))
    assert (okp == -1).all()


@pytest.mark.parametrize("angle", [30.0, -75.0, 180.0])
def test_rotate_keeps_the_dot_on_the_joint(angle):
    image, kp = dot_image(20, 30)
    out, okp = rotate(image, kp, angle)
    assert out.shape == image.shape
    assert_dot_on(out, okp, JOINT, atol=0.1)


def test_rotate_out_of_frame_makes_the_joint_missing():
    image, kp = dot_image(2, 2)  # a corner: leaves the frame when turned by 45 degrees
    _, okp = rotate(image, kp, 45.0)
    assert (okp[JOINT] == -1).all()


def test_affine_with_fill_colour():
    image, kp = dot_image(20, 20)
    m = np.array([[1.0, 0.0, 10.0], [0.0, 1.0, -5.0]])  # shift right 10, up 5
    out, okp = affine(image, kp, m, border=(0, 0, 200))
    np.testing.assert_array_equal(okp[JOINT], (15, 30))
    assert_dot_on(out, okp, JOINT, atol=1e-6)
    np.testing.assert_array_equal(out[2, 2], (0, 0, 200))


# ---- Augment ----


def test_augment_keeps_the_dot_on_the_joint():
    aug = Augment(flip=0.5, crop=(0.8, 0.95), rotation=25.0)
    rng = np.random.default_rng(0)
    flips = 0
    for _ in range(12):
        image, kp = dot_image(32, 24)  # the centre: never leaves the frame
        params = aug.sample(rng, SIZE)
        out, okp = aug.apply(params, image, kp)
        assert out.shape == image.shape and out.dtype == np.uint8
        joint = KEYPOINT_INDEX["left_wrist"] if params.flip else JOINT
        flips += params.flip
        assert_dot_on(out, okp, joint, atol=0.15)
    assert 0 < flips < 12


def test_augment_is_seeded_and_applies_one_draw_to_several_images(mini_market):
    poses = read_annotations(mini_market / "annotation.csv")
    names = list(poses)[:2]
    images = [read_image(mini_market / "images" / n) for n in names]
    aug = Augment(flip=0.5, crop=(0.9, 1.0), rotation=10.0)
    a = aug(images[0], poses[names[0]], np.random.default_rng(7))
    b = aug(images[0], poses[names[0]], np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[0].shape == images[0].shape
    draws = [aug.sample(np.random.default_rng(s), (128, 64)) for s in range(6)]
    assert len({(p.flip, p.crop, p.angle) for p in draws}) == 6
    # one draw, two views: each moves by the same warp (the same image twice gives twice the same)
    params = AugmentParams(size=(128, 64), flip=True, crop=(4, 2, 120, 60), angle=8.0)
    v0 = aug.apply(params, images[0], poses[names[0]])
    v1 = aug.apply(params, images[1], poses[names[1]])
    np.testing.assert_array_equal(v0[0], aug.apply(params, images[0].copy(), poses[names[0]])[0])
    assert v1[0].shape == (128, 64, 3) and v1[1].shape == (18, 2)
    with pytest.raises(ValueError, match="drawn for size"):
        aug.apply(params, images[0][:100], poses[names[0]])


def test_augment_identity_when_disabled():
    image, kp = dot_image(10, 10)
    out, okp = Augment(flip=0.0)(image, kp, np.random.default_rng(0))
    np.testing.assert_array_equal(out, image)
    np.testing.assert_array_equal(okp, kp)


@pytest.mark.parametrize(
    "kwargs", [{"flip": 1.5}, {"crop": (0.0, 1.0)}, {"crop": (0.9, 0.8)}, {"rotation": -5}, {"border": "wrap"}]
)
def test_augment_rejects_bad_settings(kwargs):
    with pytest.raises(ConfigError):
        Augment(**kwargs)


def test_augment_never_returns_the_callers_arrays():
    image, kp = dot_image(10, 10)
    out, okp = Augment(flip=0.0)(image, kp, np.random.default_rng(0))
    out[...] = 1
    okp[...] = 3
    assert image.max() == 255 and kp[JOINT, 0] == 10
