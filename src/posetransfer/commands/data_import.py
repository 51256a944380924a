"""``posetransfer data import deepfashion|market RAW_DIR --out DIR``: the official downloads -> the field's layouts.

Like ``data prepare``, this module registers no top-level command: ``commands/data.py`` calls
:func:`register_import` with its sub-parsers. The work is in :mod:`posetransfer.data.importers`.
"""

from __future__ import annotations

from pathlib import Path

from posetransfer.commands._args import size_hw


def register_import(data_subparsers) -> None:
    """Add the ``import`` action (``deepfashion``, ``market``) to the ``data`` command's sub-parsers."""
    p = data_subparsers.add_parser(
        "import", help="the DeepFashion In-shop or Market-1501 download -> the field's data layout",
        description="Rebuild the field's data layout from the official archives, then run data check on it.",
    )
    sub = p.add_subparsers(dest="import_dataset", metavar="DATASET")
    sub.required = True

    d = sub.add_parser("deepfashion", help="DeepFashion In-shop (img/ or img_highres/)",
                       description="Name, crop and split the In-shop images as the field does (PATN's "
                                   "generate_fashion_datasets.py), with the field's annotation and pairs.")  # fmt: skip
    d.add_argument("raw_dir", type=Path, metavar="RAW_DIR", help="In-shop folder holding img/ (or img_highres/)")
    d.add_argument("--size", type=size_hw, default=(256, 176),
                   help="256x176 (default: the field's crop) or 256x256 (PG2's frame, keypoints moved by 40 px)")
    d.add_argument("--lists", type=Path, default=None,
                   help="folder with train.lst and test.lst (default: download them, SHA-256 checked)")
    d.add_argument("--source", choices=("auto", "img", "img_highres"), default="auto",
                   help="which In-shop image folder to read (default: img/ when present)")
    d.add_argument("--format", choices=("jpg", "png"), default="jpg", dest="fmt",
                   help="jpg (default: the field's names) or png (lossless; names and CSVs renamed)")
    _common(d)
    d.set_defaults(func=_deepfashion)

    m = sub.add_parser("market", help="Market-1501 (bounding_box_train/, bounding_box_test/, query/)",
                       description="Copy the Market-1501 boxes into the field's layout, leaving out "
                                   "distractors and images without keypoints as PATN does.")  # fmt: skip
    m.add_argument("raw_dir", type=Path, metavar="RAW_DIR", help="the unpacked Market-1501 archive")
    _common(m)
    m.set_defaults(func=_market)


def _common(p) -> None:
    p.add_argument("--out", required=True, type=Path, help="data set folder to write")
    p.add_argument("--annotations", type=Path, default=None,
                   help="folder with the field's annotation (and pairs) CSV files")
    p.add_argument("--extract-missing", action="store_true",
                   help="annotate the images the annotations miss with the pose extractor")
    p.add_argument("--backend", default="mediapipe", help="pose backend for --extract-missing (default mediapipe)")
    p.add_argument("--visibility", type=float, default=0.5, help="keypoint confidence threshold (default 0.5)")
    p.add_argument("--overwrite", action="store_true", help="replace a finished (or another) import in --out")
    p.add_argument("--no-check", action="store_true", help="skip the closing data check")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _backend(args):
    if not args.extract_missing:
        return None
    from posetransfer.commands.pose import make_backend

    return make_backend(args)


def _finish(report) -> int:
    for line in report.lines():
        print(line)
    return 0 if report.check_ok else 1


def _deepfashion(args) -> int:
    from posetransfer.data.importers.deepfashion import import_deepfashion
    from posetransfer.utils.io import check_writable_folder

    check_writable_folder(args.out)  # before the first archive is read
    return _finish(import_deepfashion(
        args.raw_dir, args.out, size=args.size, lists=args.lists, annotations=args.annotations,
        extract=args.extract_missing, backend=_backend(args), fmt=args.fmt, source=args.source,
        overwrite=args.overwrite, progress=not args.no_progress, check=not args.no_check,
    ))  # fmt: skip


def _market(args) -> int:
    from posetransfer.data.importers.market import import_market
    from posetransfer.utils.io import check_writable_folder

    check_writable_folder(args.out)  # before the first archive is read
    return _finish(import_market(
        args.raw_dir, args.out, annotations=args.annotations, extract=args.extract_missing,
        backend=_backend(args), overwrite=args.overwrite, progress=not args.no_progress, check=not args.no_check,
    ))  # fmt: skip
