"""The demo (the README's first command) end to end at a tiny size: files, keys, a rerun resumes."""

from __future__ import annotations

import json

from posetransfer.demo import METHODS, METRICS, DemoSettings, run_demo


def test_tiny_demo_writes_report_metrics_and_grid_and_resumes(tmp_path, capsys):
    s = DemoSettings(size=(64, 32), identities=8, views=4, base_channels=4, stage1_steps=4, blind_steps=4,
                     stage2_steps=4, batch_size=4, eval_pairs=16, precision="fp32")
    report = run_demo(tmp_path / "demo", s, progress=False)
    assert report == tmp_path / "demo" / "report.html"
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert metrics["pairs"] == 16
    assert set(metrics["methods"]) == {m for m, _ in METHODS}
    for values in metrics["methods"].values():
        assert set(values) == set(METRICS)
        assert -1 <= values["ssim_pg2"] <= 1 and 0 <= values["mask_ssim_pg2"] <= 1 and values["masked_l1"] >= 0
    page = report.read_text()
    assert all(label in page for _, label in METHODS) and "<svg" in page
    assert (tmp_path / "demo" / "grid.png").stat().st_size > 0
    for run in ("stage1", "pose_blind", "stage2"):
        assert (tmp_path / "demo" / "runs" / run / "checkpoints" / "step_0000004").is_dir()

    # A second run reuses the finished trainings and measures the same numbers.
    capsys.readouterr()
    run_demo(tmp_path / "demo", s, progress=False)
    again = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert again["methods"] == metrics["methods"]
