"""``fid_pidm`` and ``lpips_pidm`` against PIDM's released ``utils/metrics.py`` (the references in
``tests/reference_protocols.py``, written from ankanbhunia/PIDM e4f1d88 lines 98-257, 421-446 and
465-526), on real DeepFashion photos of the ``mini_fashion`` fixture, with generated images of
PIDM's own 256x256 size so that its ``cv2.resize(..., (176, 256))`` matters; and PIDM's SSIMs,
which it does not resize.

No weights can be downloaded here, and the protocol is what is tested, not the networks: both
sides share one small fixed random network in place of the Inception (FID) and of LPIPS-Alex, so
the reading, the resize, the scaling, the batches of 64 with the last incomplete one dropped, the
pairing by name and the statistics are compared.
"""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from posetransfer.cli import main
from posetransfer.errors import DataError, PosetransferError
from posetransfer.evaluation import fid as FID
from posetransfer.evaluation import lpips as L
from posetransfer.evaluation.evaluate import run_evaluation
from posetransfer.evaluation.protocols import pidm_resize
from posetransfer.pose.io import read_pairs
from posetransfer.utils.io import read_image, save_image
from reference_protocols import (
    pidm_fid_statistics_of_path,
    pidm_frechet_distance,
    pidm_lpips_calculate_from_disk,
    pidm_preprocess_path_for_deform_task,
    pidm_ssim_from_disk,
)


class TinyFeatures(torch.nn.Module):
    """A stand-in for the Inception: a fixed random strided conv, ReLU, 2x2 average pool -> 32-d."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 5, stride=4, bias=False)
        self.conv.weight.data = torch.randn(self.conv.weight.shape, generator=g)

    def forward(self, x):  # ours: (N, 3, H, W) in [0, 1] -> (N, 32)
        return torch.nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 2).flatten(1).double()


class TinyLPIPS(torch.nn.Module):
    """A stand-in for LPIPS-Alex: squared differences of fixed random strided features, averaged."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=2, bias=False)
        self.conv.weight.data = torch.randn(self.conv.weight.shape, generator=g)

    def forward(self, x, y):  # ours: [-1, 1] images -> (N,)
        return ((torch.relu(self.conv(x)) - torch.relu(self.conv(y))) ** 2).mean(dim=(1, 2, 3))


def _stand_in_output(image: np.ndarray) -> np.ndarray:
    """A 256x256 'PIDM output' made from a real 256x176 photo (PIDM's lmdb squash, bicubic)."""
    return cv2.resize(image, (256, 256), interpolation=cv2.INTER_CUBIC)


def test_pidm_resize_is_cv2_linear_and_the_identity_at_256x176(mini_fashion):
    # INTER_LINEAR by hand: halving 4 columns samples at x = 0.5 and 2.5 -> the means of neighbours
    row = np.array([[[0] * 3, [10] * 3, [20] * 3, [30] * 3]], dtype=np.uint8)[None]
    np.testing.assert_array_equal(pidm_resize(row, (1, 2))[0, 0, :, 0], [5.0, 25.0])
    photo = read_image(mini_fashion / "images" / "fashionMENJackets_Vestsid0000065304_1front.png")
    assert photo.shape == (256, 176, 3)
    out = pidm_resize(photo[None])
    assert out.dtype == np.float32 and np.array_equal(out[0], photo.astype(np.float32))  # no-op on 256x176
    square = _stand_in_output(photo)
    np.testing.assert_array_equal(pidm_resize(square[None])[0], cv2.resize(square.astype(np.float32), (176, 256)))
    assert np.abs(pidm_resize(square[None])[0] - photo).mean() > 0.5  # the squash there and back is not lossless
    # on 256x176 images PIDM's FID and LPIPS are GFLA's
    photos = np.stack([read_image(mini_fashion / "images" / n) for n in sorted(os.listdir(mini_fashion / "images"))[:3]])
    net = TinyFeatures().eval().requires_grad_(False)
    np.testing.assert_array_equal(FID.features("fid_pidm", net, photos), FID.features("fid_gfla", net, photos))
    from posetransfer.evaluation.lpips import lpips_distances
    from posetransfer.evaluation.protocols import lpips_pidm_distances

    lp = TinyLPIPS().eval().requires_grad_(False)
    np.testing.assert_array_equal(lpips_pidm_distances(lp, photos, photos[::-1]), lpips_distances(lp, photos, photos[::-1]))


@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated")  # the released sqrtm(..., disp=False)
def test_fid_pidm_and_lpips_pidm_equal_the_released_script(tmp_path, mini_fashion, monkeypatch):
    pairs = read_pairs(mini_fashion / "pairs.csv")[:70]  # LPIPS: one batch of 64, 6 pairs dropped
    images = sorted(os.listdir(mini_fashion / "images"))
    released, gt, real = tmp_path / "released", tmp_path / "gt", tmp_path / "real"
    for d in (released, gt, real):
        d.mkdir()
    for a, b in pairs:  # PIDM's folder: 256x256 outputs <from>_2_<to>_vis.png, ground truth deep<to>.png
        stem_a, stem_b = os.path.splitext(a)[0], os.path.splitext(b)[0]
        Image.fromarray(_stand_in_output(read_image(mini_fashion / "images" / a))).save(released / f"{stem_a}_2_{stem_b}_vis.png")
        if not (gt / f"deep{stem_b}.png").exists():
            os.symlink(mini_fashion / "images" / b, gt / f"deep{stem_b}.png")
    # the real set: 96 photos at 256x176 and 32 at 256x256 as JPEG (PIDM resizes each): 128, two whole batches
    for n in images[:96]:
        os.symlink(mini_fashion / "images" / n, real / n)
    for n in images[96:128]:
        Image.fromarray(_stand_in_output(read_image(mini_fashion / "images" / n))).save(real / f"{os.path.splitext(n)[0]}.jpg")

    net, lp = TinyFeatures().eval().requires_grad_(False), TinyLPIPS().eval().requires_grad_(False)
    gt_list, distorted_list = pidm_preprocess_path_for_deform_task(str(gt), str(released))
    assert len(gt_list) == 70
    want_lpips = float(pidm_lpips_calculate_from_disk(lambda x, y: lp(x, y)[:, None, None, None], distorted_list, gt_list, sort=False))
    # PIDM's FID globs the generated folder in the file system's order and drops the last incomplete
    # batch; ours reads the sorted names (which sort as PIDM's, test_evaluation_released_pidm.py): the
    # reference is run on the first 64 sorted files, the ones ours keeps
    first64 = tmp_path / "first64"
    first64.mkdir()
    for n in sorted(os.listdir(released))[:64]:
        os.symlink(released / n, first64 / n)
    forward = lambda batch: [net(batch)[:, :, None, None]]  # noqa: E731  PIDM's self.model(batch)[0]
    mu_r, s_r = pidm_fid_statistics_of_path(forward, str(real), dims=32)
    mu_g, s_g = pidm_fid_statistics_of_path(forward, str(first64), dims=32)
    want_fid = pidm_frechet_distance(mu_g, s_g, mu_r, s_r)

    ours = tmp_path / "ours"
    assert main(["evaluate", "import", str(released), "--layout", "pidm", "--pairs", str(mini_fashion / "pairs.csv"),
                 "--out", str(ours)]) == 0  # fmt: skip
    monkeypatch.setattr(FID, "load_network", lambda protocol, weights=None, download=True: net)
    monkeypatch.setattr(L, "load_lpips_alex", lambda *a, **k: lp)
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "report.html").write_text("an earlier run's")  # would mislead beside the new metrics
    values = run_evaluation(ours, mini_fashion, tmp_path / "report", metrics=["fid_pidm", "lpips_pidm"], fid_real=real, show=0)
    assert not (tmp_path / "report" / "report.html").exists()  # 256x256 outputs beside 256x176 targets: no page
    assert values["lpips_pidm"] == pytest.approx(want_lpips, rel=1e-6, abs=0)
    assert values["fid_pidm"] == pytest.approx(want_fid, rel=1e-6, abs=1e-9)
    assert values["fid_pidm_images"] == 64 and values["pairs"] == 70
    saved = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert saved["lpips_pidm"] == pytest.approx(values["lpips_pidm"], rel=1e-12)
    table = (tmp_path / "report" / "table.md").read_text()
    assert "FID (PIDM) ↓" in table and "LPIPS (PIDM) ↓" in table
    # the real statistics of `evaluate fid-stats --protocol fid_pidm` are the reference's too
    assert main(["evaluate", "fid-stats", str(real), "--protocol", "fid_pidm", "--out", str(tmp_path / "r.npz"),
                 "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    mu, sigma = FID.read_statistics(tmp_path / "r.npz", "fid_pidm")
    np.testing.assert_allclose(mu, mu_r, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(sigma, s_r, rtol=1e-6, atol=1e-9)
    # the metrics that compare the files as read refuse 256x256 outputs against 256x176 targets
    with pytest.raises(PosetransferError, match=r"cannot compute ssim_pidm: the generated images are 256x256, the targets 256x176.*--targets"):
        run_evaluation(ours, mini_fashion, tmp_path / "report2", metrics=["lpips_pidm", "ssim_pidm"], show=0)
    with pytest.raises(DataError, match=r"___.*\.png: wrong image size 256x256 \(height x width\), its target's is 256x176; only fid_pidm, lpips_pidm resize"):
        run_evaluation(ours, mini_fashion, tmp_path / "report3", metrics=["ssim_pidm"], show=0)


def test_pidm_ssims_are_not_resized(tmp_path, mini_fashion):
    """PIDM's SSIM and SSIM_256 (metrics.py lines 325-351) read both files as they are: on its 256x256
    outputs they need a 256x256 ground truth, given to ``evaluate`` with ``--targets``."""
    pairs = read_pairs(mini_fashion / "pairs.csv")[:4]
    released, gt, ours, targets = (tmp_path / d for d in ("released", "gt", "ours", "targets"))
    for d in (released, gt, ours, targets):
        d.mkdir()
    for a, b in pairs:
        stem_a, stem_b = os.path.splitext(a)[0], os.path.splitext(b)[0]
        gen = _stand_in_output(read_image(mini_fashion / "images" / a))
        tgt = _stand_in_output(read_image(mini_fashion / "images" / b))
        Image.fromarray(gen).save(released / f"{stem_a}_2_{stem_b}_vis.png")
        Image.fromarray(tgt).save(gt / f"deep{stem_b}.png")
        save_image(ours / f"{stem_a}___{stem_b}.png", gen)
        save_image(targets / f"{stem_a}___{stem_b}.png", tgt)
    gt_list, distorted_list = pidm_preprocess_path_for_deform_task(str(gt), str(released))
    want_ssim, want_ssim_256 = pidm_ssim_from_disk(distorted_list, gt_list)
    values = run_evaluation(ours, mini_fashion, tmp_path / "report", metrics=["ssim_gfla", "ssim_pidm"], targets_dir=targets, show=0)
    assert values["ssim_gfla"] == pytest.approx(np.mean(want_ssim), abs=1e-6)
    assert values["ssim_pidm"] == pytest.approx(np.mean(want_ssim_256), abs=1e-6)


def test_lpips_pidm_with_the_lpips_network_on_real_photos(tmp_path, mini_fashion):
    """The same comparison through the real LPIPS-Alex architecture (random weights, heads made
    non-negative as trained ones are), on 6 pairs of 256x256 outputs against 256x176 photos, one
    batch of 6 on both sides."""
    from posetransfer.evaluation.lpips import LPIPSAlex
    from posetransfer.evaluation.protocols import lpips_pidm_distances

    torch.manual_seed(0)
    model = LPIPSAlex()
    for i in range(5):
        w = getattr(model, f"lin{i}").model[1].weight
        w.data = w.data.abs()
    model = model.eval().requires_grad_(False)
    pairs = read_pairs(mini_fashion / "pairs.csv")[:6]
    gen = np.stack([_stand_in_output(read_image(mini_fashion / "images" / a)) for a, _ in pairs])
    tgt = np.stack([read_image(mini_fashion / "images" / b) for _, b in pairs])
    d = lpips_pidm_distances(model, gen, tgt)
    files_1 = []  # the reference reads files: the outputs as PNGs, the photos where they are
    for i, image in enumerate(gen):
        files_1.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(image).save(files_1[-1])
    want = pidm_lpips_calculate_from_disk(lambda x, y: model(x, y)[:, None, None, None], files_1,
                                          [str(mini_fashion / "images" / b) for _, b in pairs], sort=False)  # fmt: skip
    assert d.shape == (6,) and float(d.mean()) == pytest.approx(float(want), rel=1e-6)
    assert float(want) > 1e-3
