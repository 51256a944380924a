"""The device data path for the identity-group tasks (multi-view generator, pix2pix).

:class:`GroupDeviceBatches` is :class:`~posetransfer.data.device.DeviceBatches` for
:class:`~posetransfer.data.groups.IdentityGroups`: every photo the data set can draw (group
members and, with the unpaired pose, every usable photo) is decoded once into the
:class:`~posetransfer.data.device.ImageBank`; each batch is then gathered, augmented and encoded
on the training device for all its photos at once.

What stays on the host is what decides the batch, so the two paths give the same one:

* the draws: :meth:`IdentityGroups.draw <posetransfer.data.groups.IdentityGroups.draw>` itself
  (target, the K sources in their drawn order, the unpaired pose ``p~``), at the item's epoch;
* the augmentation parameters: one :meth:`Augment.sample <posetransfer.data.transforms.Augment.sample>`
  per photo from the item's augmentation stream ``(seed, epoch, index, 1)``, in the worker path's
  order (each source, then the target, then ``p~``'s photo). Every photo gets its own draw, the
  sources do not share the target's (the multi-view paper, sec. 4.2: each photo is randomly
  cropped, flipped and rotated), and ``Augment.pair`` plays no part, as in
  :class:`~posetransfer.data.datasets.MultiViewDataset`;
* the pose mask, by :func:`posetransfer.pose.encodings.pose_mask` from the augmented keypoints
  (as for the pair tasks: its protocols reproduce released scripts).

The batch has the keys, shapes and dtypes of the default-collated :class:`IdentityGroups` items:
``source_images`` (B, K, 3, H, W) padded with zero images (keypoints -1) to ``pad_to`` when set,
``num_sources`` (B,) int64, the target's image, keypoints and encodings, the ``other_*`` tensors
and the name lists. Values as for the pair tasks (:mod:`posetransfer.data.device`): keypoints
exact, warped images within OpenCV's fixed-point bilinear weights, the stick figure up to the
edges of OpenCV's thick lines; ``tests/test_data_device_groups.py`` measures them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch

from posetransfer.data.datasets import MultiViewDataset, PairDataset
from posetransfer.data.device import (
    DeviceBatches,
    ImageBank,
    _to_model_range,
    augment_batch,
    coordinate_vector,
    pose_heatmaps,
    stick_figure,
)
from posetransfer.data.groups import IdentityGroups
from posetransfer.data.inputs import InputSpec
from posetransfer.data.transforms import Augment, AugmentParams
from posetransfer.errors import ConfigError
from posetransfer.pose import encodings
from posetransfer.pose.schema import MISSING

__all__ = ["STICK_WHERE", "GroupDeviceBatches", "device_batches", "encode_targets"]


#: where the stick figures are drawn: "host" (OpenCV's lines, :func:`posetransfer.pose.encodings.stick_figure`,
#: exact) or "device" (:func:`posetransfer.data.device.stick_figure`, edge pixels differ)
STICK_WHERE = ("host", "device")


def _stick(kp: torch.Tensor, size: tuple[int, int], thickness: int | None, where: str, device: torch.device) -> torch.Tensor:
    if where == "device":
        return stick_figure(kp, size, thickness)
    # OpenCV's own lines, as the worker path and inference draw them: the stick figure is the
    # multi-view generator's pose input and D_P's condition, so its pixels should not depend on
    # the data path (measured: about 0.3 ms a figure at 256x176 on one CPU core)
    return torch.from_numpy(encodings.stick_figure(kp.cpu().numpy(), size, thickness)).to(device, non_blocking=True)


def encode_targets(
    kp: torch.Tensor, spec: InputSpec, size: tuple[int, int], device: torch.device, stick: str = "host"
) -> dict[str, torch.Tensor]:
    """``{"target_<name>": tensor}`` of the spec's encodings of the poses ``kp`` (B, 18, 2), as
    :func:`posetransfer.data.inputs.encode_pose` makes them per item, batched (``stick``: see
    :data:`STICK_WHERE`)."""
    out: dict[str, torch.Tensor] = {}
    for name in spec.encodings:
        if name == "heatmaps":
            out["target_heatmaps"] = pose_heatmaps(kp, size, spec.heatmap, spec.radius, spec.sigma)
        elif name == "coords":
            out["target_coords"] = coordinate_vector(kp, size)
        elif name == "stick":
            out["target_stick"] = _stick(kp, size, spec.stick_thickness, stick, device)
        elif name == "mask":
            # pose.masks itself on the host (it reproduces the released scripts), a few KB each way
            mask = encodings.pose_mask(kp.cpu().numpy(), size, **spec.mask_kwargs)
            out["target_mask"] = torch.from_numpy(mask)[:, None].to(device, non_blocking=True)
        else:
            raise ConfigError(f"train.data_path=device: no device encoding for {name!r}")
    return out


def _draw_at(dataset: MultiViewDataset, epoch: int, index: int) -> tuple[str, list[str], str | None]:
    """``dataset.draw(index)`` as it is at ``epoch`` (the draw reads the data set's epoch)."""
    saved = dataset.epoch
    dataset.epoch = int(epoch)
    try:
        return dataset.draw(index)
    finally:
        dataset.epoch = saved


class GroupDeviceBatches:
    """Batches of an :class:`IdentityGroups` made on ``device`` for the indices ``batch_sampler``
    yields (lists of indices or of ``(epoch, index)``); see the module docstring."""

    def __init__(
        self, dataset: IdentityGroups, batch_sampler: Iterable[list[Any]], device: torch.device | str, *, stick: str = "host"
    ):
        if stick not in STICK_WHERE:
            raise ConfigError(f"stick must be one of {', '.join(STICK_WHERE)}, got {stick!r}")
        if not isinstance(dataset, IdentityGroups):
            raise ConfigError(f"GroupDeviceBatches needs an IdentityGroups data set, not {type(dataset).__name__}")
        if dataset.augment is not None and not isinstance(dataset.augment, Augment):
            raise ConfigError("train.data_path=device needs the augmentation to be a data.transforms.Augment")
        self.dataset = dataset
        self.batch_sampler = batch_sampler
        self.device = torch.device(device)
        self.stick = stick
        names = {n for _, photos in dataset.groups for n in photos}
        if dataset.unpaired:
            names |= {n for _, n in dataset._all}  # p~ may be any usable photo of another identity
        self.bank = ImageBank(dataset, sorted(names), self.device)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.batch_sampler)  # type: ignore[arg-type]

    def params(self, epoch: int, index: int, count: int) -> list[AugmentParams | None]:
        """The draws of the ``count`` photos of item ``index`` in ``epoch`` (sources, target, then
        ``p~``), from the stream :class:`MultiViewDataset` draws them from."""
        ds = self.dataset
        if ds.augment is None:
            return [None] * count
        rng = np.random.default_rng([ds.seed, int(epoch), int(index), 1])
        return [ds.augment.sample(rng, ds.size) for _ in range(count)]  # type: ignore[union-attr]

    def batch(self, items: list[Any]) -> dict[str, Any]:
        ds = self.dataset
        keys = [(it if isinstance(it, tuple) else (ds.epoch, it)) for it in items]
        drawn = [_draw_at(ds, e, i) for e, i in keys]
        counts = [len(sources) for _, sources, _ in drawn]
        slots = ds.pad_to if ds.pad_to is not None else max(counts)
        if ds.pad_to is None and len(set(counts)) > 1:
            raise ConfigError(
                f"a batch mixes identities with {min(counts)} and {max(counts)} source photos: "
                "set the data set's pad_to (the tasks pad when data.min_sources < data.max_sources)"
            )
        b = len(keys)
        # one gather and one augmentation call for every photo of the batch: sources item by item,
        # then the targets, then the unpaired photos
        names = [n for _, sources, _ in drawn for n in sources] + [t for t, _, _ in drawn]
        others = [o for _, _, o in drawn if o is not None]  # all or none: ``unpaired`` is the data set's
        names += others
        params: list[AugmentParams | None] = []
        per_item = [self.params(e, i, k + 1 + (o is not None)) for (e, i), k, (_, _, o) in zip(keys, counts, drawn)]
        for p, k in zip(per_item, counts):
            params += p[:k]
        params += [p[k] for p, k in zip(per_item, counts)]
        params += [p[k + 1] for p, k in zip(per_item, counts) if len(p) > k + 1]
        images, kp = self.bank.gather([self.bank.index[n] for n in names])
        border = ds.augment.border if isinstance(ds.augment, Augment) else "replicate"
        images, kp = augment_batch(images, kp, params, border)
        size = ds.size
        total = sum(counts)
        photos = _to_model_range(images)
        h, w = size
        source_images = photos.new_zeros((b, slots, 3, h, w))
        source_kp = kp.new_full((b, slots, *kp.shape[1:]), MISSING)
        start = 0
        for j, k in enumerate(counts):
            source_images[j, :k] = photos[start:start + k]
            source_kp[j, :k] = kp[start:start + k]
            start += k
        tk = kp[total:total + b]
        out: dict[str, Any] = {
            "source_images": source_images,
            "source_keypoints": source_kp,
            "target_image": photos[total:total + b],
            "target_keypoints": tk,
            **encode_targets(tk, ds.inputs, size, self.device, self.stick),
            "target_name": [t for t, _, _ in drawn],
            "identity": [ds.groups[i][0] for _, i in keys],
        }
        if others:
            ok = kp[total + b:]
            out["other_image"] = photos[total + b:]
            out["other_keypoints"] = ok
            out["other_stick"] = _stick(ok, size, ds.inputs.stick_thickness, self.stick, self.device)
            out["other_name"] = others
        out["source_name"] = [sources[0] for _, sources, _ in drawn]
        out["sources"] = ["|".join(sources) for _, sources, _ in drawn]
        out["num_sources"] = torch.tensor(counts, dtype=torch.long, device=self.device)
        return out

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for items in self.batch_sampler:
            yield self.batch(list(items))


def device_batches(dataset: Any, batch_sampler: Iterable[list[Any]], device: torch.device | str) -> Any:
    """The device path's batches for a training data set: :class:`DeviceBatches` for pairs (PG2
    tasks), :class:`GroupDeviceBatches` for identity groups (multi-view, pix2pix)."""
    if isinstance(dataset, IdentityGroups):
        return GroupDeviceBatches(dataset, batch_sampler, device)
    if isinstance(dataset, PairDataset):
        return DeviceBatches(dataset, batch_sampler, device)
    raise ConfigError(
        f"train.data_path=device supports pair data sets (PG2 tasks) and identity groups "
        f"(multiview, pix2pix), not {type(dataset).__name__}"
    )
