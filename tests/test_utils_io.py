"""utils.io: atomic writes and image reading with clear errors."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from PIL import Image

from posetransfer.errors import DataError
from posetransfer.utils.io import atomic_path, atomic_write_text, read_image, save_image


def test_atomic_write_replaces_and_uses_normal_permissions(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in path.parent.iterdir()] == ["out.txt"]


def test_atomic_path_leaves_old_file_on_error(tmp_path):
    path = tmp_path / "keep.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_read_image_modes_and_errors(tmp_path):
    rgb = np.zeros((8, 4, 3), np.uint8)
    rgb[..., 0] = 200
    save_image(tmp_path / "a.png", rgb)
    assert np.array_equal(read_image(tmp_path / "a.png", (8, 4)), rgb)
    # 16-bit gray is scaled to 8 bits and repeated to RGB
    Image.fromarray(np.full((8, 4), 65535, np.uint16)).save(tmp_path / "g16.png")
    assert read_image(tmp_path / "g16.png").tolist() == np.full((8, 4, 3), 255, np.uint8).tolist()
    # RGBA is composited on white
    rgba = np.zeros((8, 4, 4), np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    assert (read_image(tmp_path / "t.png") == 255).all()
    with pytest.raises(DataError, match="wrong image size 8x4"):
        read_image(tmp_path / "a.png", (16, 4))
    (tmp_path / "x.png").write_text("not an image")
    with pytest.raises(DataError, match="x.png: not an image"):
        read_image(tmp_path / "x.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.png"):
        read_image(tmp_path / "cut.png")
    with pytest.raises(DataError, match="does not exist"):
        read_image(tmp_path / "missing.png")
