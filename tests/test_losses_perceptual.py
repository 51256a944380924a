"""VGG19 perceptual loss (multiview eq. 1): weights lookup, torchvision key format, values, errors.

Never touches the internet: the weights are a random VGG19 state dict in torchvision's key format
saved under tmp_path, "downloads" come from file:// URLs, and the unreachable case is a refused
connection to localhost.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from posetransfer.errors import CheckpointError, ConfigError
from posetransfer.losses import perceptual as P
from posetransfer.losses.perceptual import VGG19_LAYER_INDEX, VGGPerceptualLoss, resolve_vgg19_weights

VGG19_CONVS = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]
# indices of the 16 convolutions in torchvision's vgg19().features
CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]


def random_vgg19_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """torchvision's vgg19() state dict keys and shapes for ``features``, random values, plus one
    classifier entry (which the loader must ignore)."""
    gen = torch.Generator().manual_seed(seed)
    state, c_in = {}, 3
    for idx, c_out in zip(CONV_INDICES, VGG19_CONVS):
        std = (2.0 / (9 * c_in)) ** 0.5  # He init keeps activations alive through 16 layers
        state[f"features.{idx}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=gen) * std
        state[f"features.{idx}.bias"] = torch.randn(c_out, generator=gen) * 0.01
        c_in = c_out
    state["classifier.6.bias"] = torch.zeros(1000)
    return state


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "vgg19-random.pth"
    torch.save(random_vgg19_state_dict(), path)
    return path


@pytest.fixture
def no_weights_anywhere(tmp_path, monkeypatch) -> Path:
    """An empty home and weights folder; proxies off so localhost stays local."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(P.WEIGHTS_ENV, str(tmp_path / "weights"))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "weights"


def test_layer_names_follow_torchvision_indices():
    assert [VGG19_LAYER_INDEX[f"relu{b}_1"] for b in range(1, 6)] == [1, 6, 11, 20, 29]
    assert [VGG19_LAYER_INDEX[f"conv{b}_1"] for b in range(1, 6)] == [0, 5, 10, 19, 28]
    assert VGG19_LAYER_INDEX["conv5_4"] == 34 and VGG19_LAYER_INDEX["pool5"] == 36
    assert sorted(VGG19_LAYER_INDEX[f"conv{b}_{c}"] for b, c in
                  [(1, 1), (1, 2), (2, 1), (2, 2)] + [(b, c) for b in (3, 4, 5) for c in (1, 2, 3, 4)]
                  ) == CONV_INDICES  # fmt: skip


def test_loads_torchvision_state_dict_and_is_frozen(vgg_file):
    loss_fn = VGGPerceptualLoss(weights_path=vgg_file)
    state = torch.load(vgg_file)
    torch.testing.assert_close(loss_fn.vgg.features[28].weight, state["features.28.weight"])
    assert len(loss_fn.vgg.features) == 30  # built up to relu5_1 only
    assert loss_fn.layer_weights == [1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0]  # pix2pixHD's
    assert all(not p.requires_grad for p in loss_fn.parameters())
    loss_fn.train()
    assert not loss_fn.vgg.training  # stays in eval mode

    torch.manual_seed(0)
    target = torch.rand(2, 3, 32, 32) * 2 - 1
    pred = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_()
    loss = loss_fn(pred, target)
    assert loss.dim() == 0 and loss.item() > 0
    loss.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss_fn.parameters())
    assert loss_fn(target, target).item() == 0


def test_value_matches_hand_computation(vgg_file):
    """conv1_1 alone, weight 2: 2 * mean|conv(norm(a)) - conv(norm(b))| with ImageNet norm."""
    loss_fn = VGGPerceptualLoss(layers=["conv1_1"], layer_weights=[2.0], weights_path=vgg_file)
    state = torch.load(vgg_file)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.manual_seed(1)
    a, b = torch.rand(1, 3, 8, 8) * 2 - 1, torch.rand(1, 3, 8, 8) * 2 - 1

    def phi(x):
        return F.conv2d(((x + 1) / 2 - mean) / std, state["features.0.weight"], state["features.0.bias"], padding=1)

    expected = 2.0 * (phi(a) - phi(b)).abs().mean()
    torch.testing.assert_close(loss_fn(a, b), expected, rtol=1e-5, atol=1e-6)

    # [0, 1] inputs give the same value on the same images
    loss01 = VGGPerceptualLoss(
        layers=["conv1_1"], layer_weights=[2.0], weights_path=vgg_file, input_range=(0.0, 1.0)
    )
    torch.testing.assert_close(loss01((a + 1) / 2, (b + 1) / 2), expected, rtol=1e-5, atol=1e-6)


def test_layer_weights_weigh_each_layer(vgg_file):
    torch.manual_seed(2)
    a, b = torch.rand(1, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    both = VGGPerceptualLoss(layers=["relu1_1", "relu2_1"], layer_weights=[1.0, 3.0], weights_path=vgg_file)
    one = VGGPerceptualLoss(layers=["relu1_1"], layer_weights=[1.0], weights_path=vgg_file)
    two = VGGPerceptualLoss(layers=["relu2_1"], layer_weights=[1.0], weights_path=vgg_file)
    torch.testing.assert_close(both(a, b), one(a, b) + 3.0 * two(a, b))
    with pytest.raises(ConfigError, match="2 VGG19 layers but 1 layer weights"):
        VGGPerceptualLoss(layers=["relu1_1", "relu2_1"], layer_weights=[1.0], weights_path=vgg_file)
    with pytest.raises(ConfigError, match="relu9_9"):
        VGGPerceptualLoss(layers=["relu9_9"], weights_path=vgg_file)


def test_bf16_autocast(vgg_file):
    loss_fn = VGGPerceptualLoss(layers=["relu1_1", "relu2_1"], layer_weights=[1, 1], weights_path=vgg_file)
    a, b = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = loss_fn(a, b)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, loss_fn(a, b), rtol=0.05, atol=1e-3)


def test_missing_explicit_path_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(CheckpointError, match=f"{missing}: VGG19 weights file does not exist"):
        VGGPerceptualLoss(weights_path=missing)


def test_no_weights_and_no_network_says_what_to_do(no_weights_anywhere):
    url = "http://127.0.0.1:9/models/vgg19-dcbb9e9d.pth"  # the discard port: connection refused
    with pytest.raises(CheckpointError) as err:
        VGGPerceptualLoss(url=url)
    msg = str(err.value)
    assert "vgg19-dcbb9e9d.pth" in msg and url in msg
    assert str(no_weights_anywhere / "vgg19-dcbb9e9d.pth") in msg  # where to put it
    assert P.WEIGHTS_ENV in msg and "weights_path" in msg
    assert not no_weights_anywhere.exists() or not any(no_weights_anywhere.iterdir())

    with pytest.raises(CheckpointError, match="downloading is off"):
        resolve_vgg19_weights(download=False)


def _served(tmp_path: Path, state: dict, good_hash: bool = True) -> str:
    """A weights file named in torchvision's ``name-<sha256[:8]>.pth`` style, as a file:// URL."""
    raw = tmp_path / "raw.pth"
    torch.save(state, raw)
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()[:8]
    if not good_hash:
        digest = format(int(digest, 16) ^ 1, "08x")
    served = tmp_path / "server" / f"vgg19-{digest}.pth"
    served.parent.mkdir()
    raw.rename(served)
    return served.as_uri()


def test_download_checks_hash_and_lands_in_weights_dir(no_weights_anywhere, tmp_path):
    state = random_vgg19_state_dict(seed=3)
    url = _served(tmp_path, state)
    loss_fn = VGGPerceptualLoss(layers=["relu1_1"], url=url)
    name = url.rsplit("/", 1)[-1]
    assert (no_weights_anywhere / name).is_file()
    torch.testing.assert_close(loss_fn.vgg.features[0].weight, state["features.0.weight"])
    # a second construction finds the file without downloading
    (tmp_path / "server" / name).unlink()
    assert resolve_vgg19_weights(url=url) == no_weights_anywhere / name


def test_download_with_wrong_hash_leaves_nothing(no_weights_anywhere, tmp_path):
    url = _served(tmp_path, random_vgg19_state_dict(seed=4), good_hash=False)
    with pytest.raises(CheckpointError, match="does not match"):
        VGGPerceptualLoss(layers=["relu1_1"], url=url)
    assert not no_weights_anywhere.exists() or not any(no_weights_anywhere.iterdir())


def test_lookup_order_env_dir_then_home_cache(tmp_path, monkeypatch, vgg_file):
    name = P._file_name(P.VGG19_URL)
    home_cache = tmp_path / "home" / ".cache" / "posetransfer"
    home_cache.mkdir(parents=True)
    (home_cache / name).write_bytes(vgg_file.read_bytes())
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(P.WEIGHTS_ENV, raising=False)
    assert resolve_vgg19_weights(download=False) == home_cache / name
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / name).write_bytes(vgg_file.read_bytes())
    monkeypatch.setenv(P.WEIGHTS_ENV, str(env_dir))
    assert resolve_vgg19_weights(download=False) == env_dir / name
    assert resolve_vgg19_weights(vgg_file, download=False) == vgg_file  # explicit path first


def test_bad_weights_files_are_clear_errors(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth: unreadable VGG19 weights"):
        VGGPerceptualLoss(layers=["relu1_1"], weights_path=junk)
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 5, 5), "features.0.bias": torch.zeros(64)}, wrong)
    with pytest.raises(CheckpointError, match=r"features.0.weight has shape \(64, 3, 5, 5\)"):
        VGGPerceptualLoss(layers=["relu1_1"], weights_path=wrong)
    partial = tmp_path / "partial.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, partial)
    with pytest.raises(CheckpointError, match="not a torchvision VGG19 state dict"):
        VGGPerceptualLoss(layers=["relu1_1"], weights_path=partial)
