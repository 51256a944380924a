"""The published numbers of every table-row recipe (checked against Table 1 parsed out of the papers'
text), ``evaluate`` showing them beside ours, and ``posetransfer reproduce`` end to end on tiny
synthetic data: a stage-II row with its stage-I dependency, interrupted inside a training stage and
between stages, then rerun without redoing finished work."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest

from posetransfer.cli import main
from posetransfer.data.synth import synthesize
from posetransfer.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED
from posetransfer.evaluation.metrics import ALL_METRICS
from posetransfer.training import checkpoint as ck
from posetransfer.training.config import load_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
PG2_PAPER = "000_024de97e194a995a.txt"
MULTIVIEW_PAPER = "003_6235f0e9bd5072fb.txt"
ROWS = sorted(p for p in (CONFIGS / "pg2").rglob("*.yaml") if not p.name.startswith("_")) + sorted(
    p for p in (CONFIGS / "multiview").rglob("*.yaml") if not p.name.startswith("_")
)
DATASETS = {"market": "Market-1501", "deepfashion": "DeepFashion"}
# the column headers of both papers' Table 1 -> our metric computing it as the paper did (configs/*/_base.yaml)
COLUMN_METRIC = {"SSIM": "ssim_pg2", "IS": "is", "mask-SSIM": "mask_ssim_pg2", "mask-IS": "mask_is"}


def _norm(label: str) -> str:
    """A row label as printed, without citations, spaces and subscript marks: ``(G + D_I + D_P)-S`` -> ``(G+DI+DP)-S``."""
    return re.sub(r"\[\d+\]|[\s_]", "", label)


def parse_pg2_table1(text: str) -> dict[str, dict[str, dict[str, float]]]:
    """PG2's Table 1 as the PDF's text holds it: column by column (the 6 row labels, then the 6
    values of each column in turn). Returns {dataset: {row: {metric: value}}}."""
    lines = [line.strip() for line in text[text.index("Table 1: Quantitative evaluation") :].splitlines()]
    lines = [line for line in lines if line]
    groups = [line for line in lines[1:4] if line in DATASETS.values()]
    model = lines.index("Model")
    headers, i = [], model + 1
    while lines[i] in COLUMN_METRIC:
        headers.append(lines[i])
        i += 1
    labels = []
    while lines[i].startswith("G1"):
        labels.append(lines[i])
        i += 1
    cells = lines[i : i + len(headers) * len(labels)]
    assert all(re.fullmatch(r"\d\.\d{3}", v) for v in cells), cells
    values = [float(v) for v in cells]
    out: dict[str, dict[str, dict[str, float]]] = {g: {} for g in groups}
    group = -1
    seen: set[str] = set()
    for c, header in enumerate(headers):  # a column name seen again starts the next data set's group
        if header in seen or group < 0:
            group, seen = group + 1, set()
        seen.add(header)
        for r, label in enumerate(labels):
            out[groups[group]].setdefault(_norm(label), {})[COLUMN_METRIC[header]] = values[c * len(labels) + r]
    return out


def parse_multiview_table1(text: str) -> dict[str, dict[str, dict[str, float]]]:
    """The multi-view paper's Table 1, row by row: ``label SSIM IS SSIM IS`` (DeepFashion, Market-1501)."""
    start = text.index("Methods SSIM IS SSIM IS")
    header = text[text.rindex("\n", 0, start - 1) : start]
    assert header.split() == ["DeepFashion", "Market-1501"]
    out: dict[str, dict[str, dict[str, float]]] = {"DeepFashion": {}, "Market-1501": {}}
    for line in text[start : text.index("Table 1: The table demonstrates")].splitlines()[1:]:
        m = re.fullmatch(r"\s*(.+?)\s+(\d\.\d{3})\s+(\d\.\d{3})\s+(\d\.\d{3})\s+(\d\.\d{3})\s*", line)
        if m:
            label, *v = m.groups()
            out["DeepFashion"][_norm(label)] = {"ssim_pg2": float(v[0]), "is": float(v[1])}
            out["Market-1501"][_norm(label)] = {"ssim_pg2": float(v[2]), "is": float(v[3])}
    return out


@pytest.fixture(scope="module")
def tables(papers_dir):
    return {
        "pg2": parse_pg2_table1((papers_dir / PG2_PAPER).read_text(encoding="utf-8")),
        "multiview": parse_multiview_table1((papers_dir / MULTIVIEW_PAPER).read_text(encoding="utf-8")),
    }


def test_the_parsers_read_every_row_of_both_tables(tables):
    pg2, mv = tables["pg2"], tables["multiview"]
    assert sorted(pg2) == ["DeepFashion", "Market-1501"]
    assert list(pg2["Market-1501"]) == ["G1-CE-L1", "G1-HME-L1", "G1-L1", "G1-poseMaskLoss", "G1+D", "G1+G2+D"]
    assert set(pg2["Market-1501"]["G1-poseMaskLoss"]) == {"ssim_pg2", "is", "mask_ssim_pg2", "mask_is"}
    assert set(pg2["DeepFashion"]["G1+G2+D"]) == {"ssim_pg2", "is"}
    assert list(mv["Market-1501"]) == ["RealData", "pix2pix", "PG2(G1+D)", "PG2", "VarationalU-Net", "G+DI", "G+DP",
                                       "(G+DI+DP)-S", "(G+DI+DP)-M"]  # fmt: skip
    # the multi-view paper copies PG2's G1+D and G1+G2+D rows: the two parsers agree on them, so the
    # columns of the column-wise PG2 text are assigned to the right data sets
    for dataset in ("DeepFashion", "Market-1501"):
        for theirs, ours in (("PG2(G1+D)", "G1+D"), ("PG2", "G1+G2+D")):
            assert mv[dataset][theirs] == {k: pg2[dataset][ours][k] for k in ("ssim_pg2", "is")}


@pytest.mark.parametrize("path", ROWS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_recipe_states_its_rows_published_numbers(path, tables):
    paper = load_config(path).paper
    assert paper is not None
    family, dataset = path.parent.parent.name, DATASETS[path.parent.name]
    assert paper.table == "Table 1" and paper.dataset == dataset
    assert all(m in ALL_METRICS for m in paper.metrics)
    published = tables[family][dataset][_norm(paper.row)]
    assert paper.metrics == published  # every column of the row, no more, the paper's values
    if family == "pg2":
        assert paper.title == "Pose Guided Person Image Generation"


def test_each_row_label_is_the_recipes_own():
    """A row file that forgot its own paper: section would inherit its base recipe's row."""
    labels = {}
    for path in ROWS:
        labels.setdefault((path.parent.parent.name, path.parent.name), []).append(load_config(path).paper.row)
    for key, rows in labels.items():
        assert len(set(rows)) == len(rows), key
    assert load_config(CONFIGS / "debug" / "tiny.yaml").paper is None


# ---------------------------------------------------------------------------------- reproduce

# tiny widths for the Market G1+G2+D recipe and its stage I (model.g1.* shapes stage I only)
TINY = [
    "model.g1.num_blocks=2", "model.g1.base_channels=4", "model.g1.z_dim=8", "model.g2.base_channels=4",
    "model.g2.num_blocks=1", "model.d.base_channels=4", "model.d.num_layers=2", "data.image_size=[32,16]",
    "train.batch_size=4", "train.iterations=3", "train.checkpoint_every=2", "train.sample_every=100",
    "train.eval_batches=0", "train.num_workers=0", "train.precision=fp32", "train.channels_last=false",
    "train.log_every=1",
]  # fmt: skip
ROW = str(CONFIGS / "pg2" / "market" / "g1_g2_d.yaml")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    data = tmp_path_factory.mktemp("reproduce") / "synth"
    synthesize(data, size=(32, 16), identities=6, views=3, seed=2, progress=False)
    return data


def _args(config: str, out: Path, data: Path, *extra: str, metrics: str | None = "ssim_pg2,mask_ssim_pg2") -> list[str]:
    sets = [a for s in TINY for a in ("--set", s)]
    chosen = ["--metrics", metrics] if metrics else []
    return ["reproduce", config, "--out", str(out), "--data", str(data), "--device", "cpu", "--no-progress",
            *chosen, *sets, *extra]  # fmt: skip


def _step(run: Path) -> int:
    return int(ck.read_model_json(ck.latest_checkpoint(run))["step"])


def test_reproduce_a_stage_two_row_interrupted_and_rerun(synth, tmp_path, monkeypatch, capsys):
    from posetransfer import inference
    from posetransfer.evaluation import evaluate
    from posetransfer.training.base import Trainer

    out = tmp_path / "out"
    stage1, stage2 = out / "runs" / "g1_posemaskloss", out / "runs" / "g1_g2_d"
    steps: list[str] = []
    original_step = Trainer.train_step

    def counting_step(self, batch):
        result = original_step(self, batch)
        steps.append(self.config.task)
        if interrupt_at and len(steps) == interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C during this step: it is finished and saved
        return result

    monkeypatch.setattr(Trainer, "train_step", counting_step)

    # 1) Ctrl-C during stage II's second step: stage I finished (3 steps), stage II saved at step 2
    interrupt_at = 5
    assert main(_args(ROW, out, synth)) == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert "interrupted: SIGINT after step 2" in err and "rerun the same posetransfer reproduce command" in err
    assert steps == ["pg2_stage1"] * 3 + ["pg2_stage2"] * 2
    assert (_step(stage1), _step(stage2)) == (3, 2)
    stage1_ckpt = ck.latest_checkpoint(stage1)
    stage1_mtime = (stage1_ckpt / "g1.safetensors").stat().st_mtime_ns

    # 2) rerun, interrupted between stages (Ctrl-C as generation starts): stage I is not trained
    # again, stage II continues from step 2 to 3 (present is not finished)
    interrupt_at, steps[:] = 0, []
    real_generate = inference.generate_pairs

    def interrupted_generate(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(inference, "generate_pairs", interrupted_generate)
    assert main(_args(ROW, out, synth)) == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert steps == ["pg2_stage2"]
    assert "finished earlier: " + str(stage1_ckpt) in err and _step(stage2) == 3
    assert (stage1_ckpt / "g1.safetensors").stat().st_mtime_ns == stage1_mtime
    # the row's init_from points at the stage-I run reproduce trained
    assert load_config(stage2 / "config.yaml").init_from == {"g1": str(stage1)}

    # 3) rerun: no training, the test split generated and evaluated; the published row beside ours
    monkeypatch.setattr(inference, "generate_pairs", real_generate)
    steps[:] = []
    assert main(_args(ROW, out, synth)) == 0
    captured = capsys.readouterr()
    assert steps == []
    gen = out / "generated" / "g1_g2_d"
    record = json.loads((gen / "generated.json").read_text())
    final = ck.latest_checkpoint(stage2)
    assert record["finished"] and record["step"] == 3 and record["checkpoint"] == str(final.resolve())
    assert record["paper"]["row"] == "G1+G2+D"
    pngs = sorted(p.name for p in gen.glob("*.png"))
    assert len(pngs) == record["pairs"] == 6  # every ordered pair of the 3 photos of the 1 test identity
    report = out / "reports" / "g1_g2_d"
    metrics = json.loads((report / "metrics.json").read_text())
    paper = metrics["paper"]
    assert paper["row"] == "G1+G2+D" and paper["metrics"] == {"ssim_pg2": 0.253, "is": 3.46, "mask_ssim_pg2": 0.792, "mask_is": 3.435}
    assert paper["difference"]["ssim_pg2"] == pytest.approx(metrics["ssim_pg2"] - 0.253, abs=1e-12)
    assert paper["difference"]["mask_ssim_pg2"] == pytest.approx(metrics["mask_ssim_pg2"] - 0.792, abs=1e-12)
    assert paper["not_computed"] == ["is", "mask_is"]
    assert metrics["generated"] == {"checkpoint": str(final.resolve()), "step": 3, "finished": True}
    table = (report / "table.md").read_text()
    assert captured.out == table
    lines = table.splitlines()
    assert lines[2].startswith("| g1_g2_d (ours) | ")
    assert lines[3] == "| G1+G2+D (published) | 0.253 | 3.460 | 0.792 | 3.435 | - |"
    diff = f"| difference (ours - published) | {paper['difference']['ssim_pg2']:.3f} | - | {paper['difference']['mask_ssim_pg2']:.3f} | - | - |"
    assert lines[4] == diff
    assert "Published: Pose Guided Person Image Generation, Table 1, Market-1501, row G1+G2+D." in table
    html = (report / "report.html").read_text()
    assert "G1+G2+D (published)" in html and "difference (ours - published)" in html

    # 4) rerun once more: every stage finished, nothing trained, generated or evaluated again
    def must_not_run(*a, **k):
        raise AssertionError("a finished stage ran again")

    monkeypatch.setattr(inference, "generate_pairs", must_not_run)
    monkeypatch.setattr(evaluate, "run_evaluation", must_not_run)
    assert main(_args(ROW, out, synth)) == 0
    captured = capsys.readouterr()
    assert steps == [] and captured.out == table and captured.err.count("finished earlier") == 4
    monkeypatch.undo()
    monkeypatch.setattr(Trainer, "train_step", counting_step)

    # 5) a longer budget: both runs continue (one step each), stage II is warned that it refines the
    # G1 it loaded before stage I went on; new images, a new report
    assert main(_args(ROW, out, synth, "--set", "train.iterations=4")) == 0
    err = capsys.readouterr().err
    assert steps == ["pg2_stage1", "pg2_stage2"] and (_step(stage1), _step(stage2)) == (4, 4)
    assert (f"warning: {stage2} holds another g1 than {ck.latest_checkpoint(stage1)} (the stage-I run went on "
            "after this one loaded it)") in err  # fmt: skip
    assert "holds the images of" in err and "generating them again" in err
    assert json.loads((report / "metrics.json").read_text())["generated"]["step"] == 4

    # 6) a changed network on rerun is refused in one line; evaluate --compare shows the published row too
    assert main(_args(ROW, out, synth, "--set", "model.g1.base_channels=8", "--set", "train.iterations=4")) == EXIT_BAD_INPUT
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == (f"posetransfer reproduce: error: {stage1}: a finished run of another model "
                    "(model.g1.base_channels: 4 -> 8); remove it or choose another --out")  # fmt: skip
    assert main(["evaluate", "--compare", str(report)]) == 0
    compared = capsys.readouterr().out.splitlines()
    assert compared[2].startswith("| g1_g2_d | ") and compared[3] == lines[3]


def test_evaluate_shows_the_recorded_or_the_given_paper_row(synth, tmp_path, capsys):
    """A stage-I row reproduced; a plain ``evaluate`` of its generated folder finds the published
    row in generated.json; ``--paper CONFIG`` replaces it; a config without paper: is an error."""
    out = tmp_path / "out"
    row = str(CONFIGS / "pg2" / "market" / "g1_posemaskloss.yaml")
    assert main(_args(row, out, synth, "--set", "train.iterations=1")) == 0
    capsys.readouterr()
    gen = out / "generated" / "g1_posemaskloss"
    assert main(["evaluate", "--generated", str(gen), "--data", str(synth), "--split", "test", "--out",
                 str(tmp_path / "r1"), "--metrics", "ssim_pg2", "--no-progress"]) == 0  # fmt: skip
    table = capsys.readouterr().out
    assert "| G1-poseMaskLoss (published) | 0.340 | 3.326 | 0.817 | 2.682 | - |" in table
    ours = json.loads((tmp_path / "r1" / "metrics.json").read_text())
    assert ours["paper"]["difference"] == {"ssim_pg2": pytest.approx(ours["ssim_pg2"] - 0.340, abs=1e-12)}
    assert ours["paper"]["not_computed"] == ["is", "mask_ssim_pg2", "mask_is"]

    other = str(CONFIGS / "multiview" / "deepfashion" / "g_di_dp_m.yaml")
    assert main(["evaluate", "--generated", str(gen), "--data", str(synth), "--split", "test", "--out",
                 str(tmp_path / "r2"), "--metrics", "ssim_pg2", "--paper", other, "--no-progress"]) == 0  # fmt: skip
    table = capsys.readouterr().out
    assert "| (G + D_I + D_P)-M (published) | 0.789 | 3.006 | - |" in table and "G1-poseMaskLoss" not in table
    assert "Note: SSIM taken as PG2's convention (ssim_pg2); the paper names no implementation." in table

    tiny = str(CONFIGS / "debug" / "tiny.yaml")
    assert main(["evaluate", "--generated", str(gen), "--data", str(synth), "--split", "test", "--out",
                 str(tmp_path / "r3"), "--metrics", "ssim_pg2", "--paper", tiny]) == EXIT_BAD_INPUT  # fmt: skip
    assert capsys.readouterr().err.strip() == f"posetransfer evaluate: error: {tiny}: has no paper: section (the published numbers of a table row)"


def test_generate_resume_refuses_the_images_of_another_checkpoint(synth, tmp_path, capsys):
    out = tmp_path / "out"
    row = str(CONFIGS / "pg2" / "market" / "g1_posemaskloss.yaml")
    assert main(_args(row, out, synth, "--set", "train.iterations=2")) == 0
    capsys.readouterr()
    run, gen = out / "runs" / "g1_posemaskloss", out / "generated" / "g1_posemaskloss"
    older = ck.step_folders(run)[0]  # step 2 is latest; only one folder: make the record name another
    record = json.loads((gen / "generated.json").read_text())
    (gen / "generated.json").write_text(json.dumps({**record, "step": 1, "checkpoint": "/elsewhere/step_0000001"}))
    assert main(["generate", "--checkpoint", str(older), "--data", str(synth), "--split", "test", "--out", str(gen),
                 "--resume", "--no-progress", "--device", "cpu"]) == EXIT_BAD_INPUT  # fmt: skip
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"posetransfer generate: error: {gen / 'generated.json'}: these images came from checkpoint /elsewhere/step_0000001 (step 1")
    # reproduce, seeing a record of another checkpoint, generates the images again
    assert main(_args(row, out, synth, "--set", "train.iterations=2")) == 0
    err = capsys.readouterr().err
    assert "holds the images of /elsewhere/step_0000001 (step 1); generating them again" in err
    assert json.loads((gen / "generated.json").read_text())["checkpoint"] == str(older.resolve())


def test_reproduce_errors_before_any_work(synth, tmp_path, capsys):
    out = tmp_path / "out"
    # no data set there
    assert main(_args(ROW, out, tmp_path / "missing")) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip() == f"posetransfer reproduce: error: {tmp_path / 'missing'}: data set folder does not exist"
    # a stage-II row whose stage-I recipe is not beside it
    lone = tmp_path / "row" / "stage2.yaml"
    lone.parent.mkdir()
    lone.write_text(f"base: {CONFIGS / 'pg2' / 'market' / 'g1_g2_d.yaml'}\n")
    assert main(_args(str(lone), out, synth)) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err == (f"posetransfer reproduce: error: {lone}: init_from.g1 names the run runs/pg2/market/g1_posemaskloss, "
                   f"but there is no recipe {lone.parent / 'g1_posemaskloss.yaml'} beside it to train it; give a "
                   "finished run with --set init_from.g1=RUN")  # fmt: skip
    # a misspelt published metric
    bad = tmp_path / "row" / "g1_l1.yaml"
    bad.write_text(f"base: {CONFIGS / 'pg2' / 'market' / 'g1_l1.yaml'}\npaper: {{metrics: {{ssim_pg3: 0.3}}}}\n")
    assert main(_args(str(bad), out, synth)) == EXIT_BAD_INPUT
    assert "paper.metrics: unknown metric ssim_pg3" in capsys.readouterr().err
    # the published IS needs the Inception weights: a missing file is reported before any training
    assert main(_args(ROW, out, synth, "--inception-weights", str(tmp_path / "nowhere.pth"), metrics=None)) == EXIT_BAD_INPUT
    assert f"{tmp_path / 'nowhere.pth'}: weights file does not exist" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("path", ROWS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_row_plans_its_stages(path, synth, tmp_path):
    """Every shipped row: its stages (G1+G2+D: the G1-poseMaskLoss recipe beside it first), each
    config pointed at --data with its split, the row's init_from at the stage-I run folder."""
    from posetransfer.reproduce import plan_stages

    stages = plan_stages(path, tmp_path / "out", [], synth)
    want = ["g1_posemaskloss", "g1_g2_d"] if path.stem == "g1_g2_d" else [path.stem]
    assert [s.label for s in stages] == want
    for stage in stages:
        assert stage.run_dir == tmp_path / "out" / "runs" / stage.label
        assert (stage.config.data.train.path, stage.config.data.train.split) == (str(synth), "train")
        assert (stage.config.data.test.path, stage.config.data.test.split) == (str(synth), "test")
    if len(stages) == 2:
        assert stages[1].config.init_from == {"g1": str(stages[0].run_dir)}
        assert stages[0].config_path == path.parent / "g1_posemaskloss.yaml"


def test_a_run_of_ones_own_replaces_the_dependency(synth, tmp_path):
    from posetransfer.reproduce import plan_stages

    stages = plan_stages(ROW, tmp_path / "out", ["init_from.g1=/runs/mine", "model.g1.base_channels=8"], synth)
    assert [s.label for s in stages] == ["g1_g2_d"]
    assert stages[0].config.init_from == {"g1": "/runs/mine"}
    assert "model.g1.base_channels=8" not in stages[0].overrides  # stage II builds no G1 from its config
