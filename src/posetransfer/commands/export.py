"""``posetransfer export``: a trained checkpoint as a self-contained, shareable inference folder.

    posetransfer export RUN_OR_STEP_DIR --out DIR [--metrics metrics.json] [--overwrite]

DIR holds the networks (safetensors), ``model.json``, the config, the metrics (given, or a
``metrics.json`` found beside the checkpoint / in its run folder) and a model card ``README.md``;
``transfer``, ``generate`` and ``Pipeline.from_checkpoint`` load it (or its Hugging Face Hub copy).
See :mod:`posetransfer.inference.export`.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a checkpoint as a self-contained inference folder (weights, config, metrics, model card)",
        description="Copy a checkpoint's networks and config (not its training state) into a folder that "
        "transfer/generate/Pipeline load directly, with its metrics and a short model card.",
    )
    p.add_argument("checkpoint", metavar="RUN", help="run folder (its latest checkpoint), step folder or Hub repo id")
    p.add_argument("--out", required=True, type=Path, help="the folder to write")
    p.add_argument("--metrics", type=Path, default=None, help="metrics.json to include (default: one found in the run)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from posetransfer.inference.export import export_model

    summary = export_model(args.checkpoint, args.out, metrics=args.metrics, overwrite=args.overwrite)
    extra = f", metrics from {summary['metrics']}" if summary["metrics"] else ""
    print(f"exported step {summary['step']} to {summary['out']} ({', '.join(summary['files'])}{extra})")
    return 0
