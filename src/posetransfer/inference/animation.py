"""Animating a photo with a driving video: ``Pipeline.animate(sources, driving)`` and ``posetransfer animate``.

A per-frame pose transfer model animates the person of a photo with the motion of anyone in a
video (issue 13). The steps, each streaming so that memory stays bounded for long videos (only
the poses, 144 bytes a frame, are kept; frames are decoded, generated and encoded one batch at a
time):

1. **tracking** (:func:`track_video`): every frame of the driving video (or folder of frames) goes
   through the pose backend (:func:`posetransfer.pose.extract.detect_persons`: large frames are
   downscaled for the detector), the same person is followed from frame to frame, and the sequence
   is gap-filled, marked where the person is lost, and One-Euro smoothed
   (:mod:`posetransfer.pose.tracking`). A driving ``.csv`` written by ``pose track`` skips this.
2. **framing**: the driving poses are brought to the model's frame with one window for the whole
   clip (the ``person`` framing of :mod:`posetransfer.data.prepare` around all the tracked joints,
   so the framing does not jitter); a pose file without its ``.json`` sidecar is taken to be in the
   model's frame already. The source photo(s) are framed as in :meth:`Pipeline.transfer`.
3. **retargeting** (default; ``retarget=False`` to skip): each driving pose takes the source
   person's bone lengths and stands where the source stands, the driving person's travel kept
   (:func:`posetransfer.pose.tracking.retarget_sequence`).
4. **lost frames**: ``lost="hold"`` repeats the last pose (the first found one before it),
   ``lost="skip"`` drops those frames; either way a note says how many.
5. **generation** in batches of ``batch_size`` through the checkpoint's task (the batch keys of
   :meth:`Pipeline.batch`), and optionally the side-by-side panel: driving frame | skeleton | result.

:func:`animate_to_file` writes an MP4 (H.264) or GIF at the driving clip's frame rate
(:mod:`posetransfer.utils.video`); it is what ``posetransfer animate`` and a studio tab call.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
import torch

from posetransfer.data.prepare import apply_frame, frame_window
from posetransfer.errors import DataError, PosetransferError
from posetransfer.pose.schema import MISSING, visible
from posetransfer.pose.tracking import SmoothingConfig, Track, finish_track, pick_person, read_track, retarget_sequence
from posetransfer.utils.io import read_image
from posetransfer.utils.video import MAX_SIDE, VideoReader, VideoWriter, check_output

if TYPE_CHECKING:
    from posetransfer.inference import Pipeline

POSE_FILE_SUFFIXES = {".csv", ".txt"}
LOST_POLICIES = ("hold", "skip")


def _tqdm(iterable, **kw):
    from tqdm import tqdm

    return tqdm(iterable, **kw)


def track_video(
    reader: VideoReader,
    backend: Any,
    smoothing: SmoothingConfig = SmoothingConfig(),
    progress: bool = False,
) -> Track:
    """The tracked, smoothed pose sequence of ``reader``'s frames (module doc, step 1), in their frame.

    No person in any frame is a :class:`DataError` naming the video.
    """
    from posetransfer.pose.extract import detect_persons

    raw, detected = [], []
    previous = None
    multi = 0
    total = reader.frames
    for frame in _tqdm(reader, desc="track", unit="frame", total=total, disable=not progress):
        dets, _ = detect_persons(frame, backend)
        dets = [d for d in dets if visible(d.keypoints).any()]
        i = pick_person([d.bbox for d in dets], previous)
        if i is None:
            raw.append(np.full((18, 2), MISSING, np.float32))
            detected.append(False)
            continue
        multi += len(dets) > 1
        previous = dets[i].bbox
        raw.append(dets[i].keypoints.astype(np.float32))
        detected.append(True)
    if not raw:
        raise DataError(reader.path, "holds no frame")
    if not any(detected):
        raise DataError(reader.path, f"no person found in any of its {len(raw)} frame(s)")
    track = finish_track(np.stack(raw), np.asarray(detected), reader.fps, reader.size, smoothing)
    if track.lost.all():
        raise DataError(reader.path, f"no frame of the {len(raw)} shows at least {smoothing.min_joints} joints of a person")
    if reader.downscaled:
        track.notes.insert(0, f"{reader.path}: frames downscaled from {reader.source_size[0]}x{reader.source_size[1]} "
                           f"to {reader.size[0]}x{reader.size[1]}")  # fmt: skip
    if multi:
        track.notes.append(f"several persons in {multi} frame(s): following the one that overlaps the previous frame's")
    return track


def open_driving(
    driving: str | Path,
    backend: Any = None,
    smoothing: SmoothingConfig = SmoothingConfig(),
    fps: float | None = None,
    max_side: int | None = MAX_SIDE,
    limit: int | None = None,
    progress: bool = False,
) -> tuple[Track, VideoReader | None]:
    """(track, frame reader or None) of a driving video, folder of frames or ``pose track`` file.

    ``fps`` is the clip's frame rate for a folder of frames (and a pose file without its sidecar);
    a video's own rate is kept for the smoothing (the output rate is overridden by the caller).
    """
    path = Path(driving)
    if path.is_file() and path.suffix.lower() in POSE_FILE_SUFFIXES:
        track = read_track(path, fps=fps)
        if limit is not None:
            track = Track(track.keypoints[:limit], track.lost[:limit], track.detected[:limit], track.fps, track.size, [])
        if track.lost.all():
            raise DataError(path, f"no frame of the {len(track)} holds a pose")
        return track, None
    reader = VideoReader(path, max_side=max_side, fps=fps if path.is_dir() else None, limit=limit)
    if backend is None:
        raise PosetransferError("tracking a driving video needs a pose backend")
    return track_video(reader, backend, smoothing, progress=progress), reader


def _union_bbox(kp: np.ndarray) -> tuple[float, float, float, float]:
    pts = kp[visible(kp)]
    return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


@dataclasses.dataclass
class Animation:
    """A prepared animation: iterate it for the frames (uint8 HxWx3), in order.

    ``poses`` (N, 18, 2) are the generator's target poses in the model frame, one per output frame;
    ``indices`` the driving frame each output frame comes from; ``stats`` the seconds spent
    tracking (``tracking_s``) and generating (``generation_s``: pose encoding, networks, conversion),
    filled as frames are produced.
    """

    pipeline: "Pipeline"
    framed_sources: list[np.ndarray]
    poses: np.ndarray
    indices: np.ndarray
    fps: float
    track: Track
    reader: VideoReader | None
    window: Any
    batch_size: int = 4
    side_by_side: bool = False
    notes: list[str] = dataclasses.field(default_factory=list)
    stats: dict[str, float] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def frame_size(self) -> tuple[int, int]:
        h, w = self.pipeline.image_size
        panels = (3 if self.reader is not None else 2) if self.side_by_side else 1
        return h, w * panels

    @torch.no_grad()
    def generate(self, poses: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Generated frames for a batch of target poses (model frame), through the task's ``generate``."""
        from posetransfer.utils.perf import inference_settings

        pipe = self.pipeline
        start = time.perf_counter()
        parts = [pipe.batch(self.framed_sources, kp) for kp in poses]
        batch = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        with inference_settings(pipe.device):  # as Pipeline.transfer: inference mode, bf16 where it pays
            out = pipe.task.generate(pipe.nets, batch)[pipe.task.final_output]
        # [-1, 1] (tanh) -> uint8 HxWx3, as Pipeline.transfer's output
        frames = list(((out.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy())
        self.stats["generation_s"] = self.stats.get("generation_s", 0.0) + time.perf_counter() - start
        return frames

    def _driving_frames(self) -> Iterator[np.ndarray | None]:
        if not self.side_by_side or self.reader is None:
            while True:
                yield None
        wanted = iter(self.indices.tolist())
        nxt = next(wanted, None)
        for t, frame in enumerate(self.reader):
            if nxt is None:
                return
            if t == nxt:
                yield apply_frame(frame, self.window, self.pipeline.fill)
                nxt = next(wanted, None)

    def _panel(self, result: np.ndarray, pose: np.ndarray, driving: np.ndarray | None) -> np.ndarray:
        if not self.side_by_side:
            return result
        from posetransfer.pose.extract import draw_skeleton

        skeleton = draw_skeleton(np.full_like(result, 255), pose)
        panels = ([driving] if self.reader is not None else []) + [skeleton, result]
        return np.concatenate(panels, axis=1)

    def __iter__(self) -> Iterator[np.ndarray]:
        driving = self._driving_frames()
        for lo in range(0, len(self.poses), self.batch_size):
            chunk = self.poses[lo : lo + self.batch_size]
            for pose, result in zip(chunk, self.generate(chunk)):
                yield self._panel(result, pose, next(driving))


def prepare_animation(
    pipeline: "Pipeline",
    sources: str | Path | np.ndarray | Sequence[str | Path | np.ndarray],
    driving: str | Path | Track,
    *,
    retarget: bool = True,
    lost: str = "hold",
    batch_size: int = 4,
    side_by_side: bool = False,
    smoothing: SmoothingConfig = SmoothingConfig(),
    fps: float | None = None,
    max_side: int | None = MAX_SIDE,
    limit: int | None = None,
    progress: bool = False,
) -> Animation:
    """Track, frame and retarget (module doc, steps 1-4); generation happens when iterated.

    ``driving`` is a video, a folder of frames, a ``pose track`` file, or a :class:`Track`
    (its ``size`` None = poses already in the model frame). ``fps`` overrides the output frame rate.
    """
    if lost not in LOST_POLICIES:
        raise PosetransferError(f"lost must be one of {', '.join(LOST_POLICIES)}, got {lost!r}")
    if batch_size < 1:
        raise PosetransferError(f"batch size must be >= 1, got {batch_size}")
    sources, notes = pipeline.source_list(sources)
    # The sources first: a bad photo is reported before minutes of tracking.
    canvases, framed, windows, names = [], [], [], []
    for s in sources:
        image, where = (s, "<array>") if isinstance(s, np.ndarray) else (read_image(s), str(s))
        f_img, win, _ = pipeline.frame_photo(image, where)
        canvases.append(image)
        framed.append(f_img)
        windows.append(win)
        names.append(where)
    source_kp = None
    if retarget:
        from posetransfer.pose.extract import NoPersonError, extract_pose

        try:
            result = extract_pose(canvases[0], pipeline.backend, source=names[0])
        except NoPersonError as err:
            raise DataError(names[0], f"{err.problem}: retargeting needs the source person's pose "
                            "(use --no-retarget to drive with the video's body as it is)") from None  # fmt: skip
        source_kp = windows[0].keypoints_to_frame(result.keypoints)
        if visible(source_kp).sum() < 2:
            raise DataError(names[0], "the person's joints fall outside the model frame: retargeting needs them "
                            "(use --no-retarget)")  # fmt: skip

    start = time.perf_counter()
    if isinstance(driving, Track):
        track, reader, where = driving, None, "<track>"
    else:
        track, reader = open_driving(driving, pipeline.backend, smoothing, fps=fps, max_side=max_side,
                                     limit=limit, progress=progress)  # fmt: skip
        where = str(driving)
    tracking_s = time.perf_counter() - start
    notes += track.notes
    size = pipeline.image_size
    kp = track.keypoints.astype(np.float32).copy()
    kp[track.lost] = MISSING
    if track.size is not None:
        window = frame_window(track.size, size, "person", bbox=_union_bbox(kp))
        framed_kp = window.keypoints_to_frame(kp.reshape(-1, 2)).reshape(kp.shape)
    else:
        window = None
        vis = visible(kp)
        if (vis & ((kp[..., 0] > size[0] - 1) | (kp[..., 1] > size[1] - 1))).any():
            raise DataError(where, f"poses lie outside the model's {size[0]}x{size[1]} frame; a pose file without "
                            "its .json sidecar must be in the model's frame")  # fmt: skip
        framed_kp = kp
    if retarget:
        framed_kp = retarget_sequence(framed_kp, source_kp, size)
    usable = visible(framed_kp).sum(axis=1) >= 1
    indices = np.arange(len(framed_kp))
    if not usable.any():
        raise DataError(where, "no frame has a pose inside the model frame")
    if not usable.all():
        n = int((~usable).sum())
        if lost == "skip":
            indices = indices[usable]
            notes.append(f"{n} frame(s) without a person skipped")
        else:
            good = np.flatnonzero(usable)
            held = np.maximum.accumulate(np.where(usable, indices, -1))
            held[held < 0] = good[0]  # before the first pose: the first pose
            framed_kp = framed_kp[held]
            notes.append(f"{n} frame(s) without a person: the last pose held")
    rate = float(fps or track.fps)
    anim = Animation(pipeline, framed, framed_kp[indices], indices, rate, track, reader, window,
                     batch_size=batch_size, side_by_side=side_by_side, notes=notes)  # fmt: skip
    if side_by_side and reader is None:
        anim.notes.append("the driving is a pose file: the side-by-side shows skeleton | result")
    anim.stats["tracking_s"] = tracking_s
    return anim


def animate_to_file(
    pipeline: "Pipeline",
    sources,
    driving,
    out: str | Path,
    *,
    overwrite: bool = False,
    progress: bool = False,
    **kwargs,
) -> dict[str, Any]:
    """Write the animation to ``out`` (.mp4 H.264 or .gif), atomically; returns a summary.

    The output path is checked before any work (exists without ``overwrite``, cannot be written).
    Summary: ``frames``, ``fps``, ``size`` (H, W), ``notes``, ``tracking_s``, ``generation_s``,
    ``total_s``, ``generation_fps`` and ``total_fps`` (frames / seconds, tracking included).
    """
    check_output(out, overwrite)
    start = time.perf_counter()
    anim = prepare_animation(pipeline, sources, driving, progress=progress, **kwargs)
    with VideoWriter(out, anim.fps, overwrite=overwrite) as writer:
        for frame in _tqdm(anim, desc="animate", unit="frame", total=len(anim), disable=not progress):
            writer.write(frame)
    total = time.perf_counter() - start
    gen = anim.stats.get("generation_s", 0.0)
    return {
        "out": str(out),
        "frames": writer.frames,
        "fps": anim.fps,
        "size": anim.frame_size,
        "notes": anim.notes,
        "tracking_s": anim.stats.get("tracking_s", 0.0),
        "generation_s": gen,
        "total_s": total,
        "generation_fps": writer.frames / gen if gen > 0 else float("nan"),
        "total_fps": writer.frames / total if total > 0 else float("nan"),
    }


def skeleton_preview(track: Track, reader: VideoReader | None, size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """The tracked skeleton drawn over each driving frame (on white for a pose file): for previews."""
    from posetransfer.pose.extract import draw_skeleton

    frames = iter(reader) if reader is not None else None
    canvas_size = track.size or size
    if canvas_size is None and frames is None:
        raise PosetransferError("a skeleton preview of a pose file without its frame size needs size=(H, W)")
    for kp in track.keypoints:
        frame = next(frames) if frames is not None else np.full((*canvas_size, 3), 255, np.uint8)
        yield draw_skeleton(frame, kp)


# -- speed (``posetransfer bench animate``) -----------------------------------------------------------


def bare_generation_fps(pipeline: "Pipeline", source: np.ndarray, pose: np.ndarray, batch_size: int,
                        frames: int = 32, warmup: int = 1) -> float:  # fmt: skip
    """Frames/s of the networks alone as the pipeline holds them (``task.generate`` on one prepared
    batch: no pose encoding, no conversion, no video), the reference for :func:`animate_to_file`'s
    generation part. (Channels-last, as ``bench infer``'s: ``Pipeline`` converts them; docs/benchmarks.md.)"""
    from posetransfer.utils.perf import inference_settings

    batch = {k: torch.cat([v] * batch_size) for k, v in pipeline.batch([source], pose).items()}
    task, nets = pipeline.task, pipeline.nets
    sync = torch.cuda.synchronize if pipeline.device.type == "cuda" else (lambda: None)
    with inference_settings(pipeline.device):
        for _ in range(warmup):
            task.generate(nets, batch)
        sync()
        reps = max(1, -(-frames // batch_size))
        start = time.perf_counter()
        for _ in range(reps):
            task.generate(nets, batch)
        sync()
    return reps * batch_size / (time.perf_counter() - start)


def benchmark(
    pipeline: "Pipeline",
    batch_sizes: Sequence[int] = (1, 2, 4),
    frames: int = 32,
    clip_size: tuple[int, int] = (256, 192),
    fps: float = 10.0,
    repeats: int = 3,
    workdir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Per batch size, on a synthetic walking clip of ``frames`` frames: the networks alone
    (:func:`bare_generation_fps`) and ``animate``'s generation part (an :class:`Animation` iterated,
    tracked once), alternated ``repeats`` times and their medians taken (a loaded machine's noise
    hits both alike), then the whole command once (:func:`animate_to_file`: tracking, retargeting,
    generation and encoding; not the model loading)."""
    import tempfile

    from posetransfer.data.motion import walking_frames
    from posetransfer.pose.library import library_pose

    with tempfile.TemporaryDirectory(prefix="posetransfer-bench-animate-", dir=workdir) as tmp:
        clip = Path(tmp) / "walk.mp4"
        with VideoWriter(clip, fps) as w:
            for image, _ in walking_frames(frames, clip_size, fps=fps):
                w.write(image)
        photo, _ = next(walking_frames(1, (max(256, pipeline.image_size[0]),) * 2, seed=7))
        framed, _, _ = pipeline.frame_photo(photo)
        pose = library_pose("walking", pipeline.image_size)
        anim = prepare_animation(pipeline, photo, clip)
        rows = []
        for b in batch_sizes:
            anim.batch_size = b
            bare, gen = [], []
            for _ in range(repeats):
                bare.append(bare_generation_fps(pipeline, framed, pose, b, frames=frames))
                anim.stats["generation_s"] = 0.0
                n = sum(1 for _ in anim)
                gen.append(n / anim.stats["generation_s"])
            summary = animate_to_file(pipeline, photo, clip, Path(tmp) / f"out{b}.mp4", batch_size=b, overwrite=True)
            bare_fps, gen_fps = float(np.median(bare)), float(np.median(gen))
            rows.append({
                "batch": b, "frames": summary["frames"], "bare_fps": bare_fps, "generation_fps": gen_fps,
                "generation_vs_bare": gen_fps / bare_fps, "total_fps": summary["total_fps"],
                "tracking_s": summary["tracking_s"], "bare_fps_runs": bare, "generation_fps_runs": gen,
            })  # fmt: skip
    return rows
