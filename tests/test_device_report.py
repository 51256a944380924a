"""scripts/device_report.py: the device check's results.json as the Markdown of docs/benchmarks.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "device_report.py"


def _train(ips: float, device: str) -> dict:
    return {"description": "d", "batch_size": 16, "images_per_s": ips, "tflops": 400.0, "mfu": 0.5,
            "peak_cuda_mb": 1234.0, "settings": {"precision": "bf16", "compile": False, "device": device}}  # fmt: skip


def _run(tmp_path: Path, results: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    summary = tmp_path / "summary.txt"
    summary.write_text("[0s] start\ntorch 2.11.0+cu130 cuda 13.0 numpy 2.5.2 NVIDIA H200\n")
    return subprocess.run([sys.executable, str(SCRIPT), str(path), str(summary)], capture_output=True, text=True)


def test_goals_met_and_missed_on_the_gpu(tmp_path):
    infer = {"device": "cuda", "results": [
        {"model": "g1", "dataset": "deepfashion", "image_size": [256, 176], "batch": 64, "precision": "bf16", "ms_per_image": 1.25, "frames_per_s": 800.0},
        {"model": "g1", "dataset": "market", "image_size": [128, 64], "batch": 64, "precision": "bf16", "ms_per_image": 0.5, "frames_per_s": 2000.0},
    ]}  # fmt: skip
    out = _run(tmp_path, {"steps": {"train_market_g1": {"exit": 0, "seconds": 31}},
                          "benchmarks": {"train_market_g1": _train(1499.0, "cuda"), "train_deepfashion_g1": _train(300.0, "cuda"), "infer": infer}})  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = {ln.split("|")[1].strip().split(" ")[0]: ln for ln in out.stdout.splitlines() if ln.startswith("| train_")}
    assert "goal 1500: missed" in rows["train_market_g1"] and "1499.0" in rows["train_market_g1"]
    assert "goal 250: met" in rows["train_deepfashion_g1"] and "50.0 %" in rows["train_deepfashion_g1"]
    fashion = next(ln for ln in out.stdout.splitlines() if "| deepfashion | 256x176" in ln)
    market = next(ln for ln in out.stdout.splitlines() if "| market | 128x64" in ln)
    assert "goal 500: met" in fashion and "goal" not in market
    assert "NVIDIA H200" in out.stdout.splitlines()[0]
    assert "| train_market_g1 | 0 | 31 |" in out.stdout


def test_a_cpu_dry_run_is_not_held_against_the_goals(tmp_path):
    out = _run(tmp_path, {"steps": {}, "benchmarks": {"train_market_g1": _train(30.0, "cpu")}})
    assert out.returncode == 0 and "30.0" in out.stdout and "goal" not in out.stdout


def test_an_unreadable_results_file_is_one_line(tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text("{not json")
    out = subprocess.run([sys.executable, str(SCRIPT), str(bad)], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and str(bad) in out.stderr


def test_the_data_path_benchmarks_get_their_table(tmp_path):
    data = {"description": "mv", "device": "cuda:0", "batch_size": 8, "results": [
        {"path": "workers", "start_s": 1.5, "batches_per_s": 20.0, "items_per_s": 160.0, "photos_per_s": 700.0},
        {"path": "device", "start_s": 3.25, "batches_per_s": 200.0, "items_per_s": 1600.0, "photos_per_s": 7000.0}]}  # fmt: skip
    out = _run(tmp_path, {"steps": {"data_market_multiview": {"exit": 0, "seconds": 12}},
                          "benchmarks": {"data_market_multiview": data}})  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "| data_market_multiview (mv) | cuda:0 | 8 | workers | 1.50 | 20.0 | 160.0 | 700.0 |" in out.stdout
    assert "| data_market_multiview (mv) | cuda:0 | 8 | device | 3.25 | 200.0 | 1600.0 | 7000.0 |" in out.stdout
    # not mistaken for a training benchmark
    assert "images/s" in out.stdout and out.stdout.count("data_market_multiview (mv)") == 2
