"""The model-input contract: one specification, one function from keypoints and images to a batch.

Every caller that feeds a network goes through :func:`model_inputs`: the data sets
(:mod:`posetransfer.data.datasets`), inference (:class:`posetransfer.inference.Pipeline`), the
training benchmark and anything built on them. A task derives its :class:`InputSpec` from its
config (``Task.input_spec()``), so an encoding parameter (heatmap kind, disk radius, Gaussian
sigma, stick thickness, pose-mask parameters) is read in one place and cannot differ between
training and inference.

The keys of an item are those of the training data sets:

* sources: ``source_image`` (3, H, W) for single-image models ("Pose Guided Person Image
  Generation", Ma et al. 2017, sec. 3: the condition image ``I_A``) or ``source_images``
  (K, 3, H, W) for the multi-view generator (the multi-view paper, with discriminators D_I and
  D_P, sec. 3.1: a set of photos of one person); ``source_keypoints`` when given;
* the target pose: ``target_keypoints`` (18, 2) and the encodings the spec asks for:
  ``target_heatmaps`` (18, H, W), ``target_coords`` (36,), ``target_stick`` (3, H, W),
  ``target_mask`` (1, H, W) (PG2's ``M_B``);
* ``target_image`` (3, H, W) when a target photo is given (training and evaluation).

Images are uint8 ``H x W x 3`` in, float32 ``3 x H x W`` in ``[-1, 1]`` out (the generators'
tanh range).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch

from posetransfer.errors import ConfigError
from posetransfer.pose import encodings

__all__ = ["POSE_ENCODINGS", "InputSpec", "image_to_tensor", "encode_pose", "model_inputs", "batch_of"]

#: the pose encodings a spec can ask for, by item-key suffix (``target_<name>``)
POSE_ENCODINGS = ("heatmaps", "coords", "stick", "mask")


def _mask_parameters() -> set[str]:
    """Keyword arguments :func:`posetransfer.pose.encodings.pose_mask` takes after (kp, size)."""
    params = list(inspect.signature(encodings.pose_mask).parameters)
    return set(params[2:])


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """What a model consumes and how its pose inputs are encoded.

    ``image_size`` (H, W) is the model's frame (None: the data set's own image size, filled in by
    the data set with :meth:`at_size`). ``mask`` holds keyword arguments passed unchanged to
    :func:`~posetransfer.pose.encodings.pose_mask` (e.g. ``radius``, ``closing``); an empty mapping
    uses that function's defaults. ``encodings`` names the target encodings produced
    (:data:`POSE_ENCODINGS`); ``group`` chooses ``source_images`` (K photos) over ``source_image``.
    """

    image_size: tuple[int, int] | None = None
    heatmap: Literal["disk", "gaussian"] = "disk"
    radius: int = 4
    sigma: float = 6.0
    stick_thickness: int | None = None
    mask: tuple[tuple[str, Any], ...] = ()
    encodings: tuple[str, ...] = POSE_ENCODINGS
    group: bool = False

    def __post_init__(self) -> None:
        if self.heatmap not in ("disk", "gaussian"):
            raise ValueError(f"heatmap must be 'disk' or 'gaussian', got {self.heatmap!r}")
        if isinstance(self.mask, Mapping):  # accept a mapping, store a hashable, ordered tuple
            object.__setattr__(self, "mask", tuple(sorted(dict(self.mask).items())))
        unknown = sorted({k for k, _ in self.mask} - _mask_parameters())
        if unknown:
            raise ConfigError(
                f"pose mask: unknown parameter(s) {', '.join(unknown)} "
                f"(pose_mask takes {', '.join(sorted(_mask_parameters()))})"
            )
        bad = [e for e in self.encodings if e not in POSE_ENCODINGS]
        if bad:
            raise ValueError(f"unknown pose encoding(s) {bad}; known: {', '.join(POSE_ENCODINGS)}")
        if self.image_size is not None:
            object.__setattr__(self, "image_size", (int(self.image_size[0]), int(self.image_size[1])))

    @property
    def mask_kwargs(self) -> dict[str, Any]:
        return dict(self.mask)

    def at_size(self, size: tuple[int, int]) -> "InputSpec":
        """This spec for a ``size`` frame (a data set whose spec leaves the size to its images)."""
        if self.image_size is not None and tuple(self.image_size) != tuple(size):
            (mh, mw), (dh, dw) = self.image_size, size
            raise ValueError(f"the images are {dh}x{dw} (height x width) but the model works at {mh}x{mw}")
        return dataclasses.replace(self, image_size=(int(size[0]), int(size[1])))

    def _size(self) -> tuple[int, int]:
        if self.image_size is None:
            raise ValueError("InputSpec.image_size is not set (use at_size)")
        return self.image_size  # type: ignore[return-value]


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> float32 3xHxW in [-1, 1] (the models' range, tanh outputs)."""
    t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()
    return t.div_(127.5).sub_(1.0)


def encode_pose(kp: np.ndarray, spec: InputSpec, which: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """``{name: tensor}`` of the encodings ``which`` (default: the spec's) of one pose (18, 2)."""
    size = spec._size()
    out: dict[str, torch.Tensor] = {}
    for name in spec.encodings if which is None else which:
        if name == "heatmaps":
            a = encodings.pose_heatmaps(kp, size, kind=spec.heatmap, radius=spec.radius, sigma=spec.sigma)
        elif name == "coords":
            a = encodings.coordinate_vector(kp, size)
        elif name == "stick":
            a = encodings.stick_figure(kp, size, thickness=spec.stick_thickness)
        elif name == "mask":
            a = encodings.pose_mask(kp, size, **spec.mask_kwargs)[None]  # (1, H, W): a channel
        else:
            raise ValueError(f"unknown pose encoding {name!r}")
        out[name] = torch.from_numpy(np.ascontiguousarray(a))
    return out


def model_inputs(
    spec: InputSpec,
    sources: Sequence[np.ndarray],
    target_keypoints: np.ndarray,
    *,
    source_keypoints: Sequence[np.ndarray] | None = None,
    target_image: np.ndarray | None = None,
) -> dict[str, torch.Tensor]:
    """One item (no batch dimension) of the networks' inputs; see the module docstring for the keys.

    ``sources`` are uint8 HxWx3 photos in the model frame (one for a single-image spec: only the
    first is used), ``target_keypoints`` the (18, 2) target pose in that frame.
    """
    if len(sources) == 0:
        raise ValueError("at least one source image is needed")
    item: dict[str, torch.Tensor] = {}
    if spec.group:
        item["source_images"] = torch.stack([image_to_tensor(s) for s in sources])
        if source_keypoints is not None:
            item["source_keypoints"] = torch.from_numpy(np.stack([np.asarray(k, np.float32) for k in source_keypoints]))
    else:
        item["source_image"] = image_to_tensor(sources[0])
        if source_keypoints is not None:
            item["source_keypoints"] = torch.from_numpy(np.asarray(source_keypoints[0], np.float32))
    if target_image is not None:
        item["target_image"] = image_to_tensor(target_image)
    item["target_keypoints"] = torch.from_numpy(np.asarray(target_keypoints, np.float32))
    for name, t in encode_pose(target_keypoints, spec).items():
        item[f"target_{name}"] = t
    return item


def batch_of(item: Mapping[str, Any], device: torch.device | str | None = None) -> dict[str, Any]:
    """A batch of one: every tensor gains a leading dimension (and moves to ``device``)."""
    out: dict[str, Any] = {}
    for key, value in item.items():
        if torch.is_tensor(value):
            value = value[None]
            out[key] = value.to(device) if device is not None else value
        else:
            out[key] = [value]
    return out
