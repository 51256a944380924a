"""Which per-pair metric ranks report.html's best and worst pairs, and when there is no page."""

from __future__ import annotations

import shutil

from posetransfer.cli import main
from posetransfer.pose.io import read_pairs
from posetransfer.data.synth import synthesize
from posetransfer.inference.generate import output_name


def test_any_per_pair_metric_ranks_the_report(tmp_path, capsys):
    synthesize(tmp_path / "data", size=(32, 16), identities=4, views=3, seed=0, progress=False)
    test = tmp_path / "data" / "test"
    gen = tmp_path / "gen"
    gen.mkdir()
    for a, b in read_pairs(test / "pairs.csv"):  # "generated" = the condition image: a copy baseline
        shutil.copy(test / "images" / a, gen / output_name(a, b))
    out = tmp_path / "report"
    assert main(["evaluate", "--generated", str(gen), "--data", str(test), "--out", str(out), "--metrics", "mask_ssim_pg2", "--no-progress"]) == 0
    page = (out / "report.html").read_text()
    assert "mask_ssim_pg2" in page
    assert "metrics.json, table.md, report.html" in capsys.readouterr().err
