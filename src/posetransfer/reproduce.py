"""One table row end to end: what ``posetransfer reproduce CONFIG --data DIR --out OUT`` runs.

For a table-row recipe (``configs/<model>/<dataset>/<row>.yaml``) it runs, in order:

1. the row's stage-I dependency when the config loads a network from ``init_from`` (PG2's
   G1+G2+D refines a trained G1-poseMaskLoss): the recipe beside it named like the run folder
   ``init_from`` names (``init_from: {g1: runs/pg2/market/g1_posemaskloss}`` ->
   ``g1_posemaskloss.yaml`` in the same folder), trained into ``OUT/runs/<that row>``; the
   row's ``init_from`` then points there. ``--set init_from.g1=RUN`` uses a run of one's own
   instead (no dependency is trained). One level: a dependency's own ``init_from`` is not followed;
2. the row's training into ``OUT/runs/<row>``;
3. ``generate`` on the test split (``data.test``) into ``OUT/generated/<row>``;
4. ``evaluate`` into ``OUT/reports/<row>`` (``metrics.json``, ``table.md``, ``report.html``) with
   the row's published numbers (``paper:``) beside ours, and prints that table.

``--data DIR`` replaces the data set folder of ``data.train`` and ``data.test`` (each keeps its
split; a plain-layout path ``.../train`` becomes ``DIR`` with split ``train``). ``--set`` overrides
apply to every training stage, except a ``model.NET`` key for a stage that does not build ``NET``
from its config (stage II loads G1 from stage I: ``model.g1.*`` shapes stage I only) and the
``init_from`` / ``paper`` keys, which are the row's alone.

Rerunning the same command continues where it stopped; each stage checks that its output is
*finished*, not just present: a training run is finished when its latest checkpoint holds step
``train.iterations`` (an unfinished one continues with ``train --resume`` semantics: exact, with a
warning for every changed setting, a changed network refused); the generated folder when its
``generated.json`` says finished for the row's final checkpoint (else ``generate --resume``;
images of another checkpoint are generated again); the report when ``OUT/reports/<row>/reproduce.json``
names the same checkpoint and metrics. A finished run whose config differs from the row's now is
used with a warning per changed setting, or refused when its task or networks differ (another
model: choose another ``--out``).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posetransfer.errors import CheckpointError, ConfigError, Interrupted, OutputError

__all__ = ["reproduce", "plan_stages", "Stage", "REPRODUCE_JSON"]

#: the report folder's record of what was evaluated (the evaluate stage's "finished" check)
REPRODUCE_JSON = "reproduce.json"


@dataclass
class Stage:
    """One training stage of a row: its label, config, run folder."""

    label: str
    config_path: Path
    config: Any  # training.config.Config
    run_dir: Path
    role: str  # "dependency" or "row"
    overrides: list[str] = field(default_factory=list)
    #: the row's network this dependency's run provides (``init_from.<feeds>``)
    feeds: str | None = None


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _data_overrides(config: Any, data: Path | None) -> list[str]:
    """``--set`` strings pointing ``data.train`` / ``data.test`` at ``data`` (module docstring)."""
    if data is None:
        return []
    out = []
    for split in ("train", "test"):
        source = getattr(config.data, split, None)
        if source is None:
            continue
        name = source.split or (Path(source.path).name if Path(source.path).name in ("train", "test") else None)
        value = {"path": str(data), **({"split": name} if name else {})}
        out.append(f"data.{split}={json.dumps(value)}")
    return out


def _stage_overrides(overrides: Sequence[str], config_path: Path, role: str) -> list[str]:
    """The ``--set`` strings that apply to a stage (module docstring)."""
    from posetransfer.training.config import load_config, parse_override
    from posetransfer.training.tasks import get_task_class

    networks = set(get_task_class(load_config(config_path).task).config_networks())
    kept = []
    for text in overrides:
        key, _ = parse_override(text)
        if role != "row" and key[0] in ("init_from", "paper"):
            continue
        if key[0] == "model" and len(key) > 1 and key[1] not in networks:
            continue
        kept.append(text)
    return kept


def plan_stages(config_path: str | Path, out: str | Path, overrides: Sequence[str] = (), data: str | Path | None = None,
                device: str | None = None) -> list[Stage]:  # fmt: skip
    """The training stages of a row, dependencies first, every config loaded and validated (so a bad
    config, a missing dependency recipe or a missing data set is an error before anything runs)."""
    from posetransfer.training.config import load_config, parse_override

    config_path, out = Path(config_path), Path(out)
    data = Path(data) if data is not None else None
    row = load_config(config_path)
    if getattr(row.data, "test", None) is None:
        raise ConfigError(f"{config_path}: data.test is not set; reproduce generates and evaluates the test split")
    extra = [f"train.device={device}"] if device else []
    keys = [parse_override(t)[0] for t in overrides]
    own_init = {k[1] for k in keys if k[0] == "init_from" and len(k) > 1}  # the user's own runs: no dependency
    stages: list[Stage] = []
    row_sets = _data_overrides(row, data) + extra + _stage_overrides(overrides, config_path, "row")
    for net, ref in row.init_from.items():
        if net in own_init:
            continue
        dep_path = config_path.parent / f"{Path(ref).name}.yaml"
        if not dep_path.is_file():
            raise ConfigError(
                f"{config_path}: init_from.{net} names the run {ref}, but there is no recipe {dep_path} beside it to "
                f"train it; give a finished run with --set init_from.{net}=RUN"
            )
        dep_raw = load_config(dep_path)
        sets = _data_overrides(dep_raw, data) + extra + _stage_overrides(overrides, dep_path, "dependency")
        run_dir = out / "runs" / dep_path.stem
        stages.append(Stage(dep_path.stem, dep_path, load_config(dep_path, sets), run_dir, "dependency", sets, net))
        row_sets.append(f"init_from.{net}={json.dumps(str(run_dir))}")
    stages.append(Stage(config_path.stem, config_path, load_config(config_path, row_sets), out / "runs" / config_path.stem,
                        "row", row_sets))  # fmt: skip
    names = [s.label for s in stages]
    if len(set(names)) != len(names):
        raise ConfigError(f"{config_path}: its stages share a run folder name ({', '.join(names)})")
    from posetransfer.data.layouts import resolve_dataset

    for stage in stages:  # the data sets exist and are readable, before any run folder is made
        for split in ("train", "test"):
            source = getattr(stage.config.data, split, None)
            if source is not None:
                resolve_dataset(source.path, source.split)
    return stages


def _flat_diff(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[tuple[str, Any, Any]] = []
        for key in list(old) + [k for k in new if k not in old]:
            out += _flat_diff(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key))
        return out
    return [] if old == new else [(prefix, old, new)]


def _finished_checkpoint(stage: Stage) -> Path | None:
    """The run's checkpoint of step ``train.iterations`` (or later), or None when it is not finished."""
    from posetransfer.training import checkpoint as ckpt_io

    if not stage.run_dir.is_dir():
        return None
    ckpt, _ = ckpt_io.find_resume_checkpoint(stage.run_dir)
    if ckpt is None or int(ckpt_io.read_model_json(ckpt).get("step", 0)) < stage.config.train.iterations:
        return None
    return ckpt


def _check_finished_run(stage: Stage, ckpt: Path, log: Callable[[str], None]) -> None:
    """A finished run is used only for the same model; other changed settings are warned about."""
    from posetransfer.training import checkpoint as ckpt_io
    from posetransfer.training.config import dump_config

    changes = _flat_diff(ckpt_io.read_checkpoint_config(ckpt), dump_config(stage.config))
    model = [c for c in changes if c[0].split(".")[0] in ("task", "model")]
    if model:
        said = "; ".join(f"{k}: {o!r} -> {n!r}" for k, o, n in model[:3])
        raise ConfigError(
            f"{stage.run_dir}: a finished run of another model ({said}); remove it or choose another --out"
        )
    for key, old, new in changes:
        if key.split(".")[0] != "paper":
            log(f"warning: {stage.run_dir} finished with {key}={old!r}, the config now says {new!r}; "
                f"its checkpoint is used as it is (remove {stage.run_dir} to train again)")  # fmt: skip


def _check_inputs(stage: Stage, given: dict[str, Path], log: Callable[[str], None]) -> None:
    """Warn when the row's run holds another copy of a network than its dependency's final
    checkpoint (stage I trained further after stage II started: stage II goes on refining, and
    generates with, the G1 it loaded then)."""
    from posetransfer.training import checkpoint as ckpt_io
    from posetransfer.utils.weights import sha256_of

    if not given or not stage.run_dir.is_dir():
        return
    ckpt, _ = ckpt_io.find_resume_checkpoint(stage.run_dir)
    if ckpt is None:
        return
    for net, source in given.items():
        ours, theirs = ckpt / f"{net}.safetensors", source / f"{net}.safetensors"
        if ours.is_file() and theirs.is_file() and sha256_of(ours) != sha256_of(theirs):
            log(f"warning: {stage.run_dir} holds another {net} than {source} (the stage-I run went on after "
                f"this one loaded it); it keeps its own: remove {stage.run_dir} to train it on the new one")  # fmt: skip


def _train_stage(stage: Stage, progress: bool, log: Callable[[str], None], given: dict[str, Path] | None = None) -> Path:
    from posetransfer.training import checkpoint as ckpt_io
    from posetransfer.training.base import train

    _check_inputs(stage, given or {}, log)
    ckpt = _finished_checkpoint(stage)
    if ckpt is not None:
        _check_finished_run(stage, ckpt, log)
        log(f"  finished earlier: {ckpt} (step {ckpt_io.read_model_json(ckpt).get('step')}); skipped")
        return ckpt
    try:
        result = train(stage.config, stage.run_dir, resume=True, progress=progress)
    except Interrupted as err:
        raise Interrupted(err.signum, f"{err}; or rerun the same posetransfer reproduce command") from None
    if result.checkpoint is None:
        raise CheckpointError(f"{stage.run_dir}: training wrote no checkpoint")
    return ckpt_io.resolve_checkpoint(result.checkpoint)


def _generate_stage(ckpt: Path, config: Any, gen_dir: Path, device: str, batch_size: int, progress: bool,
                    log: Callable[[str], None]) -> bool:  # fmt: skip
    """Generate the test split unless finished for ``ckpt``; True when images were written."""
    from posetransfer.evaluation.paper import read_generated_record
    from posetransfer.inference import generate_pairs
    from posetransfer.training import checkpoint as ckpt_io

    step = int(ckpt_io.read_model_json(ckpt).get("step", 0))
    record = read_generated_record(gen_dir)
    same = record is not None and record.get("checkpoint") == str(ckpt.resolve()) and record.get("step") == step
    if same and record.get("finished"):
        log(f"  finished earlier: {gen_dir} ({record.get('pairs')} pairs of step {step}); skipped")
        return False
    if record is not None and not same:
        log(f"  {gen_dir} holds the images of {record.get('checkpoint')} (step {record.get('step')}); generating them again")
        shutil.rmtree(gen_dir)
    elif record is None and gen_dir.is_dir() and any(not p.name.startswith(".") for p in gen_dir.iterdir()):
        raise OutputError(f"{gen_dir}: holds files without a generated.json (not written by reproduce); move them away")
    test = config.data.test
    summary = generate_pairs(ckpt, test.path, gen_dir, split=test.split, batch_size=batch_size, device=device,
                             progress=progress, resume=True)  # fmt: skip
    kept = f" ({summary['skipped']} already there)" if summary["skipped"] else ""
    log(f"  wrote {summary['images']} images to {gen_dir}{kept}")
    return True


def _metric_plan(metrics: Sequence[str] | None, paper: dict | None, weights: Any) -> list[str]:
    """Asked-for metrics, else the default plan of ``evaluate`` plus the row's published metrics
    (computed even when their weights must be fetched first)."""
    from posetransfer.evaluation.evaluate import plan_metrics

    if metrics:
        return list(dict.fromkeys(metrics))
    plan, _ = plan_metrics(None, weights, None)
    return list(dict.fromkeys([*plan, *((paper or {}).get("metrics") or {})]))


def _fetch_weights(plan: Sequence[str], weights: Any) -> None:
    """The pretrained files of the planned metrics, found or downloaded now (into ``weights``): a
    missing file is reported before the training, not after it."""
    from posetransfer.evaluation import metrics as M
    from posetransfer.utils.weights import resolve_weights

    if any(m in M.INCEPTION_METRICS for m in plan):
        weights.inception = str(resolve_weights("fid_inception", weights.inception))
    if any(m in plan for m in ("lpips", "lpips_gfla", "mask_lpips_gfla", "lpips_pidm")):
        weights.alexnet = str(resolve_weights("alexnet", weights.alexnet))
        weights.lpips = str(resolve_weights("lpips_alex", weights.lpips))
    if any(m in plan for m in ("fid_gfla", "fid_pidm", "fid_cfld")):
        weights.inception_gfla = str(resolve_weights("inception_v3_google", weights.inception_gfla))


def _evaluate_stage(ckpt: Path, config: Any, gen_dir: Path, report: Path, plan: list[str], weights: Any, name: str,
                    device: str, progress: bool, log: Callable[[str], None]) -> None:  # fmt: skip
    from posetransfer.evaluation.evaluate import run_evaluation
    from posetransfer.utils.io import atomic_write_json

    paper = None if config.paper is None else config.paper.model_dump(mode="json")
    marker = {"checkpoint": str(ckpt.resolve()), "metrics": plan, "paper": paper}
    done = report / REPRODUCE_JSON
    if done.is_file() and (report / "table.md").is_file():
        try:
            earlier = json.loads(done.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            earlier = None
        if earlier == marker:
            log(f"  finished earlier: {report}; skipped")
            return
    done.unlink(missing_ok=True)  # the report is being rewritten: not finished until the marker is back
    test = config.data.test
    run_evaluation(gen_dir, test.path, report, split=test.split, metrics=plan, weights=weights, name=name,
                   progress=progress, log=lambda m: log(f"  {m}"), paper=paper, device=device)  # fmt: skip
    atomic_write_json(done, marker)


def reproduce(
    config_path: str | Path,
    out: str | Path,
    *,
    data: str | Path | None = None,
    overrides: Sequence[str] = (),
    device: str | None = None,
    metrics: Sequence[str] | None = None,
    weights: Any = None,
    batch_size: int = 16,
    progress: bool = True,
    log: Callable[[str], None] = _log,
) -> dict[str, Any]:
    """Run a table row end to end (module docstring). Returns ``{"stages": [(what, seconds)],
    "checkpoint", "generated", "report", "table"}`` (``table`` = ``table.md``'s text)."""
    from posetransfer.evaluation.evaluate import WeightPaths
    from posetransfer.evaluation.paper import check_paper_metrics
    from posetransfer.utils.devices import resolve_device
    from posetransfer.utils.io import check_output

    out = Path(out)
    check_output(out, kind="dir", overwrite=True)  # a folder (or nothing yet), writable
    if device is not None:
        resolve_device(device)  # an unknown or missing device is an error before anything runs
    train_device = None if device is None else str(device).split(":")[0]
    stages = plan_stages(config_path, out, overrides, data, train_device)
    row = stages[-1]
    device = device or row.config.train.device  # generate and evaluate where the row trains
    paper = None if row.config.paper is None else row.config.paper.model_dump(mode="json")
    if paper is not None:
        check_paper_metrics(paper, str(config_path))
    else:
        log(f"note: {config_path} has no paper: section; the report shows our numbers only")
    weights = weights or WeightPaths()
    plan = _metric_plan(metrics, paper, weights)
    _fetch_weights(plan, weights)
    total = len(stages) + 2
    timings: list[tuple[str, float]] = []

    def run(i: int, what: str, fn: Callable[[], Any]) -> Any:
        log(f"[reproduce {i}/{total}] {what}")
        t0 = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - t0
        timings.append((what, seconds))
        log(f"  ({seconds:.1f} s)")
        return result

    ckpt = None
    given: dict[str, Path] = {}  # the row's network -> the dependency checkpoint that provides it
    for i, stage in enumerate(stages, start=1):
        role = f" (stage I of {row.label})" if stage.role == "dependency" else ""
        ckpt = run(i, f"train {stage.label}{role} -> {stage.run_dir}",
                   lambda s=stage: _train_stage(s, progress, log, given if s.role == "row" else None))  # fmt: skip
        if stage.feeds:
            given[stage.feeds] = ckpt
    assert ckpt is not None
    gen_dir, report = out / "generated" / row.label, out / "reports" / row.label
    wrote = run(total - 1, f"generate the test split -> {gen_dir}",
                lambda: _generate_stage(ckpt, row.config, gen_dir, device, batch_size, progress, log))  # fmt: skip
    if wrote:  # new images: an earlier report of this folder is not of them
        (report / REPRODUCE_JSON).unlink(missing_ok=True)
    run(total, f"evaluate ({', '.join(plan)}) -> {report}",
        lambda: _evaluate_stage(ckpt, row.config, gen_dir, report, plan, weights, f"{row.label} (ours)", device, progress, log))  # fmt: skip
    table = (report / "table.md").read_text(encoding="utf-8")
    return {"stages": timings, "checkpoint": str(ckpt), "generated": str(gen_dir), "report": str(report), "table": table}
