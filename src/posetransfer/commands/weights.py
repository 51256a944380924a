"""``posetransfer weights``: the pretrained files of the metrics, losses and pose backends.

    posetransfer weights list [--verify] [--json]     # each file: found where, or where to put it
    posetransfer weights fetch NAME... | --all        # download (checked) into the weights folder
    posetransfer weights add NAME FILE [--overwrite]  # install a file downloaded elsewhere

The registry, the search order and the checks are :mod:`posetransfer.utils.weights`; this command
only shows and fills it, so a machine can be readied before it goes offline (``fetch``) or an offline
one filled from a copy made elsewhere (``add``, which checks the file as a download is checked).
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    from posetransfer.utils.weights import ENV_DIR, REGISTRY

    p = subparsers.add_parser(
        "weights",
        help="list, download or install the pretrained files of the metrics, losses and pose backends",
        description=f"The pretrained files posetransfer uses (FID/IS Inception, LPIPS, VGG19, OpenPose), "
        f"searched in ${ENV_DIR} then the cache (~/.cache/posetransfer); see docs/protocols.md.",
    )
    sub = p.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    names = ", ".join(REGISTRY)

    ls = sub.add_parser("list", help="each file: found where, or where to put it")
    ls.add_argument("--verify", action="store_true", help="also check each found file's SHA-256 (reads every file)")
    ls.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    ls.set_defaults(func=_list)

    fetch = sub.add_parser("fetch", help="download files (checked against their published SHA-256)")
    fetch.add_argument("names", nargs="*", metavar="NAME", help=f"one or more of: {names}")
    fetch.add_argument("--all", action="store_true", help="every file of the registry")
    fetch.set_defaults(func=_fetch)

    add = sub.add_parser("add", help="install a file downloaded elsewhere under its registered name")
    add.add_argument("name", metavar="NAME", help=names)
    add.add_argument("file", metavar="FILE", help="the downloaded file")
    add.add_argument("--overwrite", action="store_true", help="replace a file already installed")
    add.set_defaults(func=_add)


def _size(n: int | None) -> str:
    return "" if n is None else f"{n / 2**20:.1f} MB"


def _list(args: argparse.Namespace) -> int:
    from posetransfer.utils.weights import REGISTRY, search_dirs, weights_status

    rows = [weights_status(name, verify=args.verify) for name in REGISTRY]
    if args.json:
        print(json.dumps({"searched": [str(d) for d in search_dirs()], "weights": rows}, indent=1))
    else:
        print("searched, in order: " + ", ".join(str(d) for d in search_dirs()))
        for r in rows:
            where = f"{r['path']} ({_size(r['bytes'])})" if r["path"] else f"missing: {r['url']}"
            check = f" [{r['check']}]" if "check" in r else ""
            print(f"  {r['name']:<20} {where}{check}")
            print(f"  {'':<20} {r['description']}; a local copy: {r['option']}")
    bad = [r["name"] for r in rows if r.get("check") == "mismatch"]
    if bad:
        print(f"SHA-256 mismatch: {', '.join(bad)} (delete the file and fetch it again)", file=sys.stderr)
    return 1 if bad else 0


def _fetch(args: argparse.Namespace) -> int:
    from posetransfer.errors import PosetransferError
    from posetransfer.utils.weights import REGISTRY, find_weights, resolve_weights, spec

    if args.all == bool(args.names):
        raise PosetransferError("name the files to fetch, or pass --all (not both)")
    names = list(REGISTRY) if args.all else args.names
    for name in names:
        spec(name)  # an unknown name fails before any download
    for name in names:
        had = find_weights(name)
        path = resolve_weights(name)
        print(f"{name}: {'already here' if had else 'downloaded to'} {path}")
    return 0


def _add(args: argparse.Namespace) -> int:
    from posetransfer.utils.weights import install_weights

    path = install_weights(args.name, args.file, overwrite=args.overwrite)
    print(f"{args.name}: installed {path}")
    return 0
