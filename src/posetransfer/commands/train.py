"""``posetransfer train``: train a model from a config (PG2 Table 1 recipes in ``configs/``).

    posetransfer train CONFIG --out RUN_DIR [--set key.sub=value ...]   start a run
    posetransfer train CONFIG --out RUN_DIR --resume                   continue it (or start it)
    posetransfer train --resume RUN_DIR [--set ...]                    continue with its saved config

Multi-GPU / multi-node: launch the same command with ``torchrun`` (see
:mod:`posetransfer.training.distributed`), e.g.
``torchrun --nproc_per_node=2 -m posetransfer train CONFIG --out RUN_DIR``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from posetransfer.commands._args import add_overrides
from posetransfer.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model from a config file",
        description="Train a model from a YAML config. Checkpoints go to RUN_DIR/checkpoints, "
        "TensorBoard logs to RUN_DIR/tb, sample grids to RUN_DIR/samples.",
    )
    p.add_argument("config", nargs="?", type=Path, help="config file (e.g. configs/pg2/market/g1_posemaskloss.yaml)")
    p.add_argument("--out", type=Path, default=None, help="run folder (checkpoints, logs, samples)")
    add_overrides(p)
    p.add_argument(
        "--resume", nargs="?", const=True, default=False, metavar="RUN_DIR",
        help="continue from the newest checkpoint of --out (or of RUN_DIR, with the config it was started with)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from posetransfer.training.base import resume_run, train

    progress = not args.no_progress
    if isinstance(args.resume, str):  # train --resume RUN_DIR
        run_dir = Path(args.resume)
        if args.out is not None and args.out != run_dir:
            raise ConfigError(f"--resume {run_dir} and --out {args.out} name different run folders")
        if args.config is not None:
            result = train(args.config, run_dir, overrides=args.overrides, resume=True, progress=progress)
        else:
            result = resume_run(run_dir, overrides=args.overrides, progress=progress)
    else:
        if args.config is None:
            raise ConfigError("give a CONFIG file (or --resume RUN_DIR to continue a run)")
        if args.out is None:
            raise ConfigError("give the run folder with --out RUN_DIR")
        result = train(args.config, args.out, overrides=args.overrides, resume=bool(args.resume), progress=progress)
    if result.checkpoint is not None:
        print(f"trained to step {result.step}; checkpoint {result.checkpoint}")
    return 0
