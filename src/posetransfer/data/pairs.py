"""Same-identity training pairs from an annotation, for users' own data.

PG2 ("Pose Guided Person Image Generation", section 4.1) trains on ordered pairs (I_A, I_B) of two photos of the same person; the
field's pair files (``market-pairs-*.csv``, ``fasion-resize-pairs-*.csv``) list such pairs. This
module builds them for a new annotation file.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from posetransfer.data.layouts import identity_of
from posetransfer.pose.schema import TORSO, visible


def has_torso(keypoints: np.ndarray) -> bool:
    """True when both shoulders and both hips are visible (the torso the pose mask fills)."""
    return bool(visible(np.asarray(keypoints))[list(TORSO)].all())


def group_by_identity(names) -> dict[str, list[str]]:
    """``{identity: sorted names}`` with identities sorted, so results never depend on file order."""
    groups: dict[str, list[str]] = defaultdict(list)
    for n in names:
        groups[identity_of(n)].append(n)
    return {k: sorted(groups[k]) for k in sorted(groups)}


def make_pairs(
    annotations: Mapping[str, np.ndarray],
    seed: int = 0,
    max_pairs: int | None = None,
    require_torso: bool = False,
) -> list[tuple[str, str]]:
    """All ordered (source, target) pairs of two different photos of the same identity, shuffled.

    ``annotations`` maps image names to keypoints (18, 2). ``require_torso`` first drops images
    whose two shoulders and two hips are not all visible (pose masks and warps of such images are
    poor). The pairs are shuffled with ``numpy.random.default_rng(seed)`` and, when ``max_pairs``
    is given, the first ``max_pairs`` are kept (a seeded sample without replacement). The result
    depends only on the set of names, their keypoints and the arguments.
    """
    if max_pairs is not None and max_pairs < 0:
        raise ValueError(f"max_pairs must be >= 0, got {max_pairs}")
    names = [n for n, kp in annotations.items() if not require_torso or has_torso(kp)]
    pairs = [(a, b) for group in group_by_identity(names).values() for a in group for b in group if a != b]
    order = np.random.default_rng(seed).permutation(len(pairs))
    if max_pairs is not None:
        order = order[:max_pairs]
    return [pairs[i] for i in order]


def pair_line_numbers(path: str | Path) -> list[int]:
    """Line numbers of the data rows of a pairs file, in the order ``pose.io.read_pairs`` returns
    them (blank rows skipped), so a problem found in pair i can name its line."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    out = []
    for lineno, line in enumerate(lines[1:], start=2):
        row = next(csv.reader([line]), [])
        if row and any(c.strip() for c in row):
            out.append(lineno)
    return out
