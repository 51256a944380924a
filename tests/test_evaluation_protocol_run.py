"""``evaluate`` with the GFLA-family metrics and PCKh by estimator, end to end on real-mini images.
The Inception is a stand-in (no weights download here) and the pose estimators are fakes: what is
tested is the plumbing (training-split real set, protocol checks, metric names, estimator names)."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

from _helpers import copy_plain_subset
from posetransfer.errors import DataError
from posetransfer.evaluation import fid as FID
from posetransfer.evaluation.evaluate import run_evaluation
from posetransfer.evaluation.pck import pckh
from posetransfer.evaluation.protocols import ssim_gfla
from posetransfer.pose.extract import Detection, register_backend, unregister_backend
from posetransfer.pose.io import read_annotations
from posetransfer.utils import weights as W
from posetransfer.utils.io import read_image


class MeanColour(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], 1).double()  # 6 features: a fast sqrtm


@pytest.fixture
def setup(tmp_path, mini_market, monkeypatch):
    copy_plain_subset(mini_market, tmp_path / "data" / "train", n=70, link=True)
    names = copy_plain_subset(mini_market, tmp_path / "data" / "test", n=6, link=True)
    gen = tmp_path / "gen"
    gen.mkdir()
    pairs = [(names[i], names[i + 1]) for i in range(5)]
    for a, b in pairs:
        shutil.copy(mini_market / "images" / a, gen / f"{os.path.splitext(a)[0]}___{os.path.splitext(b)[0]}.png")
    monkeypatch.setattr(FID, "load_network", lambda protocol, weights=None, download=True: MeanColour())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv(W.ENV_DIR, str(tmp_path / "weights"))
    fixed = read_annotations(mini_market / "annotation.csv")[names[0]]

    class FakeOpenPose:
        name = "openpose"

        def __init__(self, **kw):
            pass

        def pose_cords(self, image):
            return fixed.astype(int), 1.0, 1

    class FakeMediapipe:
        name = "mediapipe"

        def __init__(self, **kw):
            pass

        def extract(self, image):
            return [Detection(fixed.copy(), np.ones(18, np.float32), (0.0, 0.0, 100.0, 50.0), 1.0)]

    register_backend("openpose", FakeOpenPose)
    register_backend("mediapipe", FakeMediapipe)
    yield tmp_path, gen, pairs, fixed, mini_market
    unregister_backend("openpose")
    unregister_backend("mediapipe")


def test_gfla_metrics_with_the_training_split_as_real_set(setup):
    tmp_path, gen, pairs, fixed, mini = setup
    logs = []
    values = run_evaluation(gen, tmp_path / "data", tmp_path / "out", split="test",
                            metrics=["fid_gfla", "fid_cfld", "ssim_gfla", "ssim_pidm", "pckh"], log=logs.append, show=0)  # fmt: skip
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert {"fid_gfla", "fid_gfla_images", "ssim_gfla", "ssim_pidm", "pckh_mediapipe"} <= set(saved)
    assert "pckh" not in saved  # no body_pose_model.pth here: the number is named for its estimator
    assert any("reported as pckh_mediapipe" in m for m in logs)
    assert saved["fid_gfla_images"] == 5 and values["fid_gfla"] > 0
    # the real set has 70 images: GFLA's statistics use 64 of them, CFLD's all 70
    assert values["fid_cfld"] > 0 and values["fid_cfld"] != values["fid_gfla"]
    assert any(str(tmp_path / "data" / "train" / "images") in m for m in logs)  # the training split
    gen_u8 = np.stack([read_image(p) for p in sorted(gen.iterdir())])
    tgt_u8 = np.stack([read_image(mini / "images" / b) for _, b in sorted(pairs)])
    assert saved["ssim_gfla"] == pytest.approx(float(ssim_gfla(gen_u8, tgt_u8).mean()), abs=1e-12)
    targets = read_annotations(mini / "annotation.csv")
    expected = pckh(np.stack([fixed] * 5), np.stack([targets[b] for _, b in sorted(pairs)]))[0]
    assert saved["pckh_mediapipe"] == pytest.approx(expected)


def test_pckh_is_openposes_when_its_weights_are_found_and_npz_protocols_are_checked(setup):
    tmp_path, gen, pairs, fixed, mini = setup
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "body_pose_model.pth").write_bytes(b"found")
    values = run_evaluation(gen, tmp_path / "data", tmp_path / "out", split="test", metrics=["pckh"], show=0)
    assert "pckh" in values and "pckh_mediapipe" not in values
    FID.write_statistics(tmp_path / "fid.npz", "fid", np.zeros(6), np.eye(6), 10)
    with pytest.raises(DataError, match="holds fid statistics, not fid_gfla"):
        run_evaluation(gen, tmp_path / "data", tmp_path / "out2", split="test", metrics=["fid_gfla"],
                       fid_real=tmp_path / "fid.npz", show=0)  # fmt: skip
