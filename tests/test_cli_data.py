"""``posetransfer data {check,show,pairs,synth}`` through ``posetransfer.cli.main``."""

from __future__ import annotations

import argparse

import pytest
from _helpers import copy_plain_subset

from posetransfer.cli import main
from posetransfer.commands._args import size_hw as parse_size
from posetransfer.data.layouts import identity_of
from posetransfer.pose.io import (
    read_annotations,
    read_pairs,
    write_annotations,
)
from posetransfer.utils.io import read_image


def test_check_clean_real_mini(mini_fashion, capsys):
    assert main(["data", "check", str(mini_fashion), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "images: 245 (245 readable), size 256x176 (height x width)" in out
    assert "annotated: 245, pairs: 130, identities: 117" in out
    assert out.rstrip().endswith("OK: 0 errors, 0 warnings, 0 notes")


def test_check_broken_copy_one_line_per_problem(tmp_path, mini_market, capsys):
    names = copy_plain_subset(mini_market, tmp_path, n=6, both_ways=False)
    bad = tmp_path / "images" / names[1]
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(pairs.read_text() + f"{names[0]},ghost.png\n")
    assert main(["data", "check", str(tmp_path), "--no-progress"]) == 1
    lines = capsys.readouterr().out.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 2
    assert errors[0].startswith(f"error: {bad}: not an image")
    assert errors[1] == f"error: {pairs}, line 3: image 'ghost.png' is not in the annotation annotation.csv"
    assert lines[-1].startswith("FAILED: 2 errors")


def test_check_strict_exit_code(tmp_path, mini_market, capsys):
    names = copy_plain_subset(mini_market, tmp_path, n=6, both_ways=False)
    ann = tmp_path / "annotation.csv"
    # rewrite the first row so its nose sits at y = 200 (below the 128-row frame)
    rows = ann.read_text().splitlines()
    row = read_annotations(mini_market / "annotation.csv")[names[0]].astype(int)
    ys, xs = row[:, 0].tolist(), row[:, 1].tolist()
    ys[0], xs[0] = 200, 10
    rows[1] = f"{names[0]}:{ys}:{xs}"
    ann.write_text("\n".join(rows) + "\n")
    assert main(["data", "check", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"warning: {ann}, line 2: {names[0]}: keypoints outside the 128x64 frame: nose (y=200, x=10)" in out
    assert main(["data", "check", str(tmp_path), "--no-progress", "--strict"]) == 1
    assert f"error: {ann}, line 2: " in capsys.readouterr().out


def test_check_not_a_dataset_is_a_one_line_error(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "nothing"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"posetransfer data: error: {tmp_path / 'nothing'}: data set folder does not exist"


def test_show_writes_a_png(tmp_path, mini_market, capsys):
    out = tmp_path / "grid.png"
    assert main(["data", "show", str(mini_market), "--n", "3", "--seed", "1", "--out", str(out)]) == 0
    grid = read_image(out)
    # 3 rows of 4 images 128x64 enlarged x2, 2 px padding, a label header
    assert grid.shape[1] == 4 * 128 + 5 * 2
    assert 3 * 256 + 4 * 2 < grid.shape[0] < 3 * 256 + 4 * 2 + 40
    assert "wrote 3 pairs" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]  # no temporary file left


def test_show_without_pairs_file_uses_generated_pairs(tmp_path, mini_market):
    names = copy_plain_subset(mini_market, tmp_path, n=6, both_ways=False)
    (tmp_path / "pairs.csv").unlink()
    assert identity_of(names[0]) == identity_of(names[1])
    out = tmp_path / "grid.png"
    assert main(["data", "show", str(tmp_path), "--n", "2", "--scale", "1", "--out", str(out)]) == 0
    assert read_image(out).shape[1] == 4 * 64 + 5 * 2


def test_pairs_command(tmp_path, mini_market, capsys):
    out = tmp_path / "pairs.csv"
    ann = mini_market / "annotation.csv"
    assert main(["data", "pairs", str(ann), "--out", str(out), "--seed", "2", "--max-pairs", "50"]) == 0
    pairs = read_pairs(out)
    assert len(pairs) == 50 and all(identity_of(a) == identity_of(b) for a, b in pairs)
    assert "wrote 50 pairs" in capsys.readouterr().out
    # one photo per identity: nothing to pair
    single = tmp_path / "single.csv"
    one = read_annotations(ann)
    write_annotations(single, {n: one[n] for n in list(one)[:1]})
    assert main(["data", "pairs", str(single), "--out", str(tmp_path / "none.csv")]) == 2
    assert "no identity has two or more photos" in capsys.readouterr().err
    assert not (tmp_path / "none.csv").exists()


@pytest.mark.parametrize("text, size", [("128x64", (128, 64)), ("256X176", (256, 176)), (" 32 x 16 ", (32, 16))])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["128", "128x", "x64", "128*64", "0x64", "-128x64", "128x64x3", "1.5x2"])
def test_parse_size_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected HEIGHTxWIDTH"):
        parse_size(text)


def test_synth_bad_size_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["data", "synth", "--out", str(tmp_path / "s"), "--size", "128by64"])
    assert exc.value.code == 2
    assert "invalid size '128by64'" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_synth_then_check(tmp_path, capsys):
    pytest.importorskip("posetransfer.data.synth")
    out = tmp_path / "syn"
    args = ["data", "synth", "--out", str(out), "--size", "64x32", "--identities", "4", "--views", "3",
            "--seed", "1", "--test-fraction", "0.25", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"wrote a synthetic data set to {out}" in printed
    assert main(["data", "check", str(out), "--split", "train", "--no-progress"]) == 0
    assert "size 64x32 (height x width)" in capsys.readouterr().out
    assert main(["data", "check", str(out), "--no-progress"]) == 2  # two splits: must choose
    assert "--split" in capsys.readouterr().err


# -- picture helpers behind `data show` (posetransfer.utils.viz) ------------------------------------


def test_to_uint8_layouts_and_range():
    import numpy as np
    import torch

    from posetransfer.utils.viz import to_uint8

    chw = torch.tensor([-1.0, 0.0, 1.0, 2.0]).reshape(1, 1, 4).repeat(3, 2, 1)  # 3 x 2 x 4
    out = to_uint8(chw)
    assert out.shape == (2, 4, 3) and out.dtype == np.uint8
    assert out[0, :, 0].tolist() == [0, 128, 255, 255]  # -1 -> 0, 0 -> 127.5 rounds to 128, clipped
    np.testing.assert_array_equal(to_uint8(chw.permute(1, 2, 0).numpy()), out)  # HWC gives the same
    gray = to_uint8(np.zeros((5, 6), np.float32))
    assert gray.shape == (5, 6, 3) and (gray == 128).all()
    u8 = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    np.testing.assert_array_equal(to_uint8(u8), u8)
    with pytest.raises(ValueError):
        to_uint8(np.zeros((2, 3, 4, 5)))


def test_overlay_mask_and_skeleton():
    import numpy as np

    from posetransfer.pose.schema import empty_pose
    from posetransfer.pose.draw import draw_skeleton
    from posetransfer.utils.viz import overlay_mask

    image = np.zeros((4, 4, 3), np.uint8)
    mask = np.zeros((1, 4, 4), np.float32)
    mask[0, :2] = 1
    out = overlay_mask(image, mask, color=(200, 100, 0), alpha=0.5)
    assert out[:2].reshape(-1, 3).tolist() == [[100, 50, 0]] * 8
    assert (out[2:] == 0).all()
    with pytest.raises(ValueError):
        overlay_mask(image, np.zeros((3, 3)))

    canvas = np.zeros((64, 32, 3), np.uint8)
    kp = empty_pose()
    kp[1] = (10, 16)  # neck
    kp[8] = (50, 16)  # right hip: the neck-hip limb is a vertical line at x = 16
    drawn = draw_skeleton(canvas, kp)
    assert (canvas == 0).all()  # the input is not modified
    assert drawn[30, 16].any() and not drawn[30, 2].any() and not drawn[60, 30].any()


def test_make_grid_layout_and_labels():
    import numpy as np

    from posetransfer.utils.viz import make_grid

    a = np.zeros((4, 3, 3), np.uint8)
    b = np.full((4, 5, 3), 7, np.uint8)
    grid = make_grid([[a, b], [b]], pad=1)
    assert grid.shape == (1 + 4 + 1 + 4 + 1, 1 + 5 + 1 + 5 + 1, 3)  # columns as wide as their widest cell
    assert (grid[1:5, 1:4] == 0).all() and (grid[1:5, 4:6] == 255).all() and (grid[1:5, 7:12] == 7).all()
    assert (grid[6:10, 1:6] == 7).all() and (grid[6:10, 7:12] == 255).all()  # short row: blank cell
    labelled = make_grid([[b, b]], pad=1, labels=["src", "tgt"], label_height=12)
    assert labelled.shape == (1 + 12 + 4 + 1, 13, 3)
    assert (labelled[1:13] < 255).any()  # some ink in the header
    with pytest.raises(ValueError, match="different heights"):
        make_grid([[a, np.zeros((5, 3, 3), np.uint8)]])
