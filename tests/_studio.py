"""Shared by the studio tests: tiny trained checkpoints (made once per session) and a fake pose backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from posetransfer.pose import extract as ex
from posetransfer.pose.library import library_pose

from _helpers import SilhouetteBackend  # noqa: F401 - the studio tests import it from here

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "debug" / "tiny.yaml"
SIZE = (64, 32)  # configs/debug/tiny.yaml


def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    """PG2 stage I (configs/debug/tiny.yaml) and stage II runs of two steps each on synthetic people.

    Trained once per test session: the runs live in the session's base temporary folder, so every
    studio test file (and every module-scoped fixture) reuses them.
    """
    from posetransfer.data.synth import synthesize
    from posetransfer.training.base import train
    from posetransfer.training.config import config_from_dict

    base = tmp_path_factory.getbasetemp() / "studio-runs"
    runs = {"stage1": base / "stage1", "stage2": base / "stage2"}
    if (base / "done").is_file():
        return runs
    data = base / "synth"
    synthesize(data, size=SIZE, identities=4, views=3, seed=3, progress=False)
    cfg = yaml.safe_load(TINY.read_text())
    cfg["data"].update(train=str(data / "train"), test=str(data / "test"))
    cfg["train"].update(iterations=2, batch_size=2, checkpoint_every=2, sample_every=1000, eval_batches=1, log_every=1)
    train(config_from_dict(cfg, source=str(TINY)), runs["stage1"], progress=False)
    cfg2 = dict(cfg, task="pg2_stage2", init_from={"g1": str(runs["stage1"])}, model={
        "g2": {"base_channels": 4, "num_blocks": 1, "image_size": list(SIZE)},
        "d": {"in_channels": 6, "base_channels": 4, "image_size": list(SIZE), "num_layers": 2},
    })  # fmt: skip
    cfg2.pop("description", None)
    train(config_from_dict(cfg2, source="studio-test:stage2"), runs["stage2"], progress=False)
    (base / "done").write_text("ok\n")
    return runs


def tiny_multiview_run(tmp_path_factory) -> Path:
    """configs/debug/multiview_tiny.yaml trained for two steps (1-5 source photos), once per session."""
    from posetransfer.training.base import train
    from posetransfer.training.config import config_from_dict

    runs = tiny_runs(tmp_path_factory)  # its synthetic data
    data = runs["stage1"].parent / "synth"
    run = runs["stage1"].parent / "multiview"
    if (run / "done").is_file():
        return run
    path = REPO / "configs" / "debug" / "multiview_tiny.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["data"].update(train=str(data / "train"), test=str(data / "test"), max_sources=2)
    cfg["train"].update(iterations=2, batch_size=2, checkpoint_every=2, sample_every=1000, eval_batches=1, log_every=1)
    train(config_from_dict(cfg, source=str(path)), run, progress=False)
    (run / "done").write_text("ok\n")
    return run


class LibraryBackend:
    """A fake detector: the standing pose scaled to the image it is given (no mediapipe in tests),
    or no person at all for an image whose top-left pixel is pure black."""

    name = "lib"

    def extract(self, image):
        if image[0, 0].sum() == 0:
            return []
        h, w = image.shape[:2]
        return [ex.Detection(library_pose("standing_front", (h, w)), np.ones(18, np.float32), (0, 0, h, w), 1.0)]


def png(path: Path, size=(90, 60), seed: int = 0, black_corner: bool = False) -> Path:
    image = np.random.default_rng(seed).integers(1, 255, (*size, 3), dtype=np.uint8)
    if black_corner:
        image[0, 0] = 0
    Image.fromarray(image).save(path)
    return path


def walking_clip(path: Path, frames: int = 12, size=(128, 96), fps: float = 10.0, blank=()) -> Path:
    """A synthetic person walking (posetransfer.data.motion) written as an MP4 (or GIF by extension)."""
    from posetransfer.data.motion import walking_frames
    from posetransfer.utils.video import VideoWriter

    with VideoWriter(path, fps) as w:
        for image, _ in walking_frames(frames, size, fps=fps, blank=set(blank)):
            w.write(image)
    return path
