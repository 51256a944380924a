"""`posetransfer evaluate import`: PATN's strips and GFLA's test images -> <from-stem>___<to-stem>.png.

The layouts are those of the released test scripts: PATN (tengteng95/Pose-Transfer)
``models/PATN.py`` lines 254-273 (5 panels source|pose|target|pose|generated) named by
``util/visualizer.py`` line 137 ``<P1>___<P2>_vis.jpg`` and read back by
``tool/getMetrics_market.py`` lines 55-83 (``w = int(width / 5)``, generated ``img[:, 4*w:5*w]``,
``name[:-8].split('___')``); GFLA (RenYurui/Global-Flow-Local-Attention) ``model/pose_model.py``
line 110 + ``model/base_model.py`` lines 224-237 (``<P1 stem>_2_<P2 stem>_vis.jpg``) read back by
``script/metrics.py`` lines 428-431 (target = text after the last ``_2_`` up to ``_vis``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from posetransfer.cli import main
from posetransfer.errors import DataError
from posetransfer.evaluation.evaluate import load_evaluation_set
from posetransfer.evaluation.released import convert_released, parse_released_name
from posetransfer.pose.io import write_annotations
from posetransfer.utils.io import read_image

H, W = 32, 16


def _panel(value: int) -> np.ndarray:
    rng = np.random.default_rng(value)
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def _dataset(root, names):
    (root / "images").mkdir(parents=True)
    kp = np.full((18, 2), -1.0, np.float32)
    kp[0] = (5, 8)
    kp[1] = (12, 8)
    for i, n in enumerate(names):
        Image.fromarray(_panel(100 + i)).save(root / "images" / n)
    write_annotations(root / "annotation.csv", {n: kp for n in names})


def test_parse_released_names():
    assert parse_released_name("0002_c1s1_000451_03.jpg___0002_c1s1_000551_01.jpg_vis.jpg", "patn-strip") == (
        "0002_c1s1_000451_03", "0002_c1s1_000551_01")  # fmt: skip
    assert parse_released_name("a.jpg___b.jpg_vis.png", "patn-strip") == ("a", "b")
    assert parse_released_name("0002_c1s1_000451_03_2_0002_c1s1_000551_01_vis.jpg", "gfla") == (
        "0002_c1s1_000451_03", "0002_c1s1_000551_01")  # fmt: skip
    with pytest.raises(DataError, match="_vis.jpg"):
        parse_released_name("a___b.png", "patn-strip")
    with pytest.raises(DataError, match="_2_"):
        parse_released_name("a___b_vis.jpg", "gfla")


def test_patn_strip_to_our_names_and_evaluate_reads_it(tmp_path):
    data = tmp_path / "data"
    _dataset(data, ["p1.jpg", "p2.jpg"])
    strips = tmp_path / "patn"
    strips.mkdir()
    generated, target_panels = {}, {}
    for src, tgt, seed in (("p1", "p2", 1), ("p2", "p1", 2)):
        panels = [_panel(seed * 10 + k) for k in range(5)]  # source | pose | target | pose | generated
        generated[(src, tgt)] = panels[4]
        target_panels[(src, tgt)] = panels[2]
        # a hand-made strip, lossless (PATN's getMetrics accepts _vis.png as well as _vis.jpg)
        Image.fromarray(np.concatenate(panels, axis=1)).save(strips / f"{src}.jpg___{tgt}.jpg_vis.png")
    out, tout = tmp_path / "ours", tmp_path / "targets"
    argv = ["evaluate", "import", str(strips), "--layout", "patn-strip", "--out", str(out), "--targets-out", str(tout)]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["p1___p2.png", "p2___p1.png"]
    assert sorted(p.name for p in tout.iterdir()) == ["p1___p2.png", "p2___p1.png"]
    for (src, tgt), gen in generated.items():
        np.testing.assert_array_equal(read_image(out / f"{src}___{tgt}.png"), gen)
        np.testing.assert_array_equal(read_image(tout / f"{src}___{tgt}.png"), target_panels[(src, tgt)])
    ev = load_evaluation_set(out, data)
    assert ev.pairs == [("p1.jpg", "p2.jpg"), ("p2.jpg", "p1.jpg")]
    np.testing.assert_array_equal(ev.generated[0], generated[("p1", "p2")])
    np.testing.assert_array_equal(ev.targets[0], read_image(data / "images" / "p2.jpg"))
    # --targets: the strip's target panels replace the data set's images; keypoints stay the data set's
    ev = load_evaluation_set(out, data, targets_dir=tout)
    np.testing.assert_array_equal(ev.targets[0], target_panels[("p1", "p2")])
    np.testing.assert_array_equal(ev.targets[1], target_panels[("p2", "p1")])
    assert ev.target_keypoints[0, 0].tolist() == [5, 8]
    report = tmp_path / "report"
    assert main(["evaluate", "--generated", str(out), "--data", str(data), "--targets", str(tout), "--out", str(report),
                 "--metrics", "l1", "--no-progress"]) == 0  # fmt: skip
    want = np.mean([np.abs(generated[k] / 127.5 - target_panels[k] / 127.5).mean() for k in generated])  # PATN l1_score
    assert json.loads((report / "metrics.json").read_text())["l1"] == pytest.approx(want, abs=1e-9)
    # an existing, non-empty output folder is refused without --overwrite
    assert main(["evaluate", "import", str(strips), "--layout", "patn-strip", "--out", str(out)]) != 0


def test_gfla_jpg_pixels_kept_and_bad_strip_width(tmp_path):
    """GFLA's images are JPEG: the PNG holds exactly the decoded pixels; a strip whose width is not
    5 panels is one clear error, and nothing is written."""
    src = tmp_path / "gfla"
    src.mkdir()
    img = _panel(7)
    Image.fromarray(img).save(src / "p1_2_p2_vis.jpg")
    n = convert_released(src, "gfla", tmp_path / "out")
    assert n == 1
    decoded = np.asarray(Image.open(src / "p1_2_p2_vis.jpg").convert("RGB"))
    np.testing.assert_array_equal(read_image(tmp_path / "out" / "p1___p2.png"), decoded)
    bad = tmp_path / "bad"
    bad.mkdir()
    Image.fromarray(np.zeros((H, 5 * W + 1, 3), np.uint8)).save(bad / "a.jpg___b.jpg_vis.png")
    with pytest.raises(DataError, match="5 panels"):
        convert_released(bad, "patn-strip", tmp_path / "out2")
    assert not (tmp_path / "out2" / "a___b.png").exists()
