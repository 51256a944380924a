"""Identity groups for the multi-view generator: K source photos of one person per item, padded
for batching, or an explicit generation plan (``posetransfer generate``).

The multi-view paper (one generator, discriminators D_I and D_P), sec. 3.3: a training sample is
"a set of images that belong to a same person wearing same fashion garment"; sec. 4.2: one to
five of them condition the generator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from posetransfer.data.datasets import MultiViewDataset
from posetransfer.data.layouts import identity_of
from posetransfer.errors import DataError
from posetransfer.pose.schema import MISSING

__all__ = ["MAX_SOURCES", "IdentityGroups", "generation_plan"]

#: the generator's recurrence takes at most this many photos (the multi-view paper, sec. 4.2: "2 to 5")
MAX_SOURCES = 5


class IdentityGroups(MultiViewDataset):
    """:class:`MultiViewDataset` with K drawn in ``min_sources..max_sources`` and collatable items.

    Items are what the default collate function stacks: ``source_names`` (a list of varying
    length) is replaced by ``source_name`` (the first source; generated files are named after it)
    and ``sources`` (all names joined by ``|``); ``num_sources`` (int) is the number of real
    photos, and with ``pad_to`` the photos are padded with zero images (keypoints -1) to that
    many, so identities with different K share a batch.

    ``plan``: explicit ``(target, [sources])`` items instead of random draws (``generate``); then
    ``len`` is the number of planned items and no unpaired pose is drawn.
    Identities with fewer than ``min_sources + 1`` photos are left out of random draws.
    """

    def __init__(
        self,
        path: str | Path,
        split: str | None = None,
        *,
        min_sources: int = 2,
        max_sources: int = MAX_SOURCES,
        pad_to: int | None = None,
        plan: list[tuple[str, list[str]]] | None = None,
        **kwargs: Any,
    ) -> None:
        if pad_to is not None and pad_to < max_sources:
            raise ValueError(f"pad_to ({pad_to}) must be at least max_sources ({max_sources})")
        fixed = min_sources if min_sources == max_sources else None
        super().__init__(path, split, max_sources, num_sources=fixed, min_sources=min_sources, **kwargs)
        self.pad_to = pad_to
        self.plan: list[tuple[str, list[str]]] | None = None
        if plan is not None:
            self.set_plan(plan)

    def set_plan(self, plan: list[tuple[str, list[str]]], where: str | Path | None = None) -> None:
        """Use explicit ``(target, sources)`` items; names are checked against the annotation and
        the files (an error names ``where``, e.g. the pairs file the plan came from)."""
        for target, sources in plan:
            if not 1 <= len(sources) <= self.max_sources:
                raise ValueError(f"{target}: {len(sources)} sources, expected 1..{self.max_sources}")
            for name in (target, *sources):
                if name not in self.annotations or name not in self.on_disk:
                    problem = "is not in the annotation" if name not in self.annotations else f"has no file in {self.files.images_dir}"
                    raise DataError(where or self.files.annotation_path, f"image {name!r} {problem}")
        self.plan = [(t, list(s)) for t, s in plan]
        # MultiViewDataset.__getitem__ reads ``groups[index]`` for the identity and the length.
        self.groups = [(identity_of(t), [t, *s]) for t, s in self.plan]
        self.unpaired = False

    def draw(self, index: int) -> tuple[str, list[str], str | None]:
        if self.plan is not None:
            target, sources = self.plan[index]
            return target, list(sources), None
        return super().draw(index)

    def item_names(self, index: int) -> tuple[str, str]:
        """(first source name, target name) of item ``index`` (the names its generated file is
        given after), without reading a file."""
        target, sources, _ = self.draw(index)
        return sources[0], target

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = super().__getitem__(index)
        names = item.pop("source_names")
        k = len(names)
        item["source_name"] = names[0]
        item["sources"] = "|".join(names)
        item["num_sources"] = k
        if self.pad_to is not None and k < self.pad_to:
            images, kps = item["source_images"], item["source_keypoints"]
            item["source_images"] = torch.cat([images, images.new_zeros(self.pad_to - k, *images.shape[1:])])
            item["source_keypoints"] = torch.cat([kps, kps.new_full((self.pad_to - k, *kps.shape[1:]), MISSING)])
        return item


def generation_plan(
    groups: dict[str, list[str]], max_sources: int, pairs: list[tuple[str, str]] | None = None
) -> list[tuple[str, list[str]]]:
    """``(target, sources)`` items for ``generate``: every photo of an identity with another photo
    as a target, its sources the identity's other photos in name order (at most ``max_sources``).

    With ``pairs``, one item per ``(from, to)`` pair: ``from`` is the first source (the file is
    named ``<from>___<to>.png``), followed by the other photos of ``from``'s identity.
    """
    plan: list[tuple[str, list[str]]] = []
    if pairs is None:
        for photos in groups.values():
            for target in photos:
                others = [p for p in photos if p != target][:max_sources]
                if others:
                    plan.append((target, others))
        return plan
    for source, target in pairs:
        extra = [p for p in groups.get(identity_of(source), []) if p not in (source, target)]
        plan.append((target, [source, *extra][:max_sources]))
    return plan
