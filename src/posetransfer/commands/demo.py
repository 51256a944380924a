"""``posetransfer demo``: synthetic people -> PG2 stage I and II -> a measured HTML report."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="train a small PG2 on synthetic people (no download) and write an HTML report",
        description="Builds a synthetic data set, trains a small PG2 (stage I, then stage II with D) "
        "and a pose-blind control on the CPU, and compares them with copying the condition image "
        "on held-out identities (SSIM, mask-SSIM, masked L1). About 10 minutes on a 2-core CPU.",
    )
    p.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder (default demo-out)")
    p.add_argument("--quick", action="store_true", help="a few training steps only (a smoke run, not a result)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from posetransfer.demo import DemoSettings, run_demo

    settings = DemoSettings(seed=args.seed)
    if args.quick:
        settings = settings.scaled(0.02)
        settings.identities, settings.eval_pairs = 12, 64
    report = run_demo(args.out, settings, progress=not args.no_progress)
    print(f"report: {report.resolve()}")
    return 0
