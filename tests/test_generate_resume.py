"""``posetransfer generate --resume``: an interrupted generation continues where it stopped, and
its files equal an uninterrupted run's; what is already there (whole, as every file is written
atomically) is not generated again."""

from __future__ import annotations

import os

import pytest

from _helpers import save_tiny_g1_checkpoint
from posetransfer.cli import main
from posetransfer.data.synth import synthesize
from posetransfer.inference.generate import output_name


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    synthesize(root / "data", size=(32, 16), identities=4, views=3, seed=0, progress=False)
    run = save_tiny_g1_checkpoint(root / "run", (32, 16))
    return root, run


def _generate(run, data, out, *extra):
    return main(["generate", "--checkpoint", str(run), "--data", str(data / "train"), "--out", str(out),
                 "--limit", "10", "--grid-rows", "4", "--batch-size", "3", "--no-progress", "--device", "cpu", *extra])  # fmt: skip


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def test_resume_regenerates_only_the_unfinished_groups(setup, tmp_path, capsys):
    root, run = setup
    full = tmp_path / "full"
    assert _generate(run, root / "data", full) == 0
    want = _files(full)
    assert len([k for k in want if not k.startswith("grids/")]) == 10
    assert sorted(k for k in want if k.startswith("grids/")) == ["grids/grid_000.png", "grids/grid_001.png", "grids/grid_002.png"]

    # an interruption: group 1 lost a pair's PNG, group 2 its grid (the last pairs were not reached)
    part = tmp_path / "part"
    part.mkdir()
    for name, data in want.items():
        (part / name).parent.mkdir(parents=True, exist_ok=True)
        (part / name).write_bytes(data)
    pngs = sorted(k for k in want if not k.startswith("grids/"))
    from posetransfer.data.datasets import PairDataset

    ds = PairDataset(root / "data" / "train")
    order = [output_name(*ds.item_names(i)) for i in range(10)]
    assert sorted(order) == pngs
    (part / order[5]).unlink()
    (part / "grids" / "grid_002.png").unlink()
    for name in order[8:]:
        (part / name).unlink()
    os.utime(part / order[0], (1, 1))  # group 0 is untouched by the resume
    capsys.readouterr()

    assert _generate(run, root / "data", part) == 2  # a folder that holds files: refused without --resume
    assert "--overwrite" in capsys.readouterr().err
    assert _generate(run, root / "data", part, "--resume") == 0
    out = capsys.readouterr().out
    assert "wrote 6 images and 2 grids" in out and "(4 already there)" in out
    assert _files(part) == want
    assert (part / order[0]).stat().st_mtime == 1

    assert _generate(run, root / "data", part, "--resume") == 0  # nothing left to do
    assert "wrote 0 images and 0 grids" in capsys.readouterr().out and _files(part) == want
