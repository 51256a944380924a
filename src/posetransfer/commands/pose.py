"""``posetransfer pose {extract,bench,library,mask,track}``: keypoints from photos, extractor accuracy,
built-in poses, pose masks by protocol, video tracking.

``pose extract IMAGE... --out annotation.csv [--preview DIR]`` writes the field's annotation format
(``name:[ys]:[xs]``, 18 keypoints, -1 = missing) for one's own photos. Photos with no person are
listed and left out of the file (an all ``-1`` row would only be dropped or mis-used downstream);
unreadable files are an error unless ``--skip-unreadable``. The file is written once, at the end,
atomically. Heavy imports happen inside the handlers so ``posetransfer --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from posetransfer.commands._args import size_hw
from posetransfer.errors import DataError, PosetransferError


def _add_backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="mediapipe", help="pose backend (default mediapipe: pip install 'posetransfer[pose]')")
    p.add_argument("--visibility", type=float, default=0.5,
                   help="keypoints the backend sees with less confidence are missing (default 0.5)")
    p.add_argument("--openpose-weights", default=None, metavar="PTH",
                   help="local body_pose_model.pth for --backend openpose (else $POSETRANSFER_WEIGHTS_DIR, the cache, a download)")


def make_backend(args):
    from posetransfer.pose.extract import get_backend

    options = {"visibility_threshold": args.visibility} if args.backend == "mediapipe" else {}
    if args.backend == "openpose":
        options = {"weights": getattr(args, "openpose_weights", None)}
    return get_backend(args.backend, **options)


def register(subparsers) -> None:
    p = subparsers.add_parser("pose", help="extract 18-keypoint poses from photos; built-in poses",
                              description="Pose extraction into the field's 18-keypoint annotation format.")  # fmt: skip
    sub = p.add_subparsers(dest="pose_command", metavar="ACTION")
    sub.required = True

    e = sub.add_parser("extract", help="write an annotation file with the pose of each photo")
    e.add_argument("images", nargs="+", type=Path, metavar="IMAGE",
                   help="photos (any size, EXIF rotation applied), or folders: their image files, by name")
    e.add_argument("--out", required=True, type=Path, help="annotation file to write (name:[ys]:[xs])")
    e.add_argument("--preview", type=Path, default=None, help="folder for skeleton overlays (<name>.png)")
    e.add_argument("--skip-unreadable", action="store_true", help="list unreadable files instead of failing")
    e.add_argument("--overwrite", action="store_true", help="replace an existing --out file and --preview images")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_backend_args(e)
    e.set_defaults(func=_extract)

    b = sub.add_parser("bench", help="accuracy of the extractor against a data set's annotation.csv")
    b.add_argument("--data", required=True, type=Path, help="plain-layout data set (images/, annotation.csv)")
    b.add_argument("--limit", type=int, default=None, help="only the first N images")
    b.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    b.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    b.add_argument("--no-progress", action="store_true")
    _add_backend_args(b)
    b.set_defaults(func=_bench)

    lib = sub.add_parser("library", help="list the built-in poses, or write them for a frame size")
    lib.add_argument("--size", type=size_hw, default=None, help="HEIGHTxWIDTH of the frame, e.g. 256x176")
    lib.add_argument("--out", type=Path, default=None, help="annotation file with one row per pose (needs --size)")
    lib.add_argument("--preview", type=Path, default=None, help="folder for stick-figure images (needs --size)")
    lib.add_argument("--overwrite", action="store_true", help="replace an existing --out file and --preview images")
    lib.set_defaults(func=_library)

    m = sub.add_parser("mask", help="write the pose mask of every annotation row as a PNG (pg2 or patn protocol)",
                       description="One single-channel PNG per row of ANNOTATION, <image-stem>.png, 255 on the mask "
                                   "and 0 elsewhere: pg2 = PG2's released _getPoseMask, patn = PATN's "
                                   "produce_ma_mask (docs/protocols.md).")  # fmt: skip
    m.add_argument("annotation", type=Path, metavar="ANNOTATION", help="annotation file (name:[ys]:[xs])")
    m.add_argument("--size", type=size_hw, required=True, help="HEIGHTxWIDTH of the frame, e.g. 128x64 or 256x176")
    m.add_argument("--protocol", choices=("pg2", "patn"), default="pg2", help="whose mask (default pg2)")
    m.add_argument("--out", type=Path, required=True, help="folder for the masks")
    m.add_argument("--overwrite", action="store_true", help="replace masks already in --out")
    m.add_argument("--no-progress", action="store_true", help="no progress bar")
    m.set_defaults(func=_mask)

    _register_track(sub)


def _extract(args) -> int:
    from posetransfer.pose.extract import draw_skeleton, extract_poses_from_files
    from posetransfer.pose.io import write_annotations
    from posetransfer.utils.io import check_output, read_image, save_image

    check_output(args.out, overwrite=args.overwrite)
    if args.preview is not None:
        check_output(args.preview, kind="dir", overwrite=args.overwrite, option="--preview")
    from posetransfer.data.layouts import image_files

    # a folder stands for its image files (by extension, sorted, not recursive)
    args.images = [f for given in args.images for f in (image_files(given) if given.is_dir() else [given])]
    names: dict[str, Path] = {}
    for path in args.images:
        try:
            path.name.encode("utf-8")
        except UnicodeEncodeError:
            raise DataError(path, "the file name is not valid UTF-8 (the annotation file is UTF-8 text); rename it") from None
        if ":" in path.name or "\n" in path.name:
            raise DataError(path, "the file name contains ':' (the annotation format's separator); rename it")
        if path.name in names and names[path.name] != path:
            raise DataError(path, f"has the same file name as {names[path.name]}; annotation rows are keyed by file name")
        names[path.name] = path
    backend = make_backend(args)
    poses, no_person, unreadable = extract_poses_from_files(list(names.values()), backend, progress=not args.no_progress)
    if len(unreadable) == 1 and not args.skip_unreadable:  # one bad file: its own message is the line
        path = next(iter(unreadable))
        problem = unreadable[path].removeprefix(f"{path}: ")
        raise DataError(path, f"{problem}; nothing written (--skip-unreadable leaves it out)")
    for msg in unreadable.values():
        print(f"unreadable: {msg}", file=sys.stderr)
    if unreadable and not args.skip_unreadable:
        raise DataError(next(iter(unreadable)), f"{len(unreadable)} file(s) could not be read (listed above); "
                        "nothing written (use --skip-unreadable to leave them out)")
    for msg in no_person.values():
        print(f"no person: {msg}", file=sys.stderr)
    for result in poses.values():
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
    if not poses:
        raise DataError(args.images[0], f"no person found in any of the {len(args.images)} photo(s); nothing written")
    if args.preview is not None:
        for path, result in poses.items():
            save_image(args.preview / f"{path.stem}.png", draw_skeleton(read_image(path), result.keypoints))
    write_annotations(args.out, {p.name: r.keypoints for p, r in poses.items()})
    print(f"wrote {args.out}: {len(poses)} pose(s); {len(no_person)} photo(s) with no person, "
          f"{len(unreadable)} unreadable, left out")
    return 0


def _bench(args) -> int:
    from posetransfer.pose.extract import evaluate_extractor
    from posetransfer.utils.io import atomic_write_json, check_output

    if args.json is not None:
        check_output(args.json, overwrite=args.overwrite, option="--json")
    result = evaluate_extractor(args.data, make_backend(args), limit=args.limit, progress=not args.no_progress)
    print(json.dumps(result, indent=2))
    if args.json is not None:
        atomic_write_json(args.json, result)
    return 0


def _library(args) -> int:
    from posetransfer.pose.library import POSES, library_pose

    if (args.out or args.preview) and args.size is None:
        raise PosetransferError("--out and --preview need --size HEIGHTxWIDTH")
    if args.size is None:
        print("\n".join(POSES))
        return 0
    from posetransfer.utils.io import check_output

    if args.out is not None:
        check_output(args.out, overwrite=args.overwrite)
    if args.preview is not None:
        check_output(args.preview, kind="dir", overwrite=args.overwrite, option="--preview")
    poses = {f"{name}.png": library_pose(name, args.size) for name in POSES}
    if args.preview is not None:
        import numpy as np

        from posetransfer.pose.extract import draw_skeleton
        from posetransfer.utils.io import save_image

        for name, kp in poses.items():
            save_image(args.preview / name, draw_skeleton(np.full((*args.size, 3), 255, np.uint8), kp))
    if args.out is not None:
        from posetransfer.pose.io import write_annotations

        write_annotations(args.out, poses)
    print("\n".join(POSES))
    return 0


def _mask(args) -> int:
    import numpy as np
    from tqdm import tqdm

    from posetransfer.pose.io import read_annotations
    from posetransfer.pose.masks import protocol_mask
    from posetransfer.utils.io import check_output, save_image

    annotations = read_annotations(args.annotation)
    # the folder itself: not a file, writable, leftovers of an interrupted run removed; existing
    # masks of these rows are refused below, file by file, unless --overwrite
    check_output(args.out, kind="dir", overwrite=True)
    if not annotations:
        raise DataError(args.annotation, "holds no annotation rows")
    by_stem: dict[str, str] = {}
    for name in annotations:
        stem = Path(name).stem
        if stem in by_stem:
            raise DataError(args.annotation, f"rows {by_stem[stem]!r} and {name!r} would both write {stem}.png")
        by_stem[stem] = name
    targets = [args.out / f"{stem}.png" for stem in by_stem]
    existing = [t for t in targets if t.exists()]
    if existing and not args.overwrite:
        raise DataError(existing[0], f"exists ({len(existing)} of the {len(targets)} masks are already in {args.out}); "
                        "use --overwrite to replace them")  # fmt: skip
    names = list(by_stem.values())
    bar = tqdm(total=len(names), desc=f"{args.protocol} masks", unit="mask", disable=args.no_progress)
    for s in range(0, len(names), 256):
        chunk = names[s : s + 256]
        masks = protocol_mask(np.stack([annotations[n] for n in chunk]), args.size, args.protocol)
        for path, mask in zip(targets[s : s + 256], masks):
            save_image(path, np.where(mask > 0.5, 255, 0).astype(np.uint8))
        bar.update(len(chunk))
    bar.close()
    print(f"wrote {len(names)} {args.protocol} mask(s) of {args.size[0]}x{args.size[1]} to {args.out}")


# -- pose track (issue 13) ----------------------------------------------------------------------------


def _register_track(sub) -> None:
    from posetransfer.commands.animate import add_smoothing_args, positive_float

    t = sub.add_parser("track", help="the smoothed pose of the person in each frame of a video",
                       description="Track the person of a video (or folder of frames): one annotation row per frame "
                       "(name = frame index, lost frames all -1), One-Euro smoothed, plus OUT.json (fps, size, lost frames).")
    t.add_argument("video", type=Path, metavar="VIDEO|FRAMES_DIR", help="video file or folder of frames")
    t.add_argument("--out", required=True, type=Path, help="annotation file to write (name:[ys]:[xs])")
    t.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    t.add_argument("--fps", type=positive_float, default=None, help="frame rate of a folder of frames (default 25)")
    t.add_argument("--preview", type=Path, default=None, help="also write the skeleton over the video (.mp4 or .gif)")
    t.add_argument("--visibility", type=float, default=0.5,
                   help="keypoints the backend sees with less confidence are missing (default 0.5)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_smoothing_args(t)
    t.set_defaults(func=_track)


def _track(args) -> int:
    from posetransfer.inference.animation import skeleton_preview, track_video
    from posetransfer.commands.animate import smoothing_from_args
    from posetransfer.pose.tracking import write_track
    from posetransfer.utils.video import VideoReader, VideoWriter, check_output

    if args.out.exists() and not args.overwrite:
        raise DataError(args.out, "already exists (use --overwrite to replace it)")
    if args.preview is not None:
        check_output(args.preview, args.overwrite)
    config = smoothing_from_args(args)
    reader = VideoReader(args.video, max_side=args.max_side, fps=args.fps, limit=args.max_frames)
    track = track_video(reader, make_backend(args), config, progress=not args.no_progress)
    for note in track.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.preview is not None:
        with VideoWriter(args.preview, track.fps, overwrite=args.overwrite) as w:
            for frame in skeleton_preview(track, reader):
                w.write(frame)
    write_track(args.out, track)
    print(f"wrote {args.out} (+ {args.out.name}.json): {len(track)} frames at {track.fps:g} fps, "
          f"{track.size[0]}x{track.size[1]}; person lost in {int(track.lost.sum())}")
    return 0
