"""``posetransfer reproduce``: one table row end to end, the paper's numbers beside ours.

    posetransfer reproduce CONFIG --out OUT [--data DIR] [--set key.sub=value ...] [--device cuda]
                           [--metrics ssim_pg2,is,...] [--inception-weights FILE]

Trains the row (and its stage-I run first when it has ``init_from``) into ``OUT/runs/``, generates
the test split into ``OUT/generated/<row>``, evaluates into ``OUT/reports/<row>`` and prints the
table; rerunning the same command continues where it stopped (:mod:`posetransfer.reproduce`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from posetransfer.commands._args import add_overrides, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    from posetransfer.commands.evaluate import _metric_list

    p = subparsers.add_parser(
        "reproduce",
        help="train, generate and evaluate one table row; the table shows the paper's numbers beside ours",
        description="Run a table-row recipe end to end: its stage-I dependency (when the config has "
        "init_from) and the row trained into OUT/runs/<row>, generate on the test split into "
        "OUT/generated/<row>, evaluate into OUT/reports/<row> (metrics.json, table.md, report.html) "
        "with the published row (the config's paper: section) and the difference. Rerun the same "
        "command after an interruption: finished stages are skipped, unfinished ones continue.",
    )
    p.add_argument("config", type=Path, help="a table-row recipe, e.g. configs/pg2/market/g1_g2_d.yaml")
    p.add_argument("--out", required=True, type=Path, help="output folder (runs/, generated/, reports/)")
    p.add_argument("--data", type=Path, default=None,
                   help="the data set folder, replacing the recipe's data.train / data.test paths (splits kept)")  # fmt: skip
    add_overrides(p, "train.iterations=100", " of every training stage (a model.NET key only where NET is "
                  "built; init_from / paper keys: the row only)")  # fmt: skip
    p.add_argument("--device", default=None,
                   help="cpu or cuda (default: the recipe's train.device): training, generation and the metrics' networks")  # fmt: skip
    p.add_argument("--metrics", type=_metric_list, default=None,
                   help="comma-separated metrics (default: evaluate's default set plus the row's published metrics)")  # fmt: skip
    p.add_argument("--inception-weights", default=None, help="local pt_inception-2015-12-05-6726825d.pth (is, mask_is)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="generation batch size (default 16)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_reproduce)


def _reproduce(args: argparse.Namespace) -> int:
    from posetransfer.evaluation.evaluate import WeightPaths
    from posetransfer.reproduce import reproduce

    result = reproduce(
        args.config, args.out, data=args.data, overrides=args.overrides, device=args.device, metrics=args.metrics,
        weights=WeightPaths(inception=args.inception_weights), batch_size=args.batch_size,
        progress=not args.no_progress,
    )  # fmt: skip
    print(result["table"], end="")
    print(f"reproduce: report in {result['report']} (metrics.json, table.md, report.html)", file=sys.stderr)
    return 0
