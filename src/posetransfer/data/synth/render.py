"""Drawing the synthetic people: a super-sampled material map painted in depth order, then
coloured, shaded, box-filtered and composited on a background.

:func:`render_person` is the entry point; its named parts are the framing (:func:`_frame`), the
body parts in drawing order (:func:`_add_legs`, :func:`_add_torso` with the clothing that hangs on
it, :func:`_add_arms`, :func:`_add_head`), the colouring (:func:`_colour`, patterns in
body-aligned coordinates), the compositing (:func:`_composite`) and the keypoints
(:func:`_keypoints`). See :mod:`posetransfer.data.synth` for the design.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Callable

import cv2
import numpy as np

from posetransfer.data.synth.background import _background
from posetransfer.data.synth.body import (
    _FACE_VISIBILITY,
    _HEAD_HALF_D,
    _HEAD_HALF_H,
    _HEAD_HALF_W,
    _TORSO,
    RGB,
    Appearance,
    BodyPose,
    _ry,
    _Skeleton,
    _skeleton,
)
from posetransfer.pose.schema import KEYPOINT_INDEX, MISSING

SUPERSAMPLE = 2  # material map resolution factor; the box filter down to 1x anti-aliases edges


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


# The drawing order (painter's algorithm): every body part is registered with a depth towards the
# camera and drawn far to near; ties keep the order of registration.
_FAR_SHADE = 0.78  # far-side limbs are darker


@dataclass
class _Scene:
    """One photo being drawn: the body, its projection, the canvas and the depth-sorted parts."""

    app: Appearance
    sk: _Skeleton
    proj: _Projector
    canvas: _Canvas
    g: float  # girth
    s2: float  # pixels per body unit on the canvas
    cos_view: float  # +1 front, -1 back
    sin_view: float
    neck: np.ndarray
    pelvis: np.ndarray
    axis_down: np.ndarray
    items: list[tuple[float, int, Callable[[], None]]] = field(default_factory=list)

    def add(self, depth: float, fn: Callable[[], None]) -> None:
        self.items.append((depth, len(self.items), fn))

    def draw(self) -> None:
        for _, _, fn in sorted(self.items, key=lambda t: (t[0], t[1])):
            fn()

    def half_width(self, lateral: float, depth_half: float) -> float:
        return (lateral * abs(self.cos_view) + depth_half * self.sin_view) * self.s2

    def torso_outline(self, t0: float, t1: float) -> np.ndarray:
        """Polygon of the torso between fractions t0..t1 of neck -> pelvis (t > 1 goes below the hips)."""
        app, g, neck, pelvis, proj = self.app, self.g, self.neck, self.pelvis, self.proj
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
            c3 = neck + t * (pelvis - neck) if t <= 1 else pelvis + (t - 1) * _TORSO * self.axis_down
            c = proj(c3)
            hw = self.half_width(a, dh)
            left.append(c - np.array([hw, 0.0]))
            right.append(c + np.array([hw, 0.0]))
        return np.array(left + right[::-1])

    def on_torso(self, t: float, lateral: float, forward: float) -> np.ndarray:
        """A point on the torso surface at fraction t, offsets in units along left/forward."""
        c3 = self.neck + t * (self.pelvis - self.neck)
        return self.proj(c3 + self.sk.upper @ np.array([lateral, 0.0, forward]))


def _frame(sk: _Skeleton, pose: BodyPose, size: tuple[int, int]) -> tuple[float, np.ndarray]:
    """(pixels per unit, offset): the crown-to-sole height fills ``height_frac`` of the image."""
    H, W = size
    rot = _ry(pose.yaw)
    pts = np.concatenate([sk.joints, [sk.head], sk.heels, sk.toes]) @ rot.T
    top = (sk.head @ rot.T)[1] - _HEAD_HALF_H - 0.05
    bottom = max(pts[:, 1].max(), max((t @ rot.T)[1] for t in sk.toes) + 0.15)
    scale = pose.height_frac * H / (bottom - top)
    free = H - pose.height_frac * H
    y0 = free * pose.y_margin if free > 0 else pose.y_margin * H
    x0 = W / 2 + pose.x_shift * W
    offset = np.array([x0, y0 - top * scale])
    return scale, offset


def _scene(app: Appearance, sk: _Skeleton, pose: BodyPose, size: tuple[int, int], scale: float, offset: np.ndarray) -> _Scene:
    H, W = size
    S = SUPERSAMPLE
    proj = _Projector(pose.yaw, scale * S, offset * S)
    cos_view = proj.toward_camera(np.array([0.0, 0, 1]))  # +1 front, -1 back
    K, J = KEYPOINT_INDEX, sk.joints
    return _Scene(
        app=app, sk=sk, proj=proj, canvas=_Canvas((H * S, W * S)), g=app.girth, s2=scale * S,
        cos_view=cos_view, sin_view=math.sqrt(max(0.0, 1 - cos_view**2)),
        neck=J[K["neck"]], pelvis=(J[K["right_hip"]] + J[K["left_hip"]]) / 2, axis_down=sk.upper @ np.array([0.0, 1, 0]),
    )  # fmt: skip


# --- legs (drawn behind the pelvis unless clearly nearer) ---


def _draw_leg(sc: _Scene, hip, knee, ankle, heel, toe, shade: float) -> None:
    app, canvas, proj, g, s2 = sc.app, sc.canvas, sc.proj, sc.g, sc.s2
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


def _add_legs(sc: _Scene) -> None:
    K, J, sk, proj = KEYPOINT_INDEX, sc.sk.joints, sc.sk, sc.proj
    for side_name, k in (("right", 0), ("left", 1)):
        hip, knee, ankle = J[K[f"{side_name}_hip"]], J[K[f"{side_name}_knee"]], J[K[f"{side_name}_ankle"]]
        heel, toe = sk.heels[k], sk.toes[k]
        depth = proj.depth(np.stack([hip, knee, ankle])) - 0.3
        shade = _FAR_SHADE if proj.depth(hip) < -0.2 else 1.0
        sc.add(depth, partial(_draw_leg, sc, hip, knee, ankle, heel, toe, shade))


# --- torso: polygon whose half-width blends lateral width and depth with the view ---


def _draw_chest_print(sc: _Scene) -> None:
    app, canvas, cos_view, s2 = sc.app, sc.canvas, sc.cos_view, sc.s2
    c = sc.on_torso(0.33, 0, 0.5)
    r = 0.28 * s2
    m = canvas.mat("print")
    if app.print_shape == "circle":
        canvas.ellipse(c, (r * cos_view, r), 0, m)
    elif app.print_shape == "square":
        canvas.poly(c + np.array([[-r * cos_view, -r], [r * cos_view, -r], [r * cos_view, r], [-r * cos_view, r]]), m)
    else:
        canvas.poly(c + np.array([[0, -r], [r * cos_view * 1.1, r * 0.8], [-r * cos_view * 1.1, r * 0.8]]), m)


def _draw_back_design(sc: _Scene) -> None:
    app, canvas, cos_view, s2, on_torso = sc.app, sc.canvas, sc.cos_view, sc.s2, sc.on_torso
    m = canvas.mat("back")
    if app.back_design == "yoke":
        band = sc.torso_outline(-0.04, 0.2)
        canvas.poly(band, m)
    elif app.back_design == "stripe":
        w = 0.16 * s2 * abs(cos_view)
        p0, p1 = on_torso(0.05, 0, -0.5), on_torso(min(app.top_length, 1.0) - 0.04, 0, -0.5)
        canvas.poly(np.array([p0 - [w, 0], p0 + [w, 0], p1 + [w, 0], p1 - [w, 0]]), m)
    else:
        c, r = on_torso(0.35, 0, -0.5), 0.32 * s2
        canvas.poly(c + np.array([[-r * abs(cos_view), -r * 0.6], [r * abs(cos_view), -r * 0.6],
                                  [r * abs(cos_view), r * 0.6], [-r * abs(cos_view), r * 0.6]]), m)  # fmt: skip


def _draw_torso(sc: _Scene) -> None:
    app, canvas, cos_view, s2 = sc.app, sc.canvas, sc.cos_view, sc.s2
    canvas.poly(sc.torso_outline(0.55, 1.15), canvas.mat("bottom"))
    canvas.poly(sc.torso_outline(-0.06, app.top_length), canvas.mat("top"))
    if cos_view > 0.35:  # round neckline and chest print: front only
        canvas.ellipse(sc.on_torso(-0.02, 0, 0.5), (0.2 * abs(cos_view) * s2, 0.16 * s2), 0, canvas.mat("skin"))
        if app.top_pattern == "print":
            _draw_chest_print(sc)
    if cos_view < -0.35:  # the back design: back only
        _draw_back_design(sc)


def _draw_backpack(sc: _Scene) -> None:
    cos_view, sin_view, s2 = sc.cos_view, sc.sin_view, sc.s2
    c = sc.on_torso(0.42, 0.0, -0.5 - 0.3 * abs(cos_view) - 0.25 * sin_view)
    hw, hh = (0.55 * abs(cos_view) + 0.32 * sin_view) * s2, 0.42 * _TORSO / 2 * s2
    sc.canvas.poly(c + np.array([[-hw, -hh], [hw, -hh], [hw * 0.95, hh], [-hw * 0.95, hh]]), sc.canvas.mat("bag"))


def _draw_straps(sc: _Scene) -> None:
    for s in (-1.0, 1.0):
        p0, p1 = sc.on_torso(0.0, s * 0.42, 0.5), sc.on_torso(0.6, s * 0.5, 0.5)
        sc.canvas.capsule(p0, p1, 0.07 * sc.s2, 0.07 * sc.s2, sc.canvas.mat("bag"))


def _draw_skirt(sc: _Scene) -> None:
    app, proj, s2, neck, pelvis = sc.app, sc.proj, sc.s2, sc.neck, sc.pelvis
    K, J = KEYPOINT_INDEX, sc.sk.joints
    top_c = proj(pelvis + 0.35 * (neck - pelvis))
    kr, kl = proj(J[K["right_knee"]]), proj(J[K["left_knee"]])
    hem_y = max(kr[1], kl[1]) - 0.15 * s2
    hw_top = sc.half_width(0.7 * app.hips, 0.5)
    spread = abs(kr[0] - kl[0]) / 2 + 0.35 * s2
    hw_bot = max(hw_top * 1.3, min(spread, hw_top * 1.8))
    hem_x = (kr[0] + kl[0]) / 2
    sc.canvas.poly(np.array([[top_c[0] - hw_top, top_c[1]], [top_c[0] + hw_top, top_c[1]],
                             [hem_x + hw_bot, hem_y], [hem_x - hw_bot, hem_y]]), sc.canvas.mat("bottom"))  # fmt: skip


def _add_torso(sc: _Scene) -> None:
    """The torso, then what hangs on it: a backpack (and its straps from the front), a skirt."""
    sc.add(0.0, partial(_draw_torso, sc))
    if sc.app.bag == "backpack":
        # A box on the upper back: hidden behind the torso from the front (only the straps show),
        # sticking out behind in side views, covering the back design in part from behind.
        sc.add(0.02 if sc.cos_view < 0 else -0.02, partial(_draw_backpack, sc))
        if sc.cos_view > 0.3:
            sc.add(0.01, partial(_draw_straps, sc))
    if sc.app.bottom == "skirt":
        # Over both thighs whatever the view (a leg swung towards the camera is still under the skirt).
        sc.add(max(0.5, max(it[0] for it in sc.items) + 0.01), partial(_draw_skirt, sc))


# --- arms (in front of the torso unless on the far side) ---


def _draw_arm(sc: _Scene, sh, el, wr, hand, shade: float) -> None:
    app, canvas, proj, g, s2 = sc.app, sc.canvas, sc.proj, sc.g, sc.s2
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


def _add_arms(sc: _Scene) -> None:
    K, J, proj = KEYPOINT_INDEX, sc.sk.joints, sc.proj
    for side_name, k in (("right", 0), ("left", 1)):
        sh, el, wr = J[K[f"{side_name}_shoulder"]], J[K[f"{side_name}_elbow"]], J[K[f"{side_name}_wrist"]]
        hand = sc.sk.hands[k]
        depth = proj.depth(np.stack([sh, el, wr])) + 0.25
        shade = _FAR_SHADE if proj.depth(sh) < -0.3 else 1.0
        sc.add(depth, partial(_draw_arm, sc, sh, el, wr, hand, shade))


# --- neck, head, hair ---


def _draw_neck(sc: _Scene) -> None:
    sk, proj, g, s2, neck = sc.sk, sc.proj, sc.g, sc.s2, sc.neck
    sc.canvas.capsule(proj(neck + sk.upper @ np.array([0, 0.1, 0])), proj(sk.head + sk.head_rot @ np.array([0, 0.25, 0])),
                      0.2 * g * s2, 0.19 * g * s2, sc.canvas.mat("skin"))  # fmt: skip


def _draw_long_hair(sc: _Scene, hang: np.ndarray) -> None:
    sk, proj = sc.sk, sc.proj
    c0 = proj(sk.head + sk.head_rot @ np.array([0.0, -0.1, -0.1]))
    c1 = proj(hang + sk.upper @ np.array([0.0, 0.55, 0.0]))
    w = (0.47 * abs(sc.cos_view) + 0.36 * sc.sin_view) * sc.s2
    sc.canvas.capsule(c0, c1, w, w * 0.9, sc.canvas.mat("hair"))


def _draw_face(sc: _Scene, c: np.ndarray, half_w: float, tilt: float, head_fwd: np.ndarray, cos_head: float) -> None:
    """The face ellipse over the hair's lower front part, shifted towards where the face points."""
    app, canvas, proj, s2, sk = sc.app, sc.canvas, sc.proj, sc.s2, sc.sk
    K, J = KEYPOINT_INDEX, sk.joints
    hair = canvas.mat("hair")
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
        mouth = proj(sk.head + sk.head_rot @ np.array([0.0, 0.3, 0.42]))
        canvas.ellipse(mouth, (0.09 * s2 * cos_head, max(0.5, 0.03 * s2)), 0, canvas.mat("mouth"))


def _draw_head(sc: _Scene, head_fwd: np.ndarray, cos_head: float) -> None:
    app, canvas, proj, s2, sk = sc.app, sc.canvas, sc.proj, sc.s2, sc.sk
    c = proj(sk.head)
    d = proj.cam(sk.head_rot @ np.array([0.0, 1, 0]))  # the head's down axis on the image
    tilt = float(np.degrees(np.arctan2(d[1], d[0]))) - 90.0  # cv2 ellipse angle of the first axis
    half_w = (_HEAD_HALF_W * abs(cos_head) + _HEAD_HALF_D * math.sqrt(max(0, 1 - cos_head**2))) * s2
    hair = canvas.mat("hair")
    # Hair = the whole head ellipse, raised a little; the face (none in a back view) goes over it.
    lift = 0.1 if app.hair_style != "buzz" else 0.04
    grow = 1.08 if app.hair_style != "buzz" else 1.02
    canvas.ellipse(c + np.array([0, -lift * s2]), (half_w * grow, _HEAD_HALF_H * grow * s2), tilt, hair)
    if cos_head > -0.35:
        _draw_face(sc, c, half_w, tilt, head_fwd, cos_head)


def _add_head(sc: _Scene) -> None:
    app, sk, proj = sc.app, sc.sk, sc.proj
    head = sk.head
    head_fwd = sk.head_rot @ np.array([0.0, 0, 1])
    cos_head = proj.toward_camera(head_fwd)
    head_depth = proj.depth(head) + 0.4
    sc.add(-0.05, partial(_draw_neck, sc))
    if app.hair_style == "long":
        hang = head + sk.head_rot @ np.array([0.0, 0.55, -0.3])
        sc.add(proj.depth(hang) - 0.1 if sc.cos_view > 0 else head_depth + 0.05, partial(_draw_long_hair, sc, hang))
    if app.hair_style == "bun":
        bun = head + sk.head_rot @ np.array([0.0, -0.3, -0.5])
        sc.add(proj.depth(bun) + 0.4, lambda: sc.canvas.circle(proj(bun), 0.24 * sc.s2, sc.canvas.mat("hair")))
    sc.add(head_depth, partial(_draw_head, sc, head_fwd, cos_head))


# --- colouring, shading, compositing ---


def _colour(sc: _Scene, size: tuple[int, int]) -> np.ndarray:
    """The material map coloured (premultiplied float32 RGB at canvas resolution), patterns included."""
    app, canvas, proj, s2 = sc.app, sc.canvas, sc.proj, sc.s2
    H, W = size
    S = SUPERSAMPLE
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
    n2, p2 = proj(sc.neck), proj(sc.pelvis)
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
    return color


def _composite(
    sc: _Scene, color: np.ndarray, size: tuple[int, int], scale: float, offset: np.ndarray, background: str,
    rng: np.random.Generator,
) -> np.ndarray:
    """Box filter, shading, background, sensor noise: the uint8 photo."""
    H, W = size
    S = SUPERSAMPLE
    proj, sk = sc.proj, sc.sk
    # Box filter down to the output size: the anti-aliasing of every edge at once.
    premult = cv2.resize(color, (W, H), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize((sc.canvas.labels > 0).astype(np.float32), (W, H), interpolation=cv2.INTER_AREA)
    # Shading (at output resolution, it is smooth): blurred coverage darkens the silhouette's edges
    # and thin limbs (a cheap ambient occlusion), and a soft light comes from one side.
    blur = cv2.GaussianBlur(alpha, (0, 0), max(0.5, 0.3 * scale))
    # Mostly darkening (at most x1.08) so light garments stay distinct from a near-white background.
    light = 1.0 + 0.1 * rng.uniform(-1, 1) * ((np.arange(W, dtype=np.float32) - offset[0]) / (0.8 * scale))
    shade_map = (0.75 + 0.25 * blur) * np.clip(light, 0.9, 1.08)[None, :]
    premult *= shade_map[..., None]
    feet = (proj(sk.heels[0]) + proj(sk.heels[1]) + proj(sk.toes[0]) + proj(sk.toes[1])) / (4 * S)
    bg = _background(rng, (H, W), background, feet, 0.9 * scale)
    img = premult + bg * (1 - alpha[..., None])
    # Sensor noise (uniform, std = amplitude / sqrt(3)): cheaper to draw than Gaussian noise.
    amp = 4.5 if background == "varied" else 1.7
    img += (rng.random(img.shape, dtype=np.float32) - 0.5) * (2 * amp)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _keypoints(sc: _Scene, size: tuple[int, int]) -> np.ndarray:
    """Projected joints at output resolution, rounded; missing when hidden or out of frame."""
    H, W = size
    K, proj, sk = KEYPOINT_INDEX, sc.proj, sc.sk
    kp_xy = proj(sk.joints) / SUPERSAMPLE
    kp = np.stack([kp_xy[:, 1], kp_xy[:, 0]], axis=1)
    kp = np.round(kp).astype(np.float32)
    for name, thr in _FACE_VISIBILITY.items():
        if proj.toward_camera(sk.face_normals[K[name]]) <= thr:
            kp[K[name]] = MISSING
    outside = (kp[:, 0] < 0) | (kp[:, 0] > H - 1) | (kp[:, 1] < 0) | (kp[:, 1] > W - 1)
    kp[outside] = MISSING
    return kp


def render_person(
    app: Appearance,
    pose: BodyPose,
    size: tuple[int, int],
    background: str,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one photo: ``(image HxWx3 uint8 RGB, keypoints (18, 2) float32 (y, x), -1 = missing)``.

    Body model (:func:`_skeleton`), framing (:func:`_frame`), clothing and body parts registered in
    drawing order (legs, torso and what hangs on it, arms, neck and head), painted far to near,
    coloured, shaded and composited on a background.
    """
    sk = _skeleton(app, pose)
    scale, offset = _frame(sk, pose, size)
    sc = _scene(app, sk, pose, size, scale, offset)
    _add_legs(sc)
    _add_torso(sc)
    _add_arms(sc)
    _add_head(sc)
    sc.draw()
    image = _composite(sc, _colour(sc, size), size, scale, offset, background, rng)
    return image, _keypoints(sc, size)
