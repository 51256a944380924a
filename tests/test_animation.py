"""``posetransfer animate`` / ``pose track`` / ``Pipeline.animate`` on synthetic people walking
(posetransfer.data.synth, no downloads) with a tiny PG2 stage-I checkpoint (random weights: these
tests check the plumbing, frame counts, sizes and rates, not image quality)."""

from __future__ import annotations

import numpy as np
import pytest

av = pytest.importorskip("av")

from posetransfer.cli import main  # noqa: E402
from posetransfer.data.motion import walking_frames  # noqa: E402
from posetransfer.inference import Pipeline  # noqa: E402
from posetransfer.pose import extract as ex  # noqa: E402
from posetransfer.pose.schema import visible  # noqa: E402
from posetransfer.pose.tracking import read_track  # noqa: E402
from posetransfer.utils.io import save_image  # noqa: E402
from posetransfer.utils.video import VideoWriter, video_info  # noqa: E402

from _helpers import SilhouetteBackend, save_tiny_g1_checkpoint  # noqa: E402

SIZE = (32, 16)
CLIP = (256, 192)


def walking(n: int, size=CLIP, seed: int = 0, fps: float = 10.0, blank=()) -> list[tuple[np.ndarray, np.ndarray]]:
    """(frame, keypoints) of one synthetic person walking towards the camera (data.motion)."""
    return list(walking_frames(n, size, seed=seed, fps=fps, blank=set(blank)))


def write_clip(path, items, fps=10.0):
    with VideoWriter(path, fps) as w:
        for image, _ in items:
            w.write(image)
    return path


def write_frames(folder, items):
    for i, (image, _) in enumerate(items):
        save_image(folder / f"{i:04d}.png", image)
    return folder


@pytest.fixture(autouse=True)
def silhouette_backend():
    ex.register_backend("silhouette", SilhouetteBackend)
    yield
    ex.unregister_backend("silhouette")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_g1_checkpoint(tmp_path_factory.mktemp("run"), SIZE)


@pytest.fixture(scope="module")
def source_photo(tmp_path_factory):
    image, _ = walking(1, size=(256, 176), seed=7)[0]
    path = tmp_path_factory.mktemp("src") / "me.png"
    save_image(path, image)
    return path


@pytest.fixture(scope="module")
def walking_clip(tmp_path_factory):
    clip = walking(8)
    return write_clip(tmp_path_factory.mktemp("clip") / "walk.mp4", clip), np.stack([kp for _, kp in clip])


def test_animate_a_walking_video_with_mediapipe(checkpoint, source_photo, walking_clip, tmp_path, capsys):
    pytest.importorskip("mediapipe")
    out = tmp_path / "out.mp4"
    rc = main(["animate", "--checkpoint", str(checkpoint), "--source", str(source_photo), "--driving",
               str(walking_clip[0]), "--out", str(out), "--batch", "3", "--no-progress"])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert video_info(out) == {"frames": 8, "fps": 10.0, "size": SIZE}
    assert "8 frames, 32x16, 10 fps; generation" in captured.out and "frames/s" in captured.out


def test_pose_track_then_animate_from_the_pose_file(checkpoint, source_photo, walking_clip, tmp_path, capsys):
    pytest.importorskip("mediapipe")
    poses = tmp_path / "poses.csv"
    rc = main(["pose", "track", str(walking_clip[0]), "--out", str(poses), "--no-progress",
               "--preview", str(tmp_path / "p.gif")])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    track = read_track(poses)
    assert len(track) == 8 and track.fps == 10.0 and track.size == CLIP and not track.lost.any()
    truth = walking_clip[1]
    both = visible(track.keypoints) & visible(truth)
    err = np.linalg.norm(track.keypoints - truth, axis=-1)[both]
    assert both.sum() >= 8 * 14 and np.median(err) < 6.0, (both.sum(), np.median(err))  # measured 3 px
    assert video_info(tmp_path / "p.gif")["frames"] == 8
    assert "wrote" in capsys.readouterr().out
    assert main(["pose", "track", str(walking_clip[0]), "--out", str(poses), "--no-progress"]) == 2
    assert "poses.csv: already exists" in capsys.readouterr().err

    gif = tmp_path / "side.gif"
    rc = main(["animate", "--checkpoint", str(checkpoint), "--source", str(source_photo), "--driving", str(poses),
               "--out", str(gif), "--side-by-side", "--fps", "5", "--no-progress", "--backend", "silhouette"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    assert video_info(gif) == {"frames": 8, "fps": 5.0, "size": (32, 32)}  # skeleton | result: no driving frames


def test_pipeline_animate_streams_batches_that_match_single_frames(checkpoint, source_photo, tmp_path):
    frames_dir = write_frames(tmp_path / "clip", walking(7, size=(96, 72)))
    pipe = Pipeline.from_checkpoint(checkpoint, device="cpu", backend="silhouette")
    one = pipe.animate(source_photo, frames_dir, batch_size=1)
    assert len(one) == 7 and one.fps == 25.0 and one.poses.shape == (7, 18, 2)
    singles = list(one)
    batched = list(pipe.animate(source_photo, frames_dir, batch_size=3))
    assert len(singles) == len(batched) == 7 and singles[0].shape == (*SIZE, 3) and singles[0].dtype == np.uint8
    for a, b in zip(singles, batched):
        assert np.abs(a.astype(int) - b).max() <= 1
    # each frame is what Pipeline.transfer makes for that target pose
    np.testing.assert_array_equal(pipe.transfer(source_photo, one.poses[4]).image, singles[4])
    # retargeted: the first pose stands on the source's neck (in the model frame); later ones move
    from posetransfer.utils.io import read_image

    photo = read_image(source_photo)
    _, window, _ = pipe.frame_photo(photo)
    neck = window.keypoints_to_frame(SilhouetteBackend().extract(photo)[0].keypoints)[1]
    np.testing.assert_allclose(one.poses[0][1], neck, atol=0.5)
    assert not np.allclose(one.poses[0], one.poses[-1])
    side = pipe.animate(source_photo, frames_dir, side_by_side=True, retarget=False)
    frames = list(side)
    plain = list(pipe.animate(source_photo, frames_dir, retarget=False))
    assert pipe.animate(source_photo, frames_dir, fps=12).fps == 12.0  # a folder's rate (default 25)
    assert side.frame_size == (32, 48) and frames[0].shape == (32, 48, 3)
    np.testing.assert_array_equal(frames[2][:, 32:], plain[2])  # driving frame | skeleton | result
    assert (frames[2][:, 16:32] == 255).mean() > 0.5  # the skeleton is drawn on white
    assert not np.array_equal(frames[2][:, :16], frames[2][:, 32:])


def test_lost_frames_are_held_or_skipped(checkpoint, source_photo, tmp_path):
    frames_dir = write_frames(tmp_path / "clip", walking(10, size=(96, 72), blank={3, 4, 5}))
    pipe = Pipeline.from_checkpoint(checkpoint, device="cpu", backend="silhouette")
    from posetransfer.pose.tracking import SmoothingConfig

    no_fill = SmoothingConfig(max_gap=1)
    held = pipe.animate(source_photo, frames_dir, smoothing=no_fill)
    assert len(held) == 10 and "3 frame(s) without a person: the last pose held" in held.notes
    np.testing.assert_array_equal(held.poses[3], held.poses[2])
    np.testing.assert_array_equal(held.poses[5], held.poses[2])
    skipped = pipe.animate(source_photo, frames_dir, smoothing=no_fill, lost="skip")
    assert len(skipped) == 7 and skipped.indices.tolist() == [0, 1, 2, 6, 7, 8, 9]
    assert "3 frame(s) without a person skipped" in skipped.notes
    assert len(list(skipped)) == 7
    filled = pipe.animate(source_photo, frames_dir)  # a 3-frame gap is within the default max_gap of 5
    assert len(filled) == 10 and any("interpolated" in n for n in filled.notes)


def _run_fail(capsys, args):
    rc = main(["animate", *args, "--backend", "silhouette", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_bad_inputs_are_one_line_and_leave_no_file(checkpoint, source_photo, tmp_path, capsys):
    base = ["--checkpoint", str(checkpoint), "--source", str(source_photo)]
    out = tmp_path / "out" / "anim.mp4"
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    assert "notes.mp4: not a video FFmpeg can read" in _run_fail(capsys, base + ["--driving", str(text), "--out", str(out)])
    empty = tmp_path / "empty.avi"
    c = av.open(str(empty), "w", format="avi")
    s = c.add_stream("mpeg4", rate=10)
    s.width, s.height, s.pix_fmt = 16, 16, "yuv420p"
    c.start_encoding()
    c.close()
    assert "empty.avi: video holds no frame" in _run_fail(capsys, base + ["--driving", str(empty), "--out", str(out)])
    nobody = write_clip(tmp_path / "nobody.mp4", walking(4, size=(64, 48), blank=range(4)))
    assert "nobody.mp4: no person found in any of its 4 frame(s)" in _run_fail(
        capsys, base + ["--driving", str(nobody), "--out", str(out)])
    blank_photo = tmp_path / "wall.png"
    save_image(blank_photo, np.full((64, 48, 3), 200, np.uint8))
    clip = write_frames(tmp_path / "clip", walking(3, size=(64, 48)))
    msg = _run_fail(capsys, ["--checkpoint", str(checkpoint), "--source", str(blank_photo), "--driving", str(clip),
                             "--out", str(out)])  # fmt: skip
    assert "wall.png: no person found" in msg and "--no-retarget" in msg
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "cannot be written" in _run_fail(capsys, base + ["--driving", str(clip), "--out", str(blocker / "a.mp4")])
    assert "cannot write .avi" in _run_fail(capsys, base + ["--driving", str(clip), "--out", str(tmp_path / "a.avi")])
    assert not out.exists() and not out.parent.exists() or not any(out.parent.iterdir())
    # an existing output is kept unless --overwrite
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(b"keep")
    assert "already exists (use --overwrite" in _run_fail(capsys, base + ["--driving", str(clip), "--out", str(out)])
    assert out.read_bytes() == b"keep"
    assert main(["animate", *base, "--driving", str(clip), "--out", str(out), "--overwrite", "--backend", "silhouette",
                 "--no-progress"]) == 0  # fmt: skip
    assert video_info(out)["frames"] == 3
    assert sorted(p.name for p in out.parent.iterdir()) == ["anim.mp4"]


def test_a_large_video_is_downscaled_and_said(checkpoint, source_photo, tmp_path, capsys):
    import cv2

    big = [(cv2.resize(img, (1280, 960), interpolation=cv2.INTER_NEAREST), kp) for img, kp in walking(2, size=(96, 72))]
    driving = write_clip(tmp_path / "big.mp4", big)
    out = tmp_path / "o.mp4"
    rc = main(["animate", "--checkpoint", str(checkpoint), "--source", str(source_photo), "--driving", str(driving),
               "--out", str(out), "--backend", "silhouette", "--no-progress", "--no-retarget"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "frames downscaled from 960x1280 to 768x1024" in err
    assert video_info(out)["frames"] == 2


def test_data_walk_writes_a_driving_clip(tmp_path, capsys):
    out = tmp_path / "walk.mp4"
    assert main(["data", "walk", "--out", str(out), "--frames", "3", "--size", "64x48", "--fps", "8"]) == 0
    assert video_info(out) == {"frames": 3, "fps": 8.0, "size": (64, 48)}
    assert "wrote" in capsys.readouterr().out
    first = next(walking_frames(3, (64, 48), fps=8))
    assert first[0].shape == (64, 48, 3) and visible(first[1]).sum() >= 14
    assert main(["data", "walk", "--out", str(out), "--frames", "3"]) == 2
    assert "walk.mp4: already exists" in capsys.readouterr().err


def test_bench_animate_reports_the_three_speeds(checkpoint, capsys):
    import json

    rc = main(["bench", "animate", "--checkpoint", str(checkpoint), "--frames", "4", "--batch", "1,2",
               "--repeats", "1", "--backend", "silhouette", "--json"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    info = json.loads(out)
    assert info["task"] == "pg2_stage1" and info["image_size"] == list(SIZE)
    assert [r["batch"] for r in info["rows"]] == [1, 2] and all(r["frames"] == 4 for r in info["rows"])
    assert all(r["bare_fps"] > 0 and r["generation_fps"] > 0 and r["total_fps"] > 0 for r in info["rows"])


def test_frames_stream_through(checkpoint, source_photo, tmp_path, monkeypatch):
    """Decoding, generation and output follow each other batch by batch: nothing reads ahead."""
    import posetransfer.utils.io as uio

    frames_dir = write_frames(tmp_path / "clip", walking(7, size=(96, 72)))
    pipe = Pipeline.from_checkpoint(checkpoint, device="cpu", backend="silhouette")
    anim = pipe.animate(source_photo, frames_dir, batch_size=2, side_by_side=True)  # tracking reads all 7
    reads = []
    real = uio.read_image
    monkeypatch.setattr(uio, "read_image", lambda p, *a, **k: reads.append(p) or real(p, *a, **k))
    frames = iter(anim)
    next(frames)
    assert len(reads) == 1  # the first output frame needed the first driving frame only
    next(frames), next(frames)
    assert len(reads) == 3
    assert len(list(frames)) == 4 and len(reads) == 7


def test_bench_animate_builds_a_config_with_random_weights(capsys):
    import json
    from pathlib import Path

    config = Path(__file__).resolve().parents[1] / "configs" / "debug" / "tiny.yaml"
    rc = main(["bench", "animate", "--config", str(config), "--frames", "2", "--batch", "2", "--repeats", "1",
               "--backend", "silhouette", "--json"])  # fmt: skip
    out = capsys.readouterr()
    assert rc == 0, out.err
    info = json.loads(out.out)
    assert info["image_size"] == [64, 32] and info["rows"][0]["frames"] == 2 and "random weights" in info["model"]
