"""Pose extraction: backend registry, resolution handling, several/no persons, bad image files,
the ``pose`` command, the built-in pose library, and (with the pose extra) mediapipe on real photos."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from posetransfer.cli import main
from posetransfer.errors import DataError, PosetransferError
from posetransfer.pose import extract as ex
from posetransfer.pose.io import read_annotations, write_annotations
from posetransfer.pose.library import POSES, library_pose
from posetransfer.pose.schema import KEYPOINT_INDEX, visible
from posetransfer.utils.io import read_image

# A pose in relative coordinates (fraction of height, width): the backend below scales it to
# whatever image it receives, like a real detector would.
REL = library_pose("standing_front", (1000, 500), fit=False) / np.array([1000, 500], np.float32)


class FakeBackend:
    """Finds ``persons`` people (the first one full size, others smaller) in images at least
    ``min_height`` px tall whose mean is not black; records the shapes it was given."""

    name = "fake"

    def __init__(self, persons: int = 1, min_height: int = 0):
        self.persons = persons
        self.min_height = min_height
        self.calls: list[tuple[int, ...]] = []

    def extract(self, image):
        self.calls.append(image.shape)
        h, w = image.shape[:2]
        if h < self.min_height or image.mean() < 5:
            return []
        out = []
        for i in range(self.persons):
            s = 1.0 / (i + 1)
            kp = (REL * s * np.array([h, w], np.float32)).astype(np.float32)
            out.append(ex.Detection(kp, np.ones(18, np.float32), (0.0, 0.0, h * s, w * s), 0.9))
        return out[::-1]  # smallest first: the caller must sort


@pytest.fixture
def fake():
    backend = FakeBackend()
    ex.register_backend("fake", lambda **kw: backend)
    yield backend
    ex.unregister_backend("fake")


def _png(path, shape=(200, 100, 3), value=128):
    Image.fromarray(np.full(shape, value, np.uint8)).save(path)
    return path


# -- registry -----------------------------------------------------------------------------------


def test_get_backend_unknown_name_lists_available():
    with pytest.raises(PosetransferError, match="unknown pose backend 'nope'.*mediapipe"):
        ex.get_backend("nope")


def test_get_backend_without_the_extra_says_how_to_install():
    try:
        import mediapipe  # noqa: F401
    except ImportError:
        with pytest.raises(PosetransferError, match=r"pip install 'posetransfer\[pose\]'"):
            ex.get_backend("mediapipe")
    else:
        pytest.skip("mediapipe is installed here")


def test_registered_backend_is_returned(fake):
    assert ex.get_backend("fake") is fake
    assert isinstance(fake, ex.PoseBackend)
    assert "fake" in ex.available_backends()


# -- resolution, several persons, no person --------------------------------------------------


def test_huge_photo_is_downscaled_before_detection_and_mapped_back(fake):
    image = np.full((4000, 6000, 3), 100, np.uint8)
    result = ex.extract_pose(image, fake)
    assert fake.calls == [(683, 1024, 3)]  # max side 1024
    expected = REL * np.array([4000, 6000], np.float32)
    np.testing.assert_allclose(result.keypoints, expected, atol=6.0)  # 1 px at 1024 = 5.86 px here
    assert result.detection.bbox[2] == pytest.approx(4000, rel=1e-3)


def test_small_photo_is_upscaled_when_nothing_is_found():
    backend = FakeBackend(min_height=256)
    image = np.full((128, 64, 3), 100, np.uint8)
    result = ex.extract_pose(image, backend)
    assert backend.calls == [(128, 64, 3), (512, 256, 3)]
    np.testing.assert_allclose(result.keypoints[visible(result.keypoints)],
                               (REL * [128, 64])[visible(REL)], atol=0.6)  # fmt: skip


def test_several_persons_keep_the_largest_and_say_so():
    backend = FakeBackend(persons=3)
    result = ex.extract_pose(np.full((300, 200, 3), 100, np.uint8), backend, source="group.jpg")
    assert result.num_persons == 3
    assert result.detection.bbox == (0.0, 0.0, 300.0, 200.0)
    assert result.notes == ["group.jpg: 3 persons found, keeping the largest"]


def test_no_person_raises_naming_the_file(fake):
    with pytest.raises(ex.NoPersonError, match="empty.png: no person found"):
        ex.extract_pose(np.zeros((300, 200, 3), np.uint8), fake, source="empty.png")


def test_detection_rejects_non_rgb_uint8(fake):
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        ex.detect_persons(np.zeros((10, 10), np.uint8), fake)


# -- bad and unusual image files (utils.io.read_image) -----------------------------------------


def test_not_an_image(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("hello")
    with pytest.raises(DataError, match=r"notes.jpg: not an image"):
        read_image(p)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files(tmp_path, fmt):
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format=fmt)
    p = tmp_path / f"cut.{fmt.lower()}"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(DataError, match=r"cut\.\w+: unreadable image"):
        read_image(p)


def test_exif_rotation_is_applied(tmp_path):
    image = np.zeros((40, 20, 3), np.uint8)
    image[:10] = 255  # white top band
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    p = tmp_path / "rot.jpg"
    Image.fromarray(image).save(p, exif=exif, quality=95)
    out = read_image(p)
    assert out.shape == (20, 40, 3)
    assert out[:, -5:].mean() > 200 and out[:, :20].mean() < 50  # the band is now on the right


def test_grayscale_rgba_cmyk_16bit(tmp_path):
    Image.fromarray(np.full((8, 6), 77, np.uint8), mode="L").save(tmp_path / "g.png")
    assert read_image(tmp_path / "g.png").shape == (8, 6, 3)
    assert (read_image(tmp_path / "g.png") == 77).all()

    rgba = np.zeros((8, 6, 4), np.uint8)
    rgba[..., 0] = 255  # red, fully transparent on the left half
    rgba[:, 3:, 3] = 255
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert (out[:, :3] == 255).all() and (out[:, 3:] == [255, 0, 0]).all()  # composited on white

    Image.new("CMYK", (6, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg")  # red in CMYK
    out = read_image(tmp_path / "c.jpg")
    assert out.shape == (8, 6, 3) and out[..., 0].mean() > 200 and out[..., 1:].mean() < 60

    Image.fromarray(np.full((8, 6), 257 * 100, np.uint16)).save(tmp_path / "d.png")
    out = read_image(tmp_path / "d.png")
    assert out.dtype == np.uint8 and out.shape == (8, 6, 3) and (out == 100).all()  # 25700 / 65535 * 255


def test_extract_from_files_lists_unreadable_and_no_person(tmp_path, fake):
    good = _png(tmp_path / "good.png")
    dark = _png(tmp_path / "dark.png", value=0)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk")
    poses, no_person, unreadable = ex.extract_poses_from_files([good, dark, bad], fake)
    assert list(poses) == [good] and list(no_person) == [dark] and list(unreadable) == [bad]
    assert "no person found" in no_person[dark] and "bad.png" in unreadable[bad]


# -- the pose command --------------------------------------------------------------------------


def test_cli_pose_extract_writes_only_people_and_previews(tmp_path, fake, capsys):
    a, b = _png(tmp_path / "a.png"), _png(tmp_path / "b.png", value=0)
    out, prev = tmp_path / "ann.csv", tmp_path / "prev"
    assert main(["pose", "extract", str(a), str(b), "--out", str(out), "--preview", str(prev),
                 "--backend", "fake", "--no-progress"]) == 0  # fmt: skip
    ann = read_annotations(out)
    assert list(ann) == ["a.png"]
    np.testing.assert_allclose(ann["a.png"], np.where(visible(REL)[:, None], np.round(REL * [200, 100]), -1))
    err = capsys.readouterr().err
    assert "no person: " in err and "b.png: no person found" in err
    assert (prev / "a.png").is_file() and not (prev / "b.png").exists()


def test_cli_pose_extract_unreadable_file_writes_nothing(tmp_path, fake, capsys):
    a = _png(tmp_path / "a.png")
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    out = tmp_path / "ann.csv"
    assert main(["pose", "extract", str(a), str(bad), "--out", str(out), "--backend", "fake", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "bad.jpg: not an image" in err and "nothing written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "bad.jpg"]  # no CSV, no temp file
    assert main(["pose", "extract", str(a), str(bad), "--out", str(out), "--backend", "fake",
                 "--no-progress", "--skip-unreadable"]) == 0  # fmt: skip
    assert list(read_annotations(out)) == ["a.png"]


def test_cli_pose_extract_no_person_anywhere_is_an_error(tmp_path, fake, capsys):
    b = _png(tmp_path / "b.png", value=0)
    out = tmp_path / "ann.csv"
    assert main(["pose", "extract", str(b), "--out", str(out), "--backend", "fake", "--no-progress"]) == 2
    assert "no person found in any" in capsys.readouterr().err and not out.exists()


def test_evaluate_extractor_with_a_perfect_backend(tmp_path):
    """A backend that returns the annotation itself scores 0 px / PCK 1 (checks the bookkeeping)."""
    truth = {f"p{i}.png": library_pose(name, (64, 32)) for i, name in enumerate(["standing_front", "side"])}
    (tmp_path / "images").mkdir()
    for name in truth:
        _png(tmp_path / "images" / name, (64, 32, 3), value=10 + len(name))
    write_annotations(tmp_path / "annotation.csv", truth)

    class Oracle:
        name = "oracle"
        calls = iter(truth.values())

        def extract(self, image):
            return [ex.Detection(next(self.calls).copy(), np.ones(18, np.float32), (0, 0, 64, 32), 1.0)]

    result = ex.evaluate_extractor(tmp_path, Oracle())
    rounded = sum(int(visible(np.round(k)).sum()) for k in truth.values())
    assert result["images"] == 2 and result["no_person"] == 0 and result["keypoints_compared"] == rounded
    assert result["median_error_px"] < 0.5 and result["pck@0.05"] == 1.0


# -- built-in pose library ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [(256, 176), (128, 64)])
def test_library_poses_are_in_frame_and_left_right_correct(size):
    for name in POSES:
        kp = library_pose(name, size)
        assert kp.shape == (18, 2) and kp.dtype == np.float32
        vis = visible(kp)
        assert vis.sum() >= 10, name
        assert (kp[vis, 0] <= size[0] - 1).all() and (kp[vis, 1] <= size[1] - 1).all()
    rs, ls = KEYPOINT_INDEX["right_shoulder"], KEYPOINT_INDEX["left_shoulder"]
    front, back = library_pose("standing_front", size), library_pose("back", size)
    assert front[rs, 1] < front[ls, 1]  # the person's right is on the image's left when facing us
    assert back[rs, 1] > back[ls, 1] and not visible(back)[KEYPOINT_INDEX["nose"]]


def test_library_fit_keeps_wide_poses_inside_a_narrow_frame():
    assert visible(library_pose("arms_out", (128, 64))).all()
    assert not visible(library_pose("arms_out", (128, 64), fit=False))[[KEYPOINT_INDEX["right_wrist"]]].any()
    with pytest.raises(PosetransferError, match="unknown pose 'moonwalk'"):
        library_pose("moonwalk", (128, 64))


def test_cli_pose_library(tmp_path, capsys):
    assert main(["pose", "library"]) == 0
    assert capsys.readouterr().out.split() == list(POSES)
    out = tmp_path / "poses.csv"
    assert main(["pose", "library", "--size", "128x64", "--out", str(out), "--preview", str(tmp_path / "p")]) == 0
    assert len(read_annotations(out)) == len(POSES) and len(list((tmp_path / "p").iterdir())) == len(POSES)
    assert main(["pose", "library", "--out", str(out)]) == 2


# -- mediapipe (needs the pose extra: run with .venv-pose/bin/pytest) --------------------------


def test_mediapipe_landmark_mapping():
    pytest.importorskip("mediapipe")
    from posetransfer.pose.mediapipe_backend import landmarks_to_keypoints

    lm = np.zeros((33, 3))
    lm[:, 2] = 1.0
    lm[11] = (0.75, 0.25, 1.0)  # mediapipe's left shoulder (the person's left)
    lm[12] = (0.25, 0.25, 1.0)
    lm[5] = (0.40, 0.10, 0.9)  # right eye
    lm[0] = (0.50, 0.10, 0.2)  # nose, below the threshold
    lm[28] = (0.50, 1.20, 1.0)  # right ankle below the image
    kp, conf = landmarks_to_keypoints(lm, (200, 100), visibility_threshold=0.5)
    np.testing.assert_allclose(kp[KEYPOINT_INDEX["left_shoulder"]], (49.5, 74.5))
    np.testing.assert_allclose(kp[KEYPOINT_INDEX["right_shoulder"]], (49.5, 24.5))
    np.testing.assert_allclose(kp[KEYPOINT_INDEX["neck"]], (49.5, 49.5))
    np.testing.assert_allclose(kp[KEYPOINT_INDEX["right_eye"]], (19.5, 39.5))
    assert conf[KEYPOINT_INDEX["right_eye"]] == pytest.approx(0.9)
    for name in ("nose", "right_ankle"):
        assert (kp[KEYPOINT_INDEX[name]] == -1).all() and conf[KEYPOINT_INDEX[name]] == 0


def test_mediapipe_on_real_deepfashion_photos(mini_fashion):
    pytest.importorskip("mediapipe")
    backend = ex.get_backend("mediapipe")
    ann = read_annotations(mini_fashion / "annotation.csv")
    errors = []
    for name in list(ann)[:6]:
        kp = ex.extract_pose(read_image(mini_fashion / "images" / name), backend, source=name).keypoints
        both = visible(kp) & visible(ann[name])
        errors += list(np.linalg.norm(kp - ann[name], axis=-1)[both])
    assert len(errors) > 50 and np.median(errors) < 6.0  # measured on all 245: 2.96 px


def test_mediapipe_no_person_message():
    pytest.importorskip("mediapipe")
    backend = ex.get_backend("mediapipe")
    with pytest.raises(ex.NoPersonError, match=r"wall.png: no person found \(the mediapipe backend"):
        ex.extract_pose(np.full((300, 200, 3), 200, np.uint8), backend, source="wall.png")
