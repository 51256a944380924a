"""Helpers shared by several test files (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from posetransfer.pose import extract as ex
from posetransfer.pose.io import read_annotations, write_annotations, write_pairs
from posetransfer.pose.library import library_pose


def copy_plain_subset(src: Path, dst: Path, n: int = 8, *, both_ways: bool = True, link: bool = False) -> list[str]:
    """A plain-layout data set in ``dst`` of the first ``n`` images of the real-mini set ``src``.

    Images are copied (tests that break them need copies) or symlinked with ``link``; ``pairs.csv``
    holds the first two images as one pair, or in both directions with ``both_ways``.
    """
    ann = read_annotations(src / "annotation.csv")
    names = sorted(ann)[:n]
    (dst / "images").mkdir(parents=True)
    for name in names:
        (os.symlink if link else shutil.copy)(src / "images" / name, dst / "images" / name)
    write_annotations(dst / "annotation.csv", {k: ann[k] for k in names})
    pairs = [(names[0], names[1]), (names[1], names[0])] if both_ways else [(names[0], names[1])]
    write_pairs(dst / "pairs.csv", pairs)
    return names


def run_launcher(cmd: list[str], env: dict[str, str], timeout: float = 600):
    """Run a multi-process launcher (torchrun) and return its CompletedProcess; past ``timeout``
    the whole process group is killed and the test fails with what it printed so far, so a hang
    under a loaded machine says where it stood instead of a bare TimeoutExpired."""
    import os
    import signal
    import subprocess

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"{cmd[:6]} did not finish in {timeout:.0f} s; its output:\n{out[-4000:]}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


class SilhouetteBackend:
    """A fake detector for synthetic clips and photos: the standing pose stretched over the pixels
    that differ from the corner's colour; no person on a plain frame."""

    name = "silhouette"

    def extract(self, image):
        mask = np.abs(image.astype(int) - image[0, 0]).max(axis=2) > 30
        if mask.sum() < 20:
            return []
        ys, xs = np.nonzero(mask)
        top, left, bottom, right = ys.min(), xs.min(), ys.max() + 1, xs.max() + 1
        kp = library_pose("standing_front", (bottom - top, right - left)).astype(np.float32) + [top, left]
        return [ex.Detection(kp, np.ones(18, np.float32), (top, left, bottom, right), 1.0)]


def save_tiny_g1_checkpoint(run: Path, size: tuple[int, int]) -> Path:
    """A one-step PG2 stage-I checkpoint of a tiny G1 (random weights, seed 0) at ``size``."""
    import torch

    from posetransfer.models.pg2 import G1
    from posetransfer.training.checkpoint import save_checkpoint
    from posetransfer.training.config import config_from_dict, dump_config

    kwargs = {"base_channels": 4, "num_blocks": 2, "image_size": list(size), "z_dim": 8, "pose_embedding": "concat"}
    config = config_from_dict({
        "task": "pg2_stage1",
        "model": {"g1": kwargs},
        "data": {"train": "unused/train", "heatmap": "disk", "radius": 2},
        "train": {"batch_size": 1, "iterations": 1},
    })  # fmt: skip
    torch.manual_seed(0)
    save_checkpoint(run, 1, {"g1": G1(**kwargs)}, {"g1": kwargs}, {"g1"}, dump_config(config), {"step": 1}, "pg2_stage1")
    return run



def first_use_steps(config: str | Path, overrides: list[str], batch: int) -> dict[str, int]:
    """The step (0-based) at which each training image of ``config`` is first loaded, from the
    trainer's own data set and sampler (the data order is a pure function of seed, epoch and
    batch; under DDP the ranks' slices of a step make up the same global batch)."""
    from posetransfer.training.config import load_config
    from posetransfer.training.distributed import ResumableBatchSampler
    from posetransfer.training.tasks import get_task_class

    cfg = load_config(config, overrides)
    dataset = get_task_class(cfg.task)(cfg).build_dataset("train", augment=True)
    first: dict[str, int] = {}
    for step, items in enumerate(ResumableBatchSampler(len(dataset), batch, seed=cfg.train.seed)):
        for i in items:
            for name in dataset.pairs[i]:
                first.setdefault(name, step)
    return first


def offline_weights(monkeypatch, cache: Path, weights_dir: Path | None = None) -> None:
    """No pretrained file anywhere: an empty XDG cache at ``cache``, ``$POSETRANSFER_WEIGHTS_DIR``
    unset (or ``weights_dir``), and every download failing as it does without a network."""
    import torch

    from posetransfer.utils.weights import ENV_DIR

    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    if weights_dir is None:
        monkeypatch.delenv(ENV_DIR, raising=False)
    else:
        monkeypatch.setenv(ENV_DIR, str(weights_dir))

    def offline(url, dst, progress=True):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
