"""``posetransfer data prepare RAW_DIR --out DATASET_DIR --size HxW``: a data set from a folder of photos.

This module does not register a top-level command: ``commands/data.py`` calls
:func:`register_prepare` with its sub-parsers so the action lives under ``data``. See
:func:`posetransfer.data.prepare.prepare_dataset` for what is written.
"""

from __future__ import annotations

import sys
from pathlib import Path

from posetransfer.commands._args import fraction, size_hw


def register_prepare(data_subparsers) -> None:
    """Add the ``prepare`` action to the ``data`` command's sub-parsers."""
    from posetransfer.data.prepare import FILLS, FRAME_MODES

    p = data_subparsers.add_parser(
        "prepare", help="make a data set (train/ and test/, plain layout) from a folder of your photos",
        description="Frame every photo, extract its keypoints, write annotation, pairs and splits.",
    )
    p.add_argument("raw_dir", type=Path, metavar="RAW_DIR", help="folder of photos (searched recursively)")
    p.add_argument("--out", required=True, type=Path, help="data set folder to write")
    p.add_argument("--size", required=True, type=size_hw, help="HEIGHTxWIDTH, e.g. 256x176 (DeepFashion) or 128x64")
    p.add_argument("--identity", default="subfolders",
                   help="who is who: 'subfolders' (one folder per person, default), 'filename' "
                        "(the part before the first '_'), or a regular expression on the relative path "
                        "(its first group)")
    p.add_argument("--test-fraction", type=fraction, default=0.2, help="share of identities in test/ (default 0.2)")
    p.add_argument("--frame", choices=FRAME_MODES, default="height",
                   help="height (default, DeepFashion: full height, centre crop/pad), person, pad or crop")
    p.add_argument("--fill", choices=FILLS, default="edge", help="padding: edge (default) or white")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--backend", default="mediapipe", help="pose backend (default mediapipe)")
    p.add_argument("--visibility", type=float, default=0.5, help="keypoint confidence threshold (default 0.5)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_prepare)


def _prepare(args) -> int:
    import re

    from posetransfer.commands.pose import make_backend
    from posetransfer.data.prepare import prepare_dataset
    from posetransfer.errors import ConfigError
    from posetransfer.utils.io import check_output

    if args.identity not in ("subfolders", "filename"):
        try:
            re.compile(args.identity)
        except re.error as err:
            raise ConfigError(f"--identity {args.identity!r}: not a valid regular expression ({err})") from None
    check_output(args.out, kind="dir", overwrite=args.overwrite)

    report = prepare_dataset(
        args.raw_dir, args.out, args.size, identity=args.identity, test_fraction=args.test_fraction,
        backend=make_backend(args), frame=args.frame, fill=args.fill, seed=args.seed,
        overwrite=args.overwrite, progress=not args.no_progress,
    )
    for rel, msg in report.unreadable.items():
        print(f"unreadable: {rel}: {msg}", file=sys.stderr)
    for rel, msg in report.no_person.items():
        print(f"no person: {rel}: {msg}", file=sys.stderr)
    for rel in report.no_identity:
        print(f"no identity: {rel} does not match --identity {args.identity!r}", file=sys.stderr)
    print(report.summary())
    return 0
