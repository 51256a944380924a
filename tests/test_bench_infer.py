"""``posetransfer bench infer``, the FLOP counter and peaks (bench/peak.py), inference_settings.

Smoke-sized: networks at base width 4, one image per batch; speed figures live in the command.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from posetransfer.bench import infer, peak
from posetransfer.cli import main
from posetransfer.commands import bench as bench_cmd
from posetransfer.utils import perf

REPO = Path(__file__).resolve().parents[1]


def test_count_flops_of_a_convolution_is_two_multiply_adds_per_weight_use():
    conv = torch.nn.Conv2d(4, 6, 3, padding=1, bias=False)
    x = torch.randn(2, 4, 8, 5)
    assert peak.count_flops(lambda: conv(x)) == 2 * (2 * 8 * 5) * 6 * 4 * 9
    # forward + backward: the input and weight gradients are two more convolutions of the same size
    assert peak.count_flops(lambda: conv(x.requires_grad_()).sum().backward()) == 3 * 2 * (2 * 8 * 5) * 6 * 4 * 9


def test_device_peak_table_override_and_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 PCIe")
    cuda = torch.device("cuda", 0)
    assert peak.device_peak(cuda) == (756.5, "table (H100 PCIe)")  # the longest matching name wins
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    assert peak.device_peak(cuda)[0] == 989.4
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Mystery GPU")
    assert peak.device_peak(cuda)[0] is None and "--peak-tflops" in peak.device_peak(cuda)[1]
    assert peak.device_peak(cuda, 123.0) == (123.0, "--peak-tflops")
    assert peak.device_peak(torch.device("cpu"))[0] is None


def test_conv_peak_measures_a_positive_rate():
    r = peak.conv_peak("cpu", channels=8, size=(8, 8), batch=1, repeats=2, min_seconds=0.01)
    assert r["tflops"] > 0 and r["shape"] == [1, 8, 8, 8] and r["dtype"] == "bfloat16"


def test_bench_infer_reports_every_model_and_size(capsys):
    assert main(["bench", "infer", "--width", "4", "--batch", "1", "--repeats", "1", "--threads", "1",
                 "--models", "g1", "g1+g2", "multiview", "--datasets", "market", "--peak-seconds", "0.01", "--json"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in report["results"]] == ["g1", "g1+g2", "multiview"]
    assert report["peaks"]["bf16_conv"]["tflops"] > 0 and report["peaks"]["fp32_conv"]["tflops"] > 0
    for r in report["results"]:
        assert r["image_size"] == [128, 64] and r["batch"] == 1
        assert r["frames_per_s"] == pytest.approx(1000.0 / r["ms_per_image"])
        assert r["gflop_per_image"] > 0 and r["tflops"] > 0
        p = report["peaks"]
        assert p["bf16_conv_tflops"] == max(p["bf16_conv"]["tflops"], p["bf16_conv_after"]["tflops"])
        assert r["fraction_of_bf16_conv_peak"] == pytest.approx(r["tflops"] / p["bf16_conv_tflops"])
        assert r["fraction_of_conv_peak_in_its_precision"] == pytest.approx(r["tflops"] / p[f"{r['precision']}_conv_tflops"])
    g1, g12 = report["results"][0], report["results"][1]
    assert g12["gflop_per_image"] > g1["gflop_per_image"]  # G2 runs on top of G1
    assert tuple(bench_cmd.INFER_MODELS) == infer.MODELS and tuple(bench_cmd.INFER_DATASETS) == tuple(infer.SIZES)


def test_bench_model_compares_bf16_with_fp32():
    r = infer.bench_model("g1", "market", device=torch.device("cpu"), batch=1, repeats=1, precision="fp32",
                          check_bf16=True, width=4)  # fmt: skip
    d = r["bf16_vs_fp32"]
    assert r["precision"] == "fp32" and 0 < d["mean_abs"] <= d["max_abs"] < 0.5


def test_bench_infer_builds_the_deepfashion_size():
    task, nets = infer.build_model("g1+g2", "deepfashion", torch.device("cpu"), width=4)
    assert tuple(nets["g1"].image_size) == (256, 176) and tuple(nets["g2"].image_size) == (256, 176)
    assert tuple(task.input_spec().image_size) == (256, 176)  # the inputs follow the networks
    for model in ("g1", "g1+g2"):  # and a timed run at that size goes through (it once did not)
        r = infer.bench_model(model, "deepfashion", device=torch.device("cpu"), batch=1, repeats=1,
                              precision="fp32", width=4)  # fmt: skip
        assert r["image_size"] == [256, 176] and r["ms_per_image"] > 0
    task, nets = infer.build_model("multiview", "deepfashion", torch.device("cpu"), width=4)
    assert set(nets) == {"g"}  # no discriminators, no VGG at inference


def test_inference_settings_mode_precision_and_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    net = torch.nn.Conv2d(3, 3, 3)
    x = torch.randn(1, 3, 8, 8)
    with perf.inference_settings("cpu", "bf16", threads=1) as mode:
        assert mode == "bf16" and torch.is_inference_mode_enabled() and torch.get_num_threads() == 1
        assert net(x).dtype == torch.bfloat16
    assert torch.get_num_threads() == before and not torch.is_inference_mode_enabled()
    with perf.inference_settings("cpu", "fp32") as mode:
        assert mode == "fp32" and net(x).dtype == torch.float32
        assert torch.get_num_threads() == perf.usable_cpus()
    assert perf.resolve_precision("cuda", "auto") == "bf16"
    assert perf.resolve_precision("cpu", "auto") == ("bf16" if perf.cpu_has_bf16() else "fp32")
    with pytest.raises(ValueError):
        perf.resolve_precision("cpu", "fp16")


def test_bench_train_counts_flops_and_times_the_multiview_task(capsys):
    config = REPO / "configs" / "debug" / "multiview_tiny.yaml"
    assert main(["bench", "train", "--config", str(config), "--steps", "1", "--warmup", "0", "--threads", "1",
                 "--json"]) == 0  # fmt: skip
    r = json.loads(capsys.readouterr().out)
    assert r["task"] == "multiview" and r["gflop_per_image"] > 0
    assert r["tflops"] == pytest.approx(r["gflop_per_image"] * r["images_per_s"] / 1e3, rel=1e-3)
    assert r["mfu"] is None and r["conv_peak_tflops"] > 0  # CPU: the fraction of the measured conv peak
    assert r["fraction_of_conv_peak"] == pytest.approx(r["tflops"] / r["conv_peak_tflops"])
    own = r["conv_peak_own_precision_tflops"]
    assert own > 0 and r["fraction_of_conv_peak_own_precision"] == pytest.approx(r["tflops"] / own)
    assert "gen/l1" in r["losses"] and any(k.startswith("dis/") for k in r["losses"])  # G and D steps ran
