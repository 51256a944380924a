"""``posetransfer serve``: the pose studio (re-pose a photo by dragging joints) and PG2's user-study
page, a local web app. Thin: the app is :mod:`posetransfer.studio.app`.

``--checkpoint RUN`` serves the studio at ``/``; ``--study GENERATED_DIR --data DATA_DIR`` serves the
study at ``/study`` (results at ``/study/results``); both may be given. Everything the server
writes (results, the study's images and answers) goes under ``--state``, which is kept tidy:
``--keep-hours`` and ``--max-state-mb`` (:mod:`posetransfer.studio.keep`).
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

from posetransfer.commands._args import non_negative_int, port, positive_int
from posetransfer.errors import PosetransferError

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def register(subparsers) -> None:
    from posetransfer.data.prepare import FILLS, FRAME_MODES
    from posetransfer.studio.keep import Retention
    from posetransfer.studio.study import DEFAULT_PER_KIND, PRACTICE, SHOW_MS

    keep = Retention()

    p = subparsers.add_parser("serve", help="the pose studio web app and the user-study page",
                              description="A local web app: re-pose a photo by dragging the target pose's "
                                          "joints, and PG2's real-vs-generated user study.")  # fmt: skip
    p.add_argument("--checkpoint", type=Path, default=None, help="checkpoint folder or run folder to serve")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=port, default=8000, help="port (default 8000)")
    p.add_argument("--token", default=None,
                   help="secret every request must carry (required when --host is not a loopback address)")
    p.add_argument("--state", type=Path, default=Path("studio-state"),
                   help="the server's own folder: results, the study set and its answers (default ./studio-state)")
    p.add_argument("--study", type=Path, default=None, metavar="GENERATED_DIR", help="folder of generated images for the study")
    p.add_argument("--data", type=Path, default=None, metavar="DATA_DIR",
                   help="real images for the study: a folder of images, or a data set folder (images/ or test/images/)")
    p.add_argument("--study-images", type=positive_int, default=DEFAULT_PER_KIND,
                   help=f"real and as many generated images shown (default {DEFAULT_PER_KIND}, PG2)")
    p.add_argument("--practice", type=non_negative_int, default=PRACTICE, help=f"first answers not counted (default {PRACTICE}, PG2)")
    p.add_argument("--show-ms", type=positive_int, default=SHOW_MS, help=f"how long each image is shown (default {SHOW_MS} ms, PG2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the study's image sample")
    p.add_argument("--max-queue", type=positive_int, default=8, help="requests waiting or running before 503 (default 8)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="largest request body in MB (default 20)")
    p.add_argument("--max-pixels", type=positive_int, default=25_000_000, help="largest uploaded image in pixels (default 25M)")
    p.add_argument("--max-video-frames", type=positive_int, default=300,
                   help="longest clip the Animate tab takes, in frames (default 300)")
    p.add_argument("--keep-hours", type=_non_negative_float, default=keep.keep_hours,
                   help=f"remove finished transfer results, uploaded clips and renders older than this (default "
                        f"{keep.keep_hours:g} h = a week; 0: no age limit). Swept on start-up, after jobs (at most every "
                        f"{keep.job_gap_s:g} s) and every {keep.sweep_every_s / 60:g} min; never a job in progress nor the clip it reads, never the study")  # fmt: skip
    p.add_argument("--max-state-mb", type=_non_negative_float, default=keep.max_state_mb,
                   help=f"beyond this many MB of results, clips and renders in --state, remove the oldest finished "
                        f"ones first, sparing those finished in the last {keep.grace_s / 60:g} min "
                        f"(default {keep.max_state_mb:g}; 0: no size limit)")  # fmt: skip
    p.add_argument("--frame", choices=FRAME_MODES, default="height", help="how photos are framed (as `transfer`)")
    p.add_argument("--fill", choices=FILLS, default="edge", help="padding (as `transfer`)")
    p.add_argument("--backend", default="mediapipe", help="pose backend for photos (default mediapipe)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.set_defaults(func=_serve)


def build(args: argparse.Namespace):
    """The app the arguments describe (checked before anything listens)."""
    from posetransfer.studio.app import Limits, create_app
    from posetransfer.studio.keep import Retention
    from posetransfer.studio.study import Study

    if args.checkpoint is None and args.study is None:
        raise PosetransferError("give --checkpoint RUN (the studio) and/or --study GENERATED_DIR --data DATA_DIR")
    if (args.study is None) != (args.data is None):
        raise PosetransferError("--study GENERATED_DIR and --data DATA_DIR go together")
    if not is_loopback(args.host) and not args.token:
        raise PosetransferError(f"--host {args.host} listens beyond this machine: give --token SECRET")
    if args.state.exists() and not args.state.is_dir():
        raise PosetransferError(f"{args.state}: --state exists and is not a folder")
    from posetransfer.utils.io import check_writable_folder

    check_writable_folder(args.state)  # the server writes its results there
    pipeline = None
    if args.checkpoint is not None:
        from posetransfer.inference import Pipeline

        pipeline = Pipeline.from_checkpoint(args.checkpoint, device=args.device, frame=args.frame, fill=args.fill,
                                            backend=args.backend)  # fmt: skip
    study = None
    if args.study is not None:
        study = Study.open(args.state, args.study, args.data, per_kind=args.study_images, seed=args.seed,
                           practice=args.practice, show_ms=args.show_ms)  # fmt: skip
    limits = Limits(max_body_bytes=int(args.max_upload_mb * 1024 * 1024), max_pixels=args.max_pixels,
                    max_queue=args.max_queue, max_video_frames=args.max_video_frames)  # fmt: skip
    retention = Retention(keep_hours=args.keep_hours, max_state_mb=args.max_state_mb)
    return create_app(pipeline, study, args.state, limits, args.token, retention)


def check_listen(host: str, port: int) -> None:
    """Fail with one line before the model is loaded when ``host:port`` cannot be listened on (uvicorn
    itself logs the bind error only after start-up and exits without saying what to do)."""
    import socket

    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise PosetransferError(f"--host {host}: cannot be resolved ({err.strerror})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(address)
        except OSError as err:
            raise PosetransferError(
                f"{host}:{port}: cannot listen there ({err.strerror.lower()}); pass another --port (0: any free port)"
            ) from None


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        raise PosetransferError("the studio needs its extra: pip install 'posetransfer[studio]'") from None
    check_listen(args.host, args.port)
    app = build(args)
    where = f"http://{args.host}:{args.port}/"
    print(f"posetransfer studio on {where}" + (f"?token={args.token}" if args.token else ""), file=sys.stderr)
    if args.study is not None:
        study = app.state.studio.study
        n = len(study.key) // 2
        if n < args.study_images:
            print(f"note: the study shows {n} real and {n} generated images (the folders hold fewer than "
                  f"--study-images {args.study_images})", file=sys.stderr)  # fmt: skip
        if args.practice >= len(study.key):
            print(f"note: --practice {args.practice} >= the {len(study.key)} images: no answer will be scored", file=sys.stderr)
        print(f"user study on {where}study, results on {where}study/results", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False)
    return 0
