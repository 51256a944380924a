"""``posetransfer evaluate``: the papers' metrics on a folder of generated images, or a comparison
of several evaluated runs. Thin: the work is in :mod:`posetransfer.evaluation`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from posetransfer.errors import PosetransferError


def _metric_list(text: str) -> list[str]:
    from posetransfer.evaluation.metrics import ALL_METRICS

    names = [t.strip() for t in text.replace(" ", ",").split(",") if t.strip()]
    unknown = [n for n in names if n not in ALL_METRICS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown metrics {', '.join(unknown) or text!r}; known: {', '.join(ALL_METRICS)}")
    return names


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="compute SSIM / mask-SSIM / IS / FID / LPIPS / PSNR / PCKh of generated images",
        description=(
            "Evaluate generated images named <from-stem>___<to-stem>.png against their targets in a "
            "data set, writing metrics.json, table.md (PG2 Table 1 layout) and report.html (best and "
            "worst pairs); or, with --compare, put several evaluated runs in one table. Default "
            "metrics: ssim_pg2, ssim_patn, mask_ssim_pg2, mask_ssim_patn, psnr, l1, masked_l1, plus "
            "is/mask_is/fid and lpips when their weights are on this machine and pckh when a pose "
            "backend is installed. Weights are looked up in the --*-weights path, then "
            "$POSETRANSFER_WEIGHTS_DIR, then the cache ($XDG_CACHE_HOME/posetransfer or "
            "~/.cache/posetransfer), then downloaded. `evaluate fid-stats DIR` caches real FID statistics."
        ),
    )
    p.add_argument("--generated", type=Path, help="folder of generated <from-stem>___<to-stem>.png images")
    p.add_argument("--data", type=Path, help="the data set (plain, Market or DeepFashion layout)")
    p.add_argument("--split", default=None, help="data set split (train/test) when the folder holds several")
    p.add_argument("--out", type=Path, help="report folder (metrics.json, table.md, report.html)")
    p.add_argument("--metrics", type=_metric_list, default=None, help="comma-separated metrics to compute (default: see above)")
    p.add_argument("--compare", type=Path, nargs="+", metavar="RUN", help="report folders (or metrics.json files) to tabulate, rows = runs")
    p.add_argument("--name", default=None, help="row name in the table (default: the generated folder's name)")
    p.add_argument("--patn-bound", type=int, default=None, metavar="PX",
                   help="PATN's white padding per side for ssim_patn, mask_ssim_patn and is, as its "
                        "getMetrics_fashion.py (default: 40 on 176-wide images, else 0)")  # fmt: skip
    p.add_argument("--pg2-mask-of", choices=("target", "condition"), default="target",
                   help="whose keypoints make the pg2 mask of mask_ssim_pg2 / mask_is / masked_l1: the target's "
                        "(PG2's paper, default) or the condition image's (PG2's released score_mask.py)")  # fmt: skip
    p.add_argument("--fid-real", type=Path, default=None,
                   help="real images for fid / fid_gfla / fid_pidm / fid_cfld: a folder (statistics cached) or an .npz of `evaluate fid-stats` (its protocol must match; default: the data set's training split)")  # fmt: skip
    p.add_argument("--targets", type=Path, default=None, metavar="DIR",
                   help="read each target from DIR/<generated stem>.png instead of the data set (the target "
                        "panels of PATN's strips, written by `evaluate import --targets-out`, as its getMetrics compares)")  # fmt: skip
    p.add_argument("--paper", type=Path, default=None, metavar="CONFIG",
                   help="a table-row recipe (e.g. configs/pg2/market/g1_posemaskloss.yaml) whose paper: numbers "
                        "the reports show beside ours (default: the row generate recorded in the generated "
                        "folder's generated.json, if its checkpoint's config has one)")  # fmt: skip
    p.add_argument("--inception-weights", default=None, help="local pt_inception-2015-12-05-6726825d.pth")
    p.add_argument("--alexnet-weights", default=None, help="local alexnet-owt-7be5be79.pth (LPIPS)")
    p.add_argument("--lpips-weights", default=None, help="local LPIPS v0.1 alex.pth")
    p.add_argument("--inception-gfla-weights", default=None, help="local inception_v3_google-0cc3c7bd.pth (torchvision's; fid_gfla, fid_pidm, fid_cfld)")
    p.add_argument("--openpose-weights", default=None, help="local body_pose_model.pth (the openpose backend of pckh)")
    p.add_argument("--pose-backend", default=None,
                   help="pose estimator for PCKh (default: openpose when body_pose_model.pth is found, reported as pckh; else mediapipe, reported as pckh_mediapipe)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace the reports in an existing --out folder")
    p.add_argument("--show", type=int, default=8, help="best and worst pairs shown in report.html (default 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    sub = p.add_subparsers(dest="evaluate_command", metavar="{fid-stats,import}")
    f = sub.add_parser(
        "fid-stats",
        help="cache the FID statistics of a folder of real images (mu, sigma, n, protocol) in an .npz",
        description="Compute the real-set statistics of an FID protocol once; pass the .npz to `evaluate --fid-real`.",
    )
    f.add_argument("folder", type=Path, metavar="DIR", help="folder of real images (usually the training split)")
    f.add_argument("--protocol", default="fid", choices=("fid", "fid_gfla", "fid_pidm", "fid_cfld"),
                   help="fid: pytorch-fid's TF-Inception; fid_gfla: torchvision's Inception v3 as GFLA's script "
                        "(last incomplete batch of 64 dropped); fid_pidm: the same on every image first resized to "
                        "256x176 by cv2.resize, as PIDM's script; fid_cfld: fid_gfla with every image (default fid)")  # fmt: skip
    f.add_argument("--out", required=True, type=Path, help="the .npz to write")
    f.add_argument("--inception-weights", default=None, help="local pt_inception-2015-12-05-6726825d.pth (--protocol fid)")
    f.add_argument("--inception-gfla-weights", default=None, help="local inception_v3_google-0cc3c7bd.pth (--protocol fid_gfla / fid_pidm / fid_cfld)")
    f.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    f.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    f.add_argument("--no-progress", action="store_true", help="no progress bars")
    f.set_defaults(func=run_fid_stats)
    i = sub.add_parser(
        "import",
        help="convert PATN's / GFLA's / PIDM's released test images to <from-stem>___<to-stem>.png",
        description=(
            "Write the generated image of every released test image as <from-stem>___<to-stem>.png "
            "(lossless), the files `evaluate --generated` reads. patn-strip: PATN's test.py strips "
            "<source>.jpg___<target>.jpg_vis.jpg of 5 panels (source|pose|target|pose|generated), "
            "panel 5 kept; gfla: GFLA's test.py images <source-stem>_2_<target-stem>_vis.jpg; pidm: "
            "PIDM's utils/gen.py images <source-stem>_2_<target-stem>_vis.png (PIDM.zip), each matched "
            "against --pairs (a name that is no pair of it is an error)."
        ),
    )
    i.add_argument("folder", type=Path, metavar="DIR", help="folder of the released test images")
    i.add_argument("--layout", required=True, choices=("patn-strip", "gfla", "pidm"), help="whose test script wrote them")
    i.add_argument("--pairs", type=Path, default=None, metavar="CSV",
                   help="pidm: the from,to pairs file the names are matched against (the field's "
                        "fasion-resize-pairs-test.csv, or the data set's pairs.csv)")  # fmt: skip
    i.add_argument("--out", required=True, type=Path, help="folder to write the <from-stem>___<to-stem>.png files")
    i.add_argument("--targets-out", type=Path, default=None, metavar="DIR",
                   help="patn-strip: also write each strip's target panel (panel 3) as DIR/<from-stem>___<to-stem>.png, "
                        "for `evaluate --targets DIR` (PATN's getMetrics compares with these, not the data set's images)")  # fmt: skip
    i.add_argument("--overwrite", action="store_true", help="write into folders that already hold files")
    i.set_defaults(func=run_import)


def run_import(args: argparse.Namespace) -> int:
    from posetransfer.evaluation.released import convert_released

    def log(msg: str) -> None:
        print(msg, file=sys.stderr)

    n = convert_released(args.folder, args.layout, args.out, overwrite=args.overwrite, targets_out=args.targets_out,
                         pairs=args.pairs, log=log)  # fmt: skip
    print(f"wrote {n} images <from-stem>___<to-stem>.png to {args.out}", file=sys.stderr)
    return 0


def run_fid_stats(args: argparse.Namespace) -> int:
    from posetransfer.errors import DataError
    from posetransfer.evaluation import fid as FID
    from posetransfer.utils.devices import resolve_device

    if args.out.exists() and not args.overwrite:
        raise DataError(args.out, "already exists (pass --overwrite to replace it)")
    from posetransfer.utils.io import check_output

    check_output(args.out, overwrite=True)  # not a folder, and writable, before the statistics are computed
    FID.list_real_images(args.folder, args.protocol)  # a bad folder fails before any weights are loaded
    device = resolve_device(args.device)
    weights = args.inception_weights if args.protocol == "fid" else args.inception_gfla_weights
    model = FID.load_network(args.protocol, weights).to(device)
    mu, sigma, n = FID.folder_statistics(args.protocol, model, args.folder, progress=not args.no_progress)
    FID.write_statistics(args.out, args.protocol, mu, sigma, n, overwrite=args.overwrite)
    print(f"wrote {args.out}: {args.protocol} statistics of {n} images of {args.folder}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    from posetransfer.evaluation.report import compare_runs
    from posetransfer.utils.io import atomic_write_text, check_output

    if args.compare:
        if args.generated or args.data or args.paper:
            raise PosetransferError("--compare takes report folders only; leave out --generated, --data and --paper")
        if args.out:
            check_output(Path(args.out) / "table.md", overwrite=args.overwrite)
        table = compare_runs(args.compare)
        if args.out:
            atomic_write_text(Path(args.out) / "table.md", table)
        print(table, end="")
        return 0
    missing = [opt for opt, v in (("--generated", args.generated), ("--data", args.data), ("--out", args.out)) if v is None]
    if missing:
        raise PosetransferError(f"missing {', '.join(missing)} (or use --compare RUN...)")

    from posetransfer.evaluation.evaluate import WeightPaths, run_evaluation

    # checked before a single metric is computed (evaluation can take minutes)
    check_output(args.out, kind="dir", overwrite=args.overwrite)
    paper = None
    if args.paper is not None:
        from posetransfer.evaluation.paper import check_paper_metrics
        from posetransfer.training.config import load_config

        row = load_config(args.paper).paper
        if row is None:
            raise PosetransferError(f"{args.paper}: has no paper: section (the published numbers of a table row)")
        paper = row.model_dump(mode="json")
        check_paper_metrics(paper, str(args.paper))

    def log(msg: str) -> None:
        print(msg, file=sys.stderr)

    values = run_evaluation(
        args.generated, args.data, args.out, split=args.split, metrics=args.metrics, bound=args.patn_bound,
        weights=WeightPaths(args.inception_weights, args.alexnet_weights, args.lpips_weights,
                            args.inception_gfla_weights, args.openpose_weights),
        fid_real=args.fid_real, pose_backend=args.pose_backend, name=args.name, show=args.show,
        progress=not args.no_progress, log=log, pg2_mask_of=args.pg2_mask_of, targets_dir=args.targets,
        paper=paper,
    )  # fmt: skip
    print((Path(args.out) / "table.md").read_text(encoding="utf-8"), end="")
    written = [n for n in ("metrics.json", "table.md", "report.html") if (Path(args.out) / n).is_file()]
    print(f"wrote {args.out}/{', '.join(written)} ({values['pairs']} pairs)", file=sys.stderr)
    return 0
