"""Real-vs-fake study kit: export with an answer key, R2G / G2R scoring with practice answers ignored."""

from __future__ import annotations

import csv

import pytest
from PIL import Image

from posetransfer.errors import DataError
from posetransfer.evaluation.study import export_study, read_answer_key, score_study


def _images(folder, n, color):
    folder.mkdir()
    paths = []
    for i in range(n):
        p = folder / f"{i:03d}.png"
        Image.new("RGB", (4, 8), color).save(p)
        paths.append(p)
    return paths


def test_export_writes_shuffled_numbered_images_and_key(tmp_path):
    real = _images(tmp_path / "real", 7, (255, 0, 0))
    gen = _images(tmp_path / "gen", 6, (0, 0, 255))
    rows = export_study(real, gen, tmp_path / "study", n_real=5, n_gen=4, seed=3)
    assert [r["image"] for r in rows] == [f"{i:04d}.png" for i in range(1, 10)]
    assert sorted(r["truth"] for r in rows) == ["generated"] * 4 + ["real"] * 5
    key = read_answer_key(tmp_path / "study" / "answer_key.csv")
    assert key == {r["image"]: r["truth"] for r in rows}
    for r in rows:  # each copy is the image its key says
        pixel = Image.open(tmp_path / "study" / "images" / r["image"]).getpixel((0, 0))
        assert pixel == ((255, 0, 0) if r["truth"] == "real" else (0, 0, 255))
    assert [r["truth"] for r in rows] != sorted(r["truth"] for r in rows)  # shuffled, not grouped
    assert export_study(real, gen, tmp_path / "again", n_real=5, n_gen=4, seed=3) == rows  # seeded
    with pytest.raises(DataError, match="needs 8 real"):
        export_study(real, gen, tmp_path / "x", n_real=8, n_gen=1)


def _write(path, header, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def test_score_ignores_practice_answers_per_rater(tmp_path):
    key = {"r1.png": "real", "r2.png": "real", "g1.png": "generated", "g2.png": "generated"}
    _write(tmp_path / "key.csv", ["image", "truth"], list(key.items()))
    rows = []
    # rater A: 2 practice answers (all wrong, ignored), then r1->generated (R2G), r2->real,
    # g1->real (G2R), g2->generated
    rows += [("A", "r1.png", "generated"), ("A", "g1.png", "real")]
    rows += [("A", "r1.png", "generated"), ("A", "r2.png", "real"), ("A", "g1.png", "real"), ("A", "g2.png", "generated")]
    # rater B: 2 practice, then all correct
    rows += [("B", "g2.png", "real"), ("B", "g2.png", "real")]
    rows += [("B", "r1.png", "real"), ("B", "r2.png", "real"), ("B", "g1.png", "fake"), ("B", "g2.png", "generated")]
    _write(tmp_path / "answers.csv", ["rater", "image", "answer"], rows)
    result = score_study(tmp_path / "key.csv", tmp_path / "answers.csv", practice=2)
    assert result == {"r2g": 1 / 4, "g2r": 1 / 4, "n_real": 4, "n_generated": 4, "raters": 2}
    # without ignoring practice, the wrong warm-up answers count
    all_counted = score_study(key, tmp_path / "answers.csv", practice=0)
    assert all_counted["r2g"] == pytest.approx(2 / 5) and all_counted["g2r"] == pytest.approx(4 / 7)


def test_score_rejects_bad_answers(tmp_path):
    _write(tmp_path / "key.csv", ["image", "truth"], [("a.png", "real")])
    _write(tmp_path / "answers.csv", ["rater", "image", "answer"], [("A", "a.png", "maybe")])
    with pytest.raises(DataError, match="line 2") as err:
        score_study(tmp_path / "key.csv", tmp_path / "answers.csv")
    assert "answers.csv" in str(err.value)
    _write(tmp_path / "answers.csv", ["rater", "image", "answer"], [("A", "b.png", "real")])
    with pytest.raises(DataError, match="not in the answer key"):
        score_study(tmp_path / "key.csv", tmp_path / "answers.csv")
    _write(tmp_path / "answers.csv", ["who", "image", "answer"], [])
    with pytest.raises(DataError, match="rater,image,answer"):
        score_study(tmp_path / "key.csv", tmp_path / "answers.csv")


def test_study_command_exports_and_scores(tmp_path, capsys):
    import json

    from posetransfer.cli import main

    _images(tmp_path / "real", 3, (255, 0, 0))
    _images(tmp_path / "gen", 3, (0, 0, 255))
    assert main(["study", "export", "--real", str(tmp_path / "real"), "--generated", str(tmp_path / "gen"),
                 "--out", str(tmp_path / "s"), "--n-real", "2", "--n-generated", "2"]) == 0  # fmt: skip
    key = read_answer_key(tmp_path / "s" / "answer_key.csv")
    # one rater answers "real" to everything after no practice: R2G 0, G2R 1
    _write(tmp_path / "answers.csv", ["rater", "image", "answer"], [("A", img, "real") for img in key])
    capsys.readouterr()
    assert main(["study", "score", "--key", str(tmp_path / "s" / "answer_key.csv"),
                 "--answers", str(tmp_path / "answers.csv"), "--practice", "0"]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert result["r2g"] == 0.0 and result["g2r"] == 1.0
