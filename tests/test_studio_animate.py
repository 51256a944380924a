"""The studio's Animate API in-process (studio/animate.py): track a synthetic walking clip with the
silhouette fake backend, render it through the queue, download, read the video back; each error."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("av")
from fastapi.testclient import TestClient  # noqa: E402

from _studio import SIZE, SilhouetteBackend, tiny_runs, walking_clip  # noqa: E402
from posetransfer.data.motion import walking_frames  # noqa: E402
from posetransfer.inference import Pipeline  # noqa: E402
from posetransfer.studio.app import Limits, create_app  # noqa: E402
from posetransfer.utils.io import save_image  # noqa: E402
from posetransfer.utils.video import video_info  # noqa: E402


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    runs = tiny_runs(tmp_path_factory)
    return Pipeline.from_checkpoint(runs["stage2"], device="cpu", backend=SilhouetteBackend())


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return walking_clip(tmp_path_factory.mktemp("clips") / "walk.mp4", frames=12)


@pytest.fixture
def photo(tmp_path):
    image, _ = next(walking_frames(1, (128, 96), seed=7))
    save_image(tmp_path / "me.png", image)
    return tmp_path / "me.png"


def _client(pipe, state, **limits):
    return TestClient(create_app(pipe, None, state, limits=Limits(**limits) if limits else None))


def _track(client, path):
    return client.post("/api/animate/track", files={"video": ("clip.mp4", path.read_bytes(), "video/mp4")})


def _wait(client, rid, timeout=60.0):
    seen = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        meta = client.get(f"/api/animate/{rid}").json()
        seen.append(meta["frames_done"])
        if meta["status"] in ("done", "failed"):
            return meta, seen
        time.sleep(0.05)
    raise AssertionError(f"render {rid} did not finish: {meta}")


def test_track_render_download(pipe, clip, photo, tmp_path):
    state = tmp_path / "state"
    with _client(pipe, state) as client:
        r = _track(client, clip)
        assert r.status_code == 200, r.text
        t = r.json()
        assert t["frames"] == 12 and t["fps"] == pytest.approx(10.0) and t["size"] == [128, 96] and t["lost"] == 0
        preview = client.get(t["preview"])
        assert preview.status_code == 200 and preview.content[:6] == b"GIF89a"
        (tmp_path / "preview.gif").write_bytes(preview.content)
        info = video_info(tmp_path / "preview.gif")
        assert info["frames"] == 12 and info["size"] == (128, 96)  # under PREVIEW_SIDE: not shrunk

        form = {"track": t["id"], "retarget": "1", "format": "mp4"}
        queue = client.app.state.studio.queue
        turns = queue.done
        r = client.post("/api/animate/render", data=form, files={"source": ("me.png", photo.read_bytes(), "image/png")})
        assert r.status_code == 200, r.text
        job = r.json()
        assert job["status"] == "queued" and job["frames"] == 12
        meta, seen = _wait(client, job["id"])
        assert meta["status"] == "done", meta
        assert meta["frames_done"] == 12 and seen == sorted(seen)  # progress only grows
        # one queue turn to prepare, one per batch of 4 frames, one that finds the end: others get in between
        assert queue.done - turns == 1 + 3 + 1
        got = client.get(meta["url"])
        assert got.status_code == 200 and "attachment" in got.headers["content-disposition"]
        out = tmp_path / "result.mp4"
        out.write_bytes(got.content)
        assert video_info(out) == {"frames": 12, "fps": pytest.approx(10.0), "size": SIZE}

        # a GIF, side by side: driving frame | skeleton | result, each in the model's frame
        form = {"track": t["id"], "side_by_side": "1", "format": "gif"}
        r = client.post("/api/animate/render", data=form, files={"source": ("me.png", photo.read_bytes(), "image/png")})
        meta, _ = _wait(client, r.json()["id"])
        assert meta["status"] == "done", meta
        assert meta["size"] == [SIZE[0], 3 * SIZE[1]] and meta["notes"] == []
        (tmp_path / "side.gif").write_bytes(client.get(meta["url"]).content)
        assert video_info(tmp_path / "side.gif")["frames"] == 12 and video_info(tmp_path / "side.gif")["size"] == (64, 96)
        # a transfer still gets through the queue after the renders
        r = client.post("/api/transfer", data={"pose": "walking"}, files={"source": ("me.png", photo.read_bytes(), "image/png")})
        assert r.status_code == 200
    # everything lies under the state folder, under generated ids
    files = sorted(p.relative_to(state / "animate").as_posix() for p in (state / "animate").rglob("*") if p.is_file())
    names = {f.split("/", 1)[1] for f in files}
    assert names == {"driving", "track.csv", "track.csv.json", "preview.gif", "meta.json", "result.mp4", "result.gif"}


def test_errors(pipe, clip, photo, tmp_path):
    state = tmp_path / "state"
    with _client(pipe, state, max_video_frames=8) as client:
        # not a video
        r = client.post("/api/animate/track", files={"video": ("x.mp4", b"hello, not a video" * 20, "video/mp4")})
        assert r.status_code == 400 and r.json()["error"].startswith("video: not a video"), r.text
        r = client.post("/api/animate/track", files={"video": ("x.png", photo.read_bytes(), "image/png")})
        assert r.status_code == 400 and "single frame" in r.json()["error"], r.text  # FFmpeg reads a PNG as one frame
        # too many frames: the 12-frame clip against a limit of 8
        r = _track(client, clip)
        assert r.status_code == 400 and r.json()["error"] == "video: 12 frames, more than the limit of 8 frames (trim the clip)"
        # no person in any frame
        nobody = walking_clip(tmp_path / "nobody.mp4", frames=4, blank=range(4))
        r = _track(client, nobody)
        assert r.status_code == 422 and "no person" in r.json()["error"], r.text
        # nothing left behind by the refused clips
        assert not any((state / "animate").iterdir())
        # unknown ids and files, a missing field, a bad format
        assert client.get("/api/animate/0000000000000-abcdef").status_code == 404
        assert client.get("/api/animate/../meta.json").status_code == 404
        assert client.get("/api/animate/0000000000000-abcdef/result.mp4").status_code == 404
        src = {"source": ("me.png", photo.read_bytes(), "image/png")}
        r = client.post("/api/animate/render", data={"track": "0000000000000-abcdef"}, files=src)
        assert r.status_code == 404 and "no tracked clip" in r.json()["error"]
        assert client.post("/api/animate/track", data={"x": "1"}).status_code == 400
        short = walking_clip(tmp_path / "short.mp4", frames=3)
        tid = _track(client, short).json()["id"]
        r = client.post("/api/animate/render", data={"track": tid, "format": "avi"}, files=src)
        assert r.status_code == 400 and "format" in r.json()["error"]
        assert client.post("/api/animate/render", data={"track": tid}).status_code == 400  # no source
        assert client.get(f"/api/animate/{tid}/driving").status_code == 404  # the upload is not served back
        # a render that fails in the worker ends as an error status, no partial file
        r = client.post("/api/animate/render", data={"track": tid, "retarget": "1"},
                        files={"source": ("blank.png", _png(np.full((40, 30, 3), 200, np.uint8)), "image/png")})  # fmt: skip
        meta, _ = _wait(client, r.json()["id"])
        assert meta["status"] == "failed" and "retarget" in meta["error"], meta
        assert not list((state / "animate" / meta["id"]).glob("result*"))


def _png(image):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def test_serve_max_video_frames(tmp_path_factory, tmp_path):
    from posetransfer.cli import build_parser
    from posetransfer.commands.serve import build

    runs = tiny_runs(tmp_path_factory)
    args = build_parser().parse_args(["serve", "--checkpoint", str(runs["stage1"]), "--state", str(tmp_path / "s"),
                                      "--device", "cpu", "--max-video-frames", "42"])  # fmt: skip
    assert TestClient(build(args)).get("/api/info").json()["limits"]["max_video_frames"] == 42
