"""Torch data sets: pairs for PG2 and per-identity photo groups for the multi-view generator.

* :class:`PairDataset`: one (source, target) pair per item, PG2's training sample ("Pose Guided Person Image Generation", section
  3: condition image ``I_A``, target pose ``P_B``, target image ``I_B`` and its pose mask ``M_B``).
* :class:`MultiViewDataset`: one identity per item, the multi-view paper's batch (section
  3.3: "a set of images that belong to a same person wearing same fashion garment"): 1 to 5
  source photos for the bidirectional ConvLSTM encoder, a target photo and its stick figure, and
  an unpaired pose ``p~`` (with its real image ``y~``) from another identity for the two
  discriminators (eqs. 2-3).

Items are built by :func:`posetransfer.data.inputs.model_inputs` from an
:class:`~posetransfer.data.inputs.InputSpec` (the same function inference uses, so training and
inference inputs cannot drift apart); this module only reads files and applies the optional
augmentation. Names in the pairs and annotation files are
validated when the data set is built (names only, cheap); an image that cannot be decoded, or has
the wrong size, raises a :class:`~posetransfer.errors.DataError` naming the file when its item is
read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from posetransfer.data.inputs import InputSpec, encode_pose, image_to_tensor, model_inputs
from posetransfer.data.layouts import DatasetFiles, list_images, resolve_dataset
from posetransfer.data.pairs import group_by_identity, pair_line_numbers
from posetransfer.errors import DataError
from posetransfer.pose import encodings
from posetransfer.pose.io import read_annotations, read_pairs
from posetransfer.pose.schema import MISSING
from posetransfer.utils.io import read_image

#: ``(image uint8 HxWx3, keypoints (18, 2), rng) -> (image, keypoints)``, e.g. ``data.transforms.Augment``.
AugmentFn = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def drop_out_of_frame(kp: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A copy of ``kp`` with keypoints outside the ``(H, W)`` frame marked missing (-1).

    The field's annotation files hold a few such coordinates (x = -18 on DeepFashion); the
    encodings ignore them already, and the keypoints handed to the models must agree.
    """
    out = np.array(kp, dtype=np.float32, copy=True)
    out[~encodings.in_frame(out, size)] = MISSING
    return out


def _spec(inputs: InputSpec | None, files: DatasetFiles, size: tuple[int, int], **fallback: Any) -> InputSpec:
    """The data set's input spec at its image size: ``inputs`` if given, else one from the old
    keyword arguments (``mask_radius`` / ``mask_closing`` None = ``pose_mask``'s defaults)."""
    if inputs is None:
        mask = {k: fallback.pop(f"mask_{k}") for k in ("radius", "closing")}
        inputs = InputSpec(mask={k: int(v) for k, v in mask.items() if v is not None}, **fallback)
    try:
        return inputs.at_size(size)
    except ValueError as err:
        raise DataError(files.images_dir, f"does not fit the model: {err}") from None


def _files_of(path: str | Path | DatasetFiles, split: str | None, size: tuple[int, int] | None) -> DatasetFiles:
    if isinstance(path, DatasetFiles):
        if size is not None and path.size is None:
            return DatasetFiles(path.root, path.images_dir, path.annotation_path, path.pairs_path,
                                path.layout, path.split, tuple(size))  # fmt: skip
        return path
    return resolve_dataset(path, split, size=size)


def _missing_problem(name: str, on_disk: set[str], annotated: dict[str, Any], files: DatasetFiles) -> str | None:
    """Why ``name`` cannot be used (not annotated / no file), or None when it is fine."""
    if name not in annotated:
        return f"image {name!r} is not in the annotation {files.annotation_path.name}"
    if name not in on_disk:
        stem = os.path.splitext(name)[0]
        other = next((n for n in sorted(on_disk) if os.path.splitext(n)[0] == stem), None) if on_disk else None
        hint = f" (a file named {other!r} exists: names must match the files exactly)" if other else ""
        return f"image {name!r} has no file in {files.images_dir}{hint}"
    return None


class _Base(Dataset):
    """Shared loading: files, annotation, image size, per-item augmentation."""

    def __init__(
        self,
        path: str | Path | DatasetFiles,
        split: str | None,
        augment: AugmentFn | None,
        size: tuple[int, int] | None,
        seed: int,
    ) -> None:
        self.files = _files_of(path, split, size)
        self.size: tuple[int, int] = self.files.image_size()
        self.annotations = read_annotations(self.files.annotation_path)
        self.on_disk = set(list_images(self.files.images_dir))
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation / sampling draws (the rng of item i is seeded by seed, epoch, i)."""
        self.epoch = int(epoch)

    def _rng(self, index: int) -> np.random.Generator:
        # A SeedSequence over (seed, epoch, index): independent streams, reproducible in any
        # worker process and in any order of access.
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def _load(self, name: str, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
        """Image uint8 HxWx3 and keypoints (18, 2) of ``name``, augmented when an augment is set."""
        image = read_image(self.files.images_dir / name, self.size)
        kp = drop_out_of_frame(self.annotations[name], self.size)
        if self.augment is not None and rng is not None:
            image, kp = self.augment(image, kp, rng)
            if image.shape[:2] != self.size:
                raise ValueError(f"the augmentation changed the image size to {image.shape[:2]}, expected {self.size}")
            kp = drop_out_of_frame(kp, self.size)
        return image, kp


class PairDataset(_Base):
    """(source, target) pairs of the same person, PG2's samples.

    Item keys: ``source_image``, ``target_image`` (3, H, W) float32 in [-1, 1];
    ``source_keypoints``, ``target_keypoints`` (18, 2) float32 (y, x), -1 missing (out-of-frame
    keypoints included); ``target_heatmaps`` (18, H, W) (``heatmap`` = "disk", PG2, or "gaussian",
    PATN); ``target_coords`` (36,) (PG2's CE ablation); ``target_stick`` (3, H, W) in [0, 1];
    ``target_mask`` (1, H, W) in {0, 1} (PG2's ``M_B``); ``source_name``, ``target_name``.

    ``pairs`` overrides the data set's pairs file: a path to a ``from,to`` CSV or a list of
    (source, target) names. ``augment`` (e.g. :class:`posetransfer.data.transforms.Augment`)
    is applied to source and target independently with the item's seeded rng, or with one draw
    for both when it has ``pair=True`` (the released PG2 data's pair flips). The ``target_mask``
    is the ``pose_mask`` of the spec's mask arguments (``protocol`` default "pg2", PG2's released
    ``_getPoseMask``; :mod:`posetransfer.pose.masks`).
    """

    def __init__(
        self,
        path: str | Path | DatasetFiles,
        split: str | None = None,
        heatmap: str = "disk",
        radius: int = 4,
        sigma: float = 6.0,
        augment: AugmentFn | None = None,
        pairs: str | Path | Sequence[tuple[str, str]] | None = None,
        *,
        size: tuple[int, int] | None = None,
        seed: int = 0,
        stick_thickness: int | None = None,
        mask_radius: int | None = None,
        mask_closing: int | None = None,
        inputs: InputSpec | None = None,
    ) -> None:
        if heatmap not in ("disk", "gaussian"):
            raise ValueError(f"heatmap must be 'disk' or 'gaussian', got {heatmap!r}")
        super().__init__(path, split, augment, size, seed)
        #: the model-input spec (``inputs`` when given, which overrides the encoding arguments)
        self.inputs = _spec(
            inputs, self.files, self.size, heatmap=heatmap, radius=int(radius), sigma=float(sigma), stick_thickness=stick_thickness,
            mask_radius=mask_radius, mask_closing=mask_closing,
        )  # fmt: skip
        if self.inputs.group:
            raise ValueError("PairDataset needs a single-source InputSpec (group=False)")
        self.pairs = self._read_and_validate_pairs(pairs)

    def _read_and_validate_pairs(self, pairs) -> list[tuple[str, str]]:
        if pairs is None or isinstance(pairs, (str, Path)):
            pairs_path = Path(pairs) if pairs is not None else self.files.pairs_path
            if pairs_path is None:
                raise DataError(
                    self.files.root,
                    "has no pairs file (looked for pairs.csv or the field's *-pairs-<split>.csv); "
                    "write one with `posetransfer data pairs`",
                )
            listed = read_pairs(pairs_path)
            where: Path = pairs_path
            line_of: Callable[[int], int | None] = lambda i: pair_line_numbers(pairs_path)[i]  # noqa: E731
        else:
            listed = [(str(a), str(b)) for a, b in pairs]
            where = Path("<pairs argument>")
            line_of = lambda i: None  # noqa: E731
        for i, (a, b) in enumerate(listed):
            for name in (a, b):
                problem = _missing_problem(name, self.on_disk, self.annotations, self.files)
                if problem:
                    line = line_of(i)
                    raise DataError(where, problem if line is not None else f"pair {i}: {problem}", line)
        if not listed:
            raise DataError(where, "holds no pairs")
        return listed

    def __len__(self) -> int:
        return len(self.pairs)

    def item_names(self, index: int) -> tuple[str, str]:
        """(source name, target name) of item ``index``, without reading a file."""
        return tuple(self.pairs[index])  # type: ignore[return-value]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.pairs):
            raise IndexError(index)
        source_name, target_name = self.pairs[index]
        rng = self._rng(index) if self.augment is not None else None
        if rng is not None and getattr(self.augment, "pair", False):
            (source, source_kp), (target, target_kp) = self._load_pair(source_name, target_name, rng)
        else:
            source, source_kp = self._load(source_name, rng)
            target, target_kp = self._load(target_name, rng)
        item: dict[str, Any] = model_inputs(
            self.inputs, [source], target_kp, source_keypoints=[source_kp], target_image=target
        )
        item["source_name"] = source_name
        item["target_name"] = target_name
        return item

    def _load_pair(self, source_name: str, target_name: str, rng: np.random.Generator):
        """Source and target with ONE augmentation draw for both (``Augment(pair=True)``)."""
        source = (read_image(self.files.images_dir / source_name, self.size),
                  drop_out_of_frame(self.annotations[source_name], self.size))  # fmt: skip
        target = (read_image(self.files.images_dir / target_name, self.size),
                  drop_out_of_frame(self.annotations[target_name], self.size))  # fmt: skip
        (s_img, s_kp), (t_img, t_kp) = self.augment.apply_pair(source, target, rng)  # type: ignore[union-attr]
        return (s_img, drop_out_of_frame(s_kp, self.size)), (t_img, drop_out_of_frame(t_kp, self.size))


class MultiViewDataset(_Base):
    """One identity per item: K source photos, a target photo, and an unpaired pose (the multi-view paper).

    Groups are the annotated images with a file, by :func:`~posetransfer.data.layouts.identity_of`;
    identities with fewer than ``min_sources + 1`` photos (``num_sources + 1`` when fixed) are left out. For
    item i, a rng seeded by (seed, epoch, i) draws the target photo, then K sources among the
    others (K uniform in ``min_sources .. min(max_sources, n - 1)``, or ``num_sources`` when given), in the
    order drawn, without replacement; the sequence order matters to the bidirectional ConvLSTM
    only through training noise, so a random order is what the paper's "set of images" implies.

    Item keys: ``source_images`` (K, 3, H, W), ``source_keypoints`` (K, 18, 2), ``target_image``,
    ``target_keypoints``, ``target_stick`` (3, H, W), ``target_mask`` (1, H, W), ``source_names``
    (list), ``target_name``, ``identity``; and, with ``unpaired`` (default), the pose ``p~`` of a
    photo of another identity with its real image ``y~`` (eqs. 2-3): ``other_image``,
    ``other_keypoints``, ``other_stick``, ``other_name``.

    Batch size 1 is the paper's batch (one identity); larger batches need equal K (fix
    ``num_sources``), or :class:`posetransfer.data.groups.IdentityGroups`, which pads.
    """

    def __init__(
        self,
        path: str | Path | DatasetFiles,
        split: str | None = None,
        max_sources: int = 5,
        *,
        num_sources: int | None = None,
        min_sources: int = 1,
        augment: AugmentFn | None = None,
        unpaired: bool = True,
        size: tuple[int, int] | None = None,
        seed: int = 0,
        stick_thickness: int | None = None,
        mask_radius: int | None = None,
        mask_closing: int | None = None,
        inputs: InputSpec | None = None,
    ) -> None:
        if max_sources < 1:
            raise ValueError(f"max_sources must be >= 1, got {max_sources}")
        if num_sources is not None and num_sources < 1:
            raise ValueError(f"num_sources must be >= 1, got {num_sources}")
        if not 1 <= min_sources <= max_sources:
            raise ValueError(f"need 1 <= min_sources <= max_sources, got {min_sources}, {max_sources}")
        super().__init__(path, split, augment, size, seed)
        self.min_sources = int(min_sources)
        self.max_sources, self.num_sources, self.unpaired = int(max_sources), num_sources, bool(unpaired)
        #: the model-input spec: K source photos, the target's stick figure and pose mask
        self.inputs = _spec(
            inputs, self.files, self.size, stick_thickness=stick_thickness, encodings=("stick", "mask"), group=True,
            mask_radius=mask_radius, mask_closing=mask_closing,
        )  # fmt: skip
        if not self.inputs.group:
            raise ValueError("MultiViewDataset needs a multi-source InputSpec (group=True)")
        need = 1 + (num_sources if num_sources is not None else self.min_sources)
        usable = [n for n in self.annotations if n in self.on_disk]
        groups = group_by_identity(usable)
        self.groups: list[tuple[str, list[str]]] = [(k, v) for k, v in groups.items() if len(v) >= need]
        if not self.groups:
            raise DataError(
                self.files.annotation_path,
                f"no identity has {need} or more annotated photos with a file in {self.files.images_dir}",
            )
        if self.unpaired and len(groups) < 2:
            raise DataError(self.files.annotation_path, "only one identity: the unpaired pose needs another (unpaired=False)")
        # every usable photo, for drawing p~ from another identity
        self._all = [(k, n) for k, v in groups.items() for n in v]

    def __len__(self) -> int:
        return len(self.groups)

    def draw(self, index: int) -> tuple[str, list[str], str | None]:
        """(target name, source names, other-identity name or None) of item ``index`` (no file read)."""
        identity, photos = self.groups[index]
        rng = self._rng(index)
        target = photos[int(rng.integers(len(photos)))]
        others = [p for p in photos if p != target]
        hi = min(self.max_sources, len(others))
        k = self.num_sources if self.num_sources is not None else int(rng.integers(self.min_sources, hi + 1))
        sources = [others[int(i)] for i in rng.choice(len(others), size=k, replace=False)]
        other = None
        if self.unpaired:
            while True:  # at least two identities exist, so this ends quickly
                ident, name = self._all[int(rng.integers(len(self._all)))]
                if ident != identity:
                    other = name
                    break
        return target, sources, other

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.groups):
            raise IndexError(index)
        target_name, source_names, other_name = self.draw(index)
        # a separate stream for the augmentation, so turning it on does not change the draws
        aug_rng = np.random.default_rng([self.seed, self.epoch, int(index), 1]) if self.augment is not None else None
        loaded = [self._load(n, aug_rng) for n in source_names]
        target, target_kp = self._load(target_name, aug_rng)
        item: dict[str, Any] = model_inputs(
            self.inputs, [im for im, _ in loaded], target_kp, source_keypoints=[kp for _, kp in loaded],
            target_image=target,
        )  # fmt: skip
        item["source_names"] = list(source_names)
        item["target_name"] = target_name
        item["identity"] = self.groups[index][0]
        if other_name is not None:
            other, other_kp = self._load(other_name, aug_rng)
            item["other_image"] = image_to_tensor(other)
            item["other_keypoints"] = torch.from_numpy(other_kp)
            item["other_stick"] = encode_pose(other_kp, self.inputs, ("stick",))["stick"]
            item["other_name"] = other_name
        return item
