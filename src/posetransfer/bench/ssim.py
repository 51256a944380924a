"""Speed of the SSIM variants on Market-size pairs: ``python -m posetransfer.bench.ssim``.

Times ``ssim_pg2``, ``ssim_patn``, ``mask_ssim_pg2`` and ``mask_ssim_patn`` (the four SSIM numbers of
``evaluate``) on ``--pairs`` random uint8 128x64 pairs (12,000 = the Market-1501 test protocol), and
scikit-image's ``structural_similarity`` on a few hundred of them for comparison. Results go in
docs/benchmarks.md, section "Evaluation".
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch


def main(argv: list[str] | None = None) -> None:
    from skimage.metrics import structural_similarity

    from posetransfer.evaluation.ssim import apply_mask, ssim_patn, ssim_pg2

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pairs", type=int, default=12000)
    p.add_argument("--size", default="128x64", help="HEIGHTxWIDTH")
    p.add_argument("--skimage-pairs", type=int, default=200)
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.lower().split("x"))
    rng = np.random.default_rng(0)
    gen = rng.integers(0, 256, (args.pairs, h, w, 3), dtype=np.uint8)
    tgt = rng.integers(0, 256, (args.pairs, h, w, 3), dtype=np.uint8)
    masks = np.zeros((args.pairs, h, w), np.uint8)
    masks[:, h // 8 : h - h // 8, w // 4 : w - w // 4] = 1  # a body-sized box
    print(f"{args.pairs} pairs of {h}x{w}, {torch.get_num_threads()} threads")

    total = 0.0
    timings = {}
    t0 = time.perf_counter()
    mg, mt = apply_mask(gen, masks), apply_mask(tgt, masks)
    timings["masking"] = time.perf_counter() - t0
    for name, fn in (
        ("ssim_pg2", lambda: ssim_pg2(gen, tgt)),
        ("ssim_patn", lambda: ssim_patn(gen, tgt)),
        ("mask_ssim_pg2", lambda: ssim_pg2(mg, mt)),
        ("mask_ssim_patn", lambda: ssim_patn(mg, mt)),
    ):
        t0 = time.perf_counter()
        fn()
        timings[name] = time.perf_counter() - t0
    for name, sec in timings.items():
        total += sec
        print(f"  {name:16s} {sec:7.2f} s")
    print(f"  {'total':16s} {total:7.2f} s")

    n = min(args.skimage_pairs, args.pairs)
    t0 = time.perf_counter()
    for g, t in zip(gen[:n], tgt[:n]):
        structural_similarity(t, g, channel_axis=-1)
        structural_similarity(t, g, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False, data_range=float(g.max()) - float(g.min()))  # fmt: skip
    per_pair = (time.perf_counter() - t0) / n
    print(f"scikit-image, both conventions: {per_pair * 1e3:.2f} ms per pair -> "
          f"{per_pair * 2 * args.pairs:.1f} s for the four SSIM numbers of {args.pairs} pairs")  # fmt: skip


if __name__ == "__main__":
    main()
