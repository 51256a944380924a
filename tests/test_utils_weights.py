"""The one weights registry (posetransfer.utils.weights): every pretrained file the project uses
is registered with its published name and checksum, the lookup order, downloads and the one
error type. Nothing here reaches the network."""

from __future__ import annotations

import hashlib

import pytest
import torch

from posetransfer.errors import CheckpointError
from posetransfer.utils import weights as W
from _helpers import offline_weights


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    offline_weights(monkeypatch, tmp_path / "xdg")


def test_every_pretrained_file_is_registered_with_its_published_name():
    assert set(W.REGISTRY) == {"fid_inception", "inception_v3_google", "alexnet", "lpips_alex", "vgg19", "openpose_body"}
    for entry in W.REGISTRY.values():
        assert entry.url.endswith(entry.filename) or entry.name == "lpips_alex"
        if entry.sha256 is not None and len(entry.sha256) == 8:  # torch.hub convention: prefix in the name
            assert f"-{entry.sha256}." in entry.filename
    assert W.REGISTRY["inception_v3_google"].filename == "inception_v3_google-0cc3c7bd.pth"
    assert W.REGISTRY["openpose_body"].filename == "body_pose_model.pth"
    assert len(W.REGISTRY["lpips_alex"].sha256) == 64  # full digest of the lpips 0.1.4 wheel's file


def test_lookup_order_explicit_env_xdg_then_home(tmp_path, monkeypatch):
    name = W.REGISTRY["openpose_body"].filename
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert W.cache_dir() == tmp_path / "home" / ".cache" / "posetransfer"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert W.cache_dir() == tmp_path / "xdg" / "posetransfer"
    assert W.find_weights("openpose_body") is None
    (tmp_path / "xdg" / "posetransfer").mkdir(parents=True)
    (tmp_path / "xdg" / "posetransfer" / name).write_bytes(b"c")
    assert W.find_weights("openpose_body") == tmp_path / "xdg" / "posetransfer" / name
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / name).write_bytes(b"e")
    monkeypatch.setenv(W.ENV_DIR, str(tmp_path / "env"))
    assert W.find_weights("openpose_body") == tmp_path / "env" / name
    (tmp_path / "mine.pth").write_bytes(b"m")
    assert W.resolve_weights("openpose_body", tmp_path / "mine.pth") == tmp_path / "mine.pth"


def test_an_alias_name_of_the_same_file_is_found(tmp_path, monkeypatch):
    monkeypatch.setenv(W.ENV_DIR, str(tmp_path))
    (tmp_path / "inception_v3_google-1a9a5a14.pth").write_bytes(b"old torchvision name")
    assert W.find_weights("inception_v3_google") == tmp_path / "inception_v3_google-1a9a5a14.pth"


def test_one_error_type_names_file_and_where_to_put_it(tmp_path):
    with pytest.raises(W.WeightsError) as err:
        W.resolve_weights("openpose_body")
    msg = str(err.value)
    assert isinstance(err.value, CheckpointError)
    assert "body_pose_model.pth" in msg and W.REGISTRY["openpose_body"].url in msg
    assert str(tmp_path / "xdg" / "posetransfer" / "body_pose_model.pth") in msg
    assert W.ENV_DIR in msg and "--openpose-weights" in msg
    assert len(msg.splitlines()) == 1
    with pytest.raises(W.WeightsError, match="downloading is off"):
        W.resolve_weights("inception_v3_google", download=False)


def test_download_goes_to_the_weights_dir_when_set_and_is_checked(tmp_path, monkeypatch):
    monkeypatch.setenv(W.ENV_DIR, str(tmp_path / "env"))
    payload = b"lpips heads"
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda url, dst, progress=True: open(dst, "wb").write(payload))
    with pytest.raises(W.WeightsError, match="does not match the published df73285e35b2"):
        W.resolve_weights("lpips_alex")
    assert not any((tmp_path / "env").iterdir())
    entry = W.REGISTRY["lpips_alex"]
    monkeypatch.setitem(W.REGISTRY, "lpips_alex", W.WeightSpec(
        entry.name, entry.url, entry.filename, hashlib.sha256(payload).hexdigest(), entry.description, entry.option))  # fmt: skip
    assert W.resolve_weights("lpips_alex") == tmp_path / "env" / entry.filename
    # unchecked entries (no published checksum) are kept as downloaded
    assert W.resolve_weights("openpose_body").read_bytes() == payload


def test_load_state_dict_reads_safetensors_and_pth(tmp_path):
    from safetensors.torch import save_file

    state = {"a": torch.arange(3.0)}
    save_file(state, tmp_path / "w.safetensors")
    torch.save(state, tmp_path / "w.pth")
    for f in ("w.safetensors", "w.pth"):
        torch.testing.assert_close(W.load_state_dict("openpose_body", tmp_path / f)["a"], state["a"])
