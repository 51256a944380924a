"""``Pipeline`` and ``posetransfer transfer`` on a tiny PG2 stage-I checkpoint written by the trainer's
checkpoint code (random weights: these tests check the plumbing, not image quality)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from posetransfer.cli import main
from posetransfer.errors import CheckpointError, DataError, PosetransferError
from posetransfer.inference import Pipeline, read_pose_file
from posetransfer.pose import extract as ex
from posetransfer.pose.io import format_annotation_line, write_annotations
from posetransfer.pose.library import library_pose
from posetransfer.pose.schema import visible

from _helpers import save_tiny_g1_checkpoint

SIZE = (32, 16)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_g1_checkpoint(tmp_path_factory.mktemp("run"), SIZE)


@pytest.fixture
def photo(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (90, 60, 3), dtype=np.uint8)
    path = tmp_path / "me.jpg"
    Image.fromarray(image).save(path, quality=95)
    return path


class LibraryBackend:
    """A fake detector returning the standing pose scaled to the image it is given."""

    name = "lib"

    def extract(self, image):
        h, w = image.shape[:2]
        return [ex.Detection(library_pose("standing_front", (h, w)), np.ones(18, np.float32), (0, 0, h, w), 1.0)]


def test_pipeline_with_a_library_pose(checkpoint, photo):
    pipe = Pipeline.from_checkpoint(checkpoint, device="cpu")
    assert pipe.image_size == SIZE and pipe.max_sources == 1
    result = pipe.transfer(photo, "walking")
    assert result.image.shape == (*SIZE, 3) and result.image.dtype == np.uint8
    assert result.sources[0].shape == (*SIZE, 3)
    np.testing.assert_array_equal(result.target_keypoints, library_pose("walking", SIZE))
    canvas = result.on_canvas()
    assert canvas.shape == (90, 60, 3)
    # the 90x45 window (height framing) is replaced, the 7/8 px side strips are the photo's own
    original = np.asarray(Image.open(photo))
    np.testing.assert_array_equal(canvas[:, :7], original[:, :7])
    assert not np.array_equal(canvas[:, 10:50], original[:, 10:50])
    # deterministic, and the pose matters
    np.testing.assert_array_equal(pipe(photo, "walking"), result.image)
    assert not np.array_equal(pipe(photo, "arms_up"), result.image)


def test_batch_matches_the_training_encodings(checkpoint, photo):
    from posetransfer.pose import encodings

    pipe = Pipeline.from_checkpoint(checkpoint, device="cpu")
    kp = library_pose("standing_front", SIZE)
    batch = pipe.batch([np.zeros((*SIZE, 3), np.uint8)], kp)
    np.testing.assert_array_equal(batch["target_heatmaps"][0].numpy(), encodings.disk_heatmaps(kp, SIZE, radius=2))
    assert batch["source_image"].shape == (1, 3, *SIZE) and float(batch["source_image"].min()) == -1.0


def test_pose_file_and_photo_targets(checkpoint, photo, tmp_path):
    pipe = Pipeline.from_checkpoint(checkpoint, device="cpu", backend=LibraryBackend())
    kp = library_pose("side", SIZE)
    write_annotations(tmp_path / "pose.csv", {"x.png": kp})
    from_file, _ = pipe.target_keypoints(tmp_path / "pose.csv")
    np.testing.assert_array_equal(from_file, np.where(visible(kp)[:, None], np.round(kp), -1))
    (tmp_path / "row.txt").write_text(format_annotation_line("x.png", kp) + "\n")  # a row without header
    np.testing.assert_array_equal(read_pose_file(tmp_path / "row.txt"), from_file)
    from_photo, _ = pipe.target_keypoints(photo)
    assert visible(from_photo).sum() >= 10 and from_photo.max() < SIZE[0]


def test_bad_pose_inputs(checkpoint, tmp_path):
    pipe = Pipeline.from_checkpoint(checkpoint, device="cpu")
    ys, xs = list(range(17)), list(range(17))
    (tmp_path / "p17.csv").write_text(f"name:keypoints_y:keypoints_x\nx.png:{ys}:{xs}\n")
    with pytest.raises(DataError, match=r"p17.csv, line 2: keypoints_y has 17 values, expected 18"):
        pipe.target_keypoints(tmp_path / "p17.csv")
    kp = library_pose("side", SIZE)
    write_annotations(tmp_path / "two.csv", {"a.png": kp, "b.png": kp})
    with pytest.raises(DataError, match="two.csv: holds 2 poses"):
        pipe.target_keypoints(tmp_path / "two.csv")
    write_annotations(tmp_path / "big.csv", {"a.png": library_pose("side", (256, 176))})
    with pytest.raises(DataError, match=r"big.csv: .* outside the model's 32x16 frame"):
        pipe.target_keypoints(tmp_path / "big.csv")
    with pytest.raises(PosetransferError, match="neither a file nor a built-in pose"):
        pipe.target_keypoints("moonwalk")
    with pytest.raises(PosetransferError, match=r"shape \(18, 2\)"):
        pipe.target_keypoints(np.zeros((17, 2), np.float32))


def test_bad_sources_and_checkpoints(checkpoint, tmp_path):
    pipe = Pipeline.from_checkpoint(checkpoint, device="cpu")
    (tmp_path / "x.jpg").write_text("text")
    with pytest.raises(DataError, match="x.jpg: not an image"):
        pipe.transfer(tmp_path / "x.jpg", "walking")
    with pytest.raises(DataError, match="nope.jpg: image file does not exist"):
        pipe.transfer(tmp_path / "nope.jpg", "walking")
    with pytest.raises(CheckpointError, match="checkpoint does not exist"):
        Pipeline.from_checkpoint(tmp_path / "no-run")


def test_several_sources_for_a_single_source_model(checkpoint, photo):
    pipe = Pipeline.from_checkpoint(checkpoint, device="cpu")
    result = pipe.transfer([photo, photo], "walking")
    assert len(result.sources) == 1 and "takes 1 source photo" in result.notes[0]


def test_a_folder_of_photos_is_its_images_by_name(checkpoint, photo, tmp_path):
    pipe = Pipeline.from_checkpoint(checkpoint, device="cpu")
    views = tmp_path / "views"
    views.mkdir()
    (views / "b.jpg").write_bytes(photo.read_bytes())
    (views / "a.png").write_bytes(b"")  # first by name: it is the one read, and it is empty
    (views / "notes.txt").write_text("left out")
    sources, notes = pipe.source_list(views)
    assert sources == [views / "a.png"] and "takes 1 source photo" in notes[0]
    with pytest.raises(DataError, match="a.png"):
        pipe.transfer(views, "walking")
    (views / "a.png").unlink()
    assert pipe.transfer([views], "walking").image.shape == (*SIZE, 3)
    (views / "b.jpg").unlink()
    with pytest.raises(DataError, match="holds no image files"):
        pipe.source_list([views])


def test_cli_transfer(checkpoint, photo, tmp_path, capsys):
    out = tmp_path / "out.png"
    args = ["transfer", "--checkpoint", str(checkpoint), "--source", str(photo), "--pose", "arms_up", "--device", "cpu"]
    assert main([*args, "--out", str(out)]) == 0
    assert Image.open(out).size == (SIZE[1], SIZE[0])
    assert main([*args, "--out", str(out), "--on-canvas", "--overwrite"]) == 0
    assert Image.open(out).size == (60, 90)
    bad = tmp_path / "bad.png"
    args[args.index("--pose") + 1] = str(tmp_path / "missing.csv")
    assert main([*args, "--out", str(bad)]) == 2
    assert "neither a file nor a built-in pose" in capsys.readouterr().err and not bad.exists()


def test_channels_last_networks_give_the_same_output(checkpoint, photo):
    """Pipeline runs its networks channels-last (as ``bench infer``); the output equals NCHW's to float rounding."""
    cl = Pipeline.from_checkpoint(checkpoint, device="cpu")
    plain = Pipeline.from_checkpoint(checkpoint, device="cpu", channels_last=False)
    conv = lambda p: next(m for m in p.nets["g1"].modules() if isinstance(m, torch.nn.Conv2d))  # noqa: E731
    assert conv(cl).weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv(plain).weight.is_contiguous(memory_format=torch.channels_last)
    framed, _, _ = cl.frame_photo(np.asarray(Image.open(photo)))
    batch = cl.batch([framed], library_pose("walking", SIZE))
    with torch.no_grad():
        a = cl.task.generate(cl.nets, batch)[cl.task.final_output]
        b = plain.task.generate(plain.nets, batch)[plain.task.final_output]
    assert (a - b).abs().max().item() < 1e-5
    diff = np.abs(cl(photo, "walking").astype(int) - plain(photo, "walking").astype(int))
    assert diff.max() <= 1
