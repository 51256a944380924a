"""The fault test of issue 11: a tiny training run killed with SIGKILL again and again, resumed each
time with ``train --resume``, ends with the same weights and optimizer state as a run never
interrupted (and byte-identical ``.safetensors``).

Kills come at random moments of the training loop (shortly after a randomly chosen step's
checkpoint starts to be written, watched from outside) and at random points inside checkpoint writes: after a
weights/state file is written, around the folder's rename, and between the rename and the update
of ``latest``; the child process sends SIGKILL to itself there (a wrapper patches the checkpoint
module's helpers in the child only). The seed of the random moments is printed on failure.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from posetransfer.data.synth import synthesize
from posetransfer.training import checkpoint as ck

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "debug" / "tiny.yaml")
STEPS = 30



def _child(argv: list[str], point: str, nth: int, log: str) -> None:
    """A forked child (all imports already done by the parent): optionally SIGKILLs itself at the
    n-th call of one checkpoint helper, then runs the command line and exits with its code."""
    sys.stderr = open(log, "a")  # noqa: SIM115 - the child exits without closing it
    count = [0]

    def killer(orig, after):
        def wrapped(*a, **k):
            count[0] += 1
            if count[0] == nth and not after:
                os.kill(os.getpid(), signal.SIGKILL)
            out = orig(*a, **k)
            if count[0] == nth and after:
                os.kill(os.getpid(), signal.SIGKILL)
            return out

        return wrapped

    if point == "write":  # after writing g1.safetensors or state.pt into the temporary folder
        ck._write_bytes = killer(ck._write_bytes, True)
    elif point == "rename":  # after fsync of the temporary folder (before its rename) or of checkpoints/ (after it)
        ck._fsync_dir = killer(ck._fsync_dir, True)
    elif point == "latest":  # the step folder is in place, latest not yet updated (or config.yaml not written)
        ck.atomic_write_text = killer(ck.atomic_write_text, False)
    from posetransfer.cli import main

    code = main(argv)
    sys.stderr.flush()
    os._exit(code)


def _argv(run: Path, data: Path) -> list[str]:
    sets = [f"data.train={data / 'train'}", f"data.test={data / 'test'}", f"train.iterations={STEPS}",
            "train.checkpoint_every=1", "train.sample_every=1000", "train.eval_batches=0", "train.log_every=4",
            "train.batch_size=4"]  # fmt: skip
    return ["train", TINY, "--out", str(run), "--resume", "--no-progress", *[a for s in sets for a in ("--set", s)]]


def _start(run: Path, data: Path, log: Path, point: str = "none", nth: int = 0):
    # fork: the child starts in milliseconds (no second import of torch), so 13 runs take seconds
    proc = multiprocessing.get_context("fork").Process(target=_child, args=(_argv(run, data), point, nth, str(log)))
    proc.start()
    return proc


def _wait(proc, log: Path) -> int:
    proc.join(300)
    assert proc.exitcode is not None, "a training run did not finish in 300 s"
    return proc.exitcode


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _assert_consistent(run: Path) -> None:
    """What --resume would load is complete: never a half-written checkpoint."""
    ckpt, _ = ck.find_resume_checkpoint(run) if (run / "checkpoints").is_dir() else (None, None)
    if ckpt is not None:
        assert ck.is_complete(ckpt)
        load_file(str(ckpt / "g1.safetensors"))
        ck.load_state(ckpt)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_equals_an_uninterrupted_run(tmp_path):
    seed = int(os.environ.get("POSETRANSFER_KILL_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    data = tmp_path / "data"
    synthesize(data, size=(64, 32), identities=6, views=3, seed=1, progress=False)
    log = tmp_path / "stderr.log"

    ref = tmp_path / "ref"
    assert _wait(_start(ref, data, log), log) == 0, log.read_text()

    # 11 kills: 5 from outside at a random moment of the loop, 6 inside checkpoint writes
    plan = ["timer"] * 5 + ["write", "write", "rename", "rename", "latest", "latest"]
    rng.shuffle(plan)
    run = tmp_path / "run"
    kills: list[str] = []
    for point in plan:
        if point == "timer":
            proc = _start(run, data, log)
            # a random moment of the training loop: 0-30 ms after the checkpoint of step (last + 1 or 2)
            # started to be written (wall-clock timers overshoot on a loaded machine)
            steps = ck.step_folders(run)
            target = ck.step_dirname((int(steps[-1].name.split("_")[1]) if steps else 0) + rng.randint(1, 2))
            while proc.is_alive() and not any(target in p.name for p in _entries(run / "checkpoints")):
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 0.03))
            proc.kill()  # SIGKILL
        else:
            proc = _start(run, data, log, point, rng.randint(1, 4))
        code = _wait(proc, log)
        if code == -signal.SIGKILL:
            kills.append(point)
        else:
            assert code == 0, f"seed {seed}: {point}: {log.read_text()}"
        _assert_consistent(run)
        if code == 0:
            break  # finished before the kill came: nothing left to interrupt
    assert len(kills) >= 10, f"seed {seed}: only {len(kills)} kills ({kills}); the run outpaced the timer"

    assert _wait(_start(run, data, log), log) == 0, f"seed {seed}: {log.read_text()}"
    final, ref_final = ck.latest_checkpoint(run), ck.latest_checkpoint(ref)
    assert final.name == ref_final.name == ck.step_dirname(STEPS)
    assert (final / "g1.safetensors").read_bytes() == (ref_final / "g1.safetensors").read_bytes(), f"seed {seed}"
    a, b = ck.load_state(final), ck.load_state(ref_final)
    for key, value in b["optimizers"]["gen"]["state"].items():
        for name, tensor in value.items():
            assert torch.equal(a["optimizers"]["gen"]["state"][key][name], tensor), f"seed {seed}: {key}.{name}"
    assert not [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
