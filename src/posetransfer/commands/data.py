"""``posetransfer data {synth,check,show,pairs,walk}``: make, validate, look at and pair data sets; a driving clip.

Thin wrappers over :mod:`posetransfer.data`; heavy imports (torch, the synthesiser) happen inside
the handlers so ``posetransfer --help`` stays fast.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from posetransfer.commands._args import fraction, positive_int, size_hw
from posetransfer.errors import DataError, OutputError


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="make, check, show and pair data sets",
                              description="Data set tools: synthesise, validate, preview, make pairs.")  # fmt: skip
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    sub.required = True

    s = sub.add_parser("synth", help="write a synthetic data set (train/ and test/ in the plain layout)")
    s.add_argument("--out", required=True, type=Path, help="output folder")
    s.add_argument("--size", type=size_hw, default=(128, 64), help="HEIGHTxWIDTH (default 128x64)")
    s.add_argument("--identities", type=positive_int, default=40, help="number of people (default 40)")
    s.add_argument("--views", type=positive_int, default=6, help="photos per person (default 6)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--background", choices=("varied", "plain"), default="varied")
    s.add_argument("--test-fraction", type=fraction, default=0.2, help="share of identities in test/ (default 0.2)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing data set in --out")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=_synth)

    c = sub.add_parser("check", help="validate a data set: images, annotation, pairs")
    c.add_argument("dir", type=Path, help="data set folder (plain, Market or DeepFashion layout)")
    c.add_argument("--split", default=None, help="train or test, when the folder holds both")
    c.add_argument("--strict", action="store_true", help="keypoints outside the frame are errors")
    c.add_argument("--all", action="store_true", help="print every problem (default: 20 of each kind)")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(func=_check)

    w = sub.add_parser("show", help="write a grid of sample pairs with their poses and masks")
    w.add_argument("dir", type=Path, help="data set folder")
    w.add_argument("--split", default=None)
    w.add_argument("--n", type=positive_int, default=8, help="number of pairs (default 8)")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--scale", type=int, default=0, help="enlarge images by this factor (default: to >= 256 rows)")
    w.add_argument("--out", required=True, type=Path, help="output PNG")
    w.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    w.set_defaults(func=_show)

    r = sub.add_parser("pairs", help="write same-identity pairs for an annotation file")
    r.add_argument("annotation", type=Path, help="annotation CSV (name:keypoints_y:keypoints_x)")
    r.add_argument("--out", required=True, type=Path, help="output pairs CSV (from,to)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--max-pairs", type=positive_int, default=None)
    r.add_argument("--require-torso", action="store_true", help="only images with both shoulders and both hips")
    r.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    r.set_defaults(func=_pairs)

    _register_walk(sub)

    # `data prepare` (a folder of one's own photos -> a data set) lives beside the pose extractor.
    from posetransfer.commands.prepare import register_prepare

    register_prepare(sub)

    # `data import deepfashion|market` (the official downloads -> the field's layouts).
    from posetransfer.commands.data_import import register_import

    register_import(sub)


def _synth(args) -> int:
    from posetransfer.data.synth import synthesize

    from posetransfer.utils.io import check_output

    check_output(args.out, kind="dir", overwrite=args.overwrite)
    summary = synthesize(
        args.out,
        size=args.size,
        identities=args.identities,
        views=args.views,
        seed=args.seed,
        background=args.background,
        test_fraction=args.test_fraction,
        progress=not args.no_progress,
    )
    print(f"wrote a synthetic data set to {args.out}")
    for key, value in (summary or {}).items():
        if isinstance(value, dict):
            value = ", ".join(f"{v} {k}" for k, v in value.items())
        elif isinstance(value, float):
            value = f"{value:.3g}"
        print(f"  {key}: {value}")
    return 0


def _check(args) -> int:
    from posetransfer.data.check import check_dataset

    report = check_dataset(args.dir, split=args.split, strict=args.strict, progress=not args.no_progress)
    for line in report.summary_lines()[:-1]:
        print(line)
    shown: dict[str, int] = defaultdict(int)
    totals: dict[str, int] = defaultdict(int)
    for p in report.problems:
        totals[p.kind] += 1
    order = {"error": 0, "warning": 1, "info": 2}
    for p in sorted(report.problems, key=lambda p: order[p.severity]):  # stable: file order within a severity
        if args.all or shown[p.kind] < 20:
            print(p.format())
        elif shown[p.kind] == 20:
            print(f"{p.severity}: ... {totals[p.kind] - 20} more {p.kind} problems (--all prints them)")
        shown[p.kind] += 1
    print(report.summary_lines()[-1])
    return 0 if report.ok else 1


def _show(args) -> int:
    import cv2
    import numpy as np

    from posetransfer.data.datasets import PairDataset
    from posetransfer.data.layouts import resolve_dataset
    from posetransfer.data.pairs import make_pairs
    from posetransfer.pose.io import read_annotations
    from posetransfer.utils.io import save_image
    from posetransfer.pose.draw import draw_skeleton
    from posetransfer.utils.io import check_output
    from posetransfer.utils.viz import make_grid, overlay_mask, to_uint8

    check_output(args.out, overwrite=args.overwrite)
    files = resolve_dataset(args.dir, args.split)
    pairs = None
    if files.pairs_path is None:  # no pairs file: show generated same-identity pairs instead
        pairs = make_pairs(read_annotations(files.annotation_path), seed=args.seed, max_pairs=10 * args.n)
        if not pairs:
            raise DataError(files.annotation_path, "no pairs file and no identity with two photos to pair")
    ds = PairDataset(files, pairs=pairs)
    rng = np.random.default_rng(args.seed)
    indices = sorted(rng.choice(len(ds), size=min(args.n, len(ds)), replace=False).tolist())
    h = ds.size[0]
    scale = args.scale if args.scale > 0 else max(1, -(-256 // h))

    def big(image: np.ndarray) -> np.ndarray:
        if scale == 1:
            return image
        return cv2.resize(image, (image.shape[1] * scale, image.shape[0] * scale), interpolation=cv2.INTER_NEAREST)

    rows = []
    for i in indices:
        item = ds[i]
        target = to_uint8(item["target_image"])
        rows.append([
            big(to_uint8(item["source_image"])),
            big(target),
            big(draw_skeleton(target, item["target_keypoints"].numpy())),
            big(overlay_mask(target, item["target_mask"])),
        ])  # fmt: skip
    grid = make_grid(rows, labels=["source", "target", "target pose", "target mask"])
    save_image(args.out, grid)
    print(f"wrote {len(rows)} pairs to {args.out} ({grid.shape[0]}x{grid.shape[1]})")
    return 0


def _pairs(args) -> int:
    from posetransfer.data.pairs import group_by_identity, make_pairs
    from posetransfer.pose.io import read_annotations, write_pairs
    from posetransfer.utils.io import check_output

    if args.out.exists() and args.annotation.exists() and args.out.resolve() == args.annotation.resolve():
        raise OutputError(f"{args.out}: is the input annotation file; --out must name another file")
    check_output(args.out, overwrite=args.overwrite)
    annotations = read_annotations(args.annotation)
    pairs = make_pairs(annotations, seed=args.seed, max_pairs=args.max_pairs, require_torso=args.require_torso)
    if not pairs:
        torso = " with a visible torso" if args.require_torso else ""
        raise DataError(args.annotation, f"no identity has two or more photos{torso}: no pairs to write")
    write_pairs(args.out, pairs)
    identities = len(group_by_identity({a for a, _ in pairs}))
    print(f"wrote {len(pairs)} pairs of {identities} identities to {args.out}")
    return 0


def _register_walk(sub) -> None:
    w = sub.add_parser("walk", help="write a video of a synthetic person walking (a driving clip for `animate`)")
    w.add_argument("--out", required=True, type=Path, help="output .mp4 or .gif")
    w.add_argument("--frames", type=positive_int, default=40, help="number of frames (default 40)")
    w.add_argument("--size", type=size_hw, default=(256, 192), help="HEIGHTxWIDTH (default 256x192)")
    w.add_argument("--fps", type=positive_int, default=10, help="frame rate (default 10: a stride a second)")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    w.set_defaults(func=_walk)


def _walk(args) -> int:
    from posetransfer.data.motion import walking_frames
    from posetransfer.utils.video import VideoWriter

    with VideoWriter(args.out, args.fps, overwrite=args.overwrite) as writer:
        for image, _ in walking_frames(args.frames, args.size, seed=args.seed, fps=args.fps):
            writer.write(image)
    print(f"wrote {args.out}: {writer.frames} frames, {args.size[0]}x{args.size[1]}, {args.fps} fps")
    return 0
