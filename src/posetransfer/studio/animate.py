"""The studio's animation tab (issue 13, item 3): track a short driving clip, render it, download.

Routes (added to the app by :func:`add_routes`; README, "API"):

- ``POST /api/animate/track`` (multipart ``video``): the clip is stored as ``animate/ID/driving``
  under the state folder (a generated id, never the uploaded name), checked against
  :class:`~posetransfer.studio.app.Limits` (bytes through the body limit, frames, pixels per
  frame), tracked through the pose backend in the inference queue (:func:`posetransfer.inference.animation.track_video`),
  the track saved (``track.csv`` + sidecar, :func:`posetransfer.pose.tracking.write_track`) and a
  skeleton preview GIF written (:func:`posetransfer.inference.animation.skeleton_preview`).
- ``POST /api/animate/render`` (``track``, ``source`` file(s) as ``/api/transfer``, ``retarget``,
  ``side_by_side``, ``format`` mp4|gif): answered at once with the render's id; the render runs as a
  background job that goes through the same single-model queue as ``/api/transfer``, **one batch
  of frames per queue turn**, so a long render lets transfers in between its batches instead of
  starving them.
- ``GET /api/animate/ID``: the job's ``meta.json`` (``status`` queued|running|done|failed,
  ``frames_done`` / ``frames``, ``error``: the one-line reason of a failure, e.g. the job's
  exception or :data:`~posetransfer.studio.keep.INTERRUPTED`); ``GET /api/animate/ID/FILE``: ``preview.gif``,
  ``result.mp4`` / ``result.gif`` (as a download) or ``track.csv``.

The retention sweep (:mod:`posetransfer.studio.keep`) never removes an upload being tracked, a
render queued or running, nor the track it reads: each is pinned in the studio's keeper while in use.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from fastapi import Request
from fastapi.responses import FileResponse

from posetransfer.errors import DataError, PosetransferError
from posetransfer.studio.keep import FAILED

_ID = re.compile(r"^[0-9]{13}-[0-9a-f]{6}$")
_FILES = {"preview.gif", "result.mp4", "result.gif", "track.csv"}
_FORMATS = ("mp4", "gif")
_TRUE = {"1", "true", "yes", "on"}
PREVIEW_SIDE = 320  # longest side of the skeleton preview GIF


def new_id() -> str:
    return f"{int(time.time() * 1000):013d}-{secrets.token_hex(3)}"


class AnimateStore:
    """The ``animate/`` folder of the state: one sub-folder per track or render, a ``meta.json`` each."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.jobs: dict[str, dict] = {}  # renders in progress (the newest state; meta.json follows)
        self.tasks: set[asyncio.Task] = set()  # running jobs, referenced so they are not collected

    def folder(self, aid: str) -> Path:
        return self.root / aid

    def meta(self, aid: str) -> dict | None:
        import json

        if not _ID.match(aid or ""):
            return None
        if aid in self.jobs:
            return dict(self.jobs[aid])
        try:
            meta = json.loads((self.folder(aid) / "meta.json").read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):  # none (yet), or removed by the sweep meanwhile
            return None
        if isinstance(meta, dict) and meta.get("status") == "error":  # written before "failed" was the word
            meta["status"] = FAILED
        return meta

    def save(self, meta: dict) -> None:
        from posetransfer.utils.io import atomic_write_json

        atomic_write_json(self.folder(meta["id"]) / "meta.json", meta)


def track_clip(studio, store: AnimateStore, aid: str, path: Path) -> dict:
    """Check, track and preview the stored clip ``path`` (runs in the queue's worker thread)."""
    from posetransfer.inference.animation import skeleton_preview, track_video
    from posetransfer.pose.tracking import write_track
    from posetransfer.utils.video import MAX_SIDE, VideoReader, VideoWriter
    from posetransfer.studio.app import ApiError

    limits = studio.limits
    try:
        reader = VideoReader(path, max_side=MAX_SIDE)  # the count the container declares, unclamped
    except DataError as err:
        raise ApiError(400, f"video: {err.problem}") from None
    h, w = reader.source_size
    if h * w > limits.max_video_pixels:
        raise ApiError(400, f"video: {w}x{h} = {w * h} pixels a frame, more than the limit of {limits.max_video_pixels}")
    too_many = f"more than the limit of {limits.max_video_frames} frames (trim the clip)"
    if reader.frames is not None and reader.frames > limits.max_video_frames:
        raise ApiError(400, f"video: {reader.frames} frames, {too_many}")
    reader.limit = limits.max_video_frames + 1  # a container that under-declares cannot run past it
    try:
        if reader.frames is None:  # the container does not say: count (decoding small) before tracking
            n = sum(1 for _ in VideoReader(path, max_side=64, limit=limits.max_video_frames + 1))
            if n > limits.max_video_frames:
                raise ApiError(400, f"video: {too_many}")
        track = track_video(reader, studio.pipeline.backend)
    except DataError as err:
        status = 422 if "person" in err.problem else 400
        raise ApiError(status, f"video: {err.problem}") from None
    if len(track) > limits.max_video_frames:
        raise ApiError(400, f"video: {too_many}")
    if len(track) < 2:
        raise ApiError(400, "video: holds a single frame (a still image?); a clip needs at least 2")
    folder = store.folder(aid)
    write_track(folder / "track.csv", track)
    with VideoWriter(folder / "preview.gif", track.fps) as gif:
        for frame in skeleton_preview(track, reader):
            gif.write(_shrink(frame, PREVIEW_SIDE))
    meta = {"id": aid, "kind": "track", "created": time.time(), "status": "done", "frames": len(track),
            "fps": track.fps, "size": list(track.size), "lost": int(track.lost.sum()), "notes": track.notes,
            "preview": f"/api/animate/{aid}/preview.gif"}  # fmt: skip
    store.save(meta)
    return meta


def _shrink(frame: np.ndarray, side: int) -> np.ndarray:
    h, w = frame.shape[:2]
    if max(h, w) <= side:
        return frame
    import cv2

    f = side / max(h, w)
    return cv2.resize(frame, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


async def render_job(studio, store: AnimateStore, meta: dict, images: list[np.ndarray], options: dict) -> None:
    """The background render: prepare in one queue turn, then one batch of frames per turn."""
    from posetransfer.inference.animation import prepare_animation
    from posetransfer.pose.tracking import read_track
    from posetransfer.utils.video import MAX_SIDE, VideoReader, VideoWriter

    rid = meta["id"]
    track_dir = store.folder(options["track"])
    out = store.folder(rid) / f"result.{options['format']}"
    state: dict[str, Any] = {}

    def prepare():
        pipe = studio.pipeline
        track = read_track(track_dir / "track.csv")
        anim = prepare_animation(pipe, images, track, retarget=options["retarget"], side_by_side=options["side_by_side"])
        if options["side_by_side"]:  # the stored clip gives the driving panel (the track came from it)
            anim.reader = VideoReader(track_dir / "driving", max_side=MAX_SIDE, limit=len(track))
            anim.notes = [n for n in anim.notes if "pose file" not in n]
        state["anim"] = anim
        state["frames"] = iter(anim)
        state["writer"] = VideoWriter(out, anim.fps).__enter__()
        return len(anim), anim.fps, anim.frame_size, anim.notes

    def step() -> bool:
        """Generate and encode one batch; False when the animation is over."""
        anim, writer = state["anim"], state["writer"]
        for _ in range(anim.batch_size):
            frame = next(state["frames"], None)
            if frame is None:
                writer.__exit__(None, None, None)  # renames the finished file onto result.*
                state.pop("writer")
                return False
            writer.write(frame)
        return True

    def update(**kw):
        meta.update(kw)
        store.jobs[rid] = dict(meta)
        store.save(meta)

    keeper = studio.keeper
    try:
        update(status="running")
        n, fps, size, notes = await studio.queue.run(prepare)
        update(frames=n, fps=fps, size=list(size), notes=notes)
        while await studio.queue.run(step):
            update(frames_done=state["writer"].frames)
        update(status="done", frames_done=n, url=f"/api/animate/{rid}/{out.name}", finished=time.time())
    except Exception as err:  # noqa: BLE001 - every failure ends the job with its message
        writer = state.pop("writer", None)
        if writer is not None:
            try:
                writer.__exit__(type(err), err, err.__traceback__)  # removes the partial file
            except Exception:  # noqa: BLE001
                pass
        message = getattr(err, "message", None) or (err.problem if isinstance(err, DataError) else str(err))
        if not isinstance(err, PosetransferError) and not hasattr(err, "message"):
            message = f"{type(err).__name__}: {err}"
        update(status=FAILED, error=" ".join(str(message).split()), finished=time.time())  # one line
    except asyncio.CancelledError:  # the server is shutting down: say so rather than "running"
        with contextlib.suppress(Exception):
            update(status=FAILED, error="interrupted: the studio was stopped", finished=time.time())
        raise
    finally:
        store.jobs.pop(rid, None)
        keeper.unpin("animate", rid)
        keeper.unpin("animate", options["track"])
    import anyio

    await anyio.to_thread.run_sync(keeper.after_job)


def add_routes(app, studio, need_model: Callable, form: Callable, decode: Callable) -> AnimateStore:
    """The animation routes on ``app`` (module doc). ``decode(data, what)`` is the studio's image decoder."""
    from posetransfer.studio.app import ApiError

    store = AnimateStore(studio.state / "animate")

    @app.post("/api/animate/track")
    async def animate_track(request: Request):
        need_model()
        data = await form(request, 1)
        item = data.get("video")
        if item is None or isinstance(item, str):
            raise ApiError(400, "the form needs a file field 'video'")
        content = await item.read()
        if not content:
            raise ApiError(400, "video: the file is empty")
        aid = new_id()
        folder = store.folder(aid)
        with studio.keeper.pinned("animate", aid):  # no meta.json until tracked: the sweep must wait
            folder.mkdir(parents=True)
            (folder / "driving").write_bytes(content)
            try:
                meta = await studio.queue.run(track_clip, studio, store, aid, folder / "driving")
            except BaseException:
                import shutil

                shutil.rmtree(folder, ignore_errors=True)  # a refused clip leaves nothing behind
                raise
        await _threaded(studio.keeper.after_job)
        return meta

    @app.post("/api/animate/render")
    async def animate_render(request: Request):
        pipe = need_model()
        data = await form(request, pipe.max_sources + 1)
        tid = data.get("track")
        tid = tid.strip() if isinstance(tid, str) else ""
        keeper = studio.keeper
        keeper.pin("animate", tid)  # first: the sweep cannot take the track between this check and the job's end
        try:
            return await _start_render(data, pipe, tid)
        except BaseException:
            keeper.unpin("animate", tid)
            raise

    async def _start_render(data, pipe, tid: str) -> dict:
        tmeta = store.meta(tid)
        if tmeta is None or tmeta.get("kind") != "track" or tmeta.get("status") != "done":
            raise ApiError(404, f"no tracked clip {tid!r} (POST the video to /api/animate/track first)")
        fmt = data.get("format")
        fmt = (fmt if isinstance(fmt, str) and fmt.strip() else "mp4").strip().lower()
        if fmt not in _FORMATS:
            raise ApiError(400, f"format: {fmt!r} is not one of {', '.join(_FORMATS)}")
        files = [f for f in data.getlist("source") if not isinstance(f, str)]
        if not files:
            raise ApiError(400, "the form needs at least one 'source' file")
        if len(files) > pipe.max_sources:
            raise ApiError(400, f"this {pipe.task.name} model takes at most {pipe.max_sources} source photo(s), got {len(files)}")
        images = [await _threaded(decode, await f.read(), f"source {i + 1}") for i, f in enumerate(files)]
        if studio.queue.pending >= studio.queue.max_pending:
            raise ApiError(503, f"the server is busy ({studio.queue.pending} requests queued); try again shortly")
        flag = lambda name: str(data.get(name) or "").strip().lower() in _TRUE  # noqa: E731
        options = {"track": tid, "format": fmt, "retarget": flag("retarget"), "side_by_side": flag("side_by_side")}
        rid = new_id()
        studio.keeper.pin("animate", rid)  # unpinned with the track's pin when the job ends
        meta = {"id": rid, "kind": "render", "created": time.time(), "status": "queued", "track": tid,
                "format": fmt, "retarget": options["retarget"], "side_by_side": options["side_by_side"],
                "frames": tmeta["frames"], "frames_done": 0}  # fmt: skip
        store.folder(rid).mkdir(parents=True)
        store.jobs[rid] = dict(meta)
        store.save(meta)
        task = asyncio.get_running_loop().create_task(render_job(studio, store, meta, images, options))
        store.tasks.add(task)
        task.add_done_callback(store.tasks.discard)
        return {"id": rid, "status": "queued", "frames": tmeta["frames"], "progress": f"/api/animate/{rid}"}

    @app.get("/api/animate/{aid}")
    async def animate_status(aid: str):
        meta = store.meta(aid)
        if meta is None:
            raise ApiError(404, f"no animation job {aid!r}")
        return meta

    @app.get("/api/animate/{aid}/{name}")
    async def animate_file(aid: str, name: str):
        if not _ID.match(aid) or name not in _FILES or not (store.folder(aid) / name).is_file():
            raise ApiError(404, f"no animation file {aid}/{name}")
        headers = {"Content-Disposition": f'attachment; filename="{aid}-{name}"'} if name.startswith("result") or name.endswith(".csv") else None
        return FileResponse(store.folder(aid) / name, headers=headers)

    async def _threaded(fn, *args):
        import anyio

        return await anyio.to_thread.run_sync(fn, *args)

    return store
