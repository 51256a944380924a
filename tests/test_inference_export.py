"""``posetransfer export`` and the loader's checkpoint references: run, step and exported folders,
and Hugging Face Hub repo ids through a fake, local Hub cache (there is no network here)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from posetransfer.cli import main
from posetransfer.errors import CheckpointError, DataError
from posetransfer.inference import Pipeline, export_model, load_generator, loader
from posetransfer.training.checkpoint import latest_checkpoint, save_checkpoint
from posetransfer.training.config import config_from_dict, dump_config

SIZE = (32, 16)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    from posetransfer.models.pg2 import G1

    kwargs = {"base_channels": 4, "num_blocks": 2, "image_size": list(SIZE), "z_dim": 8, "pose_embedding": "concat"}
    config = config_from_dict({
        "task": "pg2_stage1", "description": "tiny G1 for the export test", "model": {"g1": kwargs},
        "data": {"train": "unused/train", "radius": 2}, "train": {"batch_size": 1, "iterations": 1},
    })  # fmt: skip
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("run")
    save_checkpoint(root, 3, {"g1": G1(**kwargs)}, {"g1": kwargs}, {"g1"}, dump_config(config), {"step": 3}, "pg2_stage1")
    (root / "metrics.json").write_text(json.dumps({"pairs": 4, "methods": {"G1": {"ssim_pg2": 0.5}}}))
    return root


def _image(pipe: Pipeline) -> np.ndarray:
    photo = np.random.default_rng(0).integers(0, 255, (*SIZE, 3), dtype=np.uint8)
    return pipe(photo, "walking")


def test_export_is_self_contained_and_loads_like_the_run(run, tmp_path):
    out = tmp_path / "shared"
    summary = export_model(run, out)
    files = sorted(p.name for p in out.iterdir())
    assert files == ["README.md", "config.json", "config.yaml", "g1.safetensors", "metrics.json", "model.json"]
    assert summary["step"] == 3 and summary["metrics"] == str(run / "metrics.json")
    card = (out / "README.md").read_text()
    assert "pg2_stage1" in card and "32x16" in card and "| methods.G1.ssim_pg2 | 0.5 |" in card
    assert json.loads((out / "metrics.json").read_text())["pairs"] == 4
    # the exported folder, the run folder and the step folder are the same model
    exported = _image(Pipeline.from_checkpoint(out, device="cpu"))
    np.testing.assert_array_equal(exported, _image(Pipeline.from_checkpoint(run, device="cpu")))
    np.testing.assert_array_equal(exported, _image(Pipeline.from_checkpoint(latest_checkpoint(run), device="cpu")))
    assert load_generator(out).step == 3


def test_the_model_card_shows_the_published_row_beside_ours(run, tmp_path):
    metrics = tmp_path / "m.json"  # as evaluate / reproduce write it for a table-row recipe
    metrics.write_text(json.dumps({
        "ssim_pg2": 0.3, "mask_ssim_pg2": 0.8, "pairs": 12,
        "paper": {"title": "Pose Guided Person Image Generation", "table": "Table 1", "row": "G1-poseMaskLoss",
                  "dataset": "Market-1501", "note": "a note", "metrics": {"ssim_pg2": 0.34, "is": 3.326},
                  "difference": {"ssim_pg2": -0.04}, "not_computed": ["is"]},
        "generated": {"checkpoint": "/x", "step": 3, "finished": True},
    }))  # fmt: skip
    export_model(run, tmp_path / "out", metrics=metrics)
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| metric | ours | published |" in card
    assert "| ssim_pg2 | 0.3 | 0.34 |" in card and "| is | - | 3.326 |" in card and "| mask_ssim_pg2 | 0.8 | - |" in card
    assert "row G1-poseMaskLoss" in card and "Note: a note" in card
    assert "generated" not in card and "difference" not in card


def test_export_refuses_to_overwrite_and_names_bad_metrics(run, tmp_path, capsys):
    out = tmp_path / "shared"
    assert main(["export", str(run), "--out", str(out)]) == 0
    assert "exported step 3" in capsys.readouterr().out
    (out / "extra.txt").write_text("keep?")
    assert main(["export", str(run), "--out", str(out)]) == 2
    assert "exists (use --overwrite" in capsys.readouterr().err and (out / "extra.txt").exists()
    assert main(["export", str(run), "--out", str(out), "--overwrite"]) == 0
    assert not (out / "extra.txt").exists() and (out / "g1.safetensors").is_file()
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    with pytest.raises(DataError, match="bad.json: unreadable metrics file"):
        export_model(run, tmp_path / "other", metrics=bad)
    assert not (tmp_path / "other").exists()
    with pytest.raises(CheckpointError, match="checkpoint does not exist"):
        export_model(tmp_path / "no-run", tmp_path / "x")


class FakeHub:
    """``snapshot_download`` over a local cache: ``repos`` is the "remote", ``cache`` the Hub cache."""

    def __init__(self, root: Path):
        self.repos: dict[str, Path] = {}
        self.cache = root / "hub-cache"
        self.online = True
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, repo_id: str, revision: str | None, local_files_only: bool) -> str:
        self.calls.append((repo_id, local_files_only))
        cached = self.cache / repo_id.replace("/", "--") / (revision or "main")
        if cached.is_dir():
            return str(cached)
        if local_files_only:
            raise FileNotFoundError("not in the cache")
        if not self.online:
            raise ConnectionError("no network")
        if repo_id not in self.repos:
            raise LookupError(f"404: repository {repo_id} not found")
        shutil.copytree(self.repos[repo_id], cached)
        return str(cached)


def test_hub_repo_id_is_downloaded_once_then_works_offline(run, tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")  # the hub extra
    hub = FakeHub(tmp_path)
    monkeypatch.setattr(loader, "_snapshot_download", hub)
    monkeypatch.chdir(tmp_path)  # "someone/tiny-g1" must not be a local folder
    export_model(run, tmp_path / "upload")
    hub.repos["someone/tiny-g1"] = tmp_path / "upload"
    first = _image(Pipeline.from_checkpoint("someone/tiny-g1", device="cpu"))
    assert hub.calls == [("someone/tiny-g1", True), ("someone/tiny-g1", False)]
    hub.online = False
    hub.calls.clear()
    np.testing.assert_array_equal(_image(Pipeline.from_checkpoint("someone/tiny-g1", device="cpu")), first)
    assert hub.calls == [("someone/tiny-g1", True)]  # served from the cache, no network
    with pytest.raises(CheckpointError, match=r"someone/other: checkpoint does not exist .*fetched: no network"):
        load_generator("someone/other")
    hub.online = True
    with pytest.raises(CheckpointError, match="someone/other@v1: .*404"):
        load_generator("someone/other@v1")


def test_hub_repo_id_from_the_real_hub_cache_layout_offline(run, tmp_path, monkeypatch):
    """The real ``snapshot_download`` reading a Hub cache (``models--owner--name/refs``,
    ``snapshots/<commit>``) laid out by hand: what an earlier download leaves, used without network."""
    constants = pytest.importorskip("huggingface_hub.constants")
    cache = tmp_path / "hub"
    repo = cache / "models--someone--tiny-g1"
    export_model(run, repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)

    def no_network(*args, **kwargs):
        raise AssertionError("the cached snapshot must be used without a download")

    real = loader._snapshot_download
    monkeypatch.setattr(loader, "_snapshot_download",
                        lambda repo_id, revision, local_files_only: real(repo_id, revision, True) if local_files_only else no_network())  # fmt: skip
    gen = load_generator("someone/tiny-g1")
    assert gen.checkpoint == repo / "snapshots" / "0123abcd" and gen.step == 3
    np.testing.assert_array_equal(_image(Pipeline.from_checkpoint("someone/tiny-g1", device="cpu")), _image(Pipeline.from_checkpoint(run, device="cpu")))
