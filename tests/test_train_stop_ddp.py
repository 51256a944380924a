"""Stopping a two-process DDP run (torchrun, Gloo on CPU) loses no step either.

Every rank all-reduces its stop flags before each step, so a SIGTERM that reaches one rank only,
or an unreadable image in one rank's shard, stops both ranks before the same step: rank 0 saves
it, every rank exits with the same code and line (no rank left hanging in a collective), and
``--resume`` under torchrun ends bit-identical to an uninterrupted DDP run. (Five torchrun
launches would be needed to also resume the bad-image run; the single-process test does that.)
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from posetransfer.data.synth import synthesize
from posetransfer.errors import EXIT_BAD_INPUT, EXIT_TERMINATED
from posetransfer.training import checkpoint as ck
from _helpers import first_use_steps, run_launcher

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "debug" / "tiny.yaml")
STEPS, EVERY, BATCH = 10, 4, 4

# Each rank runs the command line; with KILL_AT=n, rank 1 sends itself SIGTERM during its n-th step.
WORKER = textwrap.dedent(
    """
    import os, signal, sys, torch
    torch.set_num_threads(1)
    from posetransfer.cli import main
    from posetransfer.training.base import Trainer
    kill_at = int(os.environ.get("KILL_AT", "0"))
    if kill_at and os.environ["RANK"] == "1":
        original, count = Trainer.train_step, [0]
        def step(self, batch):
            count[0] += 1
            if count[0] == kill_at:
                os.kill(os.getpid(), signal.SIGTERM)
            return original(self, batch)
        Trainer.train_step = step
    sys.stderr = open(os.path.join(sys.argv[1], "rank" + os.environ["RANK"] + ".err"), "w")
    code = main(sys.argv[2:])
    sys.stderr.close()
    with open(os.path.join(sys.argv[1], "rank" + os.environ["RANK"] + ".code"), "w") as fh:
        fh.write(str(code))
    sys.exit(code)
    """
)


def _launch(tmp: Path, data: Path, run: Path, kill_at: int = 0):
    script = tmp / "worker.py"
    script.write_text(WORKER)
    for old in [*tmp.glob("rank*.code"), *tmp.glob("rank*.err")]:
        old.unlink()
    sets = [f"data.train={data / 'train'}", f"data.test={data / 'test'}", f"train.iterations={STEPS}",
            f"train.checkpoint_every={EVERY}", "train.sample_every=1000", "train.eval_batches=0",
            "train.log_every=2", f"train.batch_size={BATCH}", "train.num_workers=0"]  # fmt: skip
    argv = ["train", TINY, "--out", str(run), "--resume", "--no-progress", *[a for s in sets for a in ("--set", s)]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src"), "KILL_AT": str(kill_at)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
           str(script), str(tmp), *argv]  # fmt: skip
    proc = run_launcher(cmd, env, timeout=300)
    codes = [int((tmp / f"rank{r}.code").read_text()) if (tmp / f"rank{r}.code").is_file() else None for r in (0, 1)]
    return proc, codes


def _lines(tmp: Path) -> list[str]:
    """Each rank's last stderr line (the command line's one line when it failed)."""
    return [(tmp / f"rank{r}.err").read_text().strip().splitlines()[-1] for r in (0, 1)]


@pytest.mark.slow
def test_ddp_stops_every_rank_at_the_same_step_and_resumes_exactly(tmp_path):
    data = tmp_path / "data"
    synthesize(data, size=(64, 32), identities=6, views=3, seed=1, progress=False)
    ref = tmp_path / "ref"
    proc, codes = _launch(tmp_path, data, ref)
    assert proc.returncode == 0 and codes == [0, 0], proc.stdout[-4000:]
    ref_final = ck.latest_checkpoint(ref)
    assert ref_final.name == ck.step_dirname(STEPS)

    # SIGTERM on rank 1 only, during its step 6: both ranks stop after step 6, rank 0 saved it
    run = tmp_path / "run"
    proc, codes = _launch(tmp_path, data, run, kill_at=6)
    assert codes == [EXIT_TERMINATED, EXIT_TERMINATED], proc.stdout[-4000:]
    latest = ck.latest_checkpoint(run)
    assert latest.name == ck.step_dirname(6) and ck.is_complete(latest)
    want = (f"posetransfer train: interrupted: SIGTERM after step 6: saved checkpoint {latest}; "
            f"continue with --resume (posetransfer train --resume {run})")  # fmt: skip
    assert _lines(tmp_path) == [want, want], proc.stdout[-4000:]
    proc, codes = _launch(tmp_path, data, run)
    assert codes == [0, 0], proc.stdout[-4000:]
    final = ck.latest_checkpoint(run)
    assert final.name == ref_final.name
    assert (final / "g1.safetensors").read_bytes() == (ref_final / "g1.safetensors").read_bytes()

    # an image truncated after its header, first loaded at step k by one of the ranks
    bad_data = tmp_path / "bad"
    shutil.copytree(data, bad_data)
    first = first_use_steps(TINY, [f"data.train={bad_data / 'train'}", f"data.test={bad_data / 'test'}"], BATCH)
    name, k = max(((n, s) for n, s in first.items() if s % EVERY and s < STEPS), key=lambda t: t[1])
    image = bad_data / "train" / "images" / name
    good = image.read_bytes()
    image.write_bytes(good[: len(good) // 2])
    run = tmp_path / "run_bad"
    proc, codes = _launch(tmp_path, bad_data, run)
    assert codes == [EXIT_BAD_INPUT, EXIT_BAD_INPUT], proc.stdout[-4000:]
    latest = ck.latest_checkpoint(run)
    assert latest.name == ck.step_dirname(k)
    lines = _lines(tmp_path)
    assert lines[0] == lines[1], lines
    assert lines[0].startswith(f"posetransfer train: error: {image}: unreadable image"), lines[0]
    assert f"met in the batch after step {k} (saved checkpoint {latest})" in lines[0]
    # (resuming it is the resume above; tests/test_train_stop.py resumes after a bad image)
