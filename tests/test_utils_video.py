"""utils.video: MP4/GIF round trips through PyAV (frame count, size, rate, colours), downscaling,
folders of frames, and every bad input as one DataError with no file left behind."""

from __future__ import annotations

import numpy as np
import pytest

av = pytest.importorskip("av")

from posetransfer.errors import DataError  # noqa: E402
from posetransfer.utils.video import VideoReader, VideoWriter, check_output, video_info  # noqa: E402


def frames(n: int, h: int = 32, w: int = 24) -> list[np.ndarray]:
    out = []
    for i in range(n):
        a = np.full((h, w, 3), 40, np.uint8)
        a[4:12, 4:12] = (200, 30, 90)
        a[h // 2 :, :, 1] = 20 * i
        out.append(a)
    return out


def write(path, items, fps=12.5, **kw):
    with VideoWriter(path, fps, **kw) as w:
        for f in items:
            w.write(f)
    return w


@pytest.mark.parametrize("ext,tol", [("mp4", 4), ("gif", 0)])
def test_round_trip(tmp_path, ext, tol):
    path = tmp_path / f"clip.{ext}"
    src = frames(7)
    assert write(path, src).frames == 7
    assert video_info(path) == {"frames": 7, "fps": 12.5, "size": (32, 24)}
    reader = VideoReader(path)
    assert reader.size == (32, 24) and reader.fps == 12.5 and not reader.downscaled
    back = list(reader)
    assert len(back) == 7
    for a, b in zip(src, back):  # H.264 is lossy; the GIF palette holds these few colours exactly
        assert np.abs(a.astype(int) - b).mean() <= tol
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"clip.{ext}"]  # no temporary file left


def test_odd_sizes_are_padded_for_h264_and_large_frames_downscaled(tmp_path):
    path = tmp_path / "odd.mp4"
    write(path, frames(2, 33, 21))
    assert video_info(path)["size"] == (34, 22)  # yuv420p needs even sizes: one edge row/column added
    big = tmp_path / "big.mp4"
    write(big, frames(3, 200, 120), fps=30)
    reader = VideoReader(big, max_side=50)
    assert reader.source_size == (200, 120) and reader.size == (50, 30) and reader.downscaled
    assert [f.shape for f in reader] == [(50, 30, 3)] * 3
    assert len(list(VideoReader(big, limit=2))) == 2


def test_folder_of_frames(tmp_path):
    from posetransfer.utils.io import save_image

    for i, f in enumerate(frames(3)):
        save_image(tmp_path / "clip" / f"{i:03d}.png", f)
    reader = VideoReader(tmp_path / "clip", fps=8)
    assert reader.fps == 8 and reader.frames == 3 and reader.size == (32, 24)
    np.testing.assert_array_equal(list(reader)[2], frames(3)[2])
    assert VideoReader(tmp_path / "clip").fps == 25.0
    save_image(tmp_path / "clip" / "003.png", np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(DataError, match="003.png: frame size 10x10 differs from the first frame's 32x24"):
        list(VideoReader(tmp_path / "clip"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: folder holds no image"):
        VideoReader(tmp_path / "empty")


def test_bad_inputs(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    with pytest.raises(DataError, match="notes.mp4: not a video FFmpeg can read"):
        VideoReader(text)
    with pytest.raises(DataError, match="nothing.mp4: does not exist"):
        VideoReader(tmp_path / "nothing.mp4")
    for fmt, codec, message in [("avi", "mpeg4", "video holds no frame"), ("mp4", "libx264", "holds no video stream")]:
        empty = tmp_path / f"empty.{fmt}"  # a valid container closed before any frame
        c = av.open(str(empty), "w", format=fmt)
        s = c.add_stream(codec, rate=10)
        s.width, s.height, s.pix_fmt = 16, 16, "yuv420p"
        c.start_encoding()
        c.close()
        with pytest.raises(DataError, match=f"empty.{fmt}: {message}"):
            VideoReader(empty)


def test_bad_outputs_leave_nothing(tmp_path):
    with pytest.raises(DataError, match=r"out.avi: cannot write .avi: use one of .gif, .m4v, .mov, .mp4"):
        check_output(tmp_path / "out.avi")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DataError, match="cannot be written: its folder cannot be created"):
        check_output(blocker / "sub" / "out.mp4")
    done = tmp_path / "done.mp4"
    write(done, frames(2))
    before = done.read_bytes()
    with pytest.raises(DataError, match="done.mp4: already exists \\(use --overwrite"):
        write(done, frames(3))
    assert done.read_bytes() == before
    write(done, frames(3), overwrite=True)
    assert video_info(done)["frames"] == 3
    # no frame at all, and a failure half way: no file, no temporary file
    with pytest.raises(DataError, match="none.mp4: no frame to write"):
        write(tmp_path / "none.mp4", [])
    with pytest.raises(ValueError, match="frame 2 is"):
        write(tmp_path / "half.gif", frames(2) + frames(1, 16, 16))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done.mp4", "file"]
