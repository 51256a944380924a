"""PG2 training on a tiny synthetic set: G1 learns, stage II refines a frozen stage I, the GAN step
touches the right networks, resume is bit-exact, bf16 / channels_last run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from posetransfer.data.synth import synthesize
from posetransfer.errors import CheckpointError, ConfigError
from posetransfer.losses.reconstruction import pose_mask_l1
from posetransfer.training import checkpoint as ck
from posetransfer.training.base import Trainer, train
from posetransfer.training.config import load_config
from posetransfer.inference import load_generator

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "debug" / "tiny.yaml"
QUIET = ["train.sample_every=100000", "train.eval_batches=0", "train.log_every=1"]
# tiny discriminator for the 64x32 debug size (64 / 2**3 = 8, 32 / 2**3 = 4)
TINY_D = "model.d={in_channels: 6, base_channels: 4, image_size: [64, 32], num_layers: 3}"
G1D = ["task=pg2_g1_d", TINY_D, "loss={reconstruction: pose_mask_l1, l1_weight: 10.0}"]




@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    """24 synthetic people at 64x32 (19 for training, 5 held out), 6 photos each."""
    out = tmp_path_factory.mktemp("synth") / "people"
    synthesize(out, size=(64, 32), identities=24, views=6, seed=0, progress=False)
    return out


@pytest.fixture(scope="module")
def small_pairs(synth, tmp_path_factory) -> Path:
    """24 training pairs: 3 batches of 8 per epoch, so short runs cross epoch boundaries."""
    lines = (synth / "train" / "pairs.csv").read_text().splitlines()
    path = tmp_path_factory.mktemp("pairs") / "pairs24.csv"
    path.write_text("\n".join(lines[:25]) + "\n")
    return path


def data_args(synth: Path) -> list[str]:
    return [f"data.train={synth / 'train'}", f"data.test={synth / 'test'}"]


def _weights(run: Path) -> dict[str, dict[str, torch.Tensor]]:
    latest = ck.latest_checkpoint(run)
    return {p.stem: load_file(p) for p in sorted(latest.glob("*.safetensors"))}


@pytest.mark.slow
def test_tiny_g1_learns_on_held_out_people(synth, tmp_path):
    """Held-out pose-mask L1 (eq. 1) falls clearly and beats copying the condition image."""
    result = train(
        TINY, tmp_path / "run", progress=False,
        overrides=data_args(synth) + ["train.iterations=200", "train.sample_every=200", "train.eval_batches=4"],
    )
    (s0, first), (s1, last) = result.evals[0], result.evals[-1]
    assert (s0, s1) == (0, 200)
    assert last["pose_mask_l1"] < 0.85 * first["pose_mask_l1"]
    assert last["pose_mask_l1"] < 0.85 * last["copy_source_pose_mask_l1"]
    # the same numbers from the saved checkpoint, computed independently of the trainer
    gen = load_generator(tmp_path / "run")
    batch = next(iter(torch.utils.data.DataLoader(gen.dataset(synth / "test"), batch_size=32)))
    out = gen(batch)["stage1"]
    model = pose_mask_l1(out, batch["target_image"], batch["target_mask"]).item()
    copy = pose_mask_l1(batch["source_image"], batch["target_image"], batch["target_mask"]).item()
    assert model < 0.85 * copy
    # logs: TensorBoard events and a sample grid were written
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))
    assert (tmp_path / "run" / "samples" / "step_0000200.png").is_file()


def test_stage2_loads_and_keeps_the_stage1_g1(synth, tmp_path):
    stage1 = tmp_path / "stage1"
    train(TINY, stage1, progress=False, overrides=data_args(synth) + QUIET + ["train.iterations=2"])
    g1_before = _weights(stage1)["g1"]
    overrides = data_args(synth) + QUIET + [
        "task=pg2_stage2",
        "model={g2: {base_channels: 4, num_blocks: 2, image_size: [64, 32]}, "
        "d: {in_channels: 6, base_channels: 4, image_size: [64, 32], num_layers: 3}}",
        f"init_from={{g1: {stage1}}}",
        "loss={reconstruction: pose_mask_l1, l1_weight: 10.0}",
        "train.iterations=3",
    ]
    stage2 = tmp_path / "stage2"
    result = train(TINY, stage2, progress=False, overrides=overrides)
    after = _weights(stage2)
    assert set(after) == {"g1", "g2", "d"}  # the stage-II checkpoint is self-contained
    assert all(torch.equal(g1_before[k], after["g1"][k]) for k in g1_before)  # G1 frozen
    model = json.loads((ck.latest_checkpoint(stage2) / "model.json").read_text())
    assert model["networks"]["g1"]["trainable"] is False and model["networks"]["g1"]["kwargs"]["base_channels"] == 8
    assert {"gen/g_bce", "gen/pose_mask_l1", "dis/d_bce"} <= set(result.losses[-1][1])
    gen = load_generator(stage2)
    batch = next(iter(torch.utils.data.DataLoader(gen.dataset(synth / "test"), batch_size=2)))
    out = gen(batch)
    assert list(out) == ["stage1", "stage2"] and out["stage2"].shape == (2, 3, 64, 32)
    # the stage-I output inside stage II is exactly the stage-I model's output
    assert torch.equal(out["stage1"], load_generator(stage1)(batch)["stage1"])
    # a stage-I checkpoint whose G1 has another image size is rejected
    bad = overrides[:-1] + ["train.iterations=1", "model.g2.image_size=[32, 16]", "model.d.image_size=[32, 16]"]
    with pytest.raises(ConfigError, match="init_from.g1"):
        train(TINY, tmp_path / "bad", progress=False, overrides=bad)
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        train(TINY, tmp_path / "bad2", progress=False, overrides=overrides[:-3] + [f"init_from={{g1: {tmp_path}}}"])


def test_gan_step_updates_d_in_its_step_and_only_g_in_the_generator_step(synth, tmp_path):
    config = load_config(TINY, data_args(synth) + QUIET + G1D + ["train.iterations=1"])
    trainer = Trainer(config, tmp_path / "run", progress=False)
    from posetransfer.training.distributed import init_distributed

    trainer.info = init_distributed("cpu")
    trainer.device = torch.device("cpu")
    trainer.task = trainer.task_cls(config)
    trainer.nets = trainer.wrapped = trainer.gen_view = trainer.task.build_networks()
    trainer.g_opt = torch.optim.Adam(trainer.nets["g1"].parameters(), lr=1e-3)
    trainer.d_opt = torch.optim.Adam(trainer.nets["d"].parameters(), lr=1e-3)
    batch = next(iter(torch.utils.data.DataLoader(trainer.task.build_dataset("train", augment=False), batch_size=4)))
    d_before = {k: v.clone() for k, v in trainer.nets["d"].state_dict().items()}
    g_before = {k: v.clone() for k, v in trainer.nets["g1"].state_dict().items()}
    seen: dict[str, bool] = {}
    original = trainer.task.gen_losses

    def spy(nets, batch, out):
        seen["d_requires_grad"] = any(p.requires_grad for p in nets["d"].parameters())
        seen["d_grads"] = [p.grad.clone() for p in nets["d"].parameters()]  # from the D step
        return original(nets, batch, out)

    trainer.task.gen_losses = spy  # type: ignore[method-assign]
    losses = trainer.train_step(batch)
    assert seen["d_requires_grad"] is False
    # the G step back-propagated through D without touching D's gradients
    assert all(torch.equal(a, p.grad) for a, p in zip(seen["d_grads"], trainer.nets["d"].parameters()))
    assert any(not torch.equal(d_before[k], v) for k, v in trainer.nets["d"].state_dict().items())
    assert any(not torch.equal(g_before[k], v) for k, v in trainer.nets["g1"].state_dict().items())
    assert set(losses) == {"gen/g_bce", "gen/pose_mask_l1", "dis/d_bce", "dis/d_real", "dis/d_fake"}


def test_resume_is_bit_exact(synth, small_pairs, tmp_path):
    """2N steps straight == N steps, stop, resume, N steps (G1+D: both optimizers, D's BatchNorm,
    flip augmentation on, epoch boundaries crossed, dataloader workers in one run only)."""
    common = data_args(synth) + QUIET + G1D + [f"data.train_pairs={small_pairs}", "train.checkpoint_every=4"]
    straight = train(TINY, tmp_path / "a", progress=False, overrides=common + ["train.iterations=8", "train.num_workers=0"])
    train(TINY, tmp_path / "b", progress=False, overrides=common + ["train.iterations=4", "train.num_workers=1"])
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        train(TINY, tmp_path / "b", progress=False, overrides=common + ["train.iterations=8"])
    resumed = train(TINY, tmp_path / "b", resume=True, progress=False, overrides=common + ["train.iterations=8", "train.num_workers=1"])
    assert straight.step == resumed.step == 8
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert wa.keys() == wb.keys() == {"g1", "d"}
    for net in wa:
        for k in wa[net]:
            assert torch.equal(wa[net][k], wb[net][k]), f"{net}.{k} differs after resume"
    sa, sb = ck.load_state(tmp_path / "a" / "checkpoints" / "step_0000008"), ck.load_state(tmp_path / "b" / "checkpoints" / "step_0000008")
    for opt in ("gen", "dis"):
        for i, st in sa["optimizers"][opt]["state"].items():
            assert torch.equal(st["exp_avg_sq"], sb["optimizers"][opt]["state"][i]["exp_avg_sq"])
    # the per-step losses after the resume point match the straight run's
    assert [l for s, l in straight.losses if s > 4] == [l for s, l in resumed.losses]
    # a config whose networks no longer match the checkpoint cannot resume it
    with pytest.raises(CheckpointError, match="network 'g1' was built with"):
        train(TINY, tmp_path / "b", resume=True, progress=False, overrides=common + ["train.iterations=9", "model.g1.base_channels=4"])
    # resuming a finished run is a no-op
    again = train(TINY, tmp_path / "b", resume=True, progress=False, overrides=common + ["train.iterations=8"])
    assert again.step == 8 and again.losses == []


def test_bf16_autocast_and_channels_last_train(synth, tmp_path):
    result = train(
        TINY, tmp_path / "run", progress=False,
        overrides=data_args(synth) + QUIET + G1D + ["train.iterations=2", "train.precision=bf16", "train.channels_last=true"],
    )
    assert result.step == 2
    g1 = result.networks["g1"]
    conv = next(m for m in g1.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(torch.isfinite(torch.tensor(v)) for v in result.losses[-1][1].values())
    assert all(v.dtype == torch.float32 for v in _weights(tmp_path / "run")["g1"].values())


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_autocasts_only_where_the_cpu_has_native_bf16(synth, tmp_path, monkeypatch, native):
    from posetransfer.utils import perf

    monkeypatch.setattr(perf, "cpu_has_bf16", lambda: native)
    seen = []
    real = torch.autocast

    def spy(*args, **kwargs):
        seen.append(kwargs.get("dtype"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "autocast", spy)
    result = train(TINY, tmp_path / "run", progress=False,
                   overrides=data_args(synth) + QUIET + ["train.iterations=1", "train.precision=auto"])  # fmt: skip
    assert result.step == 1
    assert (torch.bfloat16 in seen) is native


def test_a_nan_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint(synth, tmp_path, monkeypatch):
    from posetransfer.errors import TrainingError
    from posetransfer.training.pg2 import PG2Stage1Task

    run = tmp_path / "run"
    train(TINY, run, progress=False, overrides=data_args(synth) + QUIET + ["train.iterations=2", "train.checkpoint_every=2"])
    before = _weights(run)
    real = PG2Stage1Task.gen_losses

    def nan_losses(self, nets, batch, out):
        return {k: v * float("nan") for k, v in real(self, nets, batch, out).items()}

    monkeypatch.setattr(PG2Stage1Task, "gen_losses", nan_losses)
    with pytest.raises(TrainingError, match=r"step 4: non-finite loss .*step_0000002 is intact.*--resume"):
        train(TINY, run, progress=False, resume=True,
              overrides=data_args(synth) + QUIET + ["train.iterations=6", "train.log_every=2", "train.checkpoint_every=2"])
    after = _weights(run)
    assert all(torch.equal(before[n][k], after[n][k]) for n in before for k in before[n])
