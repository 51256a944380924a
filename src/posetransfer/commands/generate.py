"""``posetransfer generate``: run a trained checkpoint over a data set's pairs and write PNGs.

    posetransfer generate --checkpoint RUN_DIR_or_STEP_DIR --data DATASET_DIR --out DIR
                          [--split test] [--pairs PAIRS.csv] [--batch-size 16] [--limit N]

Writes ``DIR/<from-stem>___<to-stem>.png`` for every pair (stage II when the checkpoint has it,
else stage I) and ``DIR/grids/grid_XXX.png`` (condition | target pose | target | stage I | stage II).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from posetransfer.commands._args import positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "generate",
        help="generate images for a data set's pairs from a checkpoint",
        description="Rebuild a model from a checkpoint (model.json + safetensors) and generate one "
        "PNG per pair, named <from-stem>___<to-stem>.png, plus image grids.",
    )
    p.add_argument("--checkpoint", required=True,
                   help="step folder, run folder (its latest checkpoint), exported folder or Hugging Face Hub repo id")
    p.add_argument("--data", required=True, type=Path, help="data set folder (plain, Market or DeepFashion layout)")
    p.add_argument("--split", default=None, choices=("train", "test"), help="split, when the folder holds several")
    p.add_argument("--pairs", type=Path, default=None, help="pairs CSV replacing the data set's own")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="write into an --out folder that already holds files")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run into the same --out: pairs already written are skipped")
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N pairs")
    p.add_argument("--grid-rows", type=positive_int, default=8, help="pairs per grid image (default 8)")
    p.add_argument("--device", default="auto", help="auto (cuda when available, the default), cpu or cuda")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_generate)


def _generate(args: argparse.Namespace) -> int:
    from posetransfer.inference import generate_pairs
    from posetransfer.utils.io import check_output

    check_output(args.out, kind="dir", overwrite=args.overwrite or args.resume)
    summary = generate_pairs(
        args.checkpoint, args.data, args.out, split=args.split, pairs=args.pairs, batch_size=args.batch_size,
        limit=args.limit, grid_rows=args.grid_rows, device=args.device, progress=not args.no_progress,
        resume=args.resume,
    )
    kept = f" ({summary['skipped']} already there)" if summary["skipped"] else ""
    print(f"wrote {summary['images']} images and {summary['grids']} grids to {summary['out']}{kept} (checkpoint step {summary['step']})")
    return 0
