"""``posetransfer bench train`` / ``bench precision`` and the run-time malloc tuning (utils/perf.py).

Smoke-sized: tiny networks (base 4) at 64x32 on one thread; speed goals live in the command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from posetransfer.cli import main
from posetransfer.errors import ConfigError
from posetransfer.bench import train as benchmark
from posetransfer.training.config import load_config
from posetransfer.utils import perf

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "debug" / "tiny.yaml"
SMALL = ["--set", "model.g1.base_channels=4", "--set", "train.batch_size=3"]




def _json_run(capsys, *argv: str) -> dict:
    assert main(["bench", "train", "--config", str(TINY), *SMALL, "--threads", "1", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# ---- bench train ---------------------------------------------------------------------------------


def test_bench_train_json_reports_speed_memory_and_settings(capsys):
    report = _json_run(capsys, "--steps", "2", "--warmup", "1", "--set", "train.precision=bf16")
    for key in ("images_per_s", "seconds_per_step", "peak_rss_mb", "settings", "loadavg", "step_seconds"):
        assert key in report
    assert report["task"] == "pg2_stage1" and report["image_size"] == [64, 32] and report["batch_size"] == 3
    assert report["steps"] == 2 and report["warmup"] == 1 and report["images"] == 6
    assert len(report["step_seconds"]) == 2
    assert report["images_per_s"] == pytest.approx(6 / sum(report["step_seconds"]), rel=1e-2)
    assert report["seconds_per_step"] == pytest.approx(sum(report["step_seconds"]) / 2, rel=1e-2)
    assert report["peak_rss_mb"] > 50  # the interpreter and torch alone take more
    assert report["peak_cuda_mb"] is None
    s = report["settings"]
    assert s["precision"] == "bf16" and s["channels_last"] is False and s["threads"] == 1
    assert s["device"] == "cpu" and s["torch"] == torch.__version__ and s["cpu"]
    assert len(report["loadavg"]) == 3
    assert set(report["losses"]) == {"gen/pose_mask_l1"}


def test_bench_train_counts_steps_and_images_and_trains_both_networks_of_a_gan():
    config = load_config(TINY, ["model.g1.base_channels=4", "train.batch_size=2", "task=pg2_g1_d",
                                "model.d={base_channels: 4, image_size: [64, 32], num_layers: 3}",
                                "train.channels_last=true"])  # fmt: skip
    result = benchmark.bench_train(config, steps=3, warmup=0, malloc=False)
    assert (result.steps, result.images, len(result.step_seconds)) == (3, 6, 3)
    assert result.images_per_s == pytest.approx(6 / result.seconds, rel=1e-2)
    # the discriminator step and the generator step both ran (eq. 2 and eq. 4 terms)
    assert {"dis/d_bce", "gen/g_bce", "gen/pose_mask_l1"} <= set(result.losses)
    assert all(torch.isfinite(torch.tensor(v)) for v in result.losses.values())
    assert result.settings["channels_last"] is True


def test_stage_two_benchmarks_with_a_random_g1(tmp_path, capsys):
    stage2 = {
        "description": "tiny stage II",
        "task": "pg2_stage2",
        "init_from": {"g1": str(tmp_path / "no-such-run")},
        "model": {"g2": {"base_channels": 4, "num_blocks": 2, "image_size": [64, 32]},
                  "d": {"base_channels": 4, "image_size": [64, 32], "num_layers": 3}},  # fmt: skip
        "loss": {"reconstruction": "pose_mask_l1"},
        "data": {"train": "data/none/train"},
        "train": {"batch_size": 2, "iterations": 10, "device": "cpu"},
    }
    path = tmp_path / "stage2.yaml"
    path.write_text(yaml.safe_dump(stage2))
    # without a stage-I checkpoint the recipe cannot load G1: a one-line error
    assert main(["bench", "train", "--config", str(path), "--steps", "1", "--warmup", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no-such-run" in err
    tiny = f"g1={TINY}"
    assert main(["bench", "train", "--config", str(path), "--steps", "1", "--warmup", "0", "--random-init", tiny,
                 "--set", "train.batch_size=2", "--json"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "pg2_stage2" and report["images"] == 2
    assert {"dis/d_bce", "gen/g_bce"} <= set(report["losses"])


def test_synthetic_batch_has_the_pair_dataset_shapes(mini_market):
    from posetransfer.data.datasets import PairDataset

    item = PairDataset(mini_market)[0]
    batch = benchmark.synthetic_pair_batch(2, (128, 64))
    assert set(batch) == set(item)
    for key, value in item.items():
        if torch.is_tensor(value):
            assert batch[key].shape == (2, *value.shape), key
            assert batch[key].dtype == value.dtype, key
    assert batch["source_image"].min() >= -1 and batch["source_image"].max() <= 1
    assert 0 < batch["target_mask"].mean() < 1 and set(batch["target_mask"].unique().tolist()) == {0.0, 1.0}
    assert batch["target_heatmaps"].amax(dim=(2, 3)).sum(dim=1).tolist() == [17.0, 17.0]  # 17 visible joints


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--set", "train.bogus=1"], "bogus"),
        (["--config", "/no/such/config.yaml"], "/no/such/config.yaml"),
        (["--random-init", "g1"], "NAME=CONFIG"),
        (["--random-init", f"g1={TINY}"], "init_from"),
    ],
)
def test_bad_input_is_one_line_error(capsys, argv, expected):
    config = [] if "--config" in argv else ["--config", str(TINY)]
    assert main(["bench", "train", *config, *argv, "--steps", "1", "--warmup", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("posetransfer bench: error:") and expected in err


def test_bad_counts_are_rejected_by_the_parser():
    for argv in (["--steps", "0"], ["--warmup", "-1"], ["--threads", "x"]):
        with pytest.raises(SystemExit):
            main(["bench", "train", "--config", str(TINY), *argv])


def test_baseline_runs_fp32_nchw_without_malloc_tuning(capsys):
    report = _json_run(capsys, "--steps", "1", "--warmup", "0", "--baseline",
                       "--set", "train.precision=bf16", "--set", "train.channels_last=true")  # fmt: skip
    s = report["settings"]
    assert s["precision"] == "fp32" and s["channels_last"] is False
    if perf.glibc_version() is not None:
        assert s["malloc_tuning"] == "disabled"
    assert report["images"] == 3


def test_compare_reports_both_runs_and_their_ratio(capsys):
    report = _json_run(capsys, "--steps", "1", "--warmup", "0", "--compare", "--set", "train.precision=bf16")
    assert report["baseline"]["settings"]["precision"] == "fp32" and report["settings"]["precision"] == "bf16"
    assert report["speedup"] == pytest.approx(report["images_per_s"] / report["baseline"]["images_per_s"])
    assert report["goal_speedup"] == 3.0


# ---- malloc tuning -------------------------------------------------------------------------------

_PROBE = """
import ctypes, json
from posetransfer.utils import perf
first = perf.tune_malloc()
second = perf.tune_malloc()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
address = libc.malloc(16 * 2**20)  # 16 MiB: glibc's default serves it with its own mmap
heap = [line for line in open("/proc/self/maps") if line.rstrip().endswith("[heap]")]
lo, hi = (int(v, 16) for v in heap[0].split()[0].split("-")) if heap else (0, 0)
print(json.dumps({"first": first, "second": second, "state": perf.malloc_tuning(), "in_heap": lo <= address < hi}))
"""


def _probe(**env: str) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in (*perf.MALLOC_ENV, perf.DISABLE_ENV)}
    out = subprocess.run([sys.executable, "-c", _PROBE], env={**base, **env}, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(perf.glibc_version() is None, reason="malloc tuning is glibc-only")
def test_tune_malloc_applies_once_and_moves_large_blocks_into_the_heap():
    tuned = _probe()
    assert tuned == {"first": True, "second": True, "state": "mallopt", "in_heap": True}
    plain = _probe(**{perf.DISABLE_ENV: "1"})
    assert plain == {"first": False, "second": False, "state": "disabled", "in_heap": False}
    # values the user exported are left to glibc (it read them at start-up), and count as tuned
    env = _probe(MALLOC_MMAP_THRESHOLD_="1000000000", MALLOC_TRIM_THRESHOLD_="1000000000")
    assert env == {"first": True, "second": True, "state": "environment", "in_heap": True}


def test_tune_malloc_is_off_without_glibc(monkeypatch):
    monkeypatch.setattr(perf, "_state", None)
    monkeypatch.setattr(perf, "glibc_version", lambda: None)
    assert perf.tune_malloc() is False and perf.malloc_tuning() == "unavailable"
    assert perf.tune_malloc() is False


# ---- bench precision -----------------------------------------------------------------------------


def test_compare_precision_trains_both_and_measures_the_gap(tmp_path):
    from posetransfer.data.synth import synthesize

    synthesize(tmp_path / "data", size=(64, 32), identities=4, views=3, seed=0, progress=False)
    overrides = ["model.g1.base_channels=4", "train.batch_size=2", "train.iterations=6", "train.log_every=1",
                 "train.sample_every=3", "train.eval_batches=1", "train.checkpoint_every=100",
                 f"data.train={tmp_path / 'data' / 'train'}", f"data.test={tmp_path / 'data' / 'test'}"]  # fmt: skip
    cmp = benchmark.compare_precision(TINY, tmp_path / "runs", overrides, window=4)
    assert [s for s, _ in cmp.train["fp32"]] == [1, 2, 3, 4, 5, 6] == [s for s, _ in cmp.train["bf16"]]
    assert [s for s, _ in cmp.held_out["fp32"]] == [0, 3, 6] == [s for s, _ in cmp.held_out["bf16"]]
    # step 1's loss comes from the same initial weights and batch: only rounding differs
    assert cmp.train["bf16"][0][1] == pytest.approx(cmp.train["fp32"][0][1], rel=0.05)
    fp32, bf16 = dict(cmp.train["fp32"]), dict(cmp.train["bf16"])
    gaps = [abs(bf16[s] - fp32[s]) / fp32[s] for s in (3, 4, 5, 6)]  # the last 4 steps
    assert cmp.max_rel_gap_train == pytest.approx(max(gaps))
    assert cmp.mean_rel_gap_train == pytest.approx(sum(gaps) / 4)
    held = {p: dict(v) for p, v in cmp.held_out.items()}
    assert cmp.max_rel_gap_held_out == pytest.approx(
        max(abs(held["bf16"][s] - held["fp32"][s]) / held["fp32"][s] for s in (3, 6))
    )
    with pytest.raises(ConfigError, match="no loss 'gen/l1'"):
        benchmark.compare_precision(TINY, tmp_path / "runs2", overrides, window=4, loss_name="l1")
