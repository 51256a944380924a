"""``posetransfer evaluate`` on a small generated set of real images: outputs, values, errors, --compare."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import structural_similarity

from posetransfer.cli import main
from posetransfer.evaluation.evaluate import load_evaluation_set, parse_generated_name
from posetransfer.evaluation.report import format_table
from posetransfer.errors import DataError
from posetransfer.pose.io import read_pairs
from posetransfer.utils.io import read_image
from _helpers import offline_weights


def _stem(name: str) -> str:
    return os.path.splitext(name)[0]


@pytest.fixture
def generated(tmp_path, mini_market):
    """8 "generated" images: the source photo of each pair, named <from>___<to>.png."""
    out = tmp_path / "gen"
    out.mkdir()
    pairs = read_pairs(mini_market / "pairs.csv")[:8]
    for a, b in pairs:
        shutil.copy(mini_market / "images" / a, out / f"{_stem(a)}___{_stem(b)}.png")
    return out, pairs


def test_evaluate_writes_metrics_table_and_html(tmp_path, generated, mini_market, capsys):
    gen_dir, pairs = generated
    out = tmp_path / "report"
    code = main(["evaluate", "--generated", str(gen_dir), "--data", str(mini_market), "--out", str(out),
                 "--metrics", "ssim_pg2,ssim_patn,mask_ssim_pg2,psnr,l1,masked_l1", "--no-progress", "--name", "sources"])  # fmt: skip
    assert code == 0
    values = json.loads((out / "metrics.json").read_text())
    assert list(values) == ["ssim_pg2", "ssim_patn", "mask_ssim_pg2", "psnr", "l1", "masked_l1", "ssim_patn_bound", "pairs"]
    assert values["pairs"] == 8 and values["ssim_patn_bound"] == 0
    expected = np.mean([
        structural_similarity(read_image(mini_market / "images" / b), read_image(mini_market / "images" / a), channel_axis=-1)
        for a, b in pairs
    ])  # fmt: skip
    assert values["ssim_pg2"] == pytest.approx(expected, abs=1e-9)
    assert 0 < values["mask_ssim_pg2"] <= 1 and values["mask_ssim_pg2"] != values["ssim_pg2"]
    table = (out / "table.md").read_text()
    assert table.startswith("| Model | SSIM (PG2) ↑ | mask-SSIM (PG2) ↑ | SSIM (PATN) ↑")
    assert f"| sources | {values['ssim_pg2']:.3f} |" in table
    page = (out / "report.html").read_text()
    assert page.count("<figure>") == 16 and "data:image/png;base64," in page
    assert "| sources |" in capsys.readouterr().out


def test_compare_puts_runs_in_rows(tmp_path, capsys):
    for name, ssim in (("run_a", 0.5), ("run_b", 0.75)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({"ssim_pg2": ssim, "fid": 12.345, "pairs": 3}))
    assert main(["evaluate", "--compare", str(tmp_path / "run_a"), str(tmp_path / "run_b"), "--out", str(tmp_path / "cmp")]) == 0
    lines = (tmp_path / "cmp" / "table.md").read_text().splitlines()
    assert lines[0] == "| Model | SSIM (PG2) ↑ | FID ↓ | pairs |"
    assert lines[2] == "| run_a | 0.500 | 12.35 | 3 |" and lines[3] == "| run_b | 0.750 | 12.35 | 3 |"
    assert main(["evaluate", "--compare", str(tmp_path / "missing")]) == 2
    assert "metrics.json" in capsys.readouterr().err


def test_table_marks_missing_values():
    table = format_table([("a", {"ssim_pg2": 0.1, "pairs": 1}), ("b", {"is": 3.0, "pairs": 2})])
    assert "| a | 0.100 | - | 1 |" in table and "| b | - | 3.000 | 2 |" in table


def test_wrong_size_and_bad_names_are_errors_naming_the_file(tmp_path, generated, mini_market, capsys):
    gen_dir, pairs = generated
    a, b = pairs[0]
    bad = gen_dir / f"{_stem(a)}___{_stem(b)}.png"
    Image.new("RGB", (60, 120)).save(bad)
    with pytest.raises(DataError, match="wrong image size") as err:
        load_evaluation_set(gen_dir, mini_market)
    assert bad.name in str(err.value)
    bad.unlink()
    stray = gen_dir / "nobody___nothing.png"
    shutil.copy(mini_market / "images" / a, stray)
    assert main(["evaluate", "--generated", str(gen_dir), "--data", str(mini_market), "--out", str(tmp_path / "r"),
                 "--metrics", "ssim_pg2", "--no-progress"]) == 2  # fmt: skip
    msg = capsys.readouterr().err
    assert "nobody___nothing.png" in msg and "'nobody' is not an image" in msg
    assert not (tmp_path / "r" / "metrics.json").exists()
    with pytest.raises(DataError, match="<from-stem>___<to-stem>"):
        parse_generated_name("a_b.png")


def test_asking_for_unavailable_weights_is_a_clear_error(tmp_path, generated, mini_market, monkeypatch, capsys):
    offline_weights(monkeypatch, tmp_path / "cache")
    gen_dir, _ = generated
    code = main(["evaluate", "--generated", str(gen_dir), "--data", str(mini_market), "--out", str(tmp_path / "r"),
                 "--metrics", "fid", "--no-progress"])  # fmt: skip
    assert code == 2
    assert "pt_inception-2015-12-05-6726825d.pth" in capsys.readouterr().err


def test_markdown_table_becomes_an_html_table():
    from posetransfer.evaluation.report import markdown_table_html

    md = "| Model | SSIM ↑ |\n|---|---|\n| run <a> | 0.5 |\n\nSSIM note.\n- skipped: x\n"
    out = markdown_table_html(md)
    assert out == (
        '<table style="border-collapse:collapse" border="1" cellpadding="4"><tr><th>Model</th><th>SSIM ↑</th></tr>'
        "<tr><td>run &lt;a&gt;</td><td>0.5</td></tr></table><p>SSIM note.</p>"
    )
