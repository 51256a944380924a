"""``posetransfer train`` / ``posetransfer generate`` end to end on a tiny synthetic set."""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posetransfer.cli import main
from posetransfer.data.synth import synthesize
from posetransfer.training import checkpoint as ck
from _helpers import run_launcher

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "debug" / "tiny.yaml")




@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "people"
    synthesize(out, size=(64, 32), identities=8, views=4, seed=2, progress=False)
    return out


def _sets(synth: Path, steps: int) -> list[str]:
    args = [f"data.train={synth / 'train'}", f"data.test={synth / 'test'}", f"train.iterations={steps}",
            "train.checkpoint_every=2", "train.sample_every=2", "train.eval_batches=1", "train.log_every=1"]
    return [a for s in args for a in ("--set", s)]


def test_train_resume_and_generate(synth, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", TINY, "--out", str(run), "--no-progress", *_sets(synth, 2)]) == 0
    assert "trained to step 2" in capsys.readouterr().out
    assert ck.latest_checkpoint(run).name == "step_0000002"
    assert (run / "config.yaml").is_file() and (run / "samples" / "step_0000002.png").is_file()

    # the same --out again without --resume is refused, in one line
    assert main(["train", TINY, "--out", str(run), "--no-progress", *_sets(synth, 4)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already holds checkpoints" in err and "--resume" in err

    # train --resume RUN_DIR continues with the run's own config
    assert main(["train", "--resume", str(run), "--no-progress", "--set", "train.iterations=4"]) == 0
    assert ck.latest_checkpoint(run).name == "step_0000004"
    capsys.readouterr()

    out = tmp_path / "gen"
    assert main(["generate", "--checkpoint", str(run), "--data", str(synth / "test"), "--out", str(out),
                 "--limit", "5", "--batch-size", "2", "--grid-rows", "2", "--no-progress"]) == 0
    assert "wrote 5 images and 3 grids" in capsys.readouterr().out
    with open(synth / "test" / "pairs.csv") as fh:
        pairs = [(r["from"], r["to"]) for r in csv.DictReader(fh)][:5]
    expected = {f"{Path(a).stem}___{Path(b).stem}.png" for a, b in pairs}
    assert {p.name for p in out.glob("*.png")} == expected
    assert sorted(p.name for p in (out / "grids").iterdir()) == ["grid_000.png", "grid_001.png", "grid_002.png"]
    image = np.asarray(Image.open(next(out.glob("*.png"))))
    assert image.shape == (64, 32, 3) and image.dtype == np.uint8
    grid = np.asarray(Image.open(out / "grids" / "grid_000.png"))
    assert grid.shape[1] > 4 * 32  # condition | target pose | target | stage I
    assert not list(out.rglob("*.tmp"))


def test_errors_are_one_line(synth, tmp_path, capsys):
    assert main(["train", TINY, "--out", str(tmp_path / "r"), "--set", "train.batchsize=4"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train.batchsize: unknown key" in err

    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert "config.yaml" in capsys.readouterr().err

    run = tmp_path / "run"
    assert main(["train", TINY, "--out", str(run), "--no-progress", *_sets(synth, 1)]) == 0
    weights = ck.latest_checkpoint(run) / "g1.safetensors"
    weights.write_bytes(weights.read_bytes()[:64])
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(run), "--data", str(synth / "test"), "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "g1.safetensors" in err and "unreadable weights" in err
    # resuming from the corrupt checkpoint fails the same way
    assert main(["train", "--resume", str(run), "--no-progress", "--set", "train.iterations=2"]) == 2
    assert "g1.safetensors" in capsys.readouterr().err
    assert main(["generate", "--checkpoint", str(tmp_path / "nope"), "--data", str(synth / "test"), "--out", str(tmp_path / "g")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_torchrun_launches_the_train_command_on_two_processes(synth, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "posetransfer", "train", TINY, "--out", str(run), "--no-progress",
           *_sets(synth, 2), "--set", "train.batch_size=4"]
    proc = run_launcher(cmd, env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert ck.latest_checkpoint(run).name == "step_0000002"
    assert ck.load_state(ck.latest_checkpoint(run))["world_size"] == 2
    assert proc.stdout.count("trained to step 2") == 1  # only rank 0 writes and reports
