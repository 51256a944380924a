"""Training as released: PG2's pair flips and {-1, 1} heatmaps, pix2pix's separate D calls and
test-time behaviour (docs/protocols.md cites the released lines)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from posetransfer.data.datasets import PairDataset
from posetransfer.data.synth import synthesize
from posetransfer.data.transforms import Augment, hflip
from posetransfer.models.multiview import Pix2PixGenerator
from posetransfer.training.config import load_config
from posetransfer.training.multiview import Pix2PixLossConfig, Pix2PixTask
from posetransfer.training.pg2 import PG2Stage1Task

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "people"
    synthesize(out, size=(64, 32), identities=6, views=3, seed=0, progress=False)
    return out


# ---------------------------------------------------------------- PG2: pair flips


def _flipped(item_image: torch.Tensor, original: PairDataset, name: str) -> bool:
    """Whether ``item_image`` is the left-right flip of ``name``'s unaugmented image."""
    plain = original._load(name, None)[0]
    flipped = hflip(plain, np.full((18, 2), -1, np.float32))[0]
    img = ((item_image.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.int64)
    d_plain = np.abs(img - plain.astype(np.int64)).mean()
    d_flip = np.abs(img - flipped.astype(np.int64)).mean()
    assert min(d_plain, d_flip) < 1.0  # one of the two, up to the [-1, 1] round trip
    return bool(d_flip < d_plain)


def test_pair_flip_flips_both_images_of_a_pair_together(synth):
    plain = PairDataset(synth / "train")
    paired = PairDataset(synth / "train", augment=Augment(flip=0.5, pair=True), seed=3)
    independent = PairDataset(synth / "train", augment=Augment(flip=0.5), seed=3)
    states, mixed = [], 0
    for i in range(min(len(plain), 24)):
        a, b = paired[i], independent[i]
        s, t = _flipped(a["source_image"], plain, a["source_name"]), _flipped(a["target_image"], plain, a["target_name"])
        assert s == t, f"pair {i}: source flipped {s}, target flipped {t}"
        states.append(s)
        mixed += _flipped(b["source_image"], plain, b["source_name"]) != _flipped(b["target_image"], plain, b["target_name"])
    assert 0 < sum(states) < len(states)  # both flipped and unflipped pairs occur
    assert mixed > 0  # the independent draws do mix them
    # the flipped pair's keypoints and mask follow the flipped image (left/right swapped)
    i = states.index(True)
    item = paired[i]
    kp = plain._load(item["target_name"], None)[1]
    np.testing.assert_allclose(item["target_keypoints"].numpy(), hflip(np.zeros((64, 32, 3), np.uint8), kp)[1])


def test_apply_pair_uses_one_draw_and_checks_sizes():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (20, 10, 3), dtype=np.uint8)
    kp = np.full((18, 2), -1, np.float32)
    kp[0] = (5, 2)
    aug = Augment(flip=0.5, crop=(0.8, 1.0), rotation=10, pair=True)
    for seed in range(6):
        (a, ka), (b, kb) = aug.apply_pair((img, kp), (img.copy(), kp.copy()), np.random.default_rng(seed))
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ka, kb)
    with pytest.raises(ValueError, match="differ in size"):
        aug.apply_pair((img, kp), (img[:10], kp), rng)


def test_pg2_recipes_use_the_released_choices():
    for ds in ("market", "deepfashion"):
        cfg = load_config(REPO / "configs" / "pg2" / ds / "g1_posemaskloss.yaml", [])
        assert cfg.data.pair_flip is True and cfg.data.heatmap_range == "-1,1" and cfg.data.mask == {"protocol": "pg2"}


# ---------------------------------------------------------------- PG2: {-1, 1} heatmaps


class _SpyG1(torch.nn.Module):
    pose_embedding = "concat"

    def forward(self, image, pose):
        self.seen = pose
        return image


@pytest.mark.parametrize("scale, expected", [("0,1", (0.0, 1.0)), ("-1,1", (-1.0, 1.0))])
def test_heatmap_range_is_what_g1_sees(scale, expected):
    task = PG2Stage1Task.__new__(PG2Stage1Task)
    task.data_cfg = SimpleNamespace(heatmap_range=scale, blind_pose=False)
    g1 = _SpyG1()
    heat = torch.zeros(1, 18, 4, 4)
    heat[0, 0, 1, 1] = 1
    task._g1({"g1": g1}, {"source_image": torch.zeros(1, 3, 4, 4), "target_heatmaps": heat})
    assert (g1.seen.min().item(), g1.seen.max().item()) == expected
    assert g1.seen[0, 0, 1, 1].item() == 1.0


# ---------------------------------------------------------------- pix2pix


class _SpyD(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.calls: list[int] = []

    def forward(self, x):
        self.calls.append(x.shape[0])
        return x.mean(dim=(1, 2, 3), keepdim=True)


@pytest.mark.parametrize("mode, calls, weight", [("separate", [2, 2], 0.5), ("joint", [4], 1.0)])
def test_pix2pix_discriminator_calls(mode, calls, weight):
    task = Pix2PixTask.__new__(Pix2PixTask)
    task.loss_cfg = Pix2PixLossConfig(discriminator_calls=mode)
    d = _SpyD()
    batch = {"source_images": torch.rand(2, 1, 3, 8, 4), "target_stick": torch.rand(2, 3, 8, 4), "target_image": torch.rand(2, 3, 8, 4)}
    out = task.dis_losses({"d": d}, batch, {"generated": torch.rand(2, 3, 8, 4)})
    assert d.calls == calls and torch.isfinite(out["d_bce"])
    assert task.loss_weights("dis") == {"d_bce": weight}


def test_pix2pix_recipes_name_their_choices():
    for ds in ("market", "deepfashion"):
        cfg = load_config(REPO / "configs" / "multiview" / ds / "pix2pix.yaml", [])
        assert cfg.loss.discriminator_calls == "separate"
        assert cfg.model["g"]["test_mode"] == "pix2pix"


def test_pix2pix_test_mode_runs_each_image_alone_with_batch_statistics_and_dropout():
    torch.manual_seed(0)
    g = Pix2PixGenerator(base_channels=4, num_downs=6)  # dropout in decoder block 4 (8x-wide)
    assert sum(isinstance(m, torch.nn.Dropout) for m in g.modules()) == 1
    src, pose = torch.randn(3, 3, 64, 64), torch.rand(3, 3, 64, 64)
    g.train()
    g(src, pose)  # move the running statistics away from their initial values
    g.eval()
    before = {k: v.clone() for k, v in g.state_dict().items()}
    with torch.no_grad():
        torch.manual_seed(1)
        batch = g(src, pose)
        torch.manual_seed(1)
        alone = torch.cat([g(src[i : i + 1], pose[i : i + 1]) for i in range(3)])
        again = g(src, pose)
    torch.testing.assert_close(batch, alone)  # each image alone: no batch-statistics mixing
    assert not torch.allclose(batch, again)  # dropout on at test time
    for k, v in g.state_dict().items():  # running statistics untouched
        assert torch.equal(v, before[k]), k
    assert not g.training and all(not m.training for m in g.modules())
    # "eval": PyTorch's eval mode, deterministic, running statistics
    e = Pix2PixGenerator(base_channels=4, num_downs=6, test_mode="eval")
    e.load_state_dict(g.state_dict())
    e.eval()
    with torch.no_grad():
        torch.testing.assert_close(e(src, pose), e(src, pose))
        assert not torch.allclose(e(src, pose), batch, atol=1e-3)
