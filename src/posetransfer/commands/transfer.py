"""``posetransfer transfer``: one's own photo(s) of a person, re-posed by a trained checkpoint.

``--pose`` is an annotation-style file (one ``name:[ys]:[xs]`` row in the model's frame), another
photo (its pose is extracted: needs the pose extra) or a built-in pose name
(``posetransfer pose library``). The output is written once, atomically; every bad input is
reported before anything is written. See :mod:`posetransfer.inference`.
"""

from __future__ import annotations

import sys
from pathlib import Path


def register(subparsers) -> None:
    from posetransfer.data.prepare import FILLS, FRAME_MODES

    p = subparsers.add_parser("transfer", help="re-pose the person of your photo(s) with a trained model",
                              description="Generate the person of the source photo(s) in a target pose.")  # fmt: skip
    p.add_argument("--checkpoint", required=True,
                   help="step, run or exported folder, or a Hugging Face Hub repo id (owner/name[@revision])")
    p.add_argument("--source", required=True, action="append", type=Path, metavar="PHOTO",
                   help="photo of the person, or a folder of their photos (repeat for a multi-view model)")
    p.add_argument("--pose", required=True, metavar="TARGET",
                   help="pose file (one annotation row), a photo, or a built-in pose name (see `pose library`)")
    p.add_argument("--out", required=True, type=Path, help="output PNG")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--on-canvas", action="store_true", help="paste the result back on the first source photo")
    p.add_argument("--frame", choices=FRAME_MODES, default="height",
                   help="how photos are brought to the model frame (default height: DeepFashion's full height + centre crop)")
    p.add_argument("--fill", choices=FILLS, default="edge", help="padding (default edge: repeat the border)")
    p.add_argument("--backend", default="mediapipe", help="pose backend for --pose PHOTO and --frame person")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.set_defaults(func=_transfer)


def _transfer(args) -> int:
    from posetransfer.inference import Pipeline
    from posetransfer.utils.io import check_output, save_image

    check_output(args.out, overwrite=args.overwrite)
    pipe = Pipeline.from_checkpoint(args.checkpoint, device=args.device, frame=args.frame, fill=args.fill,
                                    backend=args.backend)
    result = pipe.transfer(args.source, args.pose)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    image = result.on_canvas() if args.on_canvas else result.image
    save_image(args.out, image)
    print(f"wrote {args.out} ({image.shape[0]}x{image.shape[1]})")
    return 0
