"""``posetransfer evaluate import --layout pidm``: PIDM's test images -> <from-stem>___<to-stem>.png.

PIDM (ankanbhunia/PIDM, e4f1d88) ``utils/gen.py`` lines 153-155 / 170-172 save each sample as
``batch['path']``, made by ``data/fashion_data.py`` ``get_image_path`` (lines 141-154) from the
``test_pairs.txt`` paths (lines 62-67); the references are in ``tests/reference_protocols.py``. The
mapping is proved on the field's real ``fasion-resize-pairs-test.csv``: every one of its 8,570
pairs, written as PIDM names it, comes back to the same pair.
"""

from __future__ import annotations

import os
import re

import cv2
import numpy as np
import pytest
from PIL import Image

from posetransfer.cli import main
from posetransfer.errors import DataError
from posetransfer.evaluation.released import convert_released, parse_pidm_name, read_pair_stems
from posetransfer.pose.io import read_pairs
from posetransfer.utils.io import read_image
from reference_protocols import pidm_get_image_path, pidm_path_to_fashion_name, pidm_test_pair_paths

# The In-shop path of a field name (``img/<GENDER>/<Category>/id_<8 digits>/<NN>_<V>_<view>.jpg``,
# the layout of img_highres.zip), written here independently of the importer's raw_relpath.
_FIELD = re.compile(r"^fashion(MEN|WOMEN)(.+?)id(\d{8})(\d\d)_(\d)([a-z]+)\.jpg$")


def in_shop_path(field_name: str) -> str:
    g, category, item, nn, v, view = _FIELD.match(field_name).groups()
    return f"img/{g}/{category}/id_{item}/{nn}_{v}_{view}.jpg"


def test_every_test_pair_named_as_pidm_comes_back(annotations_dir):
    pairs = read_pairs(annotations_dir / "fasion-resize-pairs-test.csv")
    assert len(pairs) == 8570
    stems = read_pair_stems(annotations_dir / "fasion-resize-pairs-test.csv")
    pair_set = set(stems)
    assert len(pair_set) == 8570
    pidm_names = []
    for (src, tgt), want in zip(pairs, stems):
        # a test_pairs.txt row is target,source (fashion_data.py lines 65-67)
        sources, target = pidm_test_pair_paths(f"{in_shop_path(tgt)},{in_shop_path(src)}")
        assert pidm_path_to_fashion_name(sources[0]) == os.path.splitext(src)[0] + ".png"  # PIDM's rule = the field's names
        name = pidm_get_image_path(sources[0], target)
        assert parse_pidm_name(name, pair_set) == want
        pidm_names.append(name)
    assert len(set(pidm_names)) == 8570  # no two pairs share a file
    assert pidm_names[0] == (
        "fashionWOMENBlouses_Shirtsid0000337203_3back_2_fashionWOMENBlouses_Shirtsid0000337203_2side_vis.png")  # fmt: skip
    # PIDM's LPIPS pairs the sorted generated names (metrics.py line 422); ours sorts <from>___<to>.png:
    # both namings put the 8,570 pairs in the same order, so the dropped last batch is the same
    by_pidm = [parse_pidm_name(n, pair_set) for n in sorted(pidm_names)]
    by_ours = [tuple(n[: -len(".png")].split("___")) for n in sorted(f"{a}___{b}.png" for a, b in stems)]
    assert by_pidm == by_ours


def test_names_that_are_no_pair_are_one_clear_error():
    pairs = {("a_1front", "b_2side")}
    assert parse_pidm_name("a_1front_2_b_2side_vis.png", pairs) == ("a_1front", "b_2side")
    assert parse_pidm_name("a_1front_2_b_2side_vis.jpg", pairs) == ("a_1front", "b_2side")
    with pytest.raises(DataError, match=r"b_2side_2_a_1front_vis.png: is no pair of pairs.csv"):
        parse_pidm_name("b_2side_2_a_1front_vis.png", pairs, "pairs.csv")
    with pytest.raises(DataError, match="_2_<target-stem>_vis.png"):
        parse_pidm_name("a_1front___b_2side_vis.png", pairs)
    with pytest.raises(DataError, match="_vis.png"):
        parse_pidm_name("a_1front_2_b_2side.png", pairs)
    # a name with a second _2_ is split where the pair is, whichever _2_ that is
    assert parse_pidm_name("x_2_y_2_z_vis.png", {("x_2_y", "z")}) == ("x_2_y", "z")
    assert parse_pidm_name("x_2_y_2_z_vis.png", {("x", "y_2_z")}) == ("x", "y_2_z")
    with pytest.raises(DataError, match="splits into 2 pairs"):
        parse_pidm_name("x_2_y_2_z_vis.png", {("x", "y_2_z"), ("x_2_y", "z")})


def test_import_pidm_folder_on_real_photos(tmp_path, mini_fashion, capsys):
    """PIDM's outputs are 256x256 (its lmdb holds 256x256 images, data/prepare_data.py line 26 and
    config/data.yaml sub_path 256-256): stand-ins made from the real photos are kept as they are."""
    pairs = read_pairs(mini_fashion / "pairs.csv")
    src = tmp_path / "PIDM"
    src.mkdir()
    written = {}
    for a, b in pairs[:5]:
        image = cv2.resize(read_image(mini_fashion / "images" / a), (256, 256), interpolation=cv2.INTER_CUBIC)
        name = f"{os.path.splitext(a)[0]}_2_{os.path.splitext(b)[0]}_vis.png"
        Image.fromarray(image).save(src / name)
        written[f"{os.path.splitext(a)[0]}___{os.path.splitext(b)[0]}.png"] = image
    out = tmp_path / "ours"
    argv = ["evaluate", "import", str(src), "--layout", "pidm", "--pairs", str(mini_fashion / "pairs.csv"), "--out", str(out)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"{len(pairs) - 5} of the {len(pairs)} pairs of {mini_fashion / 'pairs.csv'} have no image" in err
    assert sorted(p.name for p in out.iterdir()) == sorted(written)
    for name, image in written.items():
        np.testing.assert_array_equal(read_image(out / name), image)  # 256x256, unchanged
    # a file that is no pair of the file: one line naming it, nothing written
    a, b = pairs[0]
    Image.fromarray(written[next(iter(written))]).save(src / f"{os.path.splitext(b)[0]}_2_{os.path.splitext(a)[0]}_vis.png")
    out2 = tmp_path / "ours2"
    assert main(argv[:-1] + [str(out2)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{os.path.splitext(b)[0]}_2_{os.path.splitext(a)[0]}_vis.png" in err[0]
    assert "is no pair of" in err[0] and not out2.exists()
    # --pairs is needed by pidm, and by pidm only
    with pytest.raises(DataError, match="--pairs"):
        convert_released(src, "pidm", tmp_path / "o3")
    with pytest.raises(DataError, match="--pairs"):
        convert_released(src, "gfla", tmp_path / "o4", pairs=mini_fashion / "pairs.csv")
