"""Checkpoint files (safetensors + model.json + state.pt), their errors, and the resumable sampler."""

from __future__ import annotations

import json

import pytest
import torch

from posetransfer.errors import CheckpointError, ConfigError
from posetransfer.models.pg2 import G1, PairDiscriminator
from posetransfer.training import checkpoint as ck
from posetransfer.training.base import rng_state, set_rng_state
from posetransfer.training.distributed import ResumableBatchSampler




G1_KW = {"image_channels": 3, "pose_channels": 18, "base_channels": 4, "num_blocks": 2, "image_size": [16, 8], "z_dim": 4, "pose_embedding": "concat"}
D_KW = {"in_channels": 6, "base_channels": 4, "image_size": [16, 8], "num_layers": 2}


def _save(run, step=5, keep=None, nets=None):
    torch.manual_seed(step)
    nets = nets or {"g1": G1(**G1_KW), "d": PairDiscriminator(**D_KW)}
    opt = torch.optim.Adam(nets["g1"].parameters())
    nets["g1"](torch.zeros(1, 3, 16, 8), torch.zeros(1, 18, 16, 8)).sum().backward()
    opt.step()
    state = {"step": step, "optimizers": {"gen": opt.state_dict()}, "rng": rng_state()}
    path = ck.save_checkpoint(run, step, nets, {"g1": G1_KW, "d": D_KW}, {"g1"}, {"task": "x"}, state, task="pg2_g1_d", keep=keep)
    return path, nets


def test_round_trip_rebuilds_identical_networks(tmp_path):
    path, nets = _save(tmp_path / "run")
    assert path == tmp_path / "run" / "checkpoints" / "step_0000005"
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "config.yaml", "d.safetensors", "g1.safetensors", "model.json", "state.pt"]
    model = json.loads((path / "model.json").read_text())
    assert model["networks"]["g1"] == {"class": "posetransfer.models.pg2.G1", "kwargs": G1_KW, "trainable": True}
    assert model["networks"]["d"]["trainable"] is False and model["task"] == "pg2_g1_d"
    # no temporary folders left behind; `latest` names the new checkpoint
    assert sorted(p.name for p in path.parent.iterdir()) == ["latest", "step_0000005"]
    for where in (path, tmp_path / "run", tmp_path / "run" / "checkpoints"):
        loaded, _ = ck.load_networks(where)
        for name in nets:
            a, b = nets[name].state_dict(), loaded[name].state_dict()
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    state = ck.load_state(path)
    assert state["step"] == 5 and state["optimizers"]["gen"]["state"]


def test_rng_state_survives_a_weights_only_round_trip(tmp_path):
    import random

    import numpy as np

    torch.save(rng_state(), tmp_path / "s.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(torch.load(tmp_path / "s.pt", weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_latest_moves_and_old_checkpoints_are_pruned(tmp_path):
    run = tmp_path / "run"
    for step in (1, 2, 3):
        _save(run, step, keep=2)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step_0000002", "step_0000003"]
    assert ck.latest_checkpoint(run).name == "step_0000003"
    _save(run, 3, keep=2)  # re-saving a step replaces it in place
    assert ck.latest_checkpoint(run).name == "step_0000003"
    assert ck.latest_checkpoint(tmp_path / "empty") is None


def test_corrupt_or_mismatched_checkpoints_are_checkpoint_errors(tmp_path):
    path, _ = _save(tmp_path / "run")
    weights = path / "g1.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[:100])
    with pytest.raises(CheckpointError, match="g1.safetensors: unreadable weights"):
        ck.load_networks(path)
    weights.write_bytes(good)
    with pytest.raises(CheckpointError, match="g1.safetensors: weights do not match G1"):
        ck.load_weights(G1(**{**G1_KW, "base_channels": 8}), weights)
    (path / "state.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="state.pt: unreadable training state"):
        ck.load_state(path)
    model = json.loads((path / "model.json").read_text())
    model["networks"]["g1"]["class"] = "os.system"
    (path / "model.json").write_text(json.dumps(model))
    with pytest.raises(CheckpointError, match="refusing to build class 'os.system'"):
        ck.load_networks(path)
    (path / "model.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="model.json: unreadable"):
        ck.load_networks(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        ck.resolve_checkpoint(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        ck.resolve_checkpoint(tmp_path)
    (path.parent / "latest").write_text("step_0000999\n")
    with pytest.raises(CheckpointError, match="latest: points at 'step_0000999'"):
        ck.resolve_checkpoint(tmp_path / "run")


def test_sampler_order_is_a_pure_function_of_the_step_and_shards_are_disjoint():
    full = ResumableBatchSampler(10, 4, seed=3)
    assert full.batches_per_epoch == 2  # the incomplete last batch is dropped
    straight = []
    for step in range(0, 6, 2):  # three epochs, read straight through
        full.set_position(step)
        straight += list(full)
    resumed = []
    for step in range(6):  # one batch at a time, from the step alone
        s = ResumableBatchSampler(10, 4, seed=3)
        s.set_position(step)
        resumed.append(next(iter(s)))
    assert resumed == straight
    assert straight[0] != straight[2]  # a new shuffle each epoch
    # two ranks split each global batch into disjoint halves
    r0, r1 = (ResumableBatchSampler(10, 4, rank=r, world_size=2, seed=3) for r in (0, 1))
    for a, b, whole in zip(r0, r1, straight):
        assert len(a) == len(b) == 2 and a + b == whole
    with pytest.raises(ConfigError, match="not divisible"):
        ResumableBatchSampler(10, 3, world_size=2)
    with pytest.raises(ConfigError, match="fewer than train.batch_size"):
        ResumableBatchSampler(3, 4)
