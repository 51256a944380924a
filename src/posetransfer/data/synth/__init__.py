"""Synthetic people: the embedded default data set for the demo and the tests (no downloads).

Pose transfer has to be a *real* task on this data, so each photo is rendered from an articulated
body rather than pasted sprites:

* **Skeleton.** A 3D stick skeleton in body units (1 unit = one head height, ~7.7 units tall) with
  joint-angle limits: shoulders swing -40..170 deg and abduct 0..95 deg, elbows only flex (0..150),
  hips flex -35..70 and abduct 0..20, knees only flex backwards (0..120), the torso leans a little
  forwards/sideways and twists against the hips when walking. Poses are sampled as standing,
  walking (opposite arm/leg swing, trailing knee bent, heel up) or gesturing (one arm raised or
  bent as if holding a phone or a bag).
* **Views.** The body is turned by a yaw angle about the vertical axis and projected
  orthographically: ``front`` (yaw 0), ``back`` (180), ``right`` (90, the person faces the image's
  right and shows its right side) and ``left`` (-90), each with a few degrees of jitter. The 18
  keypoints (OpenPose order, :mod:`posetransfer.pose.schema`) are the projected joints of the same
  skeleton, so they are exact, and left/right are correct for the view (in a front view the
  person's right shoulder is on the image's left). Face keypoints follow OpenPose's behaviour: a
  keypoint whose surface faces away from the camera is missing (-1), so a back view has no nose or
  eyes, a side view has one eye; ears are kept unless clearly turned away.
* **Drawing.** Body parts (capsules with tapered widths, a torso polygon whose width blends its
  lateral width and its depth with the yaw, head and hair ellipses, hands, shoes) are painted in
  depth order (far limbs, torso, near limbs: the painter's algorithm) into a 2x super-sampled
  *material* map; materials are then coloured (solid colours, or stripes/checks in body-aligned
  coordinates so patterns follow the torso), shaded (a blurred-coverage term that darkens the
  silhouette's edges and thin limbs, a side light, darker far-side limbs) and box-filtered down
  to the output size, which anti-aliases every edge at once.
* **Identities.** An identity fixes the appearance: skin tone, hair colour and style, top (colour,
  pattern among solid / horizontal stripes / vertical stripes / checks / chest print, sleeve and
  hem length), a back design (yoke, stripe or patch, different from the front so that several
  views carry more information than one, the premise of the multi-view model), trousers / shorts /
  skirt (colour, pattern), shoes, build, sometimes a backpack (straps from the front, the bag from
  behind and the side). Pose, view, scale, position and background change per photo.
* **Backgrounds.** ``"varied"`` imitates Market-1501 street crops (a different random background
  per photo: wall/ground gradients, rectangles and poles as clutter, a blurred ground shadow,
  sensor noise); ``"plain"`` imitates DeepFashion (a near-white uniform background, and sometimes
  a closer crop that cuts the legs off: keypoints outside the frame are missing).

Determinism: every random draw comes from ``np.random.default_rng([seed, stream, identity,
view])``, so a photo depends only on (seed, identity, view index, size, background), not on
the processing order, and PNGs are encoded by OpenCV's deterministic zlib writer. The same
arguments give the same bytes for every file.

Output (plain layout, one folder per split, identities split disjointly)::

    out/train/images/id00000_00.png ...   out/train/annotation.csv   out/train/pairs.csv
    out/train/synth.json   (parameters and the view of every image; marks the folder as ours)
    out/test/...

Overwriting: each split is built in a hidden temporary folder beside it and renamed into place at
the end, so an interrupted run never leaves a folder that looks complete. An existing split folder
is replaced only if it is empty or is our own output (holds a ``synth.json`` written by this
module); anything else raises :class:`~posetransfer.errors.DataError`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from posetransfer.data.synth.body import VIEW_YAW, VIEWS, Appearance, BodyPose, sample_appearance, sample_pose
from posetransfer.data.synth.render import SUPERSAMPLE, render_person
from posetransfer.errors import DataError, PosetransferError
from posetransfer.pose.io import write_annotations, write_pairs

__all__ = [
    "VIEWS",
    "VIEW_YAW",
    "SUPERSAMPLE",
    "Appearance",
    "BodyPose",
    "sample_appearance",
    "sample_pose",
    "render_person",
    "render_photo",
    "photo_name",
    "view_plan",
    "split_identities",
    "synthesize",
]

BACKGROUNDS = ("varied", "plain")
MARKER_FILE = "synth.json"
GENERATOR = "posetransfer.data.synth"
FORMAT_VERSION = 1

# Streams of the seed sequence, so the draws of one purpose never shift those of another.
_STREAM_APPEARANCE, _STREAM_PHOTO, _STREAM_SPLIT = 0, 1, 2


# ---------------------------------------------------------------------------------------------
# Data set
# ---------------------------------------------------------------------------------------------


def photo_name(identity: int, view_index: int) -> str:
    """``id00012_03.png``: the identity is the part before the first ``_`` (data.layouts.identity_of)."""
    return f"id{identity:05d}_{view_index:02d}.png"


def _rng(seed: int, stream: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, *keys])


def view_plan(seed: int, identity: int, views: int) -> list[str]:
    """The view of each photo of an identity: every direction once (shuffled), then random ones."""
    rng = _rng(seed, _STREAM_APPEARANCE, identity, 1)
    plan = [VIEWS[i] for i in rng.permutation(len(VIEWS))][:views]
    # Extra photos favour front/back, as in Market-1501 and DeepFashion.
    plan += [str(v) for v in rng.choice(VIEWS, size=max(0, views - len(VIEWS)), p=[0.35, 0.25, 0.2, 0.2])]
    return plan


@lru_cache(maxsize=64)
def _identity(seed: int, identity: int, views: int) -> tuple[Appearance, tuple[str, ...]]:
    return sample_appearance(_rng(seed, _STREAM_APPEARANCE, identity, 0)), tuple(view_plan(seed, identity, views))


def render_photo(
    seed: int, identity: int, view_index: int, views: int, size: tuple[int, int], background: str
) -> tuple[np.ndarray, np.ndarray, str]:
    """Photo ``view_index`` of ``identity``: (image, keypoints, view name). Depends on nothing else."""
    app, plan = _identity(seed, identity, views)
    view = plan[view_index]
    rng = _rng(seed, _STREAM_PHOTO, identity, view_index)
    pose = sample_pose(rng, view, allow_crop=background == "plain")
    image, kp = render_person(app, pose, size, background, rng)
    return image, kp, view


def split_identities(seed: int, identities: int, test_fraction: float) -> tuple[list[int], list[int]]:
    """Disjoint (train, test) identity lists; at least one identity in each when identities >= 2."""
    n_test = int(round(identities * test_fraction))
    if identities >= 2:
        n_test = min(max(n_test, 1), identities - 1)
    else:
        n_test = 0
    perm = _rng(seed, _STREAM_SPLIT).permutation(identities)
    test = sorted(int(i) for i in perm[:n_test])
    train = sorted(int(i) for i in perm[n_test:])
    return train, test


def _check_int(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise PosetransferError(f"{name} must be an integer, got {value!r}")
    if not lo <= int(value) <= hi:
        raise PosetransferError(f"{name} must be between {lo} and {hi}, got {value}")
    return int(value)


def _check_args(
    size: object, identities: object, views: object, seed: object, background: object, test_fraction: object
) -> tuple[tuple[int, int], int, int, int, str, float]:
    if isinstance(size, str) or not isinstance(size, (tuple, list)) or len(size) != 2:
        raise PosetransferError(f"size must be (height, width), got {size!r}")
    h = _check_int("image height", size[0], 32, 2048)
    w = _check_int("image width", size[1], 16, 2048)
    n = _check_int("identities", identities, 1, 100_000)
    v = _check_int("views", views, 2, 100)  # two photos at least: a pair is source and target
    s = _check_int("seed", seed, 0, 2**63 - 1)
    if background not in BACKGROUNDS:
        raise PosetransferError(f"background must be one of {', '.join(BACKGROUNDS)}, got {background!r}")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
        raise PosetransferError(f"test fraction must be a number strictly between 0 and 1, got {test_fraction!r}")
    return (h, w), n, v, s, str(background), float(test_fraction)


def _is_ours(folder: Path) -> bool:
    marker = folder / MARKER_FILE
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("generator") == GENERATOR
    except (OSError, ValueError, AttributeError):
        return False


def _check_target(folder: Path) -> None:
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise DataError(folder, "exists and is not a folder; refusing to overwrite it")
    if folder.is_dir() and any(folder.iterdir()) and not _is_ours(folder):
        raise DataError(
            folder,
            f"exists, is not empty and is not a synthetic data set (no {MARKER_FILE}); refusing to overwrite it",
        )


def _write_split(
    out: Path,
    split: str,
    ids: list[int],
    params: dict,
    tick: Callable[[], None],
) -> dict[str, int]:
    """Build ``out/split`` in a hidden temporary folder, then swap it into place."""
    final = out / split
    tmp = Path(tempfile.mkdtemp(prefix=f".{split}.", suffix=".partial", dir=out))
    try:
        images_dir = tmp / "images"
        images_dir.mkdir()
        annotations: dict[str, np.ndarray] = {}
        pairs: list[tuple[str, str]] = []
        views_of: dict[str, str] = {}
        size, views, seed, background = params["size"], params["views"], params["seed"], params["background"]
        for ident in ids:
            names = []
            for vi in range(views):
                image, kp, view = render_photo(seed, ident, vi, views, size, background)
                name = photo_name(ident, vi)
                ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 3])
                if not ok:  # pragma: no cover - OpenCV failing to encode a valid array
                    raise DataError(images_dir / name, "PNG encoding failed")
                (images_dir / name).write_bytes(buf.tobytes())
                annotations[name] = kp
                views_of[name] = view
                names.append(name)
                tick()
            pairs.extend((a, b) for a in names for b in names if a != b)
        write_annotations(tmp / "annotation.csv", annotations)
        write_pairs(tmp / "pairs.csv", pairs)
        marker = {"generator": GENERATOR, "version": FORMAT_VERSION, "split": split, **params,
                  "identities": [f"id{i:05d}" for i in ids], "views_of": views_of}  # fmt: skip
        (tmp / MARKER_FILE).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
        # Swap: move the old split aside, rename the new one in, delete the old one.
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{split}.", suffix=".old", dir=out))
            os.replace(final, old / split)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return {"identities": len(ids), "images": len(annotations), "pairs": len(pairs)}
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def synthesize(
    out: str | Path,
    size: tuple[int, int] = (128, 64),
    identities: int = 40,
    views: int = 6,
    seed: int = 0,
    background: str = "varied",
    test_fraction: float = 0.2,
    progress: bool = True,
) -> dict:
    """Write a synthetic people data set to ``out/train`` and ``out/test`` (plain layout).

    ``identities`` people with ``views`` photos each (view index 0.. covers front, back, left and
    right once each before repeating), ``size`` = (height, width), split by identity with
    ``test_fraction`` of the identities in the test split. Pairs are all ordered pairs of distinct
    photos of one identity. Returns a summary ``{"out", "size", "train": {"identities", "images",
    "pairs"}, "test": {...}, "seconds", "images_per_second"}``. Bad arguments raise
    :class:`~posetransfer.errors.PosetransferError`; an existing split folder that is not our own
    output raises :class:`~posetransfer.errors.DataError`.
    """
    size_t, n, v, s, bg, frac = _check_args(size, identities, views, seed, background, test_fraction)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(out, "exists and is not a folder")
    for split in ("train", "test"):
        _check_target(out / split)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(out, f"cannot create the output folder ({err.strerror})") from None
    train, test = split_identities(s, n, frac)
    params = {"size": size_t, "views": v, "seed": s, "background": bg, "test_fraction": frac}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n * v, desc="synth", unit="img")
    start = time.perf_counter()
    try:
        tick: Callable[[], None] = (lambda: bar.update(1)) if bar is not None else (lambda: None)
        summary: dict = {"out": str(out), "size": list(size_t)}
        for split, ids in (("train", train), ("test", test)):
            summary[split] = _write_split(out, split, ids, params, tick)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    summary["seconds"] = round(seconds, 3)
    summary["images_per_second"] = round(n * v / seconds, 1) if seconds > 0 else None
    return summary
