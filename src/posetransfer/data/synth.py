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

import colorsys
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from posetransfer.errors import DataError, PosetransferError
from posetransfer.pose.io import write_annotations, write_pairs
from posetransfer.pose.schema import KEYPOINT_INDEX, MISSING, NUM_KEYPOINTS

__all__ = [
    "VIEWS",
    "VIEW_YAW",
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

VIEWS: tuple[str, ...] = ("front", "back", "left", "right")
# Yaw of the body about the vertical axis (degrees). Body frame: x = the person's left, y = down,
# z = the person's forward; camera frame: X = image right, Y = image down, Z = towards the camera.
# Yaw 90 turns the person's forward to the image's right: the camera sees its right side ("right").
VIEW_YAW: dict[str, float] = {"front": 0.0, "back": 180.0, "right": 90.0, "left": -90.0}
BACKGROUNDS = ("varied", "plain")
MARKER_FILE = "synth.json"
GENERATOR = "posetransfer.data.synth"
FORMAT_VERSION = 1
SUPERSAMPLE = 2  # material map resolution factor; the box filter down to 1x anti-aliases edges

# Streams of the seed sequence, so the draws of one purpose never shift those of another.
_STREAM_APPEARANCE, _STREAM_PHOTO, _STREAM_SPLIT = 0, 1, 2

# Body proportions in head units (a standing adult is ~7.7 heads from the crown to the soles).
_TORSO = 2.5  # neck keypoint (between the shoulders) to the hip joints' midpoint
_NECK_TO_HEAD = 0.85  # neck keypoint to the head centre
_HEAD_HALF_H, _HEAD_HALF_W, _HEAD_HALF_D = 0.52, 0.38, 0.46
_UPPER_ARM, _FOREARM, _HAND = 1.35, 1.2, 0.42
_THIGH, _SHIN, _ANKLE_H = 1.8, 1.75, 0.22


# ---------------------------------------------------------------------------------------------
# Appearance and pose
# ---------------------------------------------------------------------------------------------

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Appearance:
    """What stays fixed across the photos of one identity."""

    skin: RGB
    hair_color: RGB
    hair_style: str  # short | long | bun | buzz
    top_color: RGB
    top_color2: RGB
    top_pattern: str  # solid | hstripes | vstripes | checks | print
    top_period: float  # stripe/check period in head units
    print_color: RGB
    print_shape: str  # circle | square | triangle (chest print, front only)
    back_design: str  # yoke | stripe | patch (back only)
    back_color: RGB
    sleeves: str  # none | short | long
    top_length: float  # hem position as a fraction of neck -> hips (>1: a long top over the hips)
    bottom: str  # trousers | shorts | skirt
    bottom_color: RGB
    bottom_color2: RGB
    bottom_pattern: str  # solid | checks | vstripes
    legwear: RGB  # skin or tights below shorts/skirt
    shoe_color: RGB
    shoulder: float  # lateral half-width factors (build)
    hips: float
    girth: float  # limb thickness factor
    bag: str  # none | backpack
    bag_color: RGB


@dataclass(frozen=True)
class BodyPose:
    """One photo's pose, view and framing; angles in degrees (right/left = the person's sides)."""

    view: str
    yaw: float
    head_yaw: float
    head_tilt: float
    lean_forward: float
    lean_side: float
    twist: float
    arm_swing: tuple[float, float]  # (right, left): + = forwards, 170 = raised overhead
    arm_abduct: tuple[float, float]  # outwards from the body
    elbow: tuple[float, float]  # flexion, 0 = straight
    hip_flex: tuple[float, float]  # + = thigh forwards
    hip_abduct: tuple[float, float]
    knee: tuple[float, float]  # flexion (shin backwards)
    height_frac: float  # crown-to-sole height as a fraction of the image height
    x_shift: float  # horizontal offset of the pelvis, fraction of the width
    y_margin: float  # share of the free vertical space left above the head


def _hsv(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return (int(round(r * 255)), int(round(g * 255)), int(round(b * 255)))


def _cloth_color(rng: np.random.Generator) -> RGB:
    """A garment colour; never near-white so a garment stays distinct from the plain background."""
    h = rng.uniform()
    if rng.uniform() < 0.35:  # neutrals: black, greys, beige
        return _hsv(h, rng.uniform(0.0, 0.15), rng.uniform(0.12, 0.82))
    return _hsv(h, rng.uniform(0.35, 0.95), rng.uniform(0.25, 0.9))


def _contrast_color(rng: np.random.Generator, base: RGB, min_dist: float = 90.0) -> RGB:
    for _ in range(20):
        c = _cloth_color(rng)
        if np.linalg.norm(np.subtract(c, base)) >= min_dist:
            return c
    return tuple(255 - v if v > 127 else min(255, v + 140) for v in base)  # type: ignore[return-value]


_SKIN_TONES = np.array(
    [(255, 224, 196), (241, 194, 160), (224, 172, 125), (198, 134, 86), (141, 92, 58), (92, 60, 42)], np.float64
)
_HAIR_COLORS: tuple[RGB, ...] = (
    (20, 17, 15), (38, 28, 22), (70, 45, 30), (110, 75, 45), (200, 160, 95), (150, 70, 35), (150, 150, 150),
)  # fmt: skip


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """Draw one identity's clothing, hair, skin and build."""
    t = rng.uniform(0, len(_SKIN_TONES) - 1)
    i = int(t)
    skin = tuple(int(v) for v in np.round(_SKIN_TONES[i] + (t - i) * (_SKIN_TONES[min(i + 1, 5)] - _SKIN_TONES[i])))
    feminine = rng.uniform() < 0.5
    hair_style = str(rng.choice(["long", "bun", "short"], p=[0.6, 0.25, 0.15]) if feminine
                     else rng.choice(["short", "buzz", "long"], p=[0.7, 0.22, 0.08]))  # fmt: skip
    hair_color = _HAIR_COLORS[int(rng.choice(len(_HAIR_COLORS), p=[0.3, 0.25, 0.18, 0.1, 0.08, 0.05, 0.04]))]
    top_color = _cloth_color(rng)
    top_pattern = str(rng.choice(["solid", "hstripes", "vstripes", "checks", "print"], p=[0.3, 0.2, 0.12, 0.13, 0.25]))
    bottom = str(rng.choice(["trousers", "shorts", "skirt"], p=[0.5, 0.2, 0.3] if feminine else [0.75, 0.25, 0.0]))
    bottom_color = _contrast_color(rng, top_color, 60.0)
    legwear = skin if rng.uniform() < 0.7 else _hsv(rng.uniform(), rng.uniform(0, 0.3), rng.uniform(0.05, 0.3))
    return Appearance(
        skin=skin,  # type: ignore[arg-type]
        hair_color=hair_color,
        hair_style=hair_style,
        top_color=top_color,
        top_color2=_contrast_color(rng, top_color),
        top_pattern=top_pattern,
        top_period=float(rng.uniform(0.3, 0.6)),
        print_color=_contrast_color(rng, top_color),
        print_shape=str(rng.choice(["circle", "square", "triangle"])),
        back_design=str(rng.choice(["yoke", "stripe", "patch"])),
        back_color=_contrast_color(rng, top_color),
        sleeves=str(rng.choice(["none", "short", "long"], p=[0.15, 0.5, 0.35])),
        top_length=float(rng.uniform(0.75, 1.1)),
        bottom=bottom,
        bottom_color=bottom_color,
        bottom_color2=_contrast_color(rng, bottom_color, 70.0),
        bottom_pattern=str(rng.choice(["solid", "checks", "vstripes"], p=[0.75, 0.15, 0.1])),
        legwear=legwear,  # type: ignore[arg-type]
        shoe_color=_hsv(rng.uniform(), rng.uniform(0, 0.6), rng.uniform(0.05, 0.85)),
        shoulder=float(rng.uniform(0.85, 0.95) if feminine else rng.uniform(0.95, 1.12)),
        hips=float(rng.uniform(1.02, 1.15) if feminine else rng.uniform(0.9, 1.02)),
        girth=float(rng.uniform(0.85, 1.15)),
        bag=str(rng.choice(["none", "backpack"], p=[0.75, 0.25])),
        bag_color=_hsv(rng.uniform(), rng.uniform(0, 0.8), rng.uniform(0.1, 0.7)),
    )


def _clamp(x: float, lo: float, hi: float) -> float:
    """Clamp a scalar to a joint's range (np.clip is ~50x slower on Python scalars)."""
    return float(min(max(x, lo), hi))


def _pair(rng: np.random.Generator, lo: float, hi: float) -> tuple[float, float]:
    return (float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi)))


def sample_pose(rng: np.random.Generator, view: str, *, allow_crop: bool = False) -> BodyPose:
    """Draw a plausible standing / walking / gesturing pose seen from ``view``.

    ``allow_crop`` (plain backgrounds) sometimes zooms in so that the legs leave the frame, as in
    DeepFashion's close-ups.
    """
    if view not in VIEW_YAW:
        raise PosetransferError(f"unknown view {view!r}; expected one of {', '.join(VIEWS)}")
    jitter = 12.0 if view in ("left", "right") else 20.0
    yaw = VIEW_YAW[view] + float(rng.uniform(-jitter, jitter))
    mode = rng.choice(["stand", "walk", "gesture"], p=[0.35, 0.45, 0.2])
    if mode == "walk":
        amp = rng.uniform(10, 25)
        phase = rng.uniform(0, 2 * np.pi)
        sw = float(np.sin(phase))
        hip = (amp * sw, -amp * sw)
        # The trailing leg (thigh behind) bends its knee; the leading one is almost straight.
        knee = tuple(_clamp(8 + (45 if h < 0 else 10) * abs(h) / amp + rng.normal(0, 5), 0, 80) for h in hip)
        arm = (-0.8 * amp * sw + rng.normal(0, 4), 0.8 * amp * sw + rng.normal(0, 4))
        elbow = _pair(rng, 10, 35)
        abduct = _pair(rng, 4, 12)
        twist = float(-0.3 * amp * sw)
    else:
        hip = _pair(rng, -6, 8)
        knee = (float(rng.uniform(0, 12)), float(rng.uniform(0, 12)))
        arm = _pair(rng, -10, 12)
        elbow = _pair(rng, 3, 25)
        abduct = _pair(rng, 4, 18)
        twist = float(rng.uniform(-5, 5))
    arm_l, elbow_l, abduct_l = list(arm), list(elbow), list(abduct)
    if mode == "gesture":
        side = int(rng.integers(2))
        kind = rng.choice(["raise", "phone", "out"])
        if kind == "raise":  # waving or reaching up
            arm_l[side], abduct_l[side], elbow_l[side] = rng.uniform(100, 170), rng.uniform(10, 50), rng.uniform(0, 60)
        elif kind == "phone":  # forearm raised in front of the chest
            arm_l[side], abduct_l[side], elbow_l[side] = rng.uniform(10, 40), rng.uniform(5, 20), rng.uniform(90, 140)
        else:  # arm held out sideways
            arm_l[side], abduct_l[side], elbow_l[side] = rng.uniform(-10, 30), rng.uniform(45, 95), rng.uniform(0, 50)
    # Joint limits (see the module docstring).
    arm_l = [_clamp(a, -40, 170) for a in arm_l]
    abduct_l = [_clamp(a, 0, 95) for a in abduct_l]
    elbow_l = [_clamp(e, 0, 150) for e in elbow_l]
    hip_l = [_clamp(h, -35, 70) for h in hip]
    knee_l = [_clamp(k, 0, 120) for k in knee]
    stance = float(rng.uniform(0, 9)) if mode != "walk" else float(rng.uniform(0, 4))
    if allow_crop and rng.uniform() < 0.2:
        height_frac, y_margin = float(rng.uniform(1.15, 1.7)), float(rng.uniform(0.0, 0.05))
    else:
        height_frac, y_margin = float(rng.uniform(0.8, 0.93)), float(rng.uniform(0.25, 0.75))
    return BodyPose(
        view=view,
        yaw=yaw,
        head_yaw=float(rng.uniform(-15, 15)),
        head_tilt=float(rng.uniform(-6, 6)),
        lean_forward=float(rng.uniform(-2, 8)),
        lean_side=float(rng.uniform(-4, 4)),
        twist=twist,
        arm_swing=(arm_l[0], arm_l[1]),
        arm_abduct=(abduct_l[0], abduct_l[1]),
        elbow=(elbow_l[0], elbow_l[1]),
        hip_flex=(hip_l[0], hip_l[1]),
        hip_abduct=(stance * 0.5 + float(rng.uniform(0, 3)), stance * 0.5 + float(rng.uniform(0, 3))),
        knee=(knee_l[0], knee_l[1]),
        height_frac=height_frac,
        x_shift=float(rng.uniform(-0.07, 0.07)),
        y_margin=y_margin,
    )


# ---------------------------------------------------------------------------------------------
# Skeleton (3D, body frame) and projection
# ---------------------------------------------------------------------------------------------


def _rx(deg: float) -> np.ndarray:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(deg: float) -> np.ndarray:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(deg: float) -> np.ndarray:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _limb_dir(swing: float, abduct: float, side: float) -> np.ndarray:
    """Direction of a limb hanging down, swung forwards by ``swing`` and out by ``abduct`` (deg)."""
    a, b = math.radians(swing), math.radians(abduct)
    return np.array([side * math.sin(b), math.cos(b) * math.cos(a), math.cos(b) * math.sin(a)])


def _bend(d: np.ndarray, toward: np.ndarray, deg: float, fallback: np.ndarray) -> np.ndarray:
    """Rotate unit vector ``d`` by ``deg`` towards ``toward`` (in the plane they span): a hinge joint."""
    perp = toward - np.dot(toward, d) * d
    n = np.linalg.norm(perp)
    if n < 1e-3:
        perp = fallback - np.dot(fallback, d) * d
        n = np.linalg.norm(perp)
    perp = perp / n
    a = math.radians(deg)
    return math.cos(a) * d + math.sin(a) * perp


@dataclass
class _Skeleton:
    """3D points in body units, body frame (x = person's left, y = down, z = forward)."""

    joints: np.ndarray  # (18, 3) in the keypoint order (face points included)
    face_normals: np.ndarray  # (18, 3) outward normal, used for face-keypoint visibility
    head: np.ndarray  # head centre
    hands: tuple[np.ndarray, np.ndarray]  # hand tips (right, left)
    heels: tuple[np.ndarray, np.ndarray]
    toes: tuple[np.ndarray, np.ndarray]
    upper: np.ndarray  # 3x3 rotation of the upper body (columns: left, down, forward)
    head_rot: np.ndarray


def _skeleton(app: Appearance, pose: BodyPose) -> _Skeleton:
    K = KEYPOINT_INDEX
    j = np.zeros((NUM_KEYPOINTS, 3))
    normals = np.zeros((NUM_KEYPOINTS, 3))
    down, fwd, up = np.array([0.0, 1, 0]), np.array([0.0, 0, 1]), np.array([0.0, -1, 0])
    hip_half = 0.45 * app.hips
    # Legs in the pelvis frame (pelvis centre = origin).
    heels, toes = [], []
    for side_name, s, k in (("right", -1.0, 0), ("left", 1.0, 1)):
        hip = np.array([s * hip_half, 0.0, 0.0])
        d = _limb_dir(pose.hip_flex[k], pose.hip_abduct[k], s)
        knee = hip + _THIGH * d
        shin = _bend(d, -fwd, pose.knee[k], -fwd)
        ankle = knee + _SHIN * shin
        # Heel up (toe pointing down) on a trailing leg, as in the push-off phase of walking.
        pitch = min(50.0, 0.6 * pose.knee[k]) if pose.hip_flex[k] < 0 else 0.0
        foot = _rx(pitch) @ _ry(s * 8.0) @ fwd
        heels.append(ankle + 0.15 * down - 0.15 * foot)
        toes.append(ankle + 0.18 * down + 0.62 * foot)
        j[K[f"{side_name}_hip"]], j[K[f"{side_name}_knee"]], j[K[f"{side_name}_ankle"]] = hip, knee, ankle
    # Upper body: lean and twist about the pelvis.
    upper = _rz(-pose.lean_side) @ _rx(-pose.lean_forward) @ _ry(pose.twist)
    neck = upper @ (up * _TORSO)
    j[K["neck"]] = neck
    sh_half = 0.82 * app.shoulder
    hands = []
    for side_name, s, k in (("right", -1.0, 0), ("left", 1.0, 1)):
        sh = neck + upper @ np.array([s * sh_half, 0.12, 0.0])
        d = _limb_dir(pose.arm_swing[k], pose.arm_abduct[k], s)
        elbow = sh + _UPPER_ARM * (upper @ d)
        fore = _bend(d, fwd, pose.elbow[k], up)
        wrist = elbow + _FOREARM * (upper @ fore)
        hands.append(wrist + _HAND * (upper @ fore))
        j[K[f"{side_name}_shoulder"]], j[K[f"{side_name}_elbow"]], j[K[f"{side_name}_wrist"]] = sh, elbow, wrist
    head_rot = upper @ _ry(pose.head_yaw) @ _rz(pose.head_tilt)
    head = neck + upper @ (up * _NECK_TO_HEAD)
    face = {  # head frame offsets and outward normals
        "nose": ((0.0, 0.08, _HEAD_HALF_D + 0.04), (0.0, 0.0, 1.0)),
        "right_eye": ((-0.15, -0.05, 0.38), (-0.55, 0.0, 1.0)),
        "left_eye": ((0.15, -0.05, 0.38), (0.55, 0.0, 1.0)),
        "right_ear": ((-_HEAD_HALF_W, 0.02, 0.0), (-1.0, 0.0, 0.0)),
        "left_ear": ((_HEAD_HALF_W, 0.02, 0.0), (1.0, 0.0, 0.0)),
    }
    for name, (off, nrm) in face.items():
        j[K[name]] = head + head_rot @ np.array(off)
        nv = head_rot @ np.array(nrm)
        normals[K[name]] = nv / np.linalg.norm(nv)
    return _Skeleton(j, normals, head, (hands[0], hands[1]), (heels[0], heels[1]), (toes[0], toes[1]), upper, head_rot)


# Face keypoints are reported only when their surface faces the camera at least this much
# (cosine between the outward normal and the direction to the camera), as a detector would.
_FACE_VISIBILITY = {"nose": -0.15, "right_eye": 0.05, "left_eye": 0.05, "right_ear": -0.35, "left_ear": -0.35}


# ---------------------------------------------------------------------------------------------
# Painting
# ---------------------------------------------------------------------------------------------


class _Canvas:
    """A material-index map at super-sampled resolution; materials are registered on first use."""

    def __init__(self, shape: tuple[int, int]):
        self.labels = np.zeros(shape, np.uint8)
        self.materials: list[tuple[str, float]] = [("background", 1.0)]
        self._ids: dict[tuple[str, float], int] = {}

    def mat(self, name: str, shade: float = 1.0) -> int:
        key = (name, round(shade, 3))
        if key not in self._ids:
            self._ids[key] = len(self.materials)
            self.materials.append(key)
        return self._ids[key]

    # cv2 with shift=3 takes fixed-point coordinates (1/8 pixel): sub-pixel accurate edges.
    # Plain Python floats here: these run ~20 times per photo and numpy's per-call overhead on
    # 2-vectors dominated the rendering time.
    @staticmethod
    def _fx(p: np.ndarray) -> np.ndarray:
        return np.round(np.asarray(p, np.float64) * 8).astype(np.int32)

    def circle(self, c: np.ndarray, r: float, m: int) -> None:
        cv2.circle(self.labels, (round(float(c[0]) * 8), round(float(c[1]) * 8)), max(1, round(r * 8)), m, -1, cv2.LINE_8, 3)

    def capsule(self, p0: np.ndarray, p1: np.ndarray, r0: float, r1: float, m: int) -> None:
        x0, y0, x1, y1 = float(p0[0]), float(p0[1]), float(p1[0]), float(p1[1])
        dx, dy = x1 - x0, y1 - y0
        n = math.hypot(dx, dy)
        if n > 1e-6:
            nx, ny = -dy / n, dx / n
            quad = np.array(
                [[x0 + nx * r0, y0 + ny * r0], [x1 + nx * r1, y1 + ny * r1],
                 [x1 - nx * r1, y1 - ny * r1], [x0 - nx * r0, y0 - ny * r0]]
            )  # fmt: skip
            cv2.fillConvexPoly(self.labels, np.round(quad * 8).astype(np.int32), m, cv2.LINE_8, 3)
        self.circle(p0, r0, m)
        self.circle(p1, r1, m)

    def poly(self, pts: np.ndarray, m: int) -> None:
        cv2.fillPoly(self.labels, [self._fx(pts)], m, cv2.LINE_8, 3)

    def ellipse(self, c: np.ndarray, half: tuple[float, float], angle: float, m: int) -> None:
        axes = (max(1, int(round(half[0] * 8))), max(1, int(round(half[1] * 8))))
        cv2.ellipse(self.labels, tuple(int(v) for v in self._fx(c)), axes, angle, 0, 360, m, -1, cv2.LINE_8, 3)


@lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return yy, xx


def _pattern(kind: str, u: np.ndarray, v: np.ndarray, period: float) -> np.ndarray:
    """Boolean 'second colour' mask of a pattern in body-aligned coordinates (head units)."""
    if kind == "hstripes":
        return np.floor(v / period) % 2 == 1
    if kind == "vstripes":
        return np.floor(u / (period * 0.8)) % 2 == 1
    if kind == "checks":
        return (np.floor(u / period) + np.floor(v / period)) % 2 == 1
    return np.zeros(u.shape, bool)


def _shade_color(c: RGB, shade: float) -> np.ndarray:
    return np.clip(np.asarray(c, np.float32) * shade, 0, 255)


class _Projector:
    """Body frame (units) -> image pixels at super-sampled resolution, with depth towards the camera."""

    def __init__(self, yaw: float, scale: float, offset: np.ndarray):
        self.rot = _ry(yaw)
        self.scale = scale
        self.offset = offset

    def cam(self, p: np.ndarray) -> np.ndarray:
        return np.asarray(p) @ self.rot.T

    def __call__(self, p: np.ndarray) -> np.ndarray:
        c = self.cam(p)
        return c[..., :2] * self.scale + self.offset

    def depth(self, p: np.ndarray) -> float:
        return float(self.cam(p)[..., 2].mean())

    def toward_camera(self, v: np.ndarray) -> float:
        """Cosine between a body-frame direction and the direction to the camera."""
        return float((self.rot @ v)[2])


def render_person(
    app: Appearance,
    pose: BodyPose,
    size: tuple[int, int],
    background: str,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one photo: ``(image HxWx3 uint8 RGB, keypoints (18, 2) float32 (y, x), -1 = missing)``."""
    H, W = size
    S = SUPERSAMPLE
    sk = _skeleton(app, pose)

    # Framing: the crown-to-sole height fills ``height_frac`` of the image.
    rot = _ry(pose.yaw)
    pts = np.concatenate([sk.joints, [sk.head], sk.heels, sk.toes]) @ rot.T
    top = (sk.head @ rot.T)[1] - _HEAD_HALF_H - 0.05
    bottom = max(pts[:, 1].max(), max((t @ rot.T)[1] for t in sk.toes) + 0.15)
    scale = pose.height_frac * H / (bottom - top)
    free = H - pose.height_frac * H
    y0 = free * pose.y_margin if free > 0 else pose.y_margin * H
    x0 = W / 2 + pose.x_shift * W
    offset = np.array([x0, y0 - top * scale])
    proj = _Projector(pose.yaw, scale * S, offset * S)
    g = app.girth
    s2 = scale * S  # pixels per unit on the canvas

    canvas = _Canvas((H * S, W * S))
    cos_view = proj.toward_camera(np.array([0.0, 0, 1]))  # +1 front, -1 back
    sin_view = math.sqrt(max(0.0, 1 - cos_view**2))
    K = KEYPOINT_INDEX
    J = sk.joints
    items: list[tuple[float, int, Callable[[], None]]] = []

    def add(depth: float, fn: Callable[[], None]) -> None:
        items.append((depth, len(items), fn))

    far_shade = 0.78

    # --- legs (drawn behind the pelvis unless clearly nearer) ---
    for side_name, k in (("right", 0), ("left", 1)):
        hip, knee, ankle = J[K[f"{side_name}_hip"]], J[K[f"{side_name}_knee"]], J[K[f"{side_name}_ankle"]]
        heel, toe = sk.heels[k], sk.toes[k]
        depth = proj.depth(np.stack([hip, knee, ankle])) - 0.3
        shade = far_shade if proj.depth(hip) < -0.2 else 1.0

        def draw_leg(hip=hip, knee=knee, ankle=ankle, heel=heel, toe=toe, shade=shade) -> None:
            ph, pk, pa = proj(hip), proj(knee), proj(ankle)
            rt, rk, ra = 0.31 * g * s2, 0.21 * g * s2, 0.13 * g * s2
            leg = canvas.mat("legwear", shade)
            canvas.capsule(ph, pk, rt, rk, leg)
            canvas.capsule(pk, pa, rk, ra, leg)
            bm = canvas.mat("bottom", shade)
            if app.bottom == "trousers":
                canvas.capsule(ph, pk, rt * 1.12, rk * 1.12, bm)
                canvas.capsule(pk, pa + 0.25 * (pa - pk) / max(1e-6, np.linalg.norm(pa - pk)) * ra,
                               rk * 1.12, ra * 1.35, bm)  # fmt: skip
            elif app.bottom == "shorts":
                canvas.capsule(ph, ph + 0.55 * (pk - ph), rt * 1.15, (rt + 0.55 * (rk - rt)) * 1.2, bm)
            canvas.capsule(proj(heel), proj(toe), 0.15 * s2, 0.13 * s2, canvas.mat("shoe", shade))

        add(depth, draw_leg)

    # --- torso: polygon whose half-width blends lateral width and depth with the view ---
    neck, pelvis = J[K["neck"]], (J[K["right_hip"]] + J[K["left_hip"]]) / 2
    axis_down = sk.upper @ np.array([0.0, 1, 0])

    def half_width(lateral: float, depth_half: float) -> float:
        return (lateral * abs(cos_view) + depth_half * sin_view) * s2

    def torso_outline(t0: float, t1: float) -> np.ndarray:
        """Polygon of the torso between fractions t0..t1 of neck -> pelvis (t > 1 goes below the hips)."""
        levels = [  # (t, lateral half-width, front-back half-depth)
            (-0.06, 0.45 * app.shoulder, 0.35),
            (0.02, 0.82 * app.shoulder + 0.1, 0.42),
            (0.12, 0.85 * app.shoulder + 0.12, 0.48),
            (0.45, 0.72 * app.shoulder, 0.5),
            (0.72, 0.58 + 0.08 * app.hips, 0.44),
            (1.0, 0.72 * app.hips, 0.5),
            (1.15, 0.62 * app.hips, 0.48),
        ]
        ts = np.array([lv[0] for lv in levels])
        lat = np.array([lv[1] for lv in levels]) * g**0.5
        dep = np.array([lv[2] for lv in levels]) * g**0.5
        tt = np.concatenate([[t0], ts[(ts > t0) & (ts < t1)], [t1]])
        la, de = np.interp(tt, ts, lat), np.interp(tt, ts, dep)
        left, right = [], []
        for t, a, dh in zip(tt, la, de):
            c3 = neck + t * (pelvis - neck) if t <= 1 else pelvis + (t - 1) * _TORSO * axis_down
            c = proj(c3)
            hw = half_width(a, dh)
            left.append(c - np.array([hw, 0.0]))
            right.append(c + np.array([hw, 0.0]))
        return np.array(left + right[::-1])

    def on_torso(t: float, lateral: float, forward: float) -> np.ndarray:
        """A point on the torso surface at fraction t, offsets in units along left/forward."""
        c3 = neck + t * (pelvis - neck)
        return proj(c3 + sk.upper @ np.array([lateral, 0.0, forward]))

    def draw_torso() -> None:
        canvas.poly(torso_outline(0.55, 1.15), canvas.mat("bottom"))
        canvas.poly(torso_outline(-0.06, app.top_length), canvas.mat("top"))
        if cos_view > 0.35:  # round neckline and chest print: front only
            canvas.ellipse(on_torso(-0.02, 0, 0.5), (0.2 * abs(cos_view) * s2, 0.16 * s2), 0, canvas.mat("skin"))
            if app.top_pattern == "print":
                c = on_torso(0.33, 0, 0.5)
                r = 0.28 * s2
                m = canvas.mat("print")
                if app.print_shape == "circle":
                    canvas.ellipse(c, (r * cos_view, r), 0, m)
                elif app.print_shape == "square":
                    canvas.poly(c + np.array([[-r * cos_view, -r], [r * cos_view, -r], [r * cos_view, r], [-r * cos_view, r]]), m)
                else:
                    canvas.poly(c + np.array([[0, -r], [r * cos_view * 1.1, r * 0.8], [-r * cos_view * 1.1, r * 0.8]]), m)
        if cos_view < -0.35:  # the back design: back only
            m = canvas.mat("back")
            if app.back_design == "yoke":
                band = torso_outline(-0.04, 0.2)
                canvas.poly(band, m)
            elif app.back_design == "stripe":
                w = 0.16 * s2 * abs(cos_view)
                p0, p1 = on_torso(0.05, 0, -0.5), on_torso(min(app.top_length, 1.0) - 0.04, 0, -0.5)
                canvas.poly(np.array([p0 - [w, 0], p0 + [w, 0], p1 + [w, 0], p1 - [w, 0]]), m)
            else:
                c, r = on_torso(0.35, 0, -0.5), 0.32 * s2
                canvas.poly(c + np.array([[-r * abs(cos_view), -r * 0.6], [r * abs(cos_view), -r * 0.6],
                                          [r * abs(cos_view), r * 0.6], [-r * abs(cos_view), r * 0.6]]), m)  # fmt: skip

    add(0.0, draw_torso)
    if app.bag == "backpack":
        # A box on the upper back: hidden behind the torso from the front (only the straps show),
        # sticking out behind in side views, covering the back design in part from behind.
        def draw_backpack() -> None:
            c = on_torso(0.42, 0.0, -0.5 - 0.3 * abs(cos_view) - 0.25 * sin_view)
            hw, hh = (0.55 * abs(cos_view) + 0.32 * sin_view) * s2, 0.42 * _TORSO / 2 * s2
            canvas.poly(c + np.array([[-hw, -hh], [hw, -hh], [hw * 0.95, hh], [-hw * 0.95, hh]]), canvas.mat("bag"))

        add(0.02 if cos_view < 0 else -0.02, draw_backpack)
        if cos_view > 0.3:

            def draw_straps() -> None:
                for s in (-1.0, 1.0):
                    p0, p1 = on_torso(0.0, s * 0.42, 0.5), on_torso(0.6, s * 0.5, 0.5)
                    canvas.capsule(p0, p1, 0.07 * s2, 0.07 * s2, canvas.mat("bag"))

            add(0.01, draw_straps)
    if app.bottom == "skirt":

        def draw_skirt() -> None:
            top_c = proj(pelvis + 0.35 * (neck - pelvis))
            kr, kl = proj(J[K["right_knee"]]), proj(J[K["left_knee"]])
            hem_y = max(kr[1], kl[1]) - 0.15 * s2
            hw_top = half_width(0.7 * app.hips, 0.5)
            spread = abs(kr[0] - kl[0]) / 2 + 0.35 * s2
            hw_bot = max(hw_top * 1.3, min(spread, hw_top * 1.8))
            hem_x = (kr[0] + kl[0]) / 2
            canvas.poly(np.array([[top_c[0] - hw_top, top_c[1]], [top_c[0] + hw_top, top_c[1]],
                                  [hem_x + hw_bot, hem_y], [hem_x - hw_bot, hem_y]]), canvas.mat("bottom"))  # fmt: skip

        # Over both thighs whatever the view (a leg swung towards the camera is still under the skirt).
        add(max(0.5, max(it[0] for it in items) + 0.01), draw_skirt)

    # --- arms (in front of the torso unless on the far side) ---
    for side_name, k in (("right", 0), ("left", 1)):
        sh, el, wr = J[K[f"{side_name}_shoulder"]], J[K[f"{side_name}_elbow"]], J[K[f"{side_name}_wrist"]]
        hand = sk.hands[k]
        depth = proj.depth(np.stack([sh, el, wr])) + 0.25
        shade = far_shade if proj.depth(sh) < -0.3 else 1.0

        def draw_arm(sh=sh, el=el, wr=wr, hand=hand, shade=shade) -> None:
            ps, pe, pw, ph = proj(sh), proj(el), proj(wr), proj(hand)
            ru, re, rw = 0.2 * g * s2, 0.16 * g * s2, 0.12 * g * s2
            skin = canvas.mat("skin", shade)
            canvas.capsule(ps, pe, ru, re, skin)
            canvas.capsule(pe, pw, re, rw, skin)
            canvas.capsule(pw, pw + 0.6 * (ph - pw), 0.13 * s2, 0.12 * s2, skin)
            top = canvas.mat("top", shade)
            if app.sleeves == "short":
                canvas.capsule(ps, ps + 0.55 * (pe - ps), ru * 1.25, ru * 1.2, top)
            elif app.sleeves == "long":
                canvas.capsule(ps, pe, ru * 1.2, re * 1.2, top)
                canvas.capsule(pe, pw, re * 1.2, rw * 1.25, top)

        add(depth, draw_arm)

    # --- neck, head, hair ---
    head = sk.head
    head_fwd = sk.head_rot @ np.array([0.0, 0, 1])
    cos_head = proj.toward_camera(head_fwd)
    head_depth = proj.depth(head) + 0.4

    def draw_neck() -> None:
        canvas.capsule(proj(neck + sk.upper @ np.array([0, 0.1, 0])), proj(head + sk.head_rot @ np.array([0, 0.25, 0])),
                       0.2 * g * s2, 0.19 * g * s2, canvas.mat("skin"))  # fmt: skip

    add(-0.05, draw_neck)

    if app.hair_style == "long":
        hang = head + sk.head_rot @ np.array([0.0, 0.55, -0.3])

        def draw_long_hair() -> None:
            c0 = proj(head + sk.head_rot @ np.array([0.0, -0.1, -0.1]))
            c1 = proj(hang + sk.upper @ np.array([0.0, 0.55, 0.0]))
            w = (0.47 * abs(cos_view) + 0.36 * sin_view) * s2
            canvas.capsule(c0, c1, w, w * 0.9, canvas.mat("hair"))

        add(proj.depth(hang) - 0.1 if cos_view > 0 else head_depth + 0.05, draw_long_hair)
    if app.hair_style == "bun":
        bun = head + sk.head_rot @ np.array([0.0, -0.3, -0.5])
        add(proj.depth(bun) + 0.4, lambda: canvas.circle(proj(bun), 0.24 * s2, canvas.mat("hair")))

    def draw_head() -> None:
        c = proj(head)
        d = proj.cam(sk.head_rot @ np.array([0.0, 1, 0]))  # the head's down axis on the image
        tilt = float(np.degrees(np.arctan2(d[1], d[0]))) - 90.0  # cv2 ellipse angle of the first axis
        half_w = (_HEAD_HALF_W * abs(cos_head) + _HEAD_HALF_D * math.sqrt(max(0, 1 - cos_head**2))) * s2
        hair = canvas.mat("hair")
        # Hair = the whole head ellipse, raised a little; the face ellipse is drawn over its lower
        # front part, shifted towards where the face points (none in a back view).
        lift = 0.1 if app.hair_style != "buzz" else 0.04
        grow = 1.08 if app.hair_style != "buzz" else 1.02
        canvas.ellipse(c + np.array([0, -lift * s2]), (half_w * grow, _HEAD_HALF_H * grow * s2), tilt, hair)
        if cos_head > -0.35:
            fx = proj.cam(head_fwd)[0]
            fc = c + np.array([fx * 0.14 * s2, 0.09 * s2])
            canvas.ellipse(fc, (half_w * (0.55 + 0.4 * max(cos_head, 0)), _HEAD_HALF_H * 0.9 * s2), tilt, canvas.mat("skin"))
            if app.hair_style in ("short", "long", "bun"):  # fringe over the forehead
                canvas.ellipse(c + np.array([fx * 0.1 * s2, -0.28 * s2]), (half_w * 0.85, 0.22 * s2), tilt, hair)
            if abs(fx) > 0.5:  # profile: the nose sticks out of the silhouette
                canvas.circle(proj(J[K["nose"]]), 0.09 * s2, canvas.mat("skin"))
            r_eye = max(0.55, 0.055 * s2)
            for name in ("right_eye", "left_eye"):
                if proj.toward_camera(sk.face_normals[K[name]]) > _FACE_VISIBILITY[name]:
                    canvas.circle(proj(J[K[name]]), r_eye, canvas.mat("eye"))
            if cos_head > 0.3:
                mouth = proj(head + sk.head_rot @ np.array([0.0, 0.3, 0.42]))
                canvas.ellipse(mouth, (0.09 * s2 * cos_head, max(0.5, 0.03 * s2)), 0, canvas.mat("mouth"))

    add(head_depth, draw_head)

    for _, _, fn in sorted(items, key=lambda t: (t[0], t[1])):
        fn()

    # --- colour the material map ---
    labels = canvas.labels
    lut = np.zeros((256, 3), np.float32)
    solid = {
        "skin": app.skin, "legwear": app.legwear, "hair": app.hair_color, "shoe": app.shoe_color,
        "print": app.print_color, "back": app.back_color, "eye": (25, 20, 20), "bag": app.bag_color,
        "mouth": tuple(int(v * 0.7) for v in app.skin),
        "top": app.top_color, "bottom": app.bottom_color,
    }  # fmt: skip
    for i, (name, shade) in enumerate(canvas.materials[1:], start=1):
        lut[i] = _shade_color(solid[name], shade)
    color = np.take(lut, labels, axis=0)  # background (label 0) stays black: premultiplied colour
    # Patterns in body-aligned coordinates (origin at the neck, v along the spine) so stripes follow the body.
    n2, p2 = proj(neck), proj(pelvis)
    ax = (p2 - n2) / max(1e-6, float(np.linalg.norm(p2 - n2)))
    yy, xx = _grid(H * S, W * S)
    for garment, pattern, c2, period in (
        ("top", app.top_pattern, app.top_color2, app.top_period),
        ("bottom", app.bottom_pattern, app.bottom_color2, app.top_period * 0.8),
    ):
        if pattern in ("solid", "print"):
            continue
        for i, (name, shade) in enumerate(canvas.materials):
            if name != garment:
                continue
            sel = labels == i
            if not sel.any():
                continue
            dx, dy = xx[sel] - n2[0], yy[sel] - n2[1]
            v = (dx * ax[0] + dy * ax[1]) / s2
            u = (dx * -ax[1] + dy * ax[0]) / s2
            second = _pattern(pattern, u, v, period)
            vals = color[sel]
            vals[second] = _shade_color(c2, shade)
            color[sel] = vals
    # Box filter down to the output size: the anti-aliasing of every edge at once.
    premult = cv2.resize(color, (W, H), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize((labels > 0).astype(np.float32), (W, H), interpolation=cv2.INTER_AREA)
    # Shading (at output resolution, it is smooth): blurred coverage darkens the silhouette's edges
    # and thin limbs (a cheap ambient occlusion), and a soft light comes from one side.
    blur = cv2.GaussianBlur(alpha, (0, 0), max(0.5, 0.3 * scale))
    # Mostly darkening (at most x1.08) so light garments stay distinct from a near-white background.
    light = 1.0 + 0.1 * rng.uniform(-1, 1) * ((np.arange(W, dtype=np.float32) - offset[0]) / (0.8 * scale))
    shade_map = (0.75 + 0.25 * blur) * np.clip(light, 0.9, 1.08)[None, :]
    premult *= shade_map[..., None]

    # --- background and compositing ---
    feet = (proj(sk.heels[0]) + proj(sk.heels[1]) + proj(sk.toes[0]) + proj(sk.toes[1])) / (4 * S)
    bg = _background(rng, (H, W), background, feet, 0.9 * scale)
    img = premult + bg * (1 - alpha[..., None])
    # Sensor noise (uniform, std = amplitude / sqrt(3)): cheaper to draw than Gaussian noise.
    amp = 4.5 if background == "varied" else 1.7
    img += (rng.random(img.shape, dtype=np.float32) - 0.5) * (2 * amp)
    image = np.clip(np.round(img), 0, 255).astype(np.uint8)

    # --- keypoints: projected joints at output resolution, rounded; missing when hidden/out of frame ---
    kp_xy = proj(J) / S
    kp = np.stack([kp_xy[:, 1], kp_xy[:, 0]], axis=1)
    kp = np.round(kp).astype(np.float32)
    for name, thr in _FACE_VISIBILITY.items():
        if proj.toward_camera(sk.face_normals[K[name]]) <= thr:
            kp[K[name]] = MISSING
    outside = (kp[:, 0] < 0) | (kp[:, 0] > H - 1) | (kp[:, 1] < 0) | (kp[:, 1] > W - 1)
    kp[outside] = MISSING
    return image, kp


def _background(
    rng: np.random.Generator, size: tuple[int, int], kind: str, feet: np.ndarray, unit: float
) -> np.ndarray:
    """A float32 HxWx3 background: a street-like clutter ('varied') or a near-white studio ('plain')."""
    H, W = size
    if kind == "plain":
        tint = rng.uniform(-4, 4, size=3)
        level = rng.uniform(236, 250)
        bg = np.empty((H, W, 3), np.float32)
        bg[:] = np.clip(level + tint, 0, 255)
        # A faint floor shadow, as on a studio sweep.
        _shadow(bg, feet, unit, 0.12)
        return bg
    horizon = rng.uniform(0.35, 0.8) * H
    wall0, wall1 = (np.array(_hsv(rng.uniform(), rng.uniform(0, 0.35), rng.uniform(0.3, 0.95)), np.float32) for _ in range(2))
    ground = np.array(_hsv(rng.uniform(0.05, 0.15), rng.uniform(0, 0.2), rng.uniform(0.3, 0.75)), np.float32)
    ground2 = ground * rng.uniform(0.8, 1.15)
    t = np.linspace(0, 1, H, dtype=np.float32)[:, None]
    col = np.where(
        np.arange(H)[:, None] < horizon,
        wall0 * (1 - t) + wall1 * t,
        ground * (1 - t) + ground2 * t,
    )
    bg = np.repeat(col[:, None, :], W, axis=1).astype(np.float32)
    for _ in range(int(rng.integers(2, 10))):  # clutter: shop fronts, bins, bikes, cars
        x0, y0 = rng.uniform(-0.2, 1.0) * W, rng.uniform(-0.1, 0.9) * H
        w, h = rng.uniform(0.1, 0.7) * W, rng.uniform(0.05, 0.5) * H
        c = _hsv(rng.uniform(), rng.uniform(0, 0.7), rng.uniform(0.1, 0.95))
        cv2.rectangle(bg, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)), tuple(float(v) for v in c), -1)
    for _ in range(int(rng.integers(0, 4))):  # poles
        x = rng.uniform(0, W)
        c = _hsv(rng.uniform(), rng.uniform(0, 0.3), rng.uniform(0.1, 0.8))
        cv2.rectangle(bg, (int(x), 0), (int(x + rng.uniform(0.02, 0.06) * W), H), tuple(float(v) for v in c), -1)
    for _ in range(int(rng.integers(0, 4))):  # road markings below the horizon
        y = rng.uniform(horizon, H)
        cv2.rectangle(bg, (0, int(y)), (W, int(y + rng.uniform(0.01, 0.03) * H)), (220.0, 220.0, 215.0), -1)
    bg = cv2.GaussianBlur(bg, (0, 0), max(0.5, 0.6 * H / 128))
    _shadow(bg, feet, unit, rng.uniform(0.2, 0.4))
    return bg


def _shadow(bg: np.ndarray, feet: np.ndarray, unit: float, strength: float) -> None:
    """Darken a blurred ellipse under the feet (in place), computed on its bounding box only."""
    H, W = bg.shape[:2]
    ax, ay = max(1, int(1.2 * unit)), max(1, int(0.25 * unit))
    sigma = max(0.5, 0.25 * unit)
    pad = int(3 * sigma) + 1
    cx, cy = int(feet[0]), int(feet[1] + 0.1 * unit)
    x0, x1 = max(0, cx - ax - pad), min(W, cx + ax + pad + 1)
    y0, y1 = max(0, cy - ay - pad), min(H, cy + ay + pad + 1)
    if x0 >= x1 or y0 >= y1:
        return
    shadow = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.ellipse(shadow, (cx - x0, cy - y0), (ax, ay), 0, 0, 360, 1.0, -1)
    shadow = cv2.GaussianBlur(shadow, (0, 0), sigma)
    bg[y0:y1, x0:x1] *= (1 - strength * shadow)[..., None]


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
