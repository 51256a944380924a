"""The figures of one ``scripts/device_check.sh`` run as the Markdown for ``docs/benchmarks.md``.

    python scripts/device_report.py DEVICE_OUT/results.json [DEVICE_OUT/summary.txt]

Prints the steps' exit status, the training benchmarks (images/s, TFLOP/s, MFU, peak memory)
the inference benchmark (ms per image, frames/s) and the data paths (``bench data``) with the goals of issue 14 beside the
figures they concern, so that what is recorded is what the run measured. Standard library only:
it runs where the results are read, not where they were made.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# issue 14's goals on one H100/H200 (images/s of a training step; frames/s of inference at 256x176)
TRAIN_GOALS = {"train_market_g1": 1500.0, "train_deepfashion_g1": 250.0}
INFER_GOAL = (256, 176, 500.0)


def _num(value, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def _on_gpu(device) -> bool:
    """The goals are for one H100/H200: a CPU dry run's figures are not held against them."""
    return str(device or "").startswith("cuda")


def _goal(measured, goal) -> str:
    if goal is None:
        return ""
    if measured is None:
        return f"goal {goal:g}: not measured"
    return f"goal {goal:g}: {'met' if measured >= goal else 'missed'}"


def report(results: dict, summary: str | None = None) -> str:
    lines: list[str] = []
    steps = results.get("steps", {})
    bench = results.get("benchmarks", {})
    if summary:
        first = next((ln for ln in summary.splitlines() if ln.startswith("torch ")), None)
        if first:
            lines += [f"Machine: `{first.strip()}`", ""]
    lines += ["| step | exit | seconds |", "|---|---|---|"]
    lines += [f"| {name} | {'skipped (time budget)' if s['exit'] == -1 else s['exit']} | {s['seconds']} |" for name, s in steps.items()]
    lines += ["", "| benchmark | batch | precision | images/s | TFLOP/s | MFU | peak GPU MB | |", "|---|---|---|---|---|---|---|---|"]
    for name, b in bench.items():
        if not name.startswith("train_") or "images_per_s" not in b:
            continue
        s = b.get("settings", {})
        prec = s.get("precision", "?") + (" compiled" if s.get("compile") else "")
        mfu = None if b.get("mfu") is None else 100 * b["mfu"]
        lines.append(
            f"| {name} ({b.get('description', '')}) | {b.get('batch_size')} | {prec} | {_num(b['images_per_s'])} "
            f"| {_num(b.get('tflops'), '{:.1f}')} | {_num(mfu, '{:.1f} %')} | {_num(b.get('peak_cuda_mb'), '{:.0f}')} "
            f"| {_goal(b['images_per_s'], TRAIN_GOALS.get(name) if _on_gpu(s.get('device')) else None)} |"
        )
    infer = bench.get("infer")
    if infer and infer.get("results"):
        lines += ["", f"Inference (`bench infer`, {infer.get('device')}):", "",
                  "| model | data set | size | batch | precision | ms/image | frames/s | |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        h, w, goal = INFER_GOAL
        for r in infer["results"]:
            size = tuple(r.get("image_size", ()))
            g = goal if size == (h, w) and _on_gpu(infer.get("device")) else None
            lines.append(
                f"| {r['model']} | {r['dataset']} | {size[0]}x{size[1]} | {r['batch']} | {r['precision']} "
                f"| {_num(r['ms_per_image'], '{:.3f}')} | {_num(r['frames_per_s'], '{:.0f}')} | {_goal(r['frames_per_s'], g)} |"
            )
    data = [(name, b) for name, b in bench.items() if name.startswith("data_") and b.get("results")]
    if data:
        lines += ["", "Data paths (`bench data`, no network):", "",
                  "| benchmark | device | batch | path | start s | batches/s | items/s | photos/s |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for name, b in data:
            for r in b["results"]:
                lines.append(
                    f"| {name} ({b.get('description', '')}) | {b.get('device')} | {b.get('batch_size')} | {r['path']} "
                    f"| {_num(r.get('start_s'), '{:.2f}')} | {_num(r.get('batches_per_s'))} | {_num(r.get('items_per_s'))} "
                    f"| {_num(r.get('photos_per_s'))} |"
                )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if not argv or len(argv) > 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    try:
        results = json.loads(Path(argv[0]).read_text())
        summary = Path(argv[1]).read_text() if len(argv) == 2 else None
    except (OSError, ValueError) as err:
        print(f"{argv[0]}: cannot read the device check's results: {err}", file=sys.stderr)
        return 2
    sys.stdout.write(report(results, summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
