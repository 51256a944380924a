"""CUDA paths (skipped without a CUDA device; ``scripts/device_check.sh`` runs them: ``pytest -m cuda``).

The device data path, the fast training step (bf16 autocast, channels-last, fused Adam,
torch.compile with inductor) and the inference settings on the GPU, each against the CPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import default_collate

from posetransfer.bench.train import bench_train, synthetic_pair_batch
from posetransfer.data import device as dd
from posetransfer.data.datasets import PairDataset
from posetransfer.data.device_groups import GroupDeviceBatches
from posetransfer.data.groups import IdentityGroups
from posetransfer.data.transforms import Augment
from posetransfer.training.base import Trainer, train
from posetransfer.training.config import load_config
from posetransfer.utils.perf import inference_settings

pytestmark = pytest.mark.cuda

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "debug" / "tiny.yaml"
CUDA = torch.device("cuda", 0) if torch.cuda.is_available() else None


@pytest.fixture(scope="module")
def people(tmp_path_factory) -> Path:
    """Synthetic people at Market's size: the device machine has no ../shared/data beside the checkout."""
    from posetransfer.data.synth import synthesize

    root = tmp_path_factory.mktemp("people")
    synthesize(root, size=(128, 64), identities=6, views=4, seed=0, progress=False)
    return root / "train"


def test_device_batches_on_cuda_equal_the_cpu_ones_and_the_worker_path(people):
    ds = PairDataset(people, augment=Augment(flip=0.5, crop=(0.8, 1.0), rotation=10.0), seed=3)
    items = [[(1, i) for i in range(16)]]
    gpu = dd.DeviceBatches(ds, items, CUDA)
    assert gpu.bank.where == "device" and gpu.bank.images.is_cuda
    got = next(iter(gpu))
    cpu = next(iter(dd.DeviceBatches(ds, items, "cpu")))
    ds.set_epoch(1)
    want = default_collate([ds[i] for i in range(16)])
    for key in ("target_heatmaps", "target_coords", "target_keypoints", "source_keypoints"):
        torch.testing.assert_close(got[key].cpu(), cpu[key], atol=1e-4, rtol=0, msg=key)
        torch.testing.assert_close(got[key].cpu(), want[key], atol=1e-4, rtol=0, msg=key)
    for key in ("source_image", "target_image"):
        assert ((got[key].cpu() - want[key]).abs() * 127.5).mean() < 0.5
    assert torch.equal(got["target_mask"].cpu(), want["target_mask"])


def test_pinned_host_bank_when_the_device_is_too_small(people, monkeypatch):
    monkeypatch.setattr(dd, "DEVICE_FRACTION", 0.0)
    batches = dd.DeviceBatches(PairDataset(people), [[0, 1, 2]], CUDA)
    assert batches.bank.where == "pinned host" and batches.bank.images.is_pinned()
    assert next(iter(batches))["target_image"].is_cuda


def test_group_batches_on_cuda_equal_the_cpu_ones_and_the_worker_path(people):
    """The multi-view device path (data/device_groups.py) on the GPU: K padded, p~, warps."""
    ds = IdentityGroups(people, min_sources=1, max_sources=3, pad_to=5, augment=Augment(flip=0.5, crop=(0.8, 1.0), rotation=10.0),
                        seed=3)  # fmt: skip
    items = [[(1, i) for i in range(len(ds))]]
    gpu = GroupDeviceBatches(ds, items, CUDA)
    assert gpu.bank.where == "device" and gpu.bank.images.is_cuda
    got = next(iter(gpu))
    cpu = next(iter(GroupDeviceBatches(ds, items, "cpu")))
    ds.set_epoch(1)
    want = default_collate([ds[i] for i in range(len(ds))])
    assert set(got) == set(want)
    for key, value in want.items():
        if not torch.is_tensor(value):
            assert got[key] == value, key
            continue
        assert got[key].is_cuda and got[key].shape == value.shape and got[key].dtype == value.dtype, key
        if "image" in key:
            assert ((got[key].cpu() - value).abs() * 127.5).mean() < 0.5, key
            assert ((got[key].cpu() - cpu[key]).abs() * 127.5).max() <= 2, key
        else:  # keypoints, num_sources, the pose mask and the stick figures (drawn on the host)
            torch.testing.assert_close(got[key].cpu(), value, atol=1e-4, rtol=0, msg=key)
    torch.testing.assert_close(GroupDeviceBatches(ds, [], CUDA, stick="device").batch(items[0])["target_stick"].cpu(),
                               got["target_stick"].cpu(), atol=1.0, rtol=0)  # fmt: skip


def test_multiview_run_on_cuda_with_the_device_data_path(people, tmp_path):
    over = [f"data.train={people}", f"data.test={people}", "data.image_size=[128, 64]", "data.crop=null", "data.rotation=0.0",
            "train.device=cuda", "train.iterations=3", "train.log_every=1", "train.sample_every=100000",
            "train.eval_batches=0", "train.checkpoint_every=3"]  # fmt: skip
    config = REPO / "configs" / "debug" / "multiview_tiny.yaml"
    workers = train(config, tmp_path / "workers", overrides=over, progress=False)
    device = train(config, tmp_path / "device", overrides=[*over, "train.data_path=device"], progress=False)
    assert [s for s, _ in device.losses] == [1, 2, 3]
    # the same first batch and weights: the same first losses (cuDNN may reorder sums)
    for k, v in workers.losses[0][1].items():
        assert device.losses[0][1][k] == pytest.approx(v, rel=1e-3, abs=1e-5), k


@pytest.mark.parametrize("compile_", [False, True])
def test_fast_step_on_cuda_trains_like_cpu(compile_):
    over = ["model.g1.base_channels=8", "train.batch_size=8", "train.precision=bf16", "train.channels_last=true",
            "train.device=cuda", f"train.compile={str(compile_).lower()}"]  # fmt: skip
    t = Trainer(load_config(TINY, over), run_dir="unused", progress=False)
    t.prepare()
    assert t.g_opt.defaults.get("fused") is True
    batch = t.to_device(synthetic_pair_batch(8, (64, 32), radius=2))
    first = t.train_step(batch)["gen/pose_mask_l1"].item()
    for _ in range(20):
        last = t.train_step(batch)["gen/pose_mask_l1"].item()
    assert last < first  # it learns the batch
    cpu = Trainer(load_config(TINY, [*over[:-2], "train.device=cpu"]), run_dir="unused", progress=False)
    cpu.prepare()
    ref = cpu.train_step(cpu.to_device(synthetic_pair_batch(8, (64, 32), radius=2)))["gen/pose_mask_l1"].item()
    assert first == pytest.approx(ref, rel=0.05)  # same seed, same weights, bf16 on both


def test_bench_train_on_cuda_reports_mfu_and_memory():
    config = load_config(TINY, ["model.g1.base_channels=8", "train.batch_size=8", "train.device=cuda", "train.precision=bf16"])
    r = bench_train(config, steps=3, warmup=1, malloc=False, peak_tflops=100.0)
    assert r.peak_cuda_mb and r.peak_cuda_mb > 0 and r.settings["gpu"]
    assert r.mfu == pytest.approx(r.tflops / 100.0) and r.gflop_per_image > 0


def test_inference_settings_on_cuda():
    net = torch.nn.Conv2d(3, 3, 3).to(CUDA)
    with inference_settings(CUDA) as mode:
        assert mode == "bf16" and net(torch.randn(1, 3, 8, 8, device=CUDA)).dtype == torch.bfloat16
