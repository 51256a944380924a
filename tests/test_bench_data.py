"""``posetransfer bench data``: both data paths timed on one config (smoke-sized; the figures
themselves live in docs/benchmarks.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posetransfer.bench.data import _indices, _photos, bench_data
from posetransfer.cli import main
from posetransfer.data.groups import IdentityGroups
from posetransfer.data.synth import synthesize
from posetransfer.training.config import load_config
from posetransfer.training.distributed import ResumableBatchSampler

REPO = Path(__file__).resolve().parents[1]
MULTIVIEW_TINY = REPO / "configs" / "debug" / "multiview_tiny.yaml"


@pytest.fixture(scope="module")
def people(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("people")
    synthesize(data, size=(64, 32), identities=7, views=4, seed=3, progress=False)
    return data


def test_bench_data_times_both_paths_of_the_multiview_task(people):
    config = load_config(MULTIVIEW_TINY, [f"data.train={people / 'train'}", f"data.test={people / 'test'}",
                                          "train.num_workers=0"])  # fmt: skip
    report = bench_data(config, batches=3)
    assert report["task"] == "multiview" and report["batch_size"] == 4 and report["device"] == "cpu"
    assert [r["path"] for r in report["results"]] == ["workers", "device"]
    ds = IdentityGroups(people / "train", min_sources=2, max_sources=5, pad_to=5, seed=0)
    batches = _indices(ResumableBatchSampler(len(ds), 4, seed=0), 4)[1:]  # the first is the start-up
    photos = 0
    for batch in batches:
        for i in batch:
            target, sources, other = ds.draw(i)
            photos += len(sources) + 1 + (other is not None)
    for r in report["results"]:
        assert r["batches"] == 3 and r["seconds"] > 0 and r["start_s"] > 0
        assert r["items_per_s"] == pytest.approx(4 * r["batches_per_s"])
        assert r["photos"] == photos and r["photos_per_s"] > r["items_per_s"]


def test_indices_run_past_an_epoch_and_count_pair_photos():
    sampler = ResumableBatchSampler(5, 2, seed=1)  # 2 batches per epoch
    got = _indices(sampler, 5)
    assert len(got) == 5 and all(len(b) == 2 for b in got)
    assert got[:2] != got[2:4]  # epoch 1 reshuffles
    assert _photos({"target_name": ["a", "b", "c"]}) == 6


def test_bench_data_command_prints_json(people, capsys):
    assert main(["bench", "data", "--config", str(MULTIVIEW_TINY), "--set", f"data.train={people / 'train'}",
                 "--set", f"data.test={people / 'test'}", "--set", "train.num_workers=0", "--batches", "1",
                 "--paths", "device", "--threads", "1", "--json"]) == 0  # fmt: skip
    r = json.loads(capsys.readouterr().out)
    assert [x["path"] for x in r["results"]] == ["device"] and len(r["loadavg"]) == 3
