"""The fast-step options of the trainer on CPU: grad accumulation, torch.compile wiring, the
device-side data path inside a real run, Trainer.prepare (what bench train uses)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from posetransfer.bench.train import synthetic_pair_batch
from posetransfer.data.synth import synthesize
from posetransfer.errors import ConfigError
from posetransfer.training.base import Trainer, train
from posetransfer.training.config import load_config

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "debug" / "tiny.yaml"
SMALL = ["model.g1.base_channels=4", "train.batch_size=4"]


def _trainer(overrides: list[str]) -> Trainer:
    t = Trainer(load_config(TINY, [*SMALL, *overrides]), run_dir="unused", progress=False)
    t.prepare()
    return t


def _params(t: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in t.nets["g1"].state_dict().items()}


def test_grad_accum_gives_the_full_batch_step():
    batch = synthetic_pair_batch(4, (64, 32), radius=2)
    one, two = _trainer([]), _trainer(["train.grad_accum=2"])
    l1, l2 = one.train_step(one.to_device(batch)), two.train_step(two.to_device(batch))
    assert l1.keys() == l2.keys()
    torch.testing.assert_close(l2["gen/pose_mask_l1"], l1["gen/pose_mask_l1"], rtol=1e-5, atol=1e-6)
    a, b = _params(one), _params(two)
    for k in a:  # G1 has no batch norm: the summed micro-batch gradients are the full-batch gradient
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-6, msg=k)
    assert any(not torch.equal(a[k], p) for k, p in _trainer([]).nets["g1"].state_dict().items())  # it moved
    with pytest.raises(ConfigError, match="grad_accum=3 does not divide"):
        _trainer(["train.grad_accum=3"]).train_step(batch)


def test_grad_accum_runs_a_gan_step():
    t = _trainer(["train.grad_accum=2", "task=pg2_g1_d", "model.d={base_channels: 4, image_size: [64, 32], num_layers: 3}"])
    losses = t.train_step(t.to_device(synthetic_pair_batch(4, (64, 32), radius=2)))
    assert {"dis/d_bce", "gen/g_bce", "gen/pose_mask_l1"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())


def test_compile_wraps_the_call_views_only():
    batch = synthetic_pair_batch(4, (64, 32), radius=2)
    plain, compiled = _trainer([]), _trainer(["train.compile=true", "train.compile_backend=eager"])
    assert isinstance(compiled.wrapped["g1"], torch._dynamo.eval_frame.OptimizedModule)
    assert not isinstance(compiled.nets["g1"], torch._dynamo.eval_frame.OptimizedModule)  # checkpoints: plain keys
    l1, l2 = plain.train_step(plain.to_device(batch)), compiled.train_step(compiled.to_device(batch))
    torch.testing.assert_close(l2["gen/pose_mask_l1"], l1["gen/pose_mask_l1"])
    a, b = _params(plain), _params(compiled)
    for k in a:
        torch.testing.assert_close(b[k], a[k], msg=k)


@pytest.fixture(scope="module")
def people(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("people")
    synthesize(data, size=(64, 32), identities=6, views=3, seed=2, progress=False)
    return data


def test_a_run_on_the_device_data_path_trains_like_the_worker_path(people, tmp_path):
    over = [*SMALL, f"data.train={people / 'train'}", f"data.test={people / 'test'}", "train.iterations=3",
            "train.log_every=1", "train.sample_every=100000", "train.eval_batches=0", "train.checkpoint_every=3"]  # fmt: skip
    workers = train(TINY, tmp_path / "workers", overrides=over, progress=False)
    device = train(TINY, tmp_path / "device", overrides=[*over, "train.data_path=device"], progress=False)
    assert [s for s, _ in device.losses] == [s for s, _ in workers.losses] == [1, 2, 3]
    for (_, a), (_, b) in zip(workers.losses, device.losses):  # same pairs, same flips
        assert b["gen/pose_mask_l1"] == pytest.approx(a["gen/pose_mask_l1"], rel=1e-3)
    for k, p in workers.networks["g1"].state_dict().items():
        torch.testing.assert_close(device.networks["g1"].state_dict()[k], p, rtol=1e-3, atol=1e-5, msg=k)


MULTIVIEW_TINY = REPO / "configs" / "debug" / "multiview_tiny.yaml"
PIX2PIX = ["task=pix2pix", "model={g: {base_channels: 4, num_downs: 5}, d: {in_channels: 9, base_channels: 4, n_layers: 2}}",
           "loss={l1_weight: 100.0}"]  # fmt: skip


@pytest.mark.parametrize("task", ["multiview", "pix2pix"])
def test_a_group_run_on_the_device_data_path_trains_like_the_worker_path(people, tmp_path, task):
    """The multi-view G+D_I+D_P (K padded to 5, the unpaired pose) and pix2pix: same draws, same
    flips (flip only: warps differ by OpenCV's fixed-point weights), so the same weights."""
    data = [f"data.train={people / 'train'}", f"data.test={people / 'test'}"]
    if task == "multiview":
        over = [*data, "data.crop=null", "data.rotation=0.0"]
    else:  # pix2pix's data schema has no source-count keys
        over = [*PIX2PIX, f"data={{train: {people / 'train'}, test: {people / 'test'}, image_size: [64, 32], "
                          "flip: 0.5, crop: null, rotation: 0.0}"]  # fmt: skip
    over += ["train.iterations=3", "train.log_every=1", "train.sample_every=100000", "train.eval_batches=0",
             "train.checkpoint_every=3"]  # fmt: skip
    workers = train(MULTIVIEW_TINY, tmp_path / "workers", overrides=over, progress=False)
    device = train(MULTIVIEW_TINY, tmp_path / "device", overrides=[*over, "train.data_path=device"], progress=False)
    assert [s for s, _ in device.losses] == [s for s, _ in workers.losses] == [1, 2, 3]
    for (_, a), (_, b) in zip(workers.losses, device.losses):
        assert b.keys() == a.keys()
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-4), k
    assert workers.networks.keys() == device.networks.keys()
    for name, net in workers.networks.items():
        for k, p in net.state_dict().items():
            torch.testing.assert_close(device.networks[name].state_dict()[k], p, rtol=1e-4, atol=1e-6, msg=f"{name}.{k}")
    # and the steps moved the generator (the comparison is not of untrained weights)
    assert workers.losses[0][1]["gen/l1"] != workers.losses[-1][1]["gen/l1"]


def test_a_group_run_on_the_device_data_path_resumes_exactly_and_stops_on_a_bad_image(people, tmp_path, capsys):
    import shutil

    from posetransfer.cli import main
    from posetransfer.errors import EXIT_BAD_INPUT
    from posetransfer.training import checkpoint as ck

    data = tmp_path / "people"
    shutil.copytree(people, data)
    sets = [f"data.train={data / 'train'}", f"data.test={data / 'test'}", "train.data_path=device", "train.log_every=1",
            "train.sample_every=100000", "train.eval_batches=0", "train.checkpoint_every=2"]  # fmt: skip
    args = [a for s in sets for a in ("--set", s)]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(["train", str(MULTIVIEW_TINY), "--out", str(straight), "--no-progress", *args, "--set", "train.iterations=4"]) == 0
    assert main(["train", str(MULTIVIEW_TINY), "--out", str(split), "--no-progress", *args, "--set", "train.iterations=2"]) == 0
    assert main(["train", "--resume", str(split), "--no-progress", "--set", "train.iterations=4"]) == 0
    a, b = ck.latest_checkpoint(straight), ck.latest_checkpoint(split)
    assert a.name == b.name == ck.step_dirname(4)
    for name in ("g", "d_image", "d_pose"):
        assert (a / f"{name}.safetensors").read_bytes() == (b / f"{name}.safetensors").read_bytes(), name
    # every photo is decoded before the run folder is made: a bad one is one line, nothing written
    image = sorted((data / "train" / "images").iterdir())[-1]
    image.write_bytes(image.read_bytes()[:100])
    capsys.readouterr()
    bad = tmp_path / "bad"
    code = main(["train", str(MULTIVIEW_TINY), "--out", str(bad), "--no-progress", *args, "--set", "train.iterations=2"])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == EXIT_BAD_INPUT and line.startswith(f"posetransfer train: error: {image}: unreadable image"), line
    assert not bad.exists()
