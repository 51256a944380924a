"""The published row beside ours: what ``evaluate`` adds to its reports when it knows the paper's numbers.

The numbers come from a recipe's ``paper:`` section (:class:`posetransfer.training.config.PaperRow`):
either recorded by ``generate`` in the generated folder's ``generated.json`` (the checkpoint's
config) or given with ``evaluate --paper CONFIG``. ``metrics.json`` holds them under its own key,
``"paper"`` (the row, the published metrics, ``difference`` = ours - published for every metric
both have, ``not_computed`` = published metrics this evaluation lacks), so the flat
``{metric: value}`` part stays ours alone; ``table.md`` and ``report.html`` get two more rows, the
published one and the difference.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from posetransfer.errors import ConfigError
from posetransfer.utils.io import read_json_object

__all__ = [
    "GENERATED_JSON",
    "PAPER_KEY",
    "read_generated_record",
    "check_paper_metrics",
    "paper_comparison",
    "paper_rows",
    "paper_lines",
]

#: the record ``generate`` writes into its output folder (``inference.generate``)
GENERATED_JSON = "generated.json"
#: the key of the published row in ``metrics.json``
PAPER_KEY = "paper"


def read_generated_record(folder: str | Path) -> dict[str, Any] | None:
    """``FOLDER/generated.json`` as a dict, or None when the folder has none (images from elsewhere)."""
    path = Path(folder) / GENERATED_JSON
    if not path.is_file():
        return None
    return read_json_object(path, "generation record")


def check_paper_metrics(paper: dict[str, Any], where: str) -> None:
    """Every published metric is named by one of our metrics (a misspelt name is an error naming ``where``)."""
    from posetransfer.evaluation.metrics import ALL_METRICS  # scipy: only when checking, not for generate

    unknown = [m for m in paper.get("metrics", {}) if m not in ALL_METRICS]
    if unknown:
        raise ConfigError(f"{where}: paper.metrics: unknown metric {', '.join(unknown)} (known: {', '.join(ALL_METRICS)})")


def paper_comparison(values: dict[str, Any], paper: dict[str, Any]) -> dict[str, Any]:
    """The ``metrics.json`` entry of the published row (module docstring)."""
    published = dict(paper["metrics"])
    ours = {m: values.get(m) for m in published}
    ours = {m: v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None for m, v in ours.items()}
    return {
        **{k: paper.get(k) for k in ("title", "table", "row", "dataset", "note")},
        "metrics": published,
        "difference": {m: float(v) - float(published[m]) for m, v in ours.items() if isinstance(v, (int, float))},
        "not_computed": [m for m, v in ours.items() if not isinstance(v, (int, float))],
    }


def paper_rows(comparison: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The two extra table rows: the published values and ours minus them."""
    return [(f"{comparison['row']} (published)", comparison["metrics"]), ("difference (ours - published)", comparison["difference"])]


def paper_lines(comparison: dict[str, Any]) -> list[str]:
    """The lines under the table: where the published row comes from, what is not computed."""
    lines = [f"Published: {comparison['title']}, {comparison['table']}, {comparison['dataset']}, row {comparison['row']}."]
    if comparison.get("note"):
        lines.append(f"Note: {comparison['note']}.")
    if comparison["not_computed"]:
        lines.append(f"Not computed here (no difference shown): {', '.join(comparison['not_computed'])}; "
                     "ask for them with --metrics.")  # fmt: skip
    return lines
