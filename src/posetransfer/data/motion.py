"""Synthetic driving clips: one synthetic person (:mod:`posetransfer.data.synth`) walking.

A driving video for ``posetransfer animate`` that needs no download (README, tests): the person
walks towards the camera at ``strides`` strides a second, arms swinging against the legs, the
trailing knee bent, drifting across the frame, on the plain studio background (mediapipe finds
this person in every frame at 256x192; it misses many side views). Frames come one at a time.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np

from posetransfer.data import synth

__all__ = ["walking_frames"]


def walking_frames(
    frames: int,
    size: tuple[int, int] = (256, 192),
    seed: int = 0,
    fps: float = 10.0,
    strides: float = 1.0,
    amplitude: float = 22.0,
    drift: float = 0.3,
    blank: frozenset[int] | set[int] | range = frozenset(),
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(image HxWx3 uint8, keypoints (18, 2)) per frame; frames in ``blank`` are the empty background.

    ``amplitude``: hip swing in degrees; ``drift``: the horizontal travel as a share of the width.
    """
    app = synth.sample_appearance(np.random.default_rng(seed))
    base = synth.sample_pose(np.random.default_rng(seed + 1), "front")
    for i in range(frames):
        sw = float(np.sin(2 * np.pi * strides * i / fps))
        hip = (amplitude * sw, -amplitude * sw)
        pose = dataclasses.replace(
            base, yaw=0.0, head_yaw=0.0, lean_side=0.0, twist=-0.3 * amplitude * sw, elbow=(20.0, 20.0),
            arm_abduct=(8.0, 8.0), hip_abduct=(2.0, 2.0),  # the base pose may be a gesture: arms down
            arm_swing=(-0.8 * amplitude * sw, 0.8 * amplitude * sw), hip_flex=hip,
            # the trailing leg (thigh behind) bends its knee, the leading one stays almost straight
            knee=tuple(8 + (45 if h < 0 else 10) * abs(h) / amplitude for h in hip),
            height_frac=0.85, y_margin=0.5, x_shift=drift * (i / max(1, frames - 1) - 0.5),
        )  # fmt: skip
        image, kp = synth.render_person(app, pose, size, "plain", np.random.default_rng(seed + 2))
        if i in blank:
            image = np.broadcast_to(image[:1, :1], image.shape).copy()
            kp = np.full_like(kp, -1)
        yield image, kp
