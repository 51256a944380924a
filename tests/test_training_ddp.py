"""Two-process DistributedDataParallel training on CPU (Gloo), launched by torchrun as users do."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from posetransfer.data.synth import synthesize
from posetransfer.training import checkpoint as ck
from _helpers import run_launcher

REPO = Path(__file__).resolve().parents[1]

# Each rank trains with the library function, then saves its own parameters for the test to compare.
WORKER = textwrap.dedent(
    """
    import os, sys, torch
    torch.set_num_threads(1)
    from posetransfer.training.base import train
    result = train(sys.argv[1], sys.argv[2], overrides=sys.argv[4:], progress=False)
    rank = int(os.environ["RANK"])
    params = {f"{n}.{k}": p.detach().clone() for n, net in result.networks.items() for k, p in net.named_parameters()}
    torch.save({"params": params, "losses": result.losses, "world": int(os.environ["WORLD_SIZE"])},
               os.path.join(sys.argv[3], f"rank{rank}.pt"))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("data_path", ["workers", "device"])
def test_two_gloo_processes_keep_parameters_identical(tmp_path, data_path):
    data = tmp_path / "people"
    synthesize(data, size=(64, 32), identities=8, views=4, seed=1, progress=False)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    overrides = [
        f"data.train={data / 'train'}", f"data.test={data / 'test'}",
        "task=pg2_g1_d",  # G1 and D both wrapped in DDP
        "model.d={in_channels: 6, base_channels: 4, image_size: [64, 32], num_layers: 3}",
        "loss={reconstruction: pose_mask_l1, l1_weight: 10.0}",
        "train.iterations=3", "train.batch_size=4", "train.log_every=1", "train.checkpoint_every=3",
        "train.sample_every=100000", "train.eval_batches=0", "train.num_workers=0",
        f"train.data_path={data_path}",  # device: each rank encodes its shard of the batch itself
    ]
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
        str(script), str(REPO / "configs" / "debug" / "tiny.yaml"), str(run), str(tmp_path), *overrides,
    ]
    proc = run_launcher(cmd, env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[:4000]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["world"] == r1["world"] == 2
    assert r0["params"].keys() == r1["params"].keys()
    for k in r0["params"]:
        assert torch.equal(r0["params"][k], r1["params"][k]), f"{k} differs across ranks"
    # the logged losses are averaged across ranks, so both ranks log the same numbers
    assert r0["losses"] == r1["losses"] and len(r0["losses"]) == 3
    # only rank 0 wrote the run folder; its checkpoint holds the shared parameters
    saved, _ = ck.load_networks(run)
    for name, net in saved.items():
        for k, p in net.named_parameters():
            assert torch.equal(p, r0["params"][f"{name}.{k}"])
    # and training moved the parameters away from the (seeded, shared) initialisation
    from posetransfer.training.config import load_config
    from posetransfer.training.tasks import get_task_class

    torch.manual_seed(0)
    config = load_config(REPO / "configs" / "debug" / "tiny.yaml", overrides)
    init = get_task_class(config.task)(config).build_networks()
    assert not torch.equal(init["g1"].conv_out.weight, r0["params"]["g1.conv_out.weight"])


@pytest.mark.slow
def test_two_gloo_processes_train_the_multiview_task_on_the_device_data_path(tmp_path):
    """Each rank makes its shard of the multi-view batches on its device (K padded, p~ drawn):
    the ranks stay identical, and the run trains to the weights of the same run on the worker path."""
    data = tmp_path / "people"
    synthesize(data, size=(64, 32), identities=8, views=4, seed=1, progress=False)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    config = REPO / "configs" / "debug" / "multiview_tiny.yaml"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    results = {}
    for data_path in ("workers", "device"):
        out = tmp_path / data_path
        out.mkdir()
        overrides = [
            f"data.train={data / 'train'}", f"data.test={data / 'test'}", "data.crop=null", "data.rotation=0.0",
            "train.iterations=3", "train.batch_size=4", "train.log_every=1", "train.checkpoint_every=3",
            "train.sample_every=100000", "train.eval_batches=0", "train.num_workers=0", f"train.data_path={data_path}",
        ]  # fmt: skip
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
            str(script), str(config), str(out / "run"), str(out), *overrides,
        ]
        proc = run_launcher(cmd, env)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[:4000]
        r0 = torch.load(out / "rank0.pt", weights_only=True)
        r1 = torch.load(out / "rank1.pt", weights_only=True)
        assert r0["world"] == r1["world"] == 2 and r0["losses"] == r1["losses"] and len(r0["losses"]) == 3
        for k in r0["params"]:
            assert torch.equal(r0["params"][k], r1["params"][k]), f"{data_path}: {k} differs across ranks"
        results[data_path] = r0
    workers, device = results["workers"], results["device"]
    assert workers["params"].keys() == device["params"].keys() and {k.split(".")[0] for k in workers["params"]} == {"g", "d_image", "d_pose"}
    for k, p in workers["params"].items():
        torch.testing.assert_close(device["params"][k], p, rtol=1e-4, atol=1e-6, msg=k)
