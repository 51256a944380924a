"""``posetransfer animate``: the person of a photo moved by the motion of a driving video.

``--driving`` is a video, a folder of frames or a ``pose track`` file; the poses are tracked,
smoothed, retargeted to the source's body (``--no-retarget`` to skip), generated in batches and
written as MP4 (H.264) or GIF at the driving clip's frame rate (``--fps`` to override). The output
path is checked first and written atomically at the end. See :mod:`posetransfer.inference.animation`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from posetransfer.commands._args import positive_int


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def add_smoothing_args(p: argparse.ArgumentParser) -> None:
    """The tracking options shared by ``animate`` and ``pose track`` (:class:`SmoothingConfig`)."""
    from posetransfer.pose.tracking import SmoothingConfig

    d = SmoothingConfig()
    g = p.add_argument_group("tracking")
    g.add_argument("--no-smooth", action="store_true", help="no One-Euro smoothing (gaps are still filled)")
    g.add_argument("--min-cutoff", type=positive_float, default=d.min_cutoff,
                   help=f"One-Euro minimum cut-off in Hz: lower removes more jitter at rest (default {d.min_cutoff})")
    g.add_argument("--beta", type=float, default=d.beta,
                   help=f"One-Euro speed coefficient: higher means less lag on fast motion (default {d.beta})")
    g.add_argument("--max-gap", type=int, default=d.max_gap,
                   help=f"fill a joint missing for at most this many frames (default {d.max_gap})")
    g.add_argument("--min-joints", type=positive_int, default=d.min_joints,
                   help=f"a frame with fewer joints counts as the person lost (default {d.min_joints})")
    g.add_argument("--max-side", type=positive_int, default=1024,
                   help="decode frames with a longer side than this downscaled (default 1024)")
    g.add_argument("--max-frames", type=positive_int, default=None, help="only the first N frames")
    g.add_argument("--backend", default="mediapipe", help="pose backend (default mediapipe)")


def smoothing_from_args(args):
    from posetransfer.errors import PosetransferError
    from posetransfer.pose.tracking import SmoothingConfig

    try:
        return SmoothingConfig(enabled=not args.no_smooth, min_cutoff=args.min_cutoff, beta=args.beta,
                               max_gap=args.max_gap, min_joints=args.min_joints)  # fmt: skip
    except ValueError as err:
        raise PosetransferError(str(err)) from None


def register(subparsers) -> None:
    from posetransfer.data.prepare import FILLS, FRAME_MODES

    p = subparsers.add_parser("animate", help="animate the person of a photo with a driving video",
                              description="Move the person of the source photo(s) with the motion of a driving video.")  # fmt: skip
    p.add_argument("--checkpoint", required=True, type=Path, help="checkpoint folder or run folder")
    p.add_argument("--source", required=True, action="append", type=Path, metavar="PHOTO",
                   help="photo of the person, or a folder of their photos (repeat for a multi-view model)")
    p.add_argument("--driving", required=True, type=Path, metavar="VIDEO|FRAMES_DIR|POSES.csv",
                   help="driving video, folder of frames, or a `pose track` file")
    p.add_argument("--out", required=True, type=Path, help="output .mp4 (H.264) or .gif")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--retarget", dest="retarget", action="store_true", default=True,
                   help="give the driving poses the source's body proportions (default)")
    p.add_argument("--no-retarget", dest="retarget", action="store_false", help="use the driving poses as they are")
    p.add_argument("--lost", choices=("hold", "skip"), default="hold",
                   help="frames without a person: hold the last pose (default) or skip them")
    p.add_argument("--fps", type=positive_float, default=None, help="output frame rate (default: the driving clip's; 25 for frames)")
    p.add_argument("--side-by-side", action="store_true", help="write driving frame | skeleton | result")
    p.add_argument("--batch", type=positive_int, default=4, help="frames generated at once (default 4)")
    p.add_argument("--frame", choices=FRAME_MODES, default="height",
                   help="how source photos are brought to the model frame (default height)")
    p.add_argument("--fill", choices=FILLS, default="edge", help="padding (default edge)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_smoothing_args(p)
    p.set_defaults(func=_animate)


def _animate(args) -> int:
    from posetransfer.inference.animation import animate_to_file
    from posetransfer.inference import Pipeline
    from posetransfer.utils.video import check_output

    check_output(args.out, args.overwrite)  # before loading anything
    pipe = Pipeline.from_checkpoint(args.checkpoint, device=args.device, frame=args.frame, fill=args.fill,
                                    backend=args.backend)  # fmt: skip
    summary = animate_to_file(
        pipe, args.source, args.driving, args.out, overwrite=args.overwrite, progress=not args.no_progress,
        retarget=args.retarget, lost=args.lost, batch_size=args.batch, side_by_side=args.side_by_side,
        smoothing=smoothing_from_args(args), fps=args.fps, max_side=args.max_side, limit=args.max_frames,
    )  # fmt: skip
    for note in summary["notes"]:
        print(f"note: {note}", file=sys.stderr)
    h, w = summary["size"]
    print(f"wrote {args.out}: {summary['frames']} frames, {h}x{w}, {summary['fps']:g} fps; "
          f"generation {summary['generation_fps']:.1f} frames/s, whole command {summary['total_fps']:.1f} frames/s "
          f"(tracking {summary['tracking_s']:.1f} s)")  # fmt: skip
    return 0
