"""``posetransfer weights list|fetch|add``: the registry shown and filled from the command line.
Nothing here reaches the network: downloads are replaced by a local copy or by an offline error."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
import torch

from posetransfer.cli import main
from posetransfer.utils import weights as W
from _helpers import offline_weights


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    offline_weights(monkeypatch, tmp_path / "xdg", tmp_path / "weights")


def _state_file(path, value: float = 1.0):
    torch.save({"conv.weight": torch.full((2, 3), value)}, path)
    return path


def _pin(monkeypatch, name: str, digest: str | None):
    """Give a registry entry another published digest (a real one cannot be matched offline)."""
    monkeypatch.setitem(W.REGISTRY, name, dataclasses.replace(W.REGISTRY[name], sha256=digest))


def _listing(capsys, *extra) -> tuple[int, dict]:
    code = main(["weights", "list", "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_list_says_where_each_file_is_looked_for(tmp_path, capsys):
    code, out = _listing(capsys, "--verify")
    assert code == 0
    assert out["searched"] == [str(tmp_path / "weights"), str(tmp_path / "xdg" / "posetransfer")]
    assert [r["name"] for r in out["weights"]] == list(W.REGISTRY)
    assert all(r["path"] is None and r["check"] == "not found" for r in out["weights"])
    main(["weights", "list"])
    table = capsys.readouterr().out
    assert "missing: https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in table


def test_add_installs_a_checked_copy_and_list_then_finds_it(tmp_path, capsys):
    src = _state_file(tmp_path / "downloaded.pth")
    assert main(["weights", "add", "openpose_body", str(src)]) == 0  # no published checksum: read as a state dict
    installed = tmp_path / "weights" / "body_pose_model.pth"
    assert installed.read_bytes() == src.read_bytes()
    assert W.find_weights("openpose_body") == installed
    assert "installed" in capsys.readouterr().out
    code, out = _listing(capsys, "--verify")
    row = next(r for r in out["weights"] if r["name"] == "openpose_body")
    assert code == 0 and row["path"] == str(installed) and row["check"] == "no published checksum"
    assert row["bytes"] == installed.stat().st_size


def test_add_refuses_a_wrong_checksum_an_unreadable_file_and_an_overwrite(tmp_path, monkeypatch, capsys):
    src = _state_file(tmp_path / "alexnet.pth")
    target = tmp_path / "weights" / W.REGISTRY["alexnet"].filename
    assert main(["weights", "add", "alexnet", str(src)]) == 2  # its digest is not 7be5be79...
    err = capsys.readouterr().err
    assert "does not match the published 7be5be79" in err and err.count("\n") == 1 and not target.exists()
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    assert main(["weights", "add", "openpose_body", str(junk)]) == 2
    assert "unreadable" in capsys.readouterr().err
    assert not (tmp_path / "weights" / "body_pose_model.pth").exists()

    _pin(monkeypatch, "alexnet", hashlib.sha256(src.read_bytes()).hexdigest()[:8])
    assert main(["weights", "add", "alexnet", str(src)]) == 0
    other = _state_file(tmp_path / "other.pth", 2.0)
    _pin(monkeypatch, "alexnet", None)
    assert main(["weights", "add", "alexnet", str(other)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert target.read_bytes() == src.read_bytes()  # untouched
    assert main(["weights", "add", "alexnet", str(other), "--overwrite"]) == 0
    assert target.read_bytes() == other.read_bytes()
    assert not list(target.parent.glob("*.partial"))


def test_verify_flags_a_corrupt_file(tmp_path, monkeypatch, capsys):
    (tmp_path / "weights").mkdir()
    bad = _state_file(tmp_path / "weights" / W.REGISTRY["vgg19"].filename)
    _pin(monkeypatch, "vgg19", "0" * 8)
    code, out = _listing(capsys, "--verify")
    assert code == 1 and next(r for r in out["weights"] if r["name"] == "vgg19")["check"] == "mismatch"
    _pin(monkeypatch, "vgg19", hashlib.sha256(bad.read_bytes()).hexdigest())
    code, out = _listing(capsys, "--verify")
    assert code == 0 and next(r for r in out["weights"] if r["name"] == "vgg19")["check"] == "ok"


def test_fetch_downloads_checks_and_skips_what_is_there(tmp_path, monkeypatch, capsys):
    payload = tmp_path / "served.pth"
    _state_file(payload)
    _pin(monkeypatch, "lpips_alex", hashlib.sha256(payload.read_bytes()).hexdigest())
    calls = []

    def serve(url, dst, progress=True):
        calls.append(url)
        open(dst, "wb").write(payload.read_bytes())

    monkeypatch.setattr(torch.hub, "download_url_to_file", serve)
    assert main(["weights", "fetch", "lpips_alex"]) == 0
    assert (tmp_path / "weights" / "lpips_v0.1_alex.pth").read_bytes() == payload.read_bytes()
    assert main(["weights", "fetch", "lpips_alex"]) == 0
    assert len(calls) == 1 and "already here" in capsys.readouterr().out


def test_fetch_offline_and_bad_names_are_one_line(capsys):
    assert main(["weights", "fetch", "alexnet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "weights add alexnet FILE" in err and "could not be downloaded" in err
    assert main(["weights", "fetch", "nope", "alexnet"]) == 2  # checked before any download
    assert "unknown weights 'nope'" in capsys.readouterr().err
    assert main(["weights", "fetch"]) == 2
