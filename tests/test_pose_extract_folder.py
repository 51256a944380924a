"""``posetransfer pose extract FOLDER``: a folder stands for its image files (by name)."""

from __future__ import annotations

import numpy as np
import pytest

from _helpers import SilhouetteBackend
from posetransfer.cli import main
from posetransfer.pose import extract as ex
from posetransfer.pose.io import read_annotations
from posetransfer.utils.io import save_image


@pytest.fixture()
def silhouette():
    ex.register_backend("silhouette", lambda **kw: SilhouetteBackend())
    yield
    ex.unregister_backend("silhouette")


def _photo(path):
    im = np.full((128, 64, 3), 255, np.uint8)
    im[20:120, 20:44] = (40, 60, 200)
    save_image(path, im)


def test_a_folder_is_its_images(tmp_path, silhouette, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("b.png", "a.jpg"):
        _photo(photos / name)
    (photos / "notes.txt").write_text("not an image")
    (photos / ".hidden.png").write_bytes(b"")
    single = tmp_path / "c.png"
    _photo(single)
    out = tmp_path / "poses.csv"
    assert main(["pose", "extract", str(photos), str(single), "--out", str(out), "--backend", "silhouette", "--no-progress"]) == 0
    assert sorted(read_annotations(out)) == ["a.jpg", "b.png", "c.png"]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("x")
    capsys.readouterr()
    assert main(["pose", "extract", str(empty), "--out", str(tmp_path / "e.csv"), "--backend", "silhouette"]) == 2
    err = capsys.readouterr().err
    assert "holds no image files" in err and str(empty) in err and not (tmp_path / "e.csv").exists()
