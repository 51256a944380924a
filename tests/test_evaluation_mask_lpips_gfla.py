"""``mask_lpips_gfla`` against GFLA's released ``calculate_mask_lpips`` (the reference in
``tests/reference_protocols.py``, written from RenYurui/Global-Flow-Local-Attention
``script/metrics.py`` lines 385-439, 509-617 and 645-651), on real Market photos and the real
``market-annotation-test.csv``.

No LPIPS weights can be downloaded here: both sides share one randomly initialised LPIPS-Alex, so
what is tested is the protocol (pairing by name, the target's mask, the [-1, 1] scaling before
the mask, batches of 64 with the last incomplete one dropped, the average), not the weights.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from posetransfer.errors import DataError, PosetransferError
from posetransfer.evaluation import lpips as L
from posetransfer.evaluation.evaluate import evaluate_set, load_evaluation_set, run_evaluation
from posetransfer.evaluation.lpips import LPIPSAlex, lpips_distances
from posetransfer.evaluation.protocols import (
    GFLA_BATCH,
    gfla_masked_signed,
    mask_lpips_gfla,
    mask_lpips_gfla_distances,
)
from posetransfer.pose.io import read_annotations
from posetransfer.pose.masks import patn_mask
from posetransfer.utils.io import read_image
from reference_protocols import gfla_calculate_mask_lpips, gfla_preprocess_path_for_deform_task, gfla_produce_ma_mask


@pytest.fixture(scope="module")
def model() -> LPIPSAlex:
    """A random LPIPS-Alex (heads made non-negative, as trained ones are), the same for both sides."""
    torch.manual_seed(0)
    m = LPIPSAlex()
    for i in range(5):
        w = getattr(m, f"lin{i}").model[1].weight
        w.data = w.data.abs()
    return m.eval().requires_grad_(False)


def _released_forward(model):
    # DistModel.forward of GFLA's time: per-image distances as a flat numpy array (retNumpy=True)
    return lambda a, b: model(a, b).cpu().numpy().flatten()


def _test_split_names(mini_market, annotations_dir) -> list[str]:
    """The real-mini Market images that are rows of the real test annotation file (131 of them)."""
    test = read_annotations(annotations_dir / "market-annotation-test.csv")
    mini = read_annotations(mini_market / "annotation.csv")
    names = sorted(n for n in mini if os.path.splitext(n)[0] + ".jpg" in test)
    for n in names:  # the real-mini rows are the test file's rows: both sides read the same keypoints
        np.testing.assert_array_equal(mini[n], test[os.path.splitext(n)[0] + ".jpg"])
    return names


@pytest.mark.parametrize("n_pairs", [131, 40])
def test_mask_lpips_gfla_equals_the_released_script(n_pairs, tmp_path, mini_market, annotations_dir, model, monkeypatch):
    names = _test_split_names(mini_market, annotations_dir)
    assert len(names) >= 131
    stems = [os.path.splitext(n)[0] for n in names[:131]]
    pairs = [(stems[i], stems[(i + 7) % len(stems)]) for i in range(n_pairs)]  # the source stands in for the output
    # GFLA's side: its output names <from>_2_<to>_vis.png and its test_12864 folder of <to>.jpg
    # (links to the real PNG photos; imageio reads by content)
    released, gt, ours = tmp_path / "released", tmp_path / "gt", tmp_path / "ours"
    for d in (released, gt, ours):
        d.mkdir()
    for a, b in pairs:
        os.symlink(mini_market / "images" / f"{a}.png", released / f"{a}_2_{b}_vis.png")
        os.symlink(mini_market / "images" / f"{a}.png", ours / f"{a}___{b}.png")
        if not (gt / f"{b}.jpg").exists():
            os.symlink(mini_market / "images" / f"{b}.png", gt / f"{b}.jpg")
    gt_list, distorted_list = gfla_preprocess_path_for_deform_task(str(gt), str(released))
    assert len(gt_list) == n_pairs
    expected = gfla_calculate_mask_lpips(_released_forward(model), distorted_list, gt_list,
                                         annotations_dir / "market-annotation-test.csv", sort=False)  # fmt: skip

    monkeypatch.setattr(L, "load_lpips_alex", lambda *a, **k: model)
    if n_pairs > GFLA_BATCH:  # the library call, with the per-pair values
        values, per_pair = evaluate_set(load_evaluation_set(ours, mini_market), ["mask_lpips_gfla"], device="cpu")
        assert values["mask_lpips_gfla"] == pytest.approx(float(expected), rel=1e-6, abs=0)
        d = per_pair["mask_lpips_gfla"]
        assert len(d) == n_pairs and values["mask_lpips_gfla"] == pytest.approx(d[:128].mean(), rel=1e-12)
        assert abs(d.mean() - float(expected)) > 1e-6  # the dropped pairs matter: the mean of all 131 differs
        return
    # the command's path: metrics.json and table.md, next to the unmasked lpips_gfla
    values = run_evaluation(ours, mini_market, tmp_path / "out", metrics=["mask_lpips_gfla", "lpips_gfla"], show=0)
    assert values["mask_lpips_gfla"] == pytest.approx(float(expected), rel=1e-6, abs=0)
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["mask_lpips_gfla"] == pytest.approx(values["mask_lpips_gfla"], rel=1e-12)
    assert "mask-LPIPS (GFLA) ↓" in (tmp_path / "out" / "table.md").read_text()
    assert abs(values["lpips_gfla"] - values["mask_lpips_gfla"]) > 1e-3  # the mask matters


def _one_joint(y: int, x: int) -> np.ndarray:
    kp = np.full((18, 2), -1.0, dtype=np.float32)
    kp[0] = (y, x)
    return kp


class Recorder(torch.nn.Module):
    """A stand-in for LPIPS: records its inputs and returns the per-image sum of squared differences."""

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x, y):
        self.seen.append((x.clone(), y.clone()))
        return ((x - y) ** 2).sum(dim=(1, 2, 3))


def test_hand_checked_one_joint_mask_scaling_and_distance():
    # a lone joint at (60, 30): skimage's disk of radius 4 is dy^2 + dx^2 < 16, i.e. rows of
    # 5, 7, 7, 7, 7, 7, 5 pixels = 45, which the 5x5 closing leaves as it is
    mask = patn_mask(_one_joint(60, 30)[None], (128, 64)).astype(np.uint8)
    ref = gfla_produce_ma_mask(_one_joint(60, 30).astype(int))
    np.testing.assert_array_equal(mask[0], ref)
    assert mask.sum() == 45 and mask[0, 60, 26:35].tolist() == [0, 1, 1, 1, 1, 1, 1, 1, 0]
    gen = np.full((1, 128, 64, 3), 255, np.uint8)
    tgt = np.full((1, 128, 64, 3), 51, np.uint8)
    rec = Recorder()
    d = mask_lpips_gfla_distances(rec, gen, tgt, mask)
    x, y = rec.seen[0]
    inside = torch.from_numpy(mask[0]).bool()
    assert torch.all(x[0][:, ~inside] == 0) and torch.all(y[0][:, ~inside] == 0)  # masked out: 0, not black (-1)
    assert torch.all(x[0][:, inside] == 1.0)  # 255 / 127.5 - 1
    assert torch.all(y[0][:, inside] == np.float32(51) / np.float32(127.5) - np.float32(1))  # -0.6 in float32
    assert d[0] == pytest.approx(45 * 3 * 1.6**2, rel=1e-6)  # 45 pixels x 3 channels x (1 - (-0.6))^2


def test_all_missing_target_gives_an_empty_mask_and_distance_zero(mini_market, model):
    """No keypoint: an all-zero mask, both inputs all zero (two identical mid-grey images): 0."""
    kp = np.full((1, 18, 2), -1.0, dtype=np.float32)
    mask = patn_mask(kp, (128, 64)).astype(np.uint8)
    assert mask.sum() == 0 and not gfla_produce_ma_mask(kp[0].astype(int)).any()
    a = read_image(mini_market / "images" / "0001_c3s1_000551_03.png")[None]
    b = read_image(mini_market / "images" / "0001_c3s1_083067_05.png")[None]
    assert torch.all(gfla_masked_signed(a, mask) == 0)
    assert mask_lpips_gfla_distances(model, a, b, mask)[0] == 0.0
    assert lpips_distances(model, a, b)[0] > 1e-3  # unmasked, the same pair is far apart


def test_batches_of_64_last_incomplete_one_dropped():
    """130 pairs whose distances are known by hand: image i is grey level i against 0, a full mask."""
    n = 130
    gen = np.repeat(np.arange(n, dtype=np.uint8), 128 * 64 * 3).reshape(n, 128, 64, 3)
    tgt = np.zeros_like(gen)
    rec = Recorder()
    d = mask_lpips_gfla_distances(rec, gen, tgt, np.ones((n, 128, 64), np.uint8))
    assert [len(x) for x, _ in rec.seen] == [64, 64, 2]
    hand = 128 * 64 * 3 * (np.arange(n) / 127.5) ** 2  # ((i/127.5 - 1) - (0/127.5 - 1))^2 per value
    np.testing.assert_allclose(d, hand, rtol=1e-5)
    assert mask_lpips_gfla(d) == pytest.approx(hand[:128].mean(), rel=1e-5)  # pairs 128, 129 left out
    assert mask_lpips_gfla(d[:40]) == pytest.approx(hand[:40].mean(), rel=1e-5)  # under 64: one batch of all


def test_other_sizes_are_a_clear_error(tmp_path, mini_fashion, model, monkeypatch):
    """GFLA draws its mask at 128x64 only (its script fails on any other size): one clear error,
    before any network is loaded, and no report written."""
    import csv

    with open(mini_fashion / "pairs.csv", newline="") as fh:
        row = next(csv.DictReader(fh))
    gen = tmp_path / "gen"
    gen.mkdir()
    a, b = (os.path.splitext(row[k])[0] for k in ("from", "to"))
    os.symlink(mini_fashion / "images" / row["from"], gen / f"{a}___{b}.png")
    monkeypatch.setattr(L, "load_lpips_alex", lambda *a, **k: pytest.fail("no network may be loaded"))
    with pytest.raises(PosetransferError, match=r"mask_lpips_gfla is GFLA's Market protocol.*got 256x176"):
        run_evaluation(gen, mini_fashion, tmp_path / "out", metrics=["mask_lpips_gfla"], show=0)
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_a_target_missing_from_the_annotation_file(tmp_path, mini_market, annotations_dir, model):
    """GFLA's ``annotation_file.loc[name]`` raises KeyError for a target not in the test file (the
    script stops); ours stops too, with one line naming the generated file."""
    train_only = "0028_c1s4_033506_01"  # a training image: not a row of market-annotation-test.csv
    gt, out = tmp_path / "gt", tmp_path / "released"
    gt.mkdir()
    out.mkdir()
    os.symlink(mini_market / "images" / f"{train_only}.png", gt / f"{train_only}.jpg")
    os.symlink(mini_market / "images" / f"{train_only}.png", out / f"{train_only}_2_{train_only}_vis.png")
    gt_list, distorted_list = gfla_preprocess_path_for_deform_task(str(gt), str(out))
    with pytest.raises(KeyError):
        gfla_calculate_mask_lpips(_released_forward(model), distorted_list, gt_list,
                                  annotations_dir / "market-annotation-test.csv", sort=False)  # fmt: skip
    ours = tmp_path / "ours"
    ours.mkdir()
    os.symlink(mini_market / "images" / f"{train_only}.png", ours / f"{train_only}___0000_nowhere_01.png")
    with pytest.raises(DataError, match="0000_nowhere_01"):
        run_evaluation(ours, mini_market, tmp_path / "report", metrics=["mask_lpips_gfla"], show=0)
