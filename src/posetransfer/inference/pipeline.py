"""Pose transfer on one's own photos: ``Pipeline.from_checkpoint(ckpt)(sources, target_pose)``.

The pipeline does what the training data preparation did, so the generator sees what it was
trained on:

1. each source photo is read (EXIF rotation, grayscale/RGBA/CMYK/16-bit handled by
   :func:`~posetransfer.utils.io.read_image`) and brought to the model's frame with the framing of
   ``data prepare`` (:mod:`posetransfer.data.prepare`: full height + centre crop/pad by default,
   the DeepFashion convention; ``person`` crops around the detected person);
2. the target pose is an annotation-style file (one row of 18 keypoints, in the model's frame), a
   photo (its pose is extracted and framed the same way), or a name from
   :mod:`posetransfer.pose.library`;
3. the batch is built by :func:`posetransfer.data.inputs.model_inputs` from the task's
   :class:`~posetransfer.data.inputs.InputSpec`, the very function the training data sets use
   (heatmaps for PG2's G1, "Pose Guided Person Image Generation" sec. 3.1, coordinates for its CE
   variant, a stick figure for the multi-view generator, the multi-view paper's sec. 3.1), and the
   task's own ``generate`` runs the networks;
4. the output (model frame) can be pasted back on the first source's original canvas.

Every problem with an input raises a :class:`~posetransfer.errors.PosetransferError` naming the
file before anything is written.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from posetransfer.data.inputs import batch_of, model_inputs
from posetransfer.data.layouts import image_files
from posetransfer.data.prepare import IMAGE_EXTENSIONS, Frame, apply_frame, frame_window
from posetransfer.errors import DataError, PosetransferError
from posetransfer.pose.library import POSES, library_pose
from posetransfer.pose.schema import NUM_KEYPOINTS, visible
from posetransfer.utils.io import read_image
from posetransfer.utils.perf import inference_settings
from posetransfer.utils.devices import resolve_device

ImageLike = str | Path | np.ndarray
PoseLike = str | Path | np.ndarray


@dataclasses.dataclass
class TransferResult:
    """Output of :meth:`Pipeline.transfer`: the generated image and what it was made from."""

    image: np.ndarray  # uint8 HxWx3 in the model frame
    sources: list[np.ndarray]  # the framed source photos fed to the model
    target_keypoints: np.ndarray  # (18, 2) in the model frame
    frames: list[Frame]  # how each source photo was framed
    canvases: list[np.ndarray]  # the original source photos
    notes: list[str]
    # every output of the task's ``generate`` (PG2 stage II: ``stage1`` and ``stage2``), uint8 HxWx3;
    # ``image`` is ``stages[task.final_output]`` (the studio shows both stages)
    stages: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def on_canvas(self, index: int = 0) -> np.ndarray:
        """The generated image pasted back over source ``index``'s original photo."""
        return self.frames[index].paste(self.canvases[index], self.image)


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    a = ((t.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().byte().numpy()
    return np.ascontiguousarray(a.transpose(1, 2, 0))


class Pipeline:
    """A trained generator plus the framing and pose handling around it.

    ``task`` and ``nets`` are a training task (:mod:`posetransfer.training.tasks`) and its networks;
    :meth:`from_checkpoint` builds both from a checkpoint. ``frame`` / ``fill`` are the framing of
    :func:`posetransfer.data.prepare.frame_window` / ``apply_frame``; ``backend`` (a pose backend
    or its name) is only needed to extract poses from photos and for ``frame="person"``.
    """

    def __init__(
        self,
        task: Any,
        nets: dict[str, torch.nn.Module],
        image_size: tuple[int, int],
        device: str = "cpu",
        frame: str = "height",
        fill: str = "edge",
        backend: Any = "mediapipe",
        max_sources: int | None = None,
        channels_last: bool = True,
    ):
        self.task = task
        self.device = resolve_device(device)
        self.nets = {k: v.to(self.device).eval() for k, v in nets.items()}
        if channels_last:
            # as ``bench infer`` (bench/infer.py, build_model) and training's ``train.channels_last``:
            # convolutions in NHWC, oneDNN's / cuDNN's fast layout; outputs equal NCHW's to float
            # rounding (tests/test_inference.py). ``transfer`` and ``animate`` alike.
            for net in self.nets.values():
                net.to(memory_format=torch.channels_last)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.frame = frame
        self.fill = fill
        self._backend = backend
        # PG2 conditions on one image ("Pose Guided Person Image Generation", sec. 3); the multi-view
        # generator on 1-5 (the multi-view paper, sec. 3.1), its -S variant on one: the task knows
        # (``Task.max_sources``).
        self.max_sources = max_sources if max_sources is not None else int(task.max_sources)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", **kwargs) -> "Pipeline":
        """Load any checkpoint reference :func:`~posetransfer.inference.loader.load_generator` takes:
        a step folder, a run folder, an exported folder or a Hugging Face Hub repo id."""
        from posetransfer.inference.loader import load_generator

        model = load_generator(path, device)
        return cls(model.task, model.nets, model.image_size, device=model.device, **kwargs)

    # -- inputs --------------------------------------------------------------------------------

    @property
    def backend(self):
        if isinstance(self._backend, str):
            from posetransfer.pose.extract import get_backend

            self._backend = get_backend(self._backend)
        return self._backend

    def _read(self, image: ImageLike) -> tuple[np.ndarray, str]:
        if isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise PosetransferError(f"an image array must be HxWx3 uint8 RGB, got {image.shape} {image.dtype}")
            return image, "<array>"
        return read_image(image), str(image)

    def frame_photo(self, image: np.ndarray, source: str = "<image>") -> tuple[np.ndarray, Frame, np.ndarray | None]:
        """(framed image, frame, keypoints in the frame or None): a photo brought to the model frame.

        The pose is extracted only when needed (``frame="person"``); with the other framings a
        source photo needs no pose backend.
        """
        kp = None
        bbox = None
        if self.frame == "person":
            from posetransfer.pose.extract import extract_pose

            result = extract_pose(image, self.backend, source=source)
            kp, bbox = result.keypoints, result.detection.bbox
        win = frame_window(image.shape[:2], self.image_size, self.frame, bbox=bbox)
        return apply_frame(image, win, self.fill), win, (win.keypoints_to_frame(kp) if kp is not None else None)

    def target_keypoints(self, pose: PoseLike) -> tuple[np.ndarray, list[str]]:
        """The target pose (18, 2) in the model frame, from any accepted form (module doc, step 2)."""
        h, w = self.image_size
        notes: list[str] = []
        if isinstance(pose, np.ndarray):
            kp = np.asarray(pose, dtype=np.float32)
            if kp.shape != (NUM_KEYPOINTS, 2):
                raise PosetransferError(f"a target pose array must have shape ({NUM_KEYPOINTS}, 2), got {kp.shape}")
            where = "<array>"
        elif isinstance(pose, str) and pose in POSES:
            return library_pose(pose, self.image_size), notes
        else:
            path = Path(pose)
            if not path.exists():
                raise PosetransferError(
                    f"target pose {str(pose)!r} is neither a file nor a built-in pose ({', '.join(POSES)})"
                )
            where = str(path)
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                from posetransfer.pose.extract import extract_pose

                image = read_image(path)
                result = extract_pose(image, self.backend, source=path)
                notes += result.notes
                win = frame_window(image.shape[:2], self.image_size, self.frame, bbox=result.detection.bbox)
                kp = win.keypoints_to_frame(result.keypoints)
                if not visible(kp).any():
                    raise DataError(path, f"the person's keypoints all fall outside the {self.frame!r} frame")
                return kp, notes
            kp = read_pose_file(path)
        vis = visible(kp)
        outside = vis & ((kp[:, 0] > h - 1) | (kp[:, 1] > w - 1))
        if outside.any():
            raise DataError(
                where,
                f"{int(outside.sum())} keypoint(s) lie outside the model's {h}x{w} frame (height x width): "
                "poses must be given in the model's frame",
            )
        if not vis.any():
            raise DataError(where, "the pose has no visible keypoint")
        return kp, notes

    # -- running ---------------------------------------------------------------------------------

    def batch(self, sources: list[np.ndarray], target_kp: np.ndarray) -> dict[str, Any]:
        """The batch (size 1) the task's ``generate`` reads: a training data set's item for these
        photos and this pose (:func:`posetransfer.data.inputs.model_inputs`), batched."""
        spec = self.task.input_spec().at_size(self.image_size)
        return batch_of(model_inputs(spec, sources, target_kp), self.device)

    def source_list(self, sources: ImageLike | Sequence[ImageLike]) -> tuple[list[ImageLike], list[str]]:
        """``sources`` as a non-empty list of at most :attr:`max_sources` photos, and the notes
        saying what was left out."""
        if isinstance(sources, (str, Path, np.ndarray)):
            sources = [sources]
        expanded: list[ImageLike] = []
        for s in sources:  # a folder stands for its photos (by name): one person's views
            if isinstance(s, (str, Path)) and Path(s).is_dir():
                expanded += image_files(Path(s))
            else:
                expanded.append(s)
        sources = expanded
        if not sources:
            raise PosetransferError("at least one source photo is needed")
        notes: list[str] = []
        if len(sources) > self.max_sources:
            notes.append(
                f"this {self.task.name} model takes {self.max_sources} source photo(s); using the first {self.max_sources}"
            )
            sources = sources[: self.max_sources]
        return sources, notes

    @torch.no_grad()
    def transfer(self, sources: ImageLike | Sequence[ImageLike], pose: PoseLike) -> TransferResult:
        """Generate the person of ``sources`` in ``pose``; see :class:`TransferResult`."""
        sources, notes = self.source_list(sources)
        canvases, framed, frames = [], [], []
        for s in sources:
            image, where = self._read(s)
            f_img, win, _ = self.frame_photo(image, where)
            canvases.append(image)
            framed.append(f_img)
            frames.append(win)
        target_kp, pose_notes = self.target_keypoints(pose)
        notes += pose_notes
        with inference_settings(self.device):  # inference mode, bf16 where it pays, all CPUs
            outputs = self.task.generate(self.nets, self.batch(framed, target_kp))
        final = self.task.final_output
        stages = {k: _to_uint8(v[0]) for k, v in outputs.items() if k == final or (v.ndim == 4 and v.shape[1] == 3)}
        return TransferResult(stages[final], framed, target_kp, frames, canvases, notes, stages)

    def __call__(self, sources: ImageLike | Sequence[ImageLike], pose: PoseLike, on_canvas: bool = False) -> np.ndarray:
        """The generated image (uint8 HxWx3): in the model frame, or pasted on the first source photo."""
        result = self.transfer(sources, pose)
        return result.on_canvas() if on_canvas else result.image

    def animate(self, sources: ImageLike | Sequence[ImageLike], driving, **kwargs):
        """The person of ``sources`` moved by ``driving`` (a video, a folder of frames, a ``pose track``
        file): an iterable of uint8 frames; see :func:`posetransfer.inference.animation.prepare_animation`."""
        from posetransfer.inference.animation import prepare_animation

        return prepare_animation(self, sources, driving, **kwargs)


def read_pose_file(path: str | Path) -> np.ndarray:
    """The one pose of an annotation-style file (``name:[ys]:[xs]`` with a header, or the row alone).

    A wrong number of keypoints is a :class:`DataError` naming the file and the line
    (:func:`posetransfer.pose.io.parse_annotation_line`); a file with several rows is an error too,
    since which one was meant cannot be guessed.
    """
    from posetransfer.pose.io import ANNOTATION_HEADER, parse_annotation_line

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(path, "not a text pose file (annotation format name:[ys]:[xs]) nor an image") from None
    rows = [(i, line) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if rows and rows[0][1].strip().replace(" ", "") == ANNOTATION_HEADER:
        rows = rows[1:]
    if not rows:
        raise DataError(path, "holds no pose row (expected name:[18 ys]:[18 xs])")
    if len(rows) > 1:
        raise DataError(path, f"holds {len(rows)} poses; a target pose file must hold exactly one row")
    lineno, line = rows[0]
    return parse_annotation_line(line, path, lineno)[1]
