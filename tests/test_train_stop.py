"""A run stopped by Ctrl-C / SIGTERM or by an unreadable image loses no step (training/stopping.py).

* SIGINT and SIGTERM sent from outside to a real ``posetransfer train`` subprocess mid-run (after
  its last periodic checkpoint, watched on its progress bar): exit 130 / 143, one line naming the
  checkpoint and ``--resume``, a checkpoint of the last completed step; ``--resume`` then ends with
  weights and optimizer moments bit-identical to an uninterrupted run.
* An image truncated after a valid header (so the pre-run header scan passes it), first met at
  step k: exit 2, one line naming the file, a checkpoint of step k; with the file restored,
  ``--resume`` ends bit-identical to the uninterrupted run (data-loader workers 0 and 2, PNG and
  JPEG data).
* A second Ctrl-C during that save stops at once and leaves the previous checkpoint whole.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from posetransfer.cli import main
from posetransfer.data.synth import synthesize
from posetransfer.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_TERMINATED
from posetransfer.training import checkpoint as ck
from _helpers import first_use_steps

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "debug" / "tiny.yaml")
STEPS = 40
EVERY = 8  # periodic checkpoints at 8, 16, ...
BATCH = 4


def _sets(data: Path, *extra: str, steps: int = STEPS) -> list[str]:
    items = [f"data.train={data / 'train'}", f"data.test={data / 'test'}", f"train.iterations={steps}",
             f"train.checkpoint_every={EVERY}", "train.sample_every=1000", "train.eval_batches=0",
             "train.log_every=4", f"train.batch_size={BATCH}", "train.num_workers=0", *extra]  # fmt: skip
    return [a for s in items for a in ("--set", s)]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny synthetic data set and the uninterrupted reference run of STEPS steps."""
    root = tmp_path_factory.mktemp("stop")
    data = root / "data"
    synthesize(data, size=(64, 32), identities=6, views=3, seed=1, progress=False)
    ref = root / "ref"
    assert main(["train", TINY, "--out", str(ref), "--no-progress", *_sets(data)]) == 0
    return data, ck.latest_checkpoint(ref)


def _assert_same_as(final: Path, ref: Path) -> None:
    """Same step, byte-identical weights, identical optimizer moments and step counts."""
    assert final.name == ref.name == ck.step_dirname(STEPS)
    assert (final / "g1.safetensors").read_bytes() == (ref / "g1.safetensors").read_bytes()
    a, b = ck.load_state(final), ck.load_state(ref)
    assert a["optimizers"]["gen"]["state"].keys() == b["optimizers"]["gen"]["state"].keys()
    for key, value in b["optimizers"]["gen"]["state"].items():
        for name, tensor in value.items():
            assert torch.equal(a["optimizers"]["gen"]["state"][key][name], tensor), (key, name)


def _step(ckpt: Path) -> int:
    return int(ckpt.name.split("_")[1])


def _hidden(run: Path) -> list[str]:
    return [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]


# ---- signals from outside ---------------------------------------------------------------------


class _Stderr(threading.Thread):
    """Collects a subprocess's stderr as it comes (tqdm's ``\\r`` updates included)."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.chunks = stream, []

    def run(self) -> None:
        for chunk in iter(lambda: os.read(self.stream.fileno(), 4096), b""):
            self.chunks.append(chunk.decode("utf-8", "replace"))

    def text(self) -> str:
        return "".join(self.chunks)

    def progress(self) -> int:
        found = re.findall(rf"(\d+)/{STEPS} ", self.text())
        return int(found[-1]) if found else 0


@pytest.mark.parametrize("sig, code, group", [(signal.SIGINT, EXIT_INTERRUPTED, False), (signal.SIGTERM, EXIT_TERMINATED, True)])
def test_a_signal_saves_the_last_step_and_resume_is_exact(world, tmp_path, sig, code, group):
    """SIGINT to the trainer; SIGTERM to its whole process group, two data-loader workers
    included (what SLURM does: the workers ignore it, the trainer saves and stops them)."""
    data, ref = world
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    workers = "train.num_workers=2" if group else "train.num_workers=0"
    # with the progress bar on (it tells the step from outside); no --no-progress
    proc = subprocess.Popen([sys.executable, "-m", "posetransfer", "train", TINY, "--out", str(run), *_sets(data, workers)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)  # fmt: skip
    err = _Stderr(proc.stderr)
    err.start()
    try:
        deadline = time.monotonic() + 120
        # past the periodic checkpoint of step EVERY, well before the next one
        while err.progress() <= EVERY and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert proc.poll() is None, f"the run ended before the signal: {err.text()[-2000:]}"
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        proc.wait(120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    err.join(10)
    text = err.text()
    assert proc.returncode == code, text[-2000:]
    line = text.strip().splitlines()[-1].split("\r")[-1]
    latest = ck.latest_checkpoint(run)
    stopped = _step(latest)
    # a checkpoint of the last completed step, after the last periodic one
    assert EVERY < stopped < 2 * EVERY, (stopped, line)
    assert ck.is_complete(latest) and not _hidden(run)
    assert line == (f"posetransfer train: interrupted: {signal.Signals(sig).name} after step {stopped}: saved checkpoint "
                    f"{latest}; continue with --resume (posetransfer train --resume {run})")  # fmt: skip
    assert [p.name for p in ck.step_folders(run)] == [ck.step_dirname(EVERY), latest.name]
    time.sleep(0.5)
    try:  # no process of the run is left (the workers were shut down, not orphaned)
        os.killpg(proc.pid, 0)
        left = True
    except ProcessLookupError:
        left = False
    assert not left, "a process of the stopped run is still alive"

    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    _assert_same_as(ck.latest_checkpoint(run), ref)


def test_a_second_ctrl_c_during_the_save_stops_at_once(world, tmp_path, monkeypatch, capsys):
    """The first SIGINT comes during step 11, the second while step 11's checkpoint is written:
    the save is abandoned, step 8's checkpoint stays the one ``latest`` names, nothing half-written."""
    from posetransfer.training.base import Trainer

    data, _ = world
    run = tmp_path / "run"
    steps = [0]
    original_step, original_write = Trainer.train_step, ck._write_bytes

    def step_then_signal(self, batch):
        out = original_step(self, batch)
        steps[0] += 1
        if steps[0] == 11:
            os.kill(os.getpid(), signal.SIGINT)  # the first Ctrl-C, during step 11
        return out

    def write_then_signal(path, payload, shown):
        original_write(path, payload, shown)
        if ck.step_dirname(11) in str(shown):
            os.kill(os.getpid(), signal.SIGINT)  # the second one, in the middle of the save

    monkeypatch.setattr(Trainer, "train_step", step_then_signal)
    monkeypatch.setattr(ck, "_write_bytes", write_then_signal)
    assert main(["train", TINY, "--out", str(run), "--no-progress", *_sets(data)]) == EXIT_INTERRUPTED
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == ("posetransfer train: interrupted: SIGINT again while saving step 11: stopped at once; "
                    "the last complete checkpoint is intact, continue with --resume")  # fmt: skip
    assert ck.latest_checkpoint(run).name == ck.step_dirname(EVERY)
    assert [p.name for p in ck.step_folders(run)] == [ck.step_dirname(EVERY)] and not _hidden(run)
    # and the handlers are back: Ctrl-C outside a run is Python's KeyboardInterrupt again
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ---- an unreadable image met mid-run ---------------------------------------------------------


def _first_use(data: Path) -> dict[str, int]:
    return first_use_steps(TINY, [s for s in _sets(data) if s != "--set"], BATCH)


@pytest.mark.parametrize("fmt, workers", [("png", 0), ("jpeg", 2)])
def test_an_unreadable_image_saves_the_last_good_step_and_resume_is_exact(world, tmp_path, capsys, fmt, workers):
    import shutil

    data0, ref = world
    data = tmp_path / "data"
    shutil.copytree(data0, data)
    # an image first needed at a step that is not a periodic checkpoint, after a few steps
    first = _first_use(data)
    name, k = max(((n, s) for n, s in first.items() if s % EVERY), key=lambda t: t[1])
    assert k >= 3, first
    image = data / "train" / "images" / name
    good = image.read_bytes()
    if fmt == "jpeg":  # JPEG data under the same name (PIL reads the content, not the extension)
        buf = io.BytesIO()
        Image.open(image).convert("RGB").save(buf, "JPEG", quality=95)
        raw = buf.getvalue()
    else:
        raw = good
    image.write_bytes(raw[: len(raw) // 2])  # the header reads (the pre-run scan passes it), the pixels do not

    run = tmp_path / "run"
    code = main(["train", TINY, "--out", str(run), "--no-progress", *_sets(data, f"train.num_workers={workers}")])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code == EXIT_BAD_INPUT, err
    line = err.strip().splitlines()[-1]
    latest = ck.latest_checkpoint(run)
    assert latest.name == ck.step_dirname(k) and ck.is_complete(latest) and not _hidden(run)
    # the decoder's own words (JPEG adds a byte count), then where it stopped and what to do
    assert line.startswith(f"posetransfer train: error: {image}: unreadable image (image file is truncated"), line
    assert line.endswith(f"; met in the batch after step {k} (saved checkpoint {latest}); fix or replace the file "
                         f"(posetransfer data check {data / 'train'} lists every unreadable image), "
                         "then continue with --resume"), line  # fmt: skip

    image.write_bytes(good)
    assert main(["train", "--resume", str(run), "--no-progress", "--set", f"train.num_workers={workers}"]) == 0
    capsys.readouterr()
    _assert_same_as(ck.latest_checkpoint(run), ref)


def test_an_unreadable_held_out_image_stops_after_its_sample_step(world, tmp_path, capsys):
    """A test image first decoded for the image grid of step 5: the run stops before step 6 with
    step 5 saved; resumed with the file restored it ends as the reference, whose grids come at
    other steps. (The held-out pass advances the global torch RNG, by its DataLoader's seed
    draw, but a PG2 training step draws nothing from it, so the weights do not depend on
    where the held-out passes come, nor on one cut short.)"""
    import shutil

    data0, ref = world
    data = tmp_path / "data"
    shutil.copytree(data0, data)
    image = sorted((data / "test" / "images").iterdir())[0]
    good = image.read_bytes()
    image.write_bytes(good[: len(good) // 2])
    run = tmp_path / "run"
    code = main(["train", TINY, "--out", str(run), "--no-progress", *_sets(data, "train.sample_every=5",
                                                                           "train.sample_count=64")])  # fmt: skip
    line = capsys.readouterr().err.strip().splitlines()[-1]
    latest = ck.latest_checkpoint(run)
    assert code == EXIT_BAD_INPUT and latest.name == ck.step_dirname(5), line
    assert line.startswith(f"posetransfer train: error: {image}: unreadable image"), line
    assert (f"met at the held-out pass after step 5 (saved checkpoint {latest}); fix or replace the file "
            f"(posetransfer data check {data / 'test'} lists") in line
    image.write_bytes(good)
    assert main(["train", "--resume", str(run), "--no-progress", "--set", "train.sample_every=1000"]) == 0
    capsys.readouterr()
    _assert_same_as(ck.latest_checkpoint(run), ref)


def test_device_path_decodes_before_the_first_step(world, tmp_path, capsys):
    """``train.data_path: device`` decodes every image when it starts: an unreadable one stops a
    resumed run before its first step (exit 2, the file named) and the checkpoint stays as it was."""
    import shutil

    data0, _ = world
    data = tmp_path / "data"
    shutil.copytree(data0, data)
    run = tmp_path / "run"
    sets = _sets(data, "train.data_path=device", steps=3)
    assert main(["train", TINY, "--out", str(run), "--no-progress", *sets]) == 0
    before = (ck.latest_checkpoint(run) / "g1.safetensors").read_bytes()
    image = sorted((data / "train" / "images").iterdir())[-1]
    raw = image.read_bytes()
    image.write_bytes(raw[: len(raw) // 2])
    capsys.readouterr()
    code = main(["train", "--resume", str(run), "--no-progress", "--set", "train.iterations=6"])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == EXIT_BAD_INPUT and line.startswith(f"posetransfer train: error: {image}: unreadable image"), line
    assert ck.latest_checkpoint(run).name == ck.step_dirname(3)
    assert (ck.latest_checkpoint(run) / "g1.safetensors").read_bytes() == before


def test_the_stop_flags_travel_on_a_cpu_group_beside_nccl(tmp_path, monkeypatch):
    """Under NCCL the flags go through a gloo group made once (no GPU synchronisation a step);
    here a one-rank gloo world stands in, with the default group's backend reported as nccl."""
    import torch.distributed as dist

    from posetransfer.training import stopping

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        assert stopping.agree([0, 1, 0], True) == [0, 1, 0] and stopping._FLAG_GROUPS == {}  # gloo: the default group
        monkeypatch.setattr(dist, "get_backend", lambda group=None: "nccl")
        assert stopping.agree([15, 0, 1], True) == [15, 0, 1]
        side = stopping._FLAG_GROUPS[dist.group.WORLD]
        assert stopping.agree([2, 2, 2], True) == [2, 2, 2] and stopping._FLAG_GROUPS[dist.group.WORLD] is side
    finally:
        stopping._FLAG_GROUPS.clear()
        dist.destroy_process_group()
