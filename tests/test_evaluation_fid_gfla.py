"""FID by protocol: torchvision's Inception v3 (fid_gfla) against the published layout and GFLA's
preprocessing and batching, the Fréchet distance against a hand computation, and the statistics
files of ``evaluate fid-stats``. Nothing here downloads; the networks carry random weights.

The expected layout is written from torchvision's source, github.com/pytorch/vision
``torchvision/models/inception.py`` (``Inception3.__init__``, ``InceptionA``..``InceptionE``,
``InceptionAux``, ``BasicConv2d``: conv without bias + BatchNorm2d); GFLA's preprocessing from
github.com/RenYurui/Global-Flow-Local-Attention ``script/inception.py`` ``InceptionV3.forward``
(resize to 299, ``x[:, c] * (std_c / 0.5) + (mean_c - 0.5) / 0.5``) and its batching from
``script/metrics.py`` ``FID.get_activations`` (``n_batches = d0 // batch_size``, batch 64).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from posetransfer.errors import DataError
from posetransfer.evaluation import fid as FID
from posetransfer.evaluation.inception_gfla import TorchvisionInceptionV3, gfla_features, load_gfla_inception, used_count
from posetransfer.evaluation.metrics import frechet_distance
from posetransfer.utils import weights as W


def _conv(name, cin, cout, kh, kw=None):
    return [(name, cin, cout, kh, kh if kw is None else kw)]


def _a(p, cin, pool):
    return (_conv(f"{p}.branch1x1", cin, 64, 1) + _conv(f"{p}.branch5x5_1", cin, 48, 1) + _conv(f"{p}.branch5x5_2", 48, 64, 5)
            + _conv(f"{p}.branch3x3dbl_1", cin, 64, 1) + _conv(f"{p}.branch3x3dbl_2", 64, 96, 3)
            + _conv(f"{p}.branch3x3dbl_3", 96, 96, 3) + _conv(f"{p}.branch_pool", cin, pool, 1))  # fmt: skip


def _c(p, c7):
    return (_conv(f"{p}.branch1x1", 768, 192, 1) + _conv(f"{p}.branch7x7_1", 768, c7, 1)
            + _conv(f"{p}.branch7x7_2", c7, c7, 1, 7) + _conv(f"{p}.branch7x7_3", c7, 192, 7, 1)
            + _conv(f"{p}.branch7x7dbl_1", 768, c7, 1) + _conv(f"{p}.branch7x7dbl_2", c7, c7, 7, 1)
            + _conv(f"{p}.branch7x7dbl_3", c7, c7, 1, 7) + _conv(f"{p}.branch7x7dbl_4", c7, c7, 7, 1)
            + _conv(f"{p}.branch7x7dbl_5", c7, 192, 1, 7) + _conv(f"{p}.branch_pool", 768, 192, 1))  # fmt: skip


def _e(p, cin):
    return (_conv(f"{p}.branch1x1", cin, 320, 1) + _conv(f"{p}.branch3x3_1", cin, 384, 1)
            + _conv(f"{p}.branch3x3_2a", 384, 384, 1, 3) + _conv(f"{p}.branch3x3_2b", 384, 384, 3, 1)
            + _conv(f"{p}.branch3x3dbl_1", cin, 448, 1) + _conv(f"{p}.branch3x3dbl_2", 448, 384, 3)
            + _conv(f"{p}.branch3x3dbl_3a", 384, 384, 1, 3) + _conv(f"{p}.branch3x3dbl_3b", 384, 384, 3, 1)
            + _conv(f"{p}.branch_pool", cin, 192, 1))  # fmt: skip


TORCHVISION_CONVS = (
    _conv("Conv2d_1a_3x3", 3, 32, 3) + _conv("Conv2d_2a_3x3", 32, 32, 3) + _conv("Conv2d_2b_3x3", 32, 64, 3)
    + _conv("Conv2d_3b_1x1", 64, 80, 1) + _conv("Conv2d_4a_3x3", 80, 192, 3)
    + _a("Mixed_5b", 192, 32) + _a("Mixed_5c", 256, 64) + _a("Mixed_5d", 288, 64)
    + _conv("Mixed_6a.branch3x3", 288, 384, 3) + _conv("Mixed_6a.branch3x3dbl_1", 288, 64, 1)
    + _conv("Mixed_6a.branch3x3dbl_2", 64, 96, 3) + _conv("Mixed_6a.branch3x3dbl_3", 96, 96, 3)
    + _c("Mixed_6b", 128) + _c("Mixed_6c", 160) + _c("Mixed_6d", 160) + _c("Mixed_6e", 192)
    + _conv("AuxLogits.conv0", 768, 128, 1) + _conv("AuxLogits.conv1", 128, 768, 5)
    + _conv("Mixed_7a.branch3x3_1", 768, 192, 1) + _conv("Mixed_7a.branch3x3_2", 192, 320, 3)
    + _conv("Mixed_7a.branch7x7x3_1", 768, 192, 1) + _conv("Mixed_7a.branch7x7x3_2", 192, 192, 1, 7)
    + _conv("Mixed_7a.branch7x7x3_3", 192, 192, 7, 1) + _conv("Mixed_7a.branch7x7x3_4", 192, 192, 3)
    + _e("Mixed_7b", 1280) + _e("Mixed_7c", 2048)
)  # fmt: skip


def torchvision_layout() -> dict[str, tuple[int, ...]]:
    """Every key and shape of torchvision's ``inception_v3(aux_logits=True)`` state dict."""
    out: dict[str, tuple[int, ...]] = {}
    for name, cin, cout, kh, kw in TORCHVISION_CONVS:
        out[f"{name}.conv.weight"] = (cout, cin, kh, kw)
        for p in ("weight", "bias", "running_mean", "running_var"):
            out[f"{name}.bn.{p}"] = (cout,)
        out[f"{name}.bn.num_batches_tracked"] = ()
    out.update({"AuxLogits.fc.weight": (1000, 768), "AuxLogits.fc.bias": (1000,), "fc.weight": (1000, 2048), "fc.bias": (1000,)})
    return out


def _random_state(model) -> dict[str, torch.Tensor]:
    """Distinct constant tensors (cheap: 27 M parameters), without num_batches_tracked as the 2018 file."""
    state = {}
    for i, (k, v) in enumerate(model.state_dict().items()):
        if not k.endswith("num_batches_tracked"):
            state[k] = torch.full(v.shape, 1.0 if k.endswith("running_var") else 0.001 * (i % 17 + 1))
    return state


@pytest.fixture(scope="module")
def model():
    return TorchvisionInceptionV3().eval()


def test_parameter_names_and_shapes_are_torchvisions(model):
    mine = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = torchvision_layout()
    assert sorted(set(mine) ^ set(expected)) == []
    assert {k: s for k, s in mine.items() if expected[k] != s} == {}
    # 5 stem + 3 x 7 (A) + 4 (B) + 4 x 10 (C) + 2 (aux) + 6 (D) + 2 x 9 (E) = 96 BasicConv2d, 6 keys each
    assert len(TORCHVISION_CONVS) == 96 and len(expected) == 96 * 6 + 4


def test_loads_the_published_layout_and_rejects_another(tmp_path, model, monkeypatch):
    import posetransfer.evaluation.inception_gfla as G

    state = _random_state(model)
    monkeypatch.setenv(W.ENV_DIR, str(tmp_path))
    torch.save(state, tmp_path / "inception_v3_google-1a9a5a14.pth")  # the older torchvision's name
    loaded = load_gfla_inception(download=False)
    torch.testing.assert_close(loaded.Mixed_7c.branch_pool.conv.weight, state["Mixed_7c.branch_pool.conv.weight"])
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    del state["AuxLogits.fc.bias"]
    monkeypatch.setattr(G, "load_state_dict", lambda *a, **k: state)
    with pytest.raises(W.WeightsError, match="missing.*AuxLogits.fc.bias"):
        load_gfla_inception()


def test_preprocessing_is_gflas_resize_then_transform_input_arithmetic(model):
    seen = {}

    class Stop(Exception):
        pass

    def grab(module, args):
        seen["x"] = args[0].clone()
        raise Stop

    handle = model.Conv2d_1a_3x3.register_forward_pre_hook(grab)
    x = torch.rand(2, 3, 128, 64)
    try:
        with pytest.raises(Stop):
            model(x)
    finally:
        handle.remove()
    # GFLA script/inception.py: F.upsample(x, size=(299, 299), mode='bilinear'), then per channel
    ref = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False).clone()
    ref[:, 0] = ref[:, 0] * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
    ref[:, 1] = ref[:, 1] * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
    ref[:, 2] = ref[:, 2] * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
    torch.testing.assert_close(seen["x"], ref, rtol=0, atol=1e-6)


def test_features_and_batching_drop_the_last_incomplete_batch():
    small = TorchvisionInceptionV3(resize_input=False).eval()  # 75x75 is the smallest input
    images = np.random.default_rng(0).integers(0, 256, (3, 75, 75, 3), dtype=np.uint8)
    f = gfla_features(small, images, batch_size=2)
    assert f.shape == (2, 2048) and f.dtype == np.float64  # 3 images, batches of 2: one batch used
    np.testing.assert_allclose(f, gfla_features(small, images[:2], batch_size=2), rtol=1e-5, atol=1e-6)
    assert gfla_features(small, images, batch_size=2, drop_remainder=False).shape == (3, 2048)  # CFLD keeps all
    assert [used_count(n) for n in (1, 50, 64, 65, 130, 12000)] == [1, 50, 64, 64, 128, 11968]


def test_frechet_distance_by_hand():
    # ||(0,0) - (1,2)||^2 = 5; Tr(S1 + S2) = 10; sqrt(S1 S2) = sqrt(diag(4, 4)) = diag(2, 2): 5 + 10 - 8
    assert frechet_distance(np.zeros(2), np.diag([1.0, 4.0]), np.array([1.0, 2.0]), np.diag([4.0, 1.0])) == pytest.approx(7.0)
    # equal Gaussians are at distance 0; a pure shift adds its squared length
    s = np.array([[2.0, 0.5], [0.5, 1.0]])
    assert frechet_distance(np.ones(2), s, np.ones(2), s) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(np.zeros(2), s, np.array([3.0, 4.0]), s) == pytest.approx(25.0, abs=1e-9)


def test_statistics_files_carry_their_protocol(tmp_path):
    mu, sigma = np.arange(3.0), np.eye(3)
    FID.write_statistics(tmp_path / "s.npz", "fid_gfla", mu, sigma, 128)
    got_mu, got_sigma = FID.read_statistics(tmp_path / "s.npz", "fid_gfla")
    np.testing.assert_array_equal(got_mu, mu) and np.testing.assert_array_equal(got_sigma, sigma)
    with np.load(tmp_path / "s.npz") as z:
        assert int(z["n"]) == 128 and str(z["protocol"]) == "fid_gfla"
    with pytest.raises(DataError, match="holds fid_gfla statistics, not fid"):
        FID.read_statistics(tmp_path / "s.npz", "fid")
    with pytest.raises(DataError, match="already exists"):
        FID.write_statistics(tmp_path / "s.npz", "fid", mu, sigma, 2)
    np.savez(tmp_path / "pytorch_fid.npz", mu=mu, sigma=sigma)  # pytorch-fid's own format
    assert FID.read_statistics(tmp_path / "pytorch_fid.npz", "fid")[0].shape == (3,)
    with pytest.raises(DataError, match="no protocol field"):
        FID.read_statistics(tmp_path / "pytorch_fid.npz", "fid_gfla")


class _MeanColour(torch.nn.Module):
    """A stand-in 'Inception': the mean colour of each image (3 features, a fast sqrtm)."""

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))
        self.seen = []

    def forward(self, x):
        self.seen.append(x.shape[0])
        return x.mean(dim=(2, 3)).double()


def test_fid_stats_command_and_the_training_split_default(tmp_path, monkeypatch, capsys):
    from posetransfer.cli import main
    from posetransfer.utils.io import save_image

    rng = np.random.default_rng(1)
    for split, n in (("train", 70), ("test", 3)):
        (tmp_path / "data" / split / "images").mkdir(parents=True)
        (tmp_path / "data" / split / "annotation.csv").write_text("name:keypoints_y:keypoints_x\n")
        for i in range(n):
            save_image(tmp_path / "data" / split / "images" / f"{i:03d}.png", rng.integers(0, 256, (16, 8, 3), dtype=np.uint8))
    assert FID.default_real_folder(tmp_path / "data", "test") == tmp_path / "data" / "train" / "images"
    fake = _MeanColour()
    monkeypatch.setattr(FID, "load_network", lambda protocol, weights=None, download=True: fake)
    out = tmp_path / "stats.npz"
    assert main(["evaluate", "fid-stats", str(tmp_path / "data" / "train" / "images"), "--protocol", "fid_gfla",
                 "--out", str(out), "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    with np.load(out) as z:
        assert int(z["n"]) == 64 and str(z["protocol"]) == "fid_gfla"  # 70 images: one batch of 64 used
    assert main(["evaluate", "fid-stats", str(tmp_path / "data" / "train" / "images"), "--protocol", "fid_cfld",
                 "--out", str(tmp_path / "cfld.npz"), "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    with np.load(tmp_path / "cfld.npz") as z:
        assert int(z["n"]) == 70 and str(z["protocol"]) == "fid_cfld"  # CFLD keeps every image
    assert main(["evaluate", "fid-stats", str(tmp_path / "data" / "train" / "images"), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
