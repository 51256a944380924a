"""The device-side data path: decode once, then encode and augment whole batches on the device.

The worker path (:class:`~posetransfer.data.datasets.PairDataset` in data-loader processes)
decodes, augments and encodes every sample on the CPU; at PG2's Market size a GPU step is much
faster than that. Here every image of the data set is decoded once and held as uint8 (on the
device when it fits in :data:`DEVICE_FRACTION` of the free device memory, else in pinned host
memory), and each batch is gathered, augmented (flip, crop, rotation, with the keypoints) and
encoded (heatmaps, stick figure, coordinates) in torch, batched, on the training device; the
pose mask, whose protocols reproduce released scripts pixel for pixel, comes from
:func:`posetransfer.pose.encodings.pose_mask` itself, batched on the host from the augmented
keypoints. ``train.data_path: device`` selects it (PG2 pair tasks; the identity groups of the
multi-view and pix2pix tasks: :mod:`posetransfer.data.device_groups`).

Both paths give the same batch: the augmentation parameters are drawn on the host from the same
per-item generator (seed, epoch, index) and in the same order as :class:`PairDataset`, and the
torch encodings reproduce :mod:`posetransfer.pose.encodings`: disk and Gaussian heatmaps and the
coordinates exactly, the stick figure up to the rasterisation of OpenCV's thick lines (a few
edge pixels), warped images up to OpenCV's 5-bit fixed-point bilinear weights
(``tests/test_data_device.py`` measures both); the mask is exact given the keypoints.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from posetransfer.data.datasets import PairDataset, drop_out_of_frame
from posetransfer.data.transforms import Augment, AugmentParams
from posetransfer.errors import ConfigError
from posetransfer.pose import encodings
from posetransfer.pose.encodings import JOINT_COLORS, default_thickness
from posetransfer.pose.schema import FLIP_PERMUTATION, LIMB_COLORS, MISSING, NUM_KEYPOINTS, STICK_LIMBS
from posetransfer.utils.io import read_image

__all__ = [
    "DEVICE_FRACTION",
    "in_frame",
    "disk_heatmaps",
    "gaussian_heatmaps",
    "pose_heatmaps",
    "stick_figure",
    "coordinate_vector",
    "augment_batch",
    "ImageBank",
    "DeviceBatches",
]

#: the image bank goes to the device when it takes at most this fraction of the free device memory
DEVICE_FRACTION = 0.25


# ---- encodings (torch, batched: keypoints (B, 18, 2) (y, x), -1 missing) -------------------------


def in_frame(kp: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    y, x = kp[..., 0], kp[..., 1]
    return (y >= 0) & (x >= 0) & (y < size[0]) & (x < size[1])


def _round(values: torch.Tensor) -> torch.Tensor:
    """Round half up, as the numpy encodings do."""
    return torch.floor(values.double() + 0.5).long()


def _grid(size: tuple[int, int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    ys = torch.arange(size[0], device=device)
    xs = torch.arange(size[1], device=device)
    return ys, xs


def disk_heatmaps(kp: torch.Tensor, size: tuple[int, int], radius: int = 4) -> torch.Tensor:
    """(B, 18, H, W): 1 where ``dy^2 + dx^2 <= radius^2`` around the rounded keypoint (PG2 sec. 3.1)."""
    ys, xs = _grid(size, kp.device)
    c = _round(kp)
    present = in_frame(kp, size)
    dy2 = (ys.view(1, 1, -1) - c[..., 0:1]) ** 2  # (B, 18, H)
    dx2 = (xs.view(1, 1, -1) - c[..., 1:2]) ** 2  # (B, 18, W)
    maps = (dy2[..., :, None] + dx2[..., None, :]) <= radius * radius
    return (maps & present[..., None, None]).float()


def gaussian_heatmaps(kp: torch.Tensor, size: tuple[int, int], sigma: float = 6.0) -> torch.Tensor:
    """(B, 18, H, W): PATN's separable Gaussian maps, exact over the frame, zero when missing."""
    ys, xs = _grid(size, kp.device)
    k = kp.double()
    gy = torch.exp(-((ys.double().view(1, 1, -1) - k[..., 0:1]) ** 2) / (2.0 * sigma**2)).float()
    gx = torch.exp(-((xs.double().view(1, 1, -1) - k[..., 1:2]) ** 2) / (2.0 * sigma**2)).float()
    gy = gy * in_frame(kp, size)[..., None]
    return gy[..., :, None] * gx[..., None, :]


def pose_heatmaps(kp: torch.Tensor, size: tuple[int, int], kind: str = "disk", radius: int = 4, sigma: float = 6.0) -> torch.Tensor:
    if kind == "disk":
        return disk_heatmaps(kp, size, radius)
    if kind == "gaussian":
        return gaussian_heatmaps(kp, size, sigma)
    raise ValueError(f"unknown heatmap kind {kind!r} (expected 'disk' or 'gaussian')")


def coordinate_vector(kp: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 36): ``(y / H, x / W)`` per joint, -1 when missing (PG2's CE input)."""
    out = kp / torch.tensor([size[0], size[1]], dtype=kp.dtype, device=kp.device)
    out = torch.where(in_frame(kp, size)[..., None], out, torch.full_like(out, -1.0))
    return out.reshape(kp.shape[0], 2 * NUM_KEYPOINTS).float()


def _segment_distance2(py, px, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared distance of pixel centres to segments a-b; a, b (B, L, 2) as (x, y) -> (B, L, H, W)."""
    ax, ay = a[..., 0, None, None], a[..., 1, None, None]
    dx, dy = (b[..., 0] - a[..., 0])[..., None, None], (b[..., 1] - a[..., 1])[..., None, None]
    length2 = (dx * dx + dy * dy).clamp_min(1e-12)
    t = (((px - ax) * dx + (py - ay) * dy) / length2).clamp(0, 1)
    return (px - ax - t * dx) ** 2 + (py - ay - t * dy) ** 2


def _paint(canvas: torch.Tensor, masks: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
    """Draw masks (B, L, H, W) in order (later on top) in colours (L, 3) onto canvas (B, 3, H, W)."""
    order = torch.arange(1, masks.shape[1] + 1, device=masks.device).view(1, -1, 1, 1)
    top = (masks * order).amax(dim=1)  # (B, H, W): 0 = nothing, l + 1 = limb l drawn last
    palette = torch.cat([torch.zeros(1, 3, device=masks.device), colours], dim=0)
    painted = palette[top].permute(0, 3, 1, 2)
    return torch.where((top > 0)[:, None], painted, canvas)


def stick_figure(kp: torch.Tensor, size: tuple[int, int], thickness: int | None = None) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1]: the multi-view stick figure (limbs in order, then joint dots).

    A limb covers the pixels near its segment as OpenCV's thick line with round caps does, a
    joint dot the pixels within its radius; edge pixels may differ from OpenCV.
    """
    thick = default_thickness(size) if thickness is None else int(thickness)
    dot = max(1, thick // 2 + 1)
    device = kp.device
    ys, xs = _grid(size, device)
    py, px = ys.double().view(-1, 1), xs.double().view(1, -1)
    present = in_frame(kp, size)
    pts = _round(kp.flip(-1)).double()  # (x, y)
    a_idx = torch.tensor([a for a, _ in STICK_LIMBS], device=device)
    b_idx = torch.tensor([q for _, q in STICK_LIMBS], device=device)
    # OpenCV's thick lines reach (thickness + 1) // 2 + 0.5 px from the segment (fitted on
    # cv2.line at thickness 1..8; thickness 1 is Bresenham's line, about half a pixel)
    reach = (thick + 1) // 2 + 0.5 if thick > 1 else 0.5
    limbs = _segment_distance2(py, px, pts[:, a_idx], pts[:, b_idx]) <= reach**2
    limbs &= (present[:, a_idx] & present[:, b_idx])[..., None, None]
    canvas = torch.zeros(kp.shape[0], 3, size[0], size[1], device=device)
    canvas = _paint(canvas, limbs.long(), torch.tensor(LIMB_COLORS, dtype=torch.float32, device=device))
    dots = ((py - pts[..., 1, None, None]) ** 2 + (px - pts[..., 0, None, None]) ** 2) <= dot * dot + 0.1
    dots &= present[..., None, None]
    canvas = _paint(canvas, dots.long(), torch.tensor(JOINT_COLORS, dtype=torch.float32, device=device))
    return canvas / 255.0


# ---- augmentation (torch, batched) ----------------------------------------------------------------


def _finish(kp: torch.Tensor, present: torch.Tensor, size: tuple[float, float]) -> torch.Tensor:
    keep = present & (kp[..., 0] >= 0) & (kp[..., 1] >= 0) & (kp[..., 0] < size[0]) & (kp[..., 1] < size[1])
    return torch.where(keep[..., None], kp, torch.full_like(kp, MISSING))


def augment_batch(
    images: torch.Tensor, kp: torch.Tensor, params: list[AugmentParams | None], border: Any = "replicate"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply per-item drawn transforms to uint8 images (B, H, W, 3) and keypoints (B, 18, 2).

    Flip first (image mirrored, ``x -> W - 1 - x``, left/right joints swapped), then the warp of
    :meth:`AugmentParams.matrix` (crop + resize back + rotation) as ``cv2.warpAffine`` does it:
    bilinear, the output pixel ``p`` read at ``M^-1 p``, outside pixels replicated from the edge.
    Returns uint8 images (rounded) and keypoints with what left the frame marked missing.
    """
    if border != "replicate":
        raise ConfigError("the device data path supports augment border 'replicate' only")
    b, height, width = images.shape[:3]
    flips = torch.tensor([p is not None and p.flip for p in params], device=images.device)
    if bool(flips.any()):
        images = torch.where(flips.view(-1, 1, 1, 1), images.flip(2), images)
        present = (kp[..., 0] >= 0) & (kp[..., 1] >= 0)
        flipped = kp.clone()
        flipped[..., 1] = (width - 1) - flipped[..., 1]
        flipped = _finish(flipped, present, (math.inf, width))[:, list(FLIP_PERMUTATION)]
        kp = torch.where(flips.view(-1, 1, 1), flipped, kp)
    warped = [i for i, p in enumerate(params) if p is not None and p.matrix() is not None]
    if warped:
        idx = torch.tensor(warped, device=images.device)
        m = torch.tensor(np.stack([np.vstack([params[i].matrix(), [0, 0, 1]]) for i in warped]), dtype=torch.float64,
                         device=images.device)  # fmt: skip
        inv = torch.linalg.inv(m)[:, :2]  # output (x, y, 1) -> source (x, y)
        ys, xs = _grid((height, width), images.device)
        gy, gx = torch.meshgrid(ys.double(), xs.double(), indexing="ij")
        out_pts = torch.stack([gx, gy, torch.ones_like(gx)], dim=-1)  # (H, W, 3)
        src = torch.einsum("nij,hwj->nhwi", inv, out_pts)  # (n, H, W, 2) as (x, y)
        # align_corners=True: -1 and 1 are the centres of the first and last pixels
        norm = torch.stack([src[..., 0] * 2 / max(width - 1, 1) - 1, src[..., 1] * 2 / max(height - 1, 1) - 1], -1)
        sub = images[idx].permute(0, 3, 1, 2).float()
        out = F.grid_sample(sub, norm.float(), mode="bilinear", padding_mode="border", align_corners=True)
        images = images.clone()
        images[idx] = out.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        k = kp[idx].double()
        present = (k[..., 0] >= 0) & (k[..., 1] >= 0)
        mm = m[:, :2]
        new_x = mm[:, None, 0, 0] * k[..., 1] + mm[:, None, 0, 1] * k[..., 0] + mm[:, None, 0, 2]
        new_y = mm[:, None, 1, 0] * k[..., 1] + mm[:, None, 1, 1] * k[..., 0] + mm[:, None, 1, 2]
        moved = _finish(torch.stack([new_y, new_x], -1).float(), present, (height, width))
        kp = kp.clone()
        kp[idx] = moved
    return images, _finish(kp, (kp[..., 0] >= 0) & (kp[..., 1] >= 0), (height, width))


# ---- the image bank and the batches -----------------------------------------------------------------


class ImageBank:
    """Every image of a data set decoded once, uint8 (N, H, W, 3), on the device or pinned host memory."""

    def __init__(self, dataset: PairDataset, names: list[str], device: torch.device, *, threads: int | None = None):
        self.names = names
        self.index = {n: i for i, n in enumerate(names)}
        h, w = dataset.size
        nbytes = len(names) * h * w * 3
        on_device = False
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            on_device = nbytes <= DEVICE_FRACTION * free
        pin = device.type == "cuda" and not on_device
        images = torch.empty((len(names), h, w, 3), dtype=torch.uint8, pin_memory=pin)
        files = dataset.files

        def load(i: int) -> None:  # PIL and OpenCV release the GIL while decoding
            images[i] = torch.from_numpy(read_image(files.images_dir / names[i], dataset.size))

        with ThreadPoolExecutor(max_workers=threads or min(8, os.cpu_count() or 1)) as pool:
            list(pool.map(load, range(len(names))))
        kp = np.stack([drop_out_of_frame(dataset.annotations[n], dataset.size) for n in names]) if names else \
            np.zeros((0, NUM_KEYPOINTS, 2), np.float32)  # fmt: skip
        self.images = images.to(device) if on_device else images
        self.keypoints = torch.from_numpy(kp).to(device)
        self.where = "device" if on_device or device.type == "cpu" else "pinned host"
        self.device = device

    def gather(self, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.tensor(rows, dtype=torch.long)
        if self.images.device == self.device:
            images = self.images[idx.to(self.device)]
        else:
            images = self.images[idx].pin_memory().to(self.device, non_blocking=True)
        return images, self.keypoints[idx.to(self.device)]


def _to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W) in [-1, 1], as ``image_to_tensor``."""
    return images.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0).contiguous()


class DeviceBatches:
    """Batches of a :class:`PairDataset` made on ``device``, for the indices ``batch_sampler`` yields.

    ``batch_sampler`` yields lists of indices or of ``(epoch, index)`` (the trainer's
    epoch-tagged sampler); the batch has the keys, shapes and values of the collated items of
    ``dataset`` (see the module docstring for the tolerances).
    """

    def __init__(self, dataset: PairDataset, batch_sampler: Iterable[list[Any]], device: torch.device | str):
        if not isinstance(dataset, PairDataset):
            raise ConfigError(f"train.data_path=device supports pair data sets (PG2 tasks), not {type(dataset).__name__}")
        if dataset.augment is not None and not isinstance(dataset.augment, Augment):
            raise ConfigError("train.data_path=device needs the augmentation to be a data.transforms.Augment")
        self.dataset = dataset
        self.batch_sampler = batch_sampler
        self.device = torch.device(device)
        names = sorted({n for pair in dataset.pairs for n in pair})
        self.bank = ImageBank(dataset, names, self.device)
        self.rows = [(self.bank.index[a], self.bank.index[b]) for a, b in dataset.pairs]

    def __len__(self) -> int:
        return len(self.batch_sampler)  # type: ignore[arg-type]

    def params(self, epoch: int, index: int) -> tuple[AugmentParams | None, AugmentParams | None]:
        """The (source, target) draws of item ``index`` in ``epoch``, as :class:`PairDataset` draws them."""
        ds = self.dataset
        if ds.augment is None:
            return None, None
        rng = np.random.default_rng([ds.seed, int(epoch), int(index)])
        if getattr(ds.augment, "pair", False):  # one draw for both images of the pair
            both = ds.augment.sample(rng, ds.size)
            return both, both
        return ds.augment.sample(rng, ds.size), ds.augment.sample(rng, ds.size)

    def batch(self, items: list[Any]) -> dict[str, Any]:
        ds = self.dataset
        keys = [(it if isinstance(it, tuple) else (ds.epoch, it)) for it in items]
        drawn = [self.params(e, i) for e, i in keys]
        src_rows = [self.rows[i][0] for _, i in keys]
        tgt_rows = [self.rows[i][1] for _, i in keys]
        images, kp = self.bank.gather(src_rows + tgt_rows)
        border = ds.augment.border if isinstance(ds.augment, Augment) else "replicate"
        images, kp = augment_batch(images, kp, [s for s, _ in drawn] + [t for _, t in drawn], border)
        b = len(keys)
        spec = ds.inputs
        size = ds.size
        tk = kp[b:]
        out: dict[str, Any] = {
            "source_image": _to_model_range(images[:b]),
            "source_keypoints": kp[:b],
            "target_image": _to_model_range(images[b:]),
            "target_keypoints": tk,
        }
        for name in spec.encodings:  # the data set's own encodings, as data.inputs.encode_pose
            if name == "heatmaps":
                out["target_heatmaps"] = pose_heatmaps(tk, size, spec.heatmap, spec.radius, spec.sigma)
            elif name == "coords":
                out["target_coords"] = coordinate_vector(tk, size)
            elif name == "stick":
                out["target_stick"] = stick_figure(tk, size, spec.stick_thickness)
            elif name == "mask":
                # the mask protocols reproduce released scripts pixel for pixel (pose.masks, tested
                # row by row against them): computed by that code, batched, on the host, from the
                # augmented keypoints (a few KB each way), rather than by a second implementation
                mask = encodings.pose_mask(tk.cpu().numpy(), size, **spec.mask_kwargs)
                out["target_mask"] = torch.from_numpy(mask)[:, None].to(self.device, non_blocking=True)
            else:
                raise ConfigError(f"train.data_path=device: no device encoding for {name!r}")
        out["source_name"] = [ds.pairs[i][0] for _, i in keys]
        out["target_name"] = [ds.pairs[i][1] for _, i in keys]
        return out

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for items in self.batch_sampler:
            yield self.batch(list(items))
