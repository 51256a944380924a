"""Shareable checkpoints: ``posetransfer export RUN --out DIR``.

The exported folder is a checkpoint folder without the training state: every network's
``<name>.safetensors``, ``model.json`` (classes + constructor kwargs), the resolved config
(``config.json``, ``config.yaml``), the metrics it was evaluated with (``metrics.json``, when one is
given or found beside the checkpoint or in its run folder) and a short model card (``README.md``).
The loader (:func:`posetransfer.inference.loader.load_generator`) reads it as it reads a step
folder; uploaded to the Hugging Face Hub as it is, it loads by repo id.

The folder is assembled under a temporary name and renamed into place, so a failed export leaves
nothing half-written; an existing ``DIR`` is replaced only with ``overwrite``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from posetransfer.errors import DataError
from posetransfer.inference.loader import load_generator
from posetransfer.training import checkpoint as ckpt_io
from posetransfer.utils.io import read_json_object

__all__ = ["EXPORTED_FILES", "export_model", "model_card", "find_metrics"]

#: files copied from the checkpoint besides the weights (``state.pt``, the optimizer state, is not)
EXPORTED_FILES = (ckpt_io.MODEL_JSON, ckpt_io.CONFIG_JSON, "config.yaml")
METRICS_JSON = "metrics.json"


def find_metrics(checkpoint: Path) -> Path | None:
    """A ``metrics.json`` in the step folder or its run folder (``RUN/checkpoints/step_X``)."""
    for folder in (checkpoint, checkpoint.parent.parent):
        if (folder / METRICS_JSON).is_file():
            return folder / METRICS_JSON
    return None


def _read_metrics(path: Path) -> dict[str, Any]:
    return read_json_object(path, "metrics file")


def _metric_rows(metrics: dict[str, Any]) -> list[str]:
    """Markdown table rows of the numeric metrics (nested ``{method: {metric: value}}`` flattened)."""
    rows: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, (int, float)):
            rows.append(f"| {prefix} | {value:.4g} |")
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)

    walk("", metrics)
    return rows


def model_card(gen: Any, metrics: dict[str, Any] | None) -> str:
    """The README.md of an exported folder: what the model is, its inputs, how to load it."""
    config, task = gen.config, gen.task
    spec = task.input_spec()
    h, w = gen.image_size
    lines = [
        f"# posetransfer model: {config.task}",
        "",
        config.description or f"A {config.task} model trained with posetransfer.",
        "",
        f"- task: `{config.task}`, trained for {gen.step} steps",
        f"- frame: {h}x{w} (height x width), source photos: up to {task.max_sources}",
        f"- inputs: {', '.join(spec.encodings)} of the target pose"
        + (f" (heatmaps: {spec.heatmap})" if "heatmaps" in spec.encodings else ""),
        "- networks: " + ", ".join(
            f"`{name}` ({type(net).__name__}, {sum(p.numel() for p in net.parameters()):,} parameters)"
            for name, net in gen.nets.items()
        ),
        f"- training data: `{config.data.train.path}` (see config.yaml; its licence applies to these weights)",  # type: ignore[attr-defined]
        "",
        "## Use",
        "",
        "```python",
        "from posetransfer.inference import Pipeline",
        "pipe = Pipeline.from_checkpoint(\"THIS_FOLDER_OR_HUB_REPO_ID\")",
        "image = pipe(\"photo.jpg\", \"walking\")  # uint8 HxWx3",
        "```",
        "",
        "or `posetransfer transfer --checkpoint THIS_FOLDER --source photo.jpg --pose walking --out out.png`.",
    ]
    metrics = dict(metrics or {})
    paper = metrics.pop("paper", None)
    metrics.pop("generated", None)  # where the evaluated images came from: not a metric
    published = paper.get("metrics", {}) if isinstance(paper, dict) else {}
    if published:  # an evaluate / reproduce report with the paper's row: ours beside it
        names = [*published, *(k for k in metrics if k not in published)]
        rows = [f"| {k} | {_number(metrics.get(k))} | {_number(published.get(k))} |" for k in names
                if isinstance(metrics.get(k), (int, float)) or k in published]  # fmt: skip
        lines += ["", "## Metrics (metrics.json)", "", "| metric | ours | published |", "| --- | --- | --- |", *rows, "",
                  f"Published: {paper.get('title', '?')}, {paper.get('table', '?')}, {paper.get('dataset', '?')}, "
                  f"row {paper.get('row', '?')}."]  # fmt: skip
        if paper.get("note"):
            lines.append(f"Note: {paper['note']}")
    else:
        rows = _metric_rows(metrics)
        if rows:
            lines += ["", "## Metrics (metrics.json)", "", "| metric | value |", "| --- | --- |", *rows]
    return "\n".join(lines) + "\n"


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def export_model(
    checkpoint: str | Path,
    out: str | Path,
    *,
    metrics: str | Path | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the self-contained inference folder ``out`` (module docstring); returns a summary."""
    gen = load_generator(checkpoint, "cpu")  # loads and checks everything before writing
    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError(out, "exists (use --overwrite to replace it)")
    if out.exists() and not out.is_dir():
        raise DataError(out, "exists and is not a folder")
    metrics_path = Path(metrics) if metrics is not None else find_metrics(gen.checkpoint)
    if metrics_path is not None and not metrics_path.is_file():
        raise DataError(metrics_path, "metrics file does not exist")
    metrics_data = _read_metrics(metrics_path) if metrics_path is not None else None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        files = sorted(p.name for p in gen.checkpoint.glob("*.safetensors"))
        files += [name for name in EXPORTED_FILES if (gen.checkpoint / name).is_file()]
        for name in files:
            shutil.copy2(gen.checkpoint / name, tmp / name)
        if metrics_data is not None:
            (tmp / METRICS_JSON).write_text(json.dumps(metrics_data, indent=2) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(model_card(gen, metrics_data), encoding="utf-8")
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    written = sorted(p.name for p in out.iterdir())
    return {"out": str(out), "files": written, "step": gen.step, "metrics": str(metrics_path) if metrics_path else None}
