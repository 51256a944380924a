"""``posetransfer study {export,score}``: PG2's real-vs-generated user study (section 4.3).

``export`` writes a shuffled, numbered set of real and generated images with its answer key;
``score`` computes R2G and G2R from collected answers, ignoring each rater's practice answers.
Thin: the work is in :mod:`posetransfer.evaluation.study`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("study", help="real-vs-generated user study: export images, score answers (PG2)")
    sub = p.add_subparsers(dest="study_command", metavar="STEP")
    sub.required = True

    e = sub.add_parser("export", help="write a shuffled set of real and generated images and answer_key.csv")
    e.add_argument("--real", type=Path, required=True, help="folder of real images")
    e.add_argument("--generated", type=Path, required=True, help="folder of generated images")
    e.add_argument("--out", type=Path, required=True, help="study folder (images/ and answer_key.csv)")
    e.add_argument("--n-real", type=int, default=55, help="real images shown (PG2: 55)")
    e.add_argument("--n-generated", type=int, default=55, help="generated images shown (PG2: 55)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--overwrite", action="store_true", help="replace an existing study folder")
    e.set_defaults(func=_export)

    s = sub.add_parser("score", help="R2G and G2R of collected answers (rater,image,answer CSV)")
    s.add_argument("--key", type=Path, required=True, help="answer_key.csv written by study export")
    s.add_argument("--answers", type=Path, required=True, help="CSV with columns rater,image,answer (real/generated)")
    s.add_argument("--practice", type=int, default=10, help="first answers of each rater ignored (PG2: 10)")
    s.set_defaults(func=_score)


def _export(args: argparse.Namespace) -> int:
    from posetransfer.data.layouts import list_images
    from posetransfer.evaluation.study import export_study
    from posetransfer.utils.io import check_output

    check_output(args.out, kind="dir", overwrite=args.overwrite)

    real = [args.real / n for n in list_images(args.real)]
    gen = [args.generated / n for n in list_images(args.generated)]
    rows = export_study(real, gen, args.out, n_real=args.n_real, n_gen=args.n_generated, seed=args.seed)
    print(f"wrote {len(rows)} images to {args.out}/images and the answer key {args.out}/answer_key.csv")
    return 0


def _score(args: argparse.Namespace) -> int:
    from posetransfer.evaluation.study import score_study

    result = score_study(args.key, args.answers, practice=args.practice)
    print(json.dumps(result, indent=2))
    return 0
