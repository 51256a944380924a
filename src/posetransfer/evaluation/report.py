"""Reports of an evaluation: a Markdown table in PG2's Table 1 layout and an HTML page of the best
and worst pairs; several runs' ``metrics.json`` in one table (rows = runs)."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from posetransfer.errors import DataError
from posetransfer.evaluation.metrics import HIGHER_IS_BETTER
from posetransfer.utils.io import atomic_write_text, read_json_object

# Column order: PG2's Table 1 quartet (SSIM, IS, mask-SSIM, mask-IS), then later work's metrics.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("ssim_pg2", "SSIM (PG2)"),
    ("is", "IS"),
    ("mask_ssim_pg2", "mask-SSIM (PG2)"),
    ("mask_is", "mask-IS"),
    ("mask_is_patn", "mask-IS (PATN)"),
    ("ssim_patn", "SSIM (PATN)"),
    ("mask_ssim_patn", "mask-SSIM (PATN)"),
    ("fid", "FID"),
    ("lpips", "LPIPS"),
    ("psnr", "PSNR"),
    ("l1", "L1"),
    ("masked_l1", "masked L1"),
    ("pckh", "PCKh"),
    ("pckh_mediapipe", "PCKh (mediapipe)"),
    ("fid_gfla", "FID (GFLA)"),
    ("fid_cfld", "FID (CFLD)"),
    ("ssim_gfla", "SSIM (GFLA)"),
    ("ssim_pidm", "SSIM (PIDM)"),
    ("lpips_gfla", "LPIPS (GFLA)"),
    ("mask_lpips_gfla", "mask-LPIPS (GFLA)"),
    ("fid_pidm", "FID (PIDM)"),
    ("lpips_pidm", "LPIPS (PIDM)"),
)
_DECIMALS = {"fid": 2, "psnr": 2, "fid_gfla": 2, "fid_cfld": 2, "fid_pidm": 2}


def _fmt(key: str, value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{float(value):.{_DECIMALS.get(key, 3)}f}"


def format_table(rows: Sequence[tuple[str, dict]]) -> str:
    """Markdown table, one row per (name, metrics dict); only columns some row has, arrows show
    which way is better, ``-`` where a row lacks a value."""
    present = [(k, label) for k, label in COLUMNS if any(k in m for _, m in rows)]
    head = ["Model"] + [f"{label} {'↑' if HIGHER_IS_BETTER[k] else '↓'}" for k, label in present] + ["pairs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in rows:
        cells = [name.replace("|", "\\|")] + [_fmt(k, m.get(k)) for k, _ in present] + [str(m.get("pairs", "-"))]
        lines.append("| " + " | ".join(cells) + " |")
    notes = []
    bounds = {m.get("ssim_patn_bound") for _, m in rows if "ssim_patn_bound" in m}
    if bounds:
        notes.append(
            "SSIM (PATN): Gaussian window, data range of the generated image"
            + (f", white padding of {', '.join(str(b) for b in sorted(bounds))} px per side (also for IS)" if bounds != {0} else "")
            + "."
        )
    return "\n".join(lines) + "\n" + ("\n" + " ".join(notes) + "\n" if notes else "")


def read_metrics(run: str | Path) -> dict:
    """A run's ``metrics.json`` (``run`` is the report folder or the file itself)."""
    path = Path(run)
    if path.suffix != ".json":
        path = path / "metrics.json"
    if not path.is_file():
        raise DataError(path, "metrics file does not exist (run posetransfer evaluate first)")
    return read_json_object(path, "metrics file")


def compare_runs(runs: Sequence[str | Path]) -> str:
    """One Markdown table of several runs (rows named by their folders); a run whose metrics.json
    holds a published row (``"paper"``, :mod:`.paper`) is followed by that row."""
    rows = []
    for run in runs:
        p = Path(run)
        name = p.parent.name if p.suffix == ".json" else p.name
        values = read_metrics(p)
        rows.append((name or str(p), values))
        paper = values.get("paper")
        if isinstance(paper, dict) and isinstance(paper.get("metrics"), dict):
            rows.append((f"{paper.get('row', '?')} (published)", paper["metrics"]))
    return format_table(rows)


def _png_data_uri(image: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def markdown_table_html(table_md: str) -> str:
    """The Markdown table of :func:`format_table` as an HTML table; other lines as paragraphs, except
    ``- `` bullet lines (the page lists those notes itself)."""
    rows, out = [], []
    for line in table_md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.lstrip().startswith("|") and not all(set(c) <= set("-: ") for c in cells):
            rows.append(cells)
        elif line.strip() and not line.lstrip().startswith(("|", "- ")):
            out.append(f"<p>{html.escape(line.strip())}</p>")
    if not rows:
        return "".join(out)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    style = "border-collapse:collapse"
    return f'<table style="{style}" border="1" cellpadding="4"><tr>{head}</tr>{body}</table>' + "".join(out)


def write_html_report(
    path: str | Path,
    *,
    title: str,
    metric: str,
    values: np.ndarray,
    names: Sequence[tuple[str, str]],
    load_triplet,
    table_md: str,
    notes: Sequence[str] = (),
    k: int = 8,
) -> None:
    """``report.html``: the ``k`` best and ``k`` worst pairs by ``metric`` (source | generated |
    target, images embedded as PNG data URIs so the page is one self-contained file).

    ``load_triplet(i) -> (source, generated, target)`` uint8 images of pair ``i``.
    """
    values = np.asarray(values, dtype=np.float64)
    valid = np.flatnonzero(~np.isnan(values))
    order = valid[np.argsort(values[valid], kind="stable")]
    if HIGHER_IS_BETTER.get(metric, True):
        order = order[::-1]
    best, worst = order[:k], order[::-1][:k]

    def section(label: str, idx: np.ndarray) -> str:
        rows = []
        for i in idx:
            src, gen, tgt = load_triplet(int(i))
            strip = np.concatenate([src, gen, tgt], axis=1)
            rows.append(
                f'<figure><img src="{_png_data_uri(strip)}" alt="pair {i}"><figcaption>'
                f"{html.escape(names[i][0])} &rarr; {html.escape(names[i][1])}: {metric} = {_fmt(metric, float(values[i]))}"
                "</figcaption></figure>"
            )
        return f"<h2>{label}</h2>\n<p>source | generated | target</p>\n" + "\n".join(rows)

    table_html = markdown_table_html(table_md)
    notes_html = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} figure{{display:inline-block;margin:0.5em}}
img{{image-rendering:pixelated;height:256px}} figcaption{{font-size:small;max-width:40em}}</style></head>
<body><h1>{html.escape(title)}</h1>
{table_html}
{notes_html}
{section(f"Best {len(best)} pairs by {metric}", best)}
{section(f"Worst {len(worst)} pairs by {metric}", worst)}
</body></html>
"""
    atomic_write_text(path, page)
