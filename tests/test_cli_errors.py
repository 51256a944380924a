"""The bad-input corpus of the command line (issue 11): every case is run in-process through
``posetransfer.cli.main`` and must give its family's exit code, ONE line on stderr naming the
file and the problem, no stack trace, and no partial output (named paths absent or unchanged, no
temporary ``*.tmp`` file left anywhere under the test's folder).

Faults the test machine cannot produce are simulated and say so: a full disk is a write raising
``OSError(ENOSPC)``; a read-only folder is ``os.access`` answering no, or the probe file raising
``EROFS`` (these tests run as root, which ignores permission bits, so ``chmod`` proves nothing).
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posetransfer.cli import main
from posetransfer.data.synth import synthesize
from posetransfer.errors import EXIT_BAD_INPUT, EXIT_DISK_FULL, EXIT_INTERRUPTED, EXIT_OS_ERROR, EXIT_OUT_OF_MEMORY, EXIT_TERMINATED
from posetransfer.pose import extract as ex
from posetransfer.pose.library import library_pose
from posetransfer.training import checkpoint as ck
from posetransfer.utils import io as uio

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "debug" / "tiny.yaml")
SIZE = (64, 32)


# ---- fixtures: a tiny data set, a trained checkpoint and its generated images (module-wide) ----


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    synth = root / "synth"
    synthesize(synth, size=SIZE, identities=6, views=3, seed=3, progress=False)
    run = root / "run"
    assert main(["train", TINY, "--out", str(run), "--no-progress", *_sets(synth, 2)]) == 0
    gen = root / "gen"
    assert main(["generate", "--checkpoint", str(run), "--data", str(synth / "test"), "--out", str(gen),
                 "--limit", "3", "--batch-size", "3", "--no-progress"]) == 0  # fmt: skip
    return {"synth": synth, "run": run, "gen": gen}


def _sets(synth: Path, steps: int, *extra: str) -> list[str]:
    items = [f"data.train={synth / 'train'}", f"data.test={synth / 'test'}", f"train.iterations={steps}",
             "train.checkpoint_every=1", "train.sample_every=100", "train.eval_batches=1", "train.log_every=1",
             "train.batch_size=4", *extra]  # fmt: skip
    return [a for s in items for a in ("--set", s)]


class FakeBackend:
    """A pose "detector" finding one standing person in any image (no mediapipe needed)."""

    name = "fake"

    def extract(self, image):
        h, w = image.shape[:2]
        kp = library_pose("standing_front", (h, w))
        return [ex.Detection(kp.astype(np.float32), np.ones(18, np.float32), (0.0, 0.0, float(h), float(w)), 0.9)]


@pytest.fixture
def env(world, tmp_path, monkeypatch):
    ex.register_backend("fake", lambda **kw: FakeBackend())
    monkeypatch.delenv(uio.MAX_PIXELS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    yield Env(tmp_path, world["synth"], world["run"], world["gen"], monkeypatch)
    ex.unregister_backend("fake")


@dataclass
class Env:
    tmp: Path
    synth: Path
    run: Path
    gen: Path
    mp: pytest.MonkeyPatch

    def dataset(self, name: str = "data") -> Path:
        """A private copy of the tiny data set to break."""
        dst = self.tmp / name
        shutil.copytree(self.synth, dst)
        return dst

    def run_copy(self, name: str = "run") -> Path:
        dst = self.tmp / name
        shutil.copytree(self.run, dst)
        return dst

    def photo(self, name: str = "me.png", size=(120, 60)) -> Path:
        path = self.tmp / name
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(40, 220, (*size, 3), dtype=np.uint8)).save(path)
        return path


@dataclass
class Case:
    argv: list[str]
    code: int
    names: list[object]  # each must appear in the error line (str() of paths)
    absent: list[Path] = field(default_factory=list)
    unchanged: dict[Path, bytes] = field(default_factory=dict)
    #: "err": the one line is on stderr; "report": data check's report (stdout) has one error line
    stream: str = "err"


def bomb_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A few-byte PNG whose header claims ``width`` x ``height`` (a decompression bomb's header)."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    b = bytearray(buf.getvalue())
    b[16:24] = struct.pack(">II", width, height)  # IHDR width, height
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(b))
    return path


def first_image(data: Path, split: str = "train") -> Path:
    return sorted((data / split / "images").iterdir())[0]


def break_coordinate(annotation: Path, value: str, row: int = 1) -> int:
    """Replace the first y coordinate of data row ``row`` by ``value``; returns its line number."""
    lines = annotation.read_text().splitlines()
    name, ys, xs = lines[row].split(":")
    values = ys.strip()[1:-1].split(",")
    values[0] = value
    lines[row] = f"{name}:[{','.join(values)}]:{xs}"
    annotation.write_text("\n".join(lines) + "\n")
    return row + 1


def pose_file(path: Path, first: str = "10") -> Path:
    kp = library_pose("standing_front", SIZE).round().astype(int)
    ys = [first] + [str(v) for v in kp[1:, 0]]
    path.write_text(f"name:keypoints_y:keypoints_x\npose.png:[{','.join(ys)}]:{kp[:, 1].tolist()}\n")
    return path


def read_only(env: Env, folder: Path) -> None:
    """Simulated read-only folder (root ignores chmod): os.access says no for it."""
    real = os.access
    target = str(folder)
    env.mp.setattr(uio.os, "access", lambda p, mode, **kw: False if str(p) == target else real(p, mode, **kw))


def disk_full_on_save(env: Env) -> None:
    """Simulated full disk: PIL's PNG writer raises ENOSPC without naming a file (as write() does)."""

    def full(self, fp, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    env.mp.setattr(Image.Image, "save", full)


CASES = []


def case(fn):
    CASES.append(pytest.param(fn, id=fn.__name__))
    return fn


# ---- the 13 cases of the issue -------------------------------------------------------------------
# 1. a decompression bomb (20000x20000 PNG) in data check, train, transfer, pose extract


@case
def bomb_data_check(env):
    data = env.dataset()
    img = bomb_png(first_image(data))
    return Case(["data", "check", str(data), "--split", "train", "--no-progress"], 1,
                [img, "20000x20000", "pixel"], stream="report")  # fmt: skip


@case
def bomb_train(env):
    data = env.dataset()
    img = bomb_png(first_image(data))
    out = env.tmp / "r"
    return Case(["train", TINY, "--out", str(out), "--no-progress", *_sets(data, 2)], EXIT_BAD_INPUT,
                [img, "over the limit"], absent=[out / "checkpoints"])  # fmt: skip


@case
def bomb_transfer(env):
    src = bomb_png(env.tmp / "huge.png")
    return Case(["transfer", "--checkpoint", str(env.run), "--source", str(src), "--pose", "standing_front",
                 "--out", "o.png"], EXIT_BAD_INPUT, [src, "over the limit"], absent=[env.tmp / "o.png"])  # fmt: skip


@case
def bomb_pose_extract(env):
    src = bomb_png(env.tmp / "huge.png")
    return Case(["pose", "extract", str(src), "--out", "a.csv", "--backend", "fake", "--no-progress"],
                EXIT_BAD_INPUT, [src, "over the limit"], absent=[env.tmp / "a.csv"])  # fmt: skip


# 2. NaN, Infinity, 1e400 as keypoint coordinates (data check, train, data show, transfer)


@case
def nan_data_check(env):
    data = env.dataset()
    line = break_coordinate(data / "train" / "annotation.csv", "NaN")
    return Case(["data", "check", str(data), "--split", "train", "--no-progress"], 1,
                [data / "train" / "annotation.csv", f"line {line}", "non-finite"], stream="report")  # fmt: skip


@case
def infinity_train(env):
    data = env.dataset()
    ann = data / "train" / "annotation.csv"
    line = break_coordinate(ann, "Infinity", row=2)
    out = env.tmp / "r"
    return Case(["train", TINY, "--out", str(out), "--no-progress", *_sets(data, 1)], EXIT_BAD_INPUT,
                [ann, f"line {line}", "non-finite"], absent=[out])  # fmt: skip


@case
def huge_exponent_data_show(env):
    data = env.dataset()
    ann = data / "test" / "annotation.csv"
    line = break_coordinate(ann, "1e400")
    return Case(["data", "show", str(data), "--split", "test", "--out", "s.png"], EXIT_BAD_INPUT,
                [ann, f"line {line}", "non-finite"], absent=[env.tmp / "s.png"])  # fmt: skip


@case
def nan_transfer_pose_file(env):
    pose = pose_file(env.tmp / "pose.csv", "NaN")
    return Case(["transfer", "--checkpoint", str(env.run), "--source", str(env.photo()), "--pose", str(pose),
                 "--out", "o.png"], EXIT_BAD_INPUT, [pose, "line 2", "non-finite"], absent=[env.tmp / "o.png"])  # fmt: skip


# 3. model arguments out of range or of the wrong type; --set optim.betas=[2,3]


@case
def negative_base_channels(env):
    out = env.tmp / "r"
    return Case(["train", TINY, "--out", str(out), *_sets(env.synth, 1, "model.g1.base_channels=-4")],
                EXIT_BAD_INPUT, ["model.g1.base_channels", "-4", "--set"], absent=[out])  # fmt: skip


@case
def word_base_channels(env):
    out = env.tmp / "r"
    return Case(["train", TINY, "--out", str(out), *_sets(env.synth, 1, "model.g1.base_channels=eight")],
                EXIT_BAD_INPUT, ["model.g1.base_channels", "'eight'"], absent=[out])  # fmt: skip


@case
def unknown_pose_embedding(env):
    cfg = env.tmp / "bad.yaml"
    cfg.write_text(Path(TINY).read_text().replace("pose_embedding: concat", "pose_embedding: sideways"))
    out = env.tmp / "r"
    return Case(["train", str(cfg), "--out", str(out), *_sets(env.synth, 1)], EXIT_BAD_INPUT,
                [cfg.name, "model.g1.pose_embedding", "sideways"], absent=[out])  # fmt: skip


@case
def betas_out_of_range(env):
    out = env.tmp / "r"
    return Case(["train", TINY, "--out", str(out), *_sets(env.synth, 1, "optim.betas=[2,3]")],
                EXIT_BAD_INPUT, ["optim.betas", "[0, 1)"], absent=[out])  # fmt: skip


# 4. a model image_size that differs from the data's (train leaves no run folder; generate no output)


@case
def image_size_mismatch_train(env):
    out = env.tmp / "r"
    return Case(["train", TINY, "--out", str(out), *_sets(env.synth, 1, "data.image_size=[128,64]")],
                EXIT_BAD_INPUT, [env.synth / "train" / "images", "64x32", "128x64"], absent=[out])  # fmt: skip


@case
def image_size_mismatch_generate(env):
    big = env.tmp / "big"
    synthesize(big, size=(128, 64), identities=2, views=2, seed=0, progress=False)
    out = env.tmp / "g"
    return Case(["generate", "--checkpoint", str(env.run), "--data", str(big / "test"), "--out", str(out),
                 "--no-progress"], EXIT_BAD_INPUT, [big / "test" / "images", "128x64", "64x32"], absent=[out])  # fmt: skip


# 5. outputs in a read-only folder, onto an existing file or folder, onto a full disk


@case
def read_only_generate(env):
    folder = env.tmp / "ro"
    folder.mkdir()
    read_only(env, folder)
    return Case(["generate", "--checkpoint", str(env.run), "--data", str(env.synth / "test"), "--out",
                 str(folder / "g"), "--no-progress"], EXIT_OS_ERROR, [folder, "permission denied"],
                absent=[folder / "g"])  # fmt: skip


@case
def read_only_evaluate_before_metrics(env):
    folder = env.tmp / "ro"
    folder.mkdir()
    read_only(env, folder)

    def never(*a, **k):
        raise AssertionError("the metrics were computed before the output was checked")

    import posetransfer.evaluation.evaluate as evaluation

    env.mp.setattr(evaluation, "run_evaluation", never)
    return Case(["evaluate", "--generated", str(env.gen), "--data", str(env.synth / "test"), "--out",
                 str(folder / "rep"), "--metrics", "ssim_pg2", "--no-progress"], EXIT_OS_ERROR,
                [folder, "permission denied"], absent=[folder / "rep"])  # fmt: skip


@case
def read_only_transfer(env):
    folder = env.tmp / "ro"
    folder.mkdir()
    read_only(env, folder)
    return Case(["transfer", "--checkpoint", str(env.run), "--source", str(env.photo()), "--pose", "standing_front",
                 "--out", str(folder / "o.png")], EXIT_OS_ERROR, [folder, "permission denied"],
                absent=[folder / "o.png"])  # fmt: skip


@case
def read_only_file_system_pose_extract(env):
    folder = env.tmp / "ro"
    folder.mkdir()

    def erofs(*a, **k):  # simulated read-only file system: creating the probe file fails
        raise OSError(errno.EROFS, "Read-only file system", str(folder / ".probe"))

    env.mp.setattr(uio.tempfile, "mkstemp", erofs)
    return Case(["pose", "extract", str(env.photo()), "--out", str(folder / "a.csv"), "--backend", "fake",
                 "--no-progress"], EXIT_OS_ERROR, [folder, "read-only file system"], absent=[folder / "a.csv"])  # fmt: skip


@case
def read_only_data_prepare(env):
    raw = env.tmp / "raw" / "alice"
    raw.mkdir(parents=True)
    env.photo("raw/alice/a.png")
    folder = env.tmp / "ro"
    folder.mkdir()
    read_only(env, folder)
    return Case(["data", "prepare", str(env.tmp / "raw"), "--out", str(folder / "ds"), "--size", "64x32",
                 "--backend", "fake", "--no-progress"], EXIT_OS_ERROR, [folder, "permission denied"],
                absent=[folder / "ds"])  # fmt: skip


@case
def read_only_train(env):
    folder = env.tmp / "ro"
    folder.mkdir()
    read_only(env, folder)
    return Case(["train", TINY, "--out", str(folder / "run"), "--no-progress", *_sets(env.synth, 1)], EXIT_OS_ERROR,
                [folder, "permission denied"], absent=[folder / "run"])  # fmt: skip


@case
def read_only_data_show(env):
    folder = env.tmp / "ro"
    folder.mkdir()
    read_only(env, folder)
    return Case(["data", "show", str(env.synth), "--split", "test", "--out", str(folder / "s.png")], EXIT_OS_ERROR,
                [folder, "permission denied"], absent=[folder / "s.png"])  # fmt: skip


@case
def existing_file_data_show(env):
    out = env.tmp / "s.png"
    out.write_bytes(b"mine")
    return Case(["data", "show", str(env.synth), "--split", "test", "--out", str(out)], EXIT_BAD_INPUT,
                [out, "already exists", "--overwrite"], unchanged={out: b"mine"})  # fmt: skip


@case
def folder_as_file_transfer(env):
    out = env.tmp / "o.png"
    out.mkdir()
    return Case(["transfer", "--checkpoint", str(env.run), "--source", str(env.photo()), "--pose", "standing_front",
                 "--out", str(out)], EXIT_BAD_INPUT, [out, "is a folder"])  # fmt: skip


@case
def file_as_folder_generate(env):
    out = env.tmp / "g"
    out.write_bytes(b"mine")
    return Case(["generate", "--checkpoint", str(env.run), "--data", str(env.synth / "test"), "--out", str(out),
                 "--no-progress"], EXIT_BAD_INPUT, [out, "not a folder"], unchanged={out: b"mine"})  # fmt: skip


@case
def file_as_folder_evaluate(env):
    out = env.tmp / "rep"
    out.write_bytes(b"mine")
    return Case(["evaluate", "--generated", str(env.gen), "--data", str(env.synth / "test"), "--out", str(out),
                 "--metrics", "ssim_pg2", "--no-progress"], EXIT_BAD_INPUT, [out, "not a folder"],
                unchanged={out: b"mine"})  # fmt: skip


@case
def existing_file_pose_extract(env):
    out = env.tmp / "a.csv"
    out.write_bytes(b"mine")
    return Case(["pose", "extract", str(env.photo()), "--out", str(out), "--backend", "fake", "--no-progress"],
                EXIT_BAD_INPUT, [out, "already exists"], unchanged={out: b"mine"})  # fmt: skip


@case
def under_a_file_data_show(env):
    blocker = env.tmp / "file"
    blocker.write_bytes(b"mine")
    return Case(["data", "show", str(env.synth), "--split", "test", "--out", str(blocker / "s.png")], EXIT_OS_ERROR,
                [blocker, "not a folder"], unchanged={blocker: b"mine"})  # fmt: skip


@case
def disk_full_data_show(env):
    disk_full_on_save(env)
    out = env.tmp / "s.png"
    return Case(["data", "show", str(env.synth), "--split", "test", "--out", str(out)], EXIT_DISK_FULL,
                [out, "no space left on device"], absent=[out])  # fmt: skip


@case
def disk_full_generate(env):
    disk_full_on_save(env)
    out = env.tmp / "g"
    return Case(["generate", "--checkpoint", str(env.run), "--data", str(env.synth / "test"), "--out", str(out),
                 "--limit", "1", "--no-progress"], EXIT_DISK_FULL, [out, "no space left on device"])  # fmt: skip


@case
def disk_full_transfer(env):
    src = env.photo()
    disk_full_on_save(env)
    out = env.tmp / "o.png"
    return Case(["transfer", "--checkpoint", str(env.run), "--source", str(src), "--pose", "standing_front",
                 "--out", str(out)], EXIT_DISK_FULL, [out, "no space left on device"], absent=[out])  # fmt: skip


def disk_full_on_text(env: Env) -> None:
    """Simulated full disk for text files (annotation, JSON, HTML): write_text raises a nameless ENOSPC."""

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    env.mp.setattr(Path, "write_text", full)


@case
def disk_full_pose_extract(env):
    src = env.photo()
    disk_full_on_text(env)
    out = env.tmp / "a.csv"
    return Case(["pose", "extract", str(src), "--out", str(out), "--backend", "fake", "--no-progress"],
                EXIT_DISK_FULL, [out, "no space left on device"], absent=[out])  # fmt: skip


@case
def disk_full_evaluate(env):
    disk_full_on_text(env)
    out = env.tmp / "rep"
    return Case(["evaluate", "--generated", str(env.gen), "--data", str(env.synth / "test"), "--out", str(out),
                 "--metrics", "ssim_pg2", "--no-progress"], EXIT_DISK_FULL, [out, "no space left on device"],
                absent=[out / "metrics.json"])  # fmt: skip


@case
def disk_full_during_checkpoint(env):
    """A full disk while a checkpoint is written: 'no space left on device: <file>', no half-written
    checkpoint, the previous one still the latest (not torch's inline_container.cc message)."""
    run = env.run_copy()
    latest = (run / "checkpoints" / "latest").read_bytes()
    real_open = open

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    def fake_open(path, mode="r", *a, **k):
        f = real_open(path, mode, *a, **k)
        return Full(f) if "w" in mode and str(path).endswith(".safetensors") else f

    env.mp.setattr(ck, "open", fake_open, raising=False)
    return Case(["train", "--resume", str(run), "--no-progress", "--set", "train.iterations=3"], EXIT_DISK_FULL,
                [run / "checkpoints" / "step_0000003" / "g1.safetensors", "no space left on device"],
                absent=[run / "checkpoints" / "step_0000003"], unchanged={run / "checkpoints" / "latest": latest})  # fmt: skip


# 6. a non-UTF-8 file name given to pose extract; data prepare --identity '('


@case
def non_utf8_file_name_pose_extract(env):
    raw = os.fsencode(env.tmp) + b"/caf\xe9.png"
    with open(raw, "wb") as fh:
        Image.new("RGB", (60, 120), (90, 120, 150)).save(fh, "PNG")
    path = os.fsdecode(raw)
    return Case(["pose", "extract", path, "--out", "a.csv", "--backend", "fake", "--no-progress"], EXIT_BAD_INPUT,
                ["caf\\xe9.png", "not valid UTF-8"], absent=[env.tmp / "a.csv"])  # fmt: skip


@case
def bad_identity_regex(env):
    raw = env.tmp / "raw"
    raw.mkdir()
    env.photo("raw/a.png")
    return Case(["data", "prepare", str(raw), "--out", "ds", "--size", "64x32", "--identity", "(",
                 "--backend", "fake", "--no-progress"], EXIT_BAD_INPUT, ["--identity", "regular expression"],
                absent=[env.tmp / "ds"])  # fmt: skip


# 7. a 1x1 image in a data set: train blames that image, not a correct one


@case
def one_pixel_image_train(env):
    data = env.dataset()
    img = first_image(data)
    Image.new("RGB", (1, 1)).save(img)
    out = env.tmp / "r"
    return Case(["train", TINY, "--out", str(out), "--no-progress", *_sets(data, 2)], EXIT_BAD_INPUT,
                [img, "1x1", "expected 64x32"], absent=[out / "checkpoints"])  # fmt: skip


@case
def truncated_image_train_with_workers(env):
    """A truncated image (its header reads, so the pre-run scan passes it) found when a DataLoader
    worker process loads it: torch re-raises the worker's DataError as a RuntimeError, and the
    boundary still prints the one line; checkpoints written before it stay complete."""
    data = env.dataset()
    img = first_image(data)
    raw = img.read_bytes()
    img.write_bytes(raw[: len(raw) // 2])  # truncated: the header reads, the pixels do not
    out = env.tmp / "r"
    steps = 12  # more than an epoch: every image is loaded
    return Case(["train", TINY, "--out", str(out), "--no-progress", *_sets(data, steps, "train.num_workers=1")],
                EXIT_BAD_INPUT, [img, "unreadable image"], absent=[out / "checkpoints" / ck.step_dirname(steps)])  # fmt: skip


# 8-10. data destroyed without asking: train on an existing run, latest pointing at another run,
# data synth onto an existing data set, data pairs onto its own annotation file


@case
def train_existing_run_without_resume(env):
    run = env.run_copy()
    latest = (run / "checkpoints" / "latest").read_bytes()
    return Case(["train", TINY, "--out", str(run), "--no-progress", *_sets(env.synth, 4)], EXIT_BAD_INPUT,
                [run, "--resume"], unchanged={run / "checkpoints" / "latest": latest},
                absent=[run / "checkpoints" / "step_0000003"])  # fmt: skip


@case
def latest_points_at_another_run(env):
    run = env.run_copy()
    (run / "checkpoints" / "latest").write_text(f"{env.run / 'checkpoints' / 'step_0000002'}\n")
    return Case(["train", "--resume", str(run), "--no-progress", "--set", "train.iterations=4"], EXIT_BAD_INPUT,
                [run / "checkpoints" / "latest", "refusing"], absent=[run / "checkpoints" / "step_0000003"])  # fmt: skip


@case
def latest_through_a_link_out_of_the_run(env):
    run = env.run_copy()
    other = env.run_copy("other")
    os.symlink(other / "checkpoints" / "step_0000002", run / "checkpoints" / "step_0000009")
    (run / "checkpoints" / "latest").write_text("step_0000009\n")
    return Case(["generate", "--checkpoint", str(run), "--data", str(env.synth / "test"), "--out", "g",
                 "--no-progress"], EXIT_BAD_INPUT, [run / "checkpoints" / "latest", "link"],
                absent=[env.tmp / "g"])  # fmt: skip


@case
def data_synth_onto_existing(env):
    data = env.dataset()
    before = (data / "train" / "annotation.csv").read_bytes()
    return Case(["data", "synth", "--out", str(data), "--size", "64x32", "--identities", "2", "--views", "2",
                 "--no-progress"], EXIT_BAD_INPUT, [data, "--overwrite"],
                unchanged={data / "train" / "annotation.csv": before})  # fmt: skip


@case
def data_pairs_onto_its_annotation(env):
    data = env.dataset()
    ann = data / "train" / "annotation.csv"
    return Case(["data", "pairs", str(ann), "--out", str(ann), "--overwrite"], EXIT_BAD_INPUT,
                [ann, "input annotation"], unchanged={ann: ann.read_bytes()})  # fmt: skip


# ---- more bad inputs --------------------------------------------------------------------------


@case
def absurd_coordinate_data_pairs(env):
    data = env.dataset()
    ann = data / "train" / "annotation.csv"
    line = break_coordinate(ann, "1000000000")
    return Case(["data", "pairs", str(ann), "--out", "p.csv"], EXIT_BAD_INPUT, [ann, f"line {line}", "absurd"],
                absent=[env.tmp / "p.csv"])  # fmt: skip


@case
def huge_integer_coordinate_data_pairs(env):
    data = env.dataset()
    ann = data / "train" / "annotation.csv"
    line = break_coordinate(ann, "1" + "0" * 400)
    return Case(["data", "pairs", str(ann), "--out", "p.csv"], EXIT_BAD_INPUT, [ann, f"line {line}", "absurd"],
                absent=[env.tmp / "p.csv"])  # fmt: skip


@case
def pixel_limit_configured_low(env):
    env.mp.setenv(uio.MAX_PIXELS_ENV, "100")
    src = env.photo()
    return Case(["transfer", "--checkpoint", str(env.run), "--source", str(src), "--pose", "standing_front",
                 "--out", "o.png"], EXIT_BAD_INPUT, [src, "120x60", "limit of 100"],
                absent=[env.tmp / "o.png"])  # fmt: skip


@case
def pixel_limit_not_a_number(env):
    env.mp.setenv(uio.MAX_PIXELS_ENV, "lots")
    return Case(["transfer", "--checkpoint", str(env.run), "--source", str(env.photo()), "--pose", "standing_front",
                 "--out", "o.png"], EXIT_BAD_INPUT, [uio.MAX_PIXELS_ENV, "lots"], absent=[env.tmp / "o.png"])  # fmt: skip


@case
def truncated_png_source(env):
    src = env.photo()
    src.write_bytes(src.read_bytes()[:60])
    return Case(["transfer", "--checkpoint", str(env.run), "--source", str(src), "--pose", "standing_front",
                 "--out", "o.png"], EXIT_BAD_INPUT, [src, "image"], absent=[env.tmp / "o.png"])  # fmt: skip


@case
def missing_config(env):
    return Case(["train", str(env.tmp / "nope.yaml"), "--out", "r"], EXIT_BAD_INPUT,
                [env.tmp / "nope.yaml", "does not exist"], absent=[env.tmp / "r"])  # fmt: skip


@case
def missing_checkpoint(env):
    return Case(["generate", "--checkpoint", str(env.tmp / "nothing"), "--data", str(env.synth / "test"),
                 "--out", "g"], EXIT_BAD_INPUT, [env.tmp / "nothing", "does not exist"], absent=[env.tmp / "g"])  # fmt: skip


@case
def wrong_annotation_header_data_pairs(env):
    ann = env.tmp / "a.csv"
    ann.write_text("name,x,y\n")
    return Case(["data", "pairs", str(ann), "--out", "p.csv"], EXIT_BAD_INPUT, [ann, "header"],
                absent=[env.tmp / "p.csv"])  # fmt: skip


@case
def pairs_file_with_three_fields(env):
    data = env.dataset()
    pairs = data / "test" / "pairs.csv"
    pairs.write_text("from,to\na.png,b.png,c.png\n")
    return Case(["data", "show", str(data), "--split", "test", "--out", "s.png"], EXIT_BAD_INPUT,
                [pairs, "line 2"], absent=[env.tmp / "s.png"])  # fmt: skip


@case
def study_export_onto_existing(env):
    out = env.tmp / "study"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    return Case(["study", "export", "--real", str(env.synth / "test" / "images"), "--generated", str(env.gen),
                 "--out", str(out), "--n-real", "1", "--n-generated", "1"], EXIT_BAD_INPUT,
                [out, "--overwrite"], unchanged={out / "keep.txt": b"mine"})  # fmt: skip


@case
def pose_library_onto_existing(env):
    out = env.tmp / "poses.csv"
    out.write_bytes(b"mine")
    return Case(["pose", "library", "--size", "64x32", "--out", str(out)], EXIT_BAD_INPUT, [out, "already exists"],
                unchanged={out: b"mine"})  # fmt: skip


@case
def resume_with_no_complete_checkpoint(env):
    run = env.run_copy()
    for step in ck.step_folders(run):
        (step / ck.STATE_FILE).unlink()
    (run / "checkpoints" / "latest").unlink()
    return Case(["train", "--resume", str(run), "--no-progress", "--set", "train.iterations=4"], EXIT_BAD_INPUT,
                [run / "checkpoints", "none complete"], absent=[run / "checkpoints" / "step_0000003"])  # fmt: skip


@case
def resume_with_a_changed_model(env):
    run = env.run_copy()
    return Case(["train", "--resume", str(run), "--no-progress", "--set", "model.g1.z_dim=8"], EXIT_BAD_INPUT,
                ["model.json", "network 'g1' was built with", "'z_dim': 16"],
                absent=[run / "checkpoints" / "step_0000003"])  # fmt: skip


# ---- the failure families the boundary maps (faults injected into a command) -----------------


def _inject(env, exc):
    import posetransfer.commands.data as data_cmd

    def boom(args):
        raise exc

    env.mp.setattr(data_cmd, "_check", boom)
    # argparse bound the handler at build time: patch what build_parser will bind
    return ["data", "check", str(env.synth)]


@case
def interrupted(env):
    return Case(_inject(env, KeyboardInterrupt()), EXIT_INTERRUPTED, ["interrupted"])


@case
def host_out_of_memory(env):
    return Case(_inject(env, MemoryError()), EXIT_OUT_OF_MEMORY, ["out of memory"])


@case
def cuda_out_of_memory(env):
    import torch

    return Case(_inject(env, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")),
                EXIT_OUT_OF_MEMORY, ["out of memory", "CUDA"])  # fmt: skip


@case
def permission_denied_reading(env):
    return Case(_inject(env, PermissionError(errno.EACCES, "Permission denied", "/data/secret.csv")), EXIT_OS_ERROR,
                ["/data/secret.csv", "permission denied"])  # fmt: skip


@case
def decompression_bomb_from_pil(env):
    return Case(_inject(env, Image.DecompressionBombError("Image size (400000000 pixels) exceeds limit")),
                EXIT_BAD_INPUT, ["pixel limit", "400000000"])  # fmt: skip


# ---- the test ---------------------------------------------------------------------------------


def _temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.startswith((".tmp-", ".old-"))]


def test_corpus_has_the_issue_cases():
    assert len(CASES) >= 40


@pytest.mark.parametrize("build", CASES)
def test_bad_input_gives_one_line(build, env, capsys):
    c = build(env)
    code = main(c.argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code == c.code, err or out
    if c.stream == "report":
        lines = [line for line in out.splitlines() if line.startswith("error:")]
        assert len(lines) == 1, out
    else:
        # progress notes may come first (evaluate logs its steps); the error is one line, the last
        lines = [line for line in err.strip().splitlines() if line.startswith("posetransfer ")]
        assert len(lines) == 1 and err.strip().splitlines()[-1] == lines[0], err
        assert lines[0].startswith(f"posetransfer {c.argv[0]}: "), lines[0]
        assert ": error: " in lines[0] or code == EXIT_INTERRUPTED
    for name in c.names:
        assert str(name) in lines[0], (name, lines[0])
    for path in c.absent:
        assert not path.exists(), path
    for path, data in c.unchanged.items():
        assert path.read_bytes() == data, path
    assert not _temporaries(env.tmp)


def test_a_bug_keeps_its_traceback_and_debug_shows_expected_ones(env, capsys):
    import posetransfer.commands.data as data_cmd

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(data_cmd, "_check", lambda args: 1 // 0)
        with pytest.raises(ZeroDivisionError):
            main(["data", "check", str(env.synth)])
    capsys.readouterr()
    assert main(["--debug", "data", "check", str(env.tmp / "none")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("posetransfer data: error: ")


def test_help_lists_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for code in (EXIT_BAD_INPUT, EXIT_OS_ERROR, EXIT_DISK_FULL, EXIT_OUT_OF_MEMORY, EXIT_INTERRUPTED, EXIT_TERMINATED):
        assert f"\n  {code} " in out


def test_resume_without_latest_and_changed_settings(env, capsys):
    """`latest` deleted: --resume continues from the newest complete checkpoint (no restart from
    step 0 over the old ones) and warns about each changed setting."""
    run = env.run_copy()
    (run / "checkpoints" / "latest").unlink()
    before = (run / "checkpoints" / "step_0000001" / "g1.safetensors").read_bytes()
    code = main(["train", "--resume", str(run), "--no-progress", "--set", "train.iterations=3",
                 "--set", "train.seed=5", "--set", "optim.lr=0.002"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert "latest is missing; resuming from the newest complete checkpoint step_0000002" in err
    for key in ("train.seed", "optim.lr", "train.iterations"):
        assert f"--resume: {key} changed" in err
    assert (run / "checkpoints" / "step_0000001" / "g1.safetensors").read_bytes() == before
    assert ck.latest_checkpoint(run).name == "step_0000003"


def test_leftovers_of_an_interrupted_checkpoint_write_are_cleaned(env, capsys):
    run = env.run_copy()
    root = run / "checkpoints"
    (root / ".tmp-step_0000003-abc").mkdir()
    (root / ".tmp-step_0000003-abc" / "g1.safetensors").write_bytes(b"half")
    # killed between the two renames of a re-save of step 2: the step lives only in .old-*
    old = root / ".old-step_0000002-xyz"
    old.mkdir()
    os.replace(root / "step_0000002", old / "step_0000002")
    (root / ".latest.k2j3.tmp").write_text("step_0000003")
    assert main(["train", "--resume", str(run), "--no-progress", "--set", "train.iterations=3"]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_0000001", "step_0000002", "step_0000003"]


def test_identical_runs_write_identical_checkpoints_with_the_umask(env):
    old = os.umask(0o022)
    try:
        a, b = env.tmp / "a", env.tmp / "b"
        for run in (a, b):
            assert main(["train", TINY, "--out", str(run), "--no-progress", *_sets(env.synth, 1)]) == 0
    finally:
        os.umask(old)
    for name in ("g1.safetensors", "model.json", "config.json"):
        assert (a / "checkpoints/step_0000001" / name).read_bytes() == (b / "checkpoints/step_0000001" / name).read_bytes()
    assert (a / "checkpoints" / "step_0000001").stat().st_mode & 0o777 == 0o755
    assert (a / "checkpoints" / "step_0000001" / "g1.safetensors").stat().st_mode & 0o777 == 0o644
    assert (a / "checkpoints" / "latest").stat().st_mode & 0o777 == 0o644


def test_safetensors_header_is_canonical():
    import json

    import torch
    from safetensors.torch import load

    data = ck.safetensors_canonical({"b": torch.ones(2), "a": torch.zeros(3)}, {"network": "g1", "class": "x.G1"})
    n = int.from_bytes(data[:8], "little")
    header = data[8 : 8 + n].decode().rstrip()
    assert header == json.dumps(json.loads(header), separators=(",", ":"), sort_keys=True)
    assert list(json.loads(header)["__metadata__"]) == ["class", "network"]
    out = load(data)
    assert torch.equal(out["a"], torch.zeros(3)) and torch.equal(out["b"], torch.ones(2))


def test_overwrite_replaces(env, capsys):
    out = env.tmp / "s.png"
    out.write_bytes(b"mine")
    assert main(["data", "show", str(env.synth), "--split", "test", "--out", str(out), "--overwrite", "--n", "1"]) == 0
    capsys.readouterr()
    assert Image.open(out).size[0] > 0


def test_worker_errors_keep_their_line():
    """torch re-raises a worker's exception as ``type(err)(text)`` or, for DataError (whose
    constructor takes a path and a problem), as a RuntimeError holding the worker's traceback:
    the boundary recovers the project's one line from it."""
    from torch._utils import ExceptionWrapper

    from posetransfer.cli import classify_error
    from posetransfer.errors import ConfigError, DataError

    for raised, line in ((DataError("a/b.png", "unreadable image (truncated)"), "a/b.png: unreadable image (truncated)"),
                         (ConfigError("c.yaml: bad"), "c.yaml: bad")):  # fmt: skip
        try:
            raise raised
        except Exception:  # noqa: BLE001
            wrapper = ExceptionWrapper(where="in DataLoader worker process 0")
        with pytest.raises(Exception) as info:
            wrapper.reraise()
        assert classify_error(info.value) == (EXIT_BAD_INPUT, line)


def test_prepared_data_set_gets_the_umask(env, capsys):
    raw = env.tmp / "raw"
    for person in ("alice", "bob"):
        (raw / person).mkdir(parents=True)
        for i in range(2):
            env.photo(f"raw/{person}/{i}.png")
    old = os.umask(0o022)
    try:
        code = main(["data", "prepare", str(raw), "--out", "ds", "--size", "64x32", "--backend", "fake",
                     "--test-fraction", "0.5", "--no-progress"])  # fmt: skip
    finally:
        os.umask(old)
    assert code == 0, capsys.readouterr().err
    ds = env.tmp / "ds"
    assert ds.stat().st_mode & 0o777 == 0o755
    files = [p for p in ds.rglob("*") if p.is_file()]
    assert files and all(p.stat().st_mode & 0o777 == 0o644 for p in files)


def test_data_synth_overwrite_replaces_its_own_data_set(env, capsys):
    out = env.tmp / "people"
    args = ["data", "synth", "--out", str(out), "--size", "64x32", "--identities", "2", "--views", "2", "--no-progress"]
    assert main(args) == 0
    assert main([*args, "--seed", "1"]) == EXIT_BAD_INPUT
    assert main([*args, "--seed", "1", "--overwrite"]) == 0
    capsys.readouterr()
    assert len(list((out / "train" / "images").iterdir())) + len(list((out / "test" / "images").iterdir())) == 4


def test_network_constructors_check_their_arguments_first():
    from posetransfer.errors import ConfigError, ModelConfigError
    from posetransfer.models.multiview import MultiViewGenerator
    from posetransfer.models.pg2 import G1, G2

    cases = [
        (lambda: G1(base_channels=-4), "base_channels must be an integer >= 1, got -4"),
        (lambda: G1(base_channels="eight"), "got 'eight' (str)"),
        (lambda: G1(base_channels=True), "got True (bool)"),
        (lambda: G1(pose_embedding="sideways"), "pose_embedding must be one of concat"),
        (lambda: G1(image_size=[64]), "two positive ints"),
        (lambda: G2(top_skip="yes"), "top_skip must be true or false"),
        (lambda: MultiViewGenerator(n_res=-1), "n_res must be an integer >= 0"),
        (lambda: MultiViewGenerator(init_gain=float("nan")), "init_gain must be a finite number"),
        (lambda: MultiViewGenerator(norm="layer"), "unknown norm 'layer'"),
    ]
    for build, message in cases:
        with pytest.raises(ModelConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
            build()
        assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)
