"""The body model of the synthetic people: appearance, pose sampling, the 3D skeleton.

See :mod:`posetransfer.data.synth` for the whole design (skeleton, joint limits, views,
identities); :mod:`posetransfer.data.synth.render` draws what this module describes.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

from posetransfer.errors import PosetransferError
from posetransfer.pose.schema import KEYPOINT_INDEX, NUM_KEYPOINTS

VIEWS: tuple[str, ...] = ("front", "back", "left", "right")
# Yaw of the body about the vertical axis (degrees). Body frame: x = the person's left, y = down,
# z = the person's forward; camera frame: X = image right, Y = image down, Z = towards the camera.
# Yaw 90 turns the person's forward to the image's right: the camera sees its right side ("right").
VIEW_YAW: dict[str, float] = {"front": 0.0, "back": 180.0, "right": 90.0, "left": -90.0}

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
