"""Weights registry (offline error, local files, checksum) and the Inception / LPIPS networks'
state-dict keys and forward shapes. Nothing here downloads."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from posetransfer.evaluation import weights as W
from posetransfer.evaluation.inception import FEATURE_DIM, NUM_CLASSES, FIDInceptionV3, load_fid_inception
from posetransfer.evaluation.lpips import LPIPSAlex, load_lpips_alex, lpips_distances
from _helpers import offline_weights


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """An empty cache and no weights folder; any download attempt fails as it would offline."""
    offline_weights(monkeypatch, tmp_path / "cache")


def test_offline_error_names_file_url_and_where_to_put_it(tmp_path):
    with pytest.raises(W.WeightsError) as err:
        W.resolve_weights("fid_inception")
    msg = str(err.value)
    spec = W.REGISTRY["fid_inception"]
    assert spec.filename in msg and spec.url in msg
    assert str(tmp_path / "cache" / "posetransfer") in msg and W.ENV_DIR in msg and "--inception-weights" in msg
    assert not any((tmp_path / "cache" / "posetransfer").glob("*")), "nothing half-downloaded is left"


def test_no_download_mode_and_missing_explicit_path(tmp_path):
    with pytest.raises(W.WeightsError, match="not available offline"):
        W.resolve_weights("alexnet", download=False)
    with pytest.raises(W.WeightsError, match="does not exist"):
        W.resolve_weights("alexnet", tmp_path / "nope.pth")
    with pytest.raises(W.WeightsError, match="unknown weights"):
        W.resolve_weights("vgg")


def test_resolution_order_env_then_cache(tmp_path, monkeypatch):
    spec = W.REGISTRY["lpips_alex"]
    cached = W.cache_dir() / spec.filename
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert W.resolve_weights("lpips_alex") == cached
    env_dir = tmp_path / "w"
    env_dir.mkdir()
    (env_dir / spec.filename).write_bytes(b"y")
    monkeypatch.setenv(W.ENV_DIR, str(env_dir))
    assert W.resolve_weights("lpips_alex") == env_dir / spec.filename
    explicit = tmp_path / "mine.pth"
    explicit.write_bytes(b"z")
    assert W.resolve_weights("lpips_alex", explicit) == explicit


def test_downloaded_file_with_wrong_checksum_is_rejected(monkeypatch):
    def fake_download(url, dst, progress=True):
        with open(dst, "wb") as fh:
            fh.write(b"not the inception weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    with pytest.raises(W.WeightsError, match="SHA-256"):
        W.resolve_weights("fid_inception")
    assert not (W.cache_dir() / W.REGISTRY["fid_inception"].filename).exists()


def test_downloaded_file_with_right_checksum_is_kept(monkeypatch):
    payload = b"some bytes"
    spec = W.REGISTRY["fid_inception"]
    monkeypatch.setitem(
        W.REGISTRY, "fid_inception",
        W.WeightSpec(spec.name, spec.url, spec.filename, hashlib.sha256(payload).hexdigest()[:8], spec.description, spec.option),
    )  # fmt: skip
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda url, dst, progress=True: open(dst, "wb").write(payload))
    path = W.resolve_weights("fid_inception")
    assert path.read_bytes() == payload and path.parent == W.cache_dir()


def test_unreadable_weights_file(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    with pytest.raises(W.WeightsError, match="unreadable"):
        W.load_state_dict("fid_inception", bad)


def _random_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    state = {}
    for k, v in module.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue  # pytorch-fid's file has none
        if k.endswith("running_var"):
            state[k] = torch.rand(v.shape, generator=g) + 0.5
        else:
            state[k] = torch.randn(v.shape, generator=g) * 0.05
    return state


def test_inception_loads_pytorch_fid_keys_and_gives_pool3_and_logits(tmp_path):
    state = _random_state(FIDInceptionV3())
    # the keys of pytorch-fid's pt_inception-2015-12-05 file
    for key in ("Conv2d_1a_3x3.conv.weight", "Mixed_5b.branch5x5_1.bn.running_mean",
                "Mixed_7c.branch3x3dbl_3b.conv.weight", "fc.weight", "fc.bias"):  # fmt: skip
        assert key in state
    assert state["fc.weight"].shape == (NUM_CLASSES, FEATURE_DIM)
    path = tmp_path / "pt_inception.pth"
    torch.save(state, path)
    model = load_fid_inception(str(path))
    model.resize_input = False  # 75x75 is the smallest input; 299x299 is slow on CPU
    with torch.no_grad():
        pool3, logits = model(torch.rand(1, 3, 75, 75))
    assert pool3.shape == (1, FEATURE_DIM) and logits.shape == (1, NUM_CLASSES)
    # IS logits are pool3 @ W^T without the bias, as the original TF Inception Score code
    torch.testing.assert_close(logits, pool3 @ state["fc.weight"].t())

    bad = dict(state)
    del bad["Mixed_6a.branch3x3.conv.weight"]
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(W.WeightsError, match="missing"):
        load_fid_inception(str(tmp_path / "bad.pth"))


def test_lpips_loads_torchvision_and_lpips_keys(tmp_path):
    model = LPIPSAlex()
    state = _random_state(model)
    alex = {f"features.{k[len('features.'):]}": v for k, v in state.items() if k.startswith("features.")}
    assert set(alex) == {f"features.{i}.{p}" for i in (0, 3, 6, 8, 10) for p in ("weight", "bias")}
    heads = {k: v.abs() for k, v in state.items() if k.startswith("lin")}
    assert set(heads) == {f"lin{i}.model.1.weight" for i in range(5)}
    torch.save(alex, tmp_path / "alex.pth")
    torch.save(heads, tmp_path / "lin.pth")
    loaded = load_lpips_alex(str(tmp_path / "alex.pth"), str(tmp_path / "lin.pth"))
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    d = lpips_distances(loaded, a, b)
    assert d.shape == (2,) and (d > 0).all()
    np.testing.assert_allclose(lpips_distances(loaded, a, a), 0.0, atol=1e-7)

    torch.save({k: v for k, v in heads.items() if not k.startswith("lin4")}, tmp_path / "lin_bad.pth")
    with pytest.raises(W.WeightsError, match="lin4"):
        load_lpips_alex(str(tmp_path / "alex.pth"), str(tmp_path / "lin_bad.pth"))
