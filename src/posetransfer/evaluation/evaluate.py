"""Evaluate a folder of generated images against a data set: the library behind ``posetransfer evaluate``.

Generated files are named ``<from-stem>___<to-stem>.png`` (the field's convention, PATN / GFLA):
the stems of the source and target image names of the data set. The data set is any layout
:func:`posetransfer.data.layouts.resolve_dataset` recognises. Outputs in ``REPORT_DIR``:
``metrics.json`` (flat ``{metric: value}`` plus ``pairs``), ``table.md`` (PG2's Table 1 layout)
and ``report.html`` (best and worst pairs).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posetransfer.errors import DataError, PosetransferError
from posetransfer.evaluation import metrics as M
from posetransfer.pose.io import read_annotations
from posetransfer.utils.io import atomic_write_json, atomic_write_text, read_image
from posetransfer.utils.devices import resolve_device
from posetransfer.utils.weights import find_weights

SEPARATOR = "___"
PATN_DEEPFASHION_WIDTH = 176  # PATN pads exactly these images with 40 white columns per side


@dataclass
class EvaluationSet:
    """Generated images and their targets, in matching order."""

    generated_files: list[Path]
    pairs: list[tuple[str, str]]  # (source name, target name) as named in the data set
    generated: np.ndarray  # (N, H, W, 3) uint8
    targets: np.ndarray  # (N, H, W, 3) uint8
    target_keypoints: np.ndarray  # (N, 18, 2) float32
    images_dir: Path
    source_keypoints: np.ndarray | None = None  # (N, 18, 2) float32, the condition images'

    def masks(self, protocol: str = "pg2", of: str = "target") -> np.ndarray:
        """Pose masks ``(N, H, W)`` uint8 of ``protocol`` (:mod:`posetransfer.pose.masks`).

        ``of="target"``: of the targets' keypoints (PG2's paper and PATN's ``getMetrics``).
        ``of="condition"``: of the condition images' keypoints, which is what PG2's released
        ``score_mask.py`` reads (its ``mask`` folder, written by ``trainer.py`` from ``mask_fixed``,
        the condition image's ``pose_mask_r4_0``; docs/protocols.md).
        """
        from posetransfer.pose.masks import protocol_mask

        if of not in ("target", "condition"):
            raise ValueError(f"masks of 'target' or 'condition', got {of!r}")
        kps = self.target_keypoints if of == "target" else self.source_keypoints
        if kps is None:
            raise ValueError("this evaluation set has no condition-image keypoints")
        h, w = self.targets.shape[1:3]
        out = np.empty((len(self.targets), h, w), dtype=np.uint8)
        for i in range(0, len(out), 512):
            out[i : i + 512] = protocol_mask(kps[i : i + 512], (h, w), protocol) > 0.5
        return out


def parse_generated_name(path: str | Path) -> tuple[str, str]:
    """``a___b.png`` -> ``("a", "b")``; anything else is a :class:`DataError` naming the file."""
    stem = Path(path).stem
    parts = stem.split(SEPARATOR)
    if len(parts) != 2 or not all(parts):
        raise DataError(path, f"generated images must be named <from-stem>{SEPARATOR}<to-stem>.png")
    return parts[0], parts[1]


def _list_generated(folder: Path) -> list[Path]:
    from posetransfer.data.layouts import list_images

    if not folder.is_dir():
        raise DataError(folder, "generated image folder does not exist")
    files = [folder / n for n in list_images(folder)]
    if not files:
        raise DataError(folder, f"holds no generated images (<from-stem>{SEPARATOR}<to-stem>.png)")
    return files


def load_evaluation_set(
    generated_dir: str | Path, data: str | Path, split: str | None = None, *, progress: bool = False,
    targets_dir: str | Path | None = None, generated_any_size: bool = False,
) -> EvaluationSet:
    """Read every generated image of ``generated_dir`` and its target from the data set ``data``.

    A generated name whose stems are not images of the data set's annotation, or a generated image
    whose size differs from its target's, is a :class:`DataError` naming the file. ``targets_dir``:
    read each target from ``targets_dir/<generated stem>.png`` instead of the data set's image (the
    target panels of PATN's strips, which its getMetrics compares with; ``evaluate import
    --targets-out``); the keypoints still come from the data set's annotation.
    ``generated_any_size``: the generated images may be of another size than their targets (for
    the metrics that resize both, ``fid_pidm`` and ``lpips_pidm``), but must share one size.
    """
    from tqdm import tqdm

    from posetransfer.data.layouts import resolve_dataset

    files = resolve_dataset(data, split)
    annotations = read_annotations(files.annotation_path)
    by_stem: dict[str, str] = {}
    for name in annotations:
        by_stem.setdefault(os.path.splitext(name)[0], name)
    generated_files = _list_generated(Path(generated_dir))
    pairs = []
    for f in generated_files:
        src, tgt = parse_generated_name(f)
        missing = [s for s in (src, tgt) if s not in by_stem]
        if missing:
            raise DataError(f, f"{missing[0]!r} is not an image of {files.annotation_path} (expected <from-stem>{SEPARATOR}<to-stem>.png)")
        pairs.append((by_stem[src], by_stem[tgt]))
    generated, targets = [], []
    for f, (_, tgt) in tqdm(list(zip(generated_files, pairs)), desc="read", unit="img", disable=not progress, leave=False):
        target = read_image(Path(targets_dir) / f"{f.stem}.png" if targets_dir else files.images_dir / tgt)
        targets.append(target)
        if generated_any_size:
            generated.append(read_image(f, size=generated[0].shape[:2] if generated else None))
            continue
        image = read_image(f)
        if image.shape[:2] != target.shape[:2]:
            raise DataError(f, f"wrong image size {image.shape[0]}x{image.shape[1]} (height x width), its target's is {target.shape[0]}x"
                               f"{target.shape[1]}; only {', '.join(M.PIDM_RESIZED_METRICS)} resize (PIDM's 256x256 outputs)")  # fmt: skip
        generated.append(image)
    return EvaluationSet(
        generated_files=generated_files,
        pairs=pairs,
        generated=np.stack(generated),
        targets=np.stack(targets),
        target_keypoints=np.stack([annotations[t] for _, t in pairs]).astype(np.float32),
        images_dir=files.images_dir,
        source_keypoints=np.stack([annotations[s] for s, _ in pairs]).astype(np.float32),
    )


# ----------------------------------------------------------------------------- FID real statistics


def real_statistics(
    inception, source: str | Path, *, cache: bool = True, progress: bool = False, protocol: str = "fid"
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the features of a real set by an FID ``protocol``: a folder of images
    (cached to ``<cache>/fid_stats/``) or an ``.npz`` of :func:`.fid.write_statistics` /
    pytorch-fid; see :func:`posetransfer.evaluation.fid.real_statistics`."""
    from posetransfer.evaluation.fid import real_statistics as by_protocol

    return by_protocol(protocol, inception, source, cache=cache, progress=progress)


# ----------------------------------------------------------------------------- the whole run


@dataclass
class WeightPaths:
    inception: str | None = None
    alexnet: str | None = None
    lpips: str | None = None
    inception_gfla: str | None = None  # torchvision's inception_v3_google (fid_gfla, fid_pidm, fid_cfld)
    openpose: str | None = None  # body_pose_model.pth (the openpose pose backend, pckh)


def plan_metrics(
    requested: Sequence[str] | None, weights: WeightPaths, pose_backend: str | None
) -> tuple[list[str], list[str]]:
    """(metrics to compute, notes on what is skipped). ``None`` = the cheap metrics, plus the
    Inception metrics / LPIPS when their weights are already on this machine (no download), plus
    PCKh when the pose backend is installed. Asked-for metrics are always computed (their weights
    downloaded if needed) or fail with a clear error."""
    if requested is not None:
        unknown = [m for m in requested if m not in M.ALL_METRICS]
        if unknown:
            raise PosetransferError(f"unknown metrics {', '.join(unknown)}; known: {', '.join(M.ALL_METRICS)}")
        return list(dict.fromkeys(requested)), []
    plan, notes = list(M.CHEAP_METRICS), []
    if find_weights("fid_inception", weights.inception):
        plan += list(M.INCEPTION_METRICS)
    else:
        notes.append("is, mask_is, mask_is_patn, fid skipped: the Inception weights are not on this machine (ask for them with --metrics to download)")
    if find_weights("inception_v3_google", weights.inception_gfla):
        plan.append("fid_gfla")  # GFLA's FID, when torchvision's Inception v3 is on this machine
    if find_weights("alexnet", weights.alexnet) and find_weights("lpips_alex", weights.lpips):
        plan.append("lpips")
    else:
        notes.append("lpips skipped: the AlexNet / LPIPS weights are not on this machine (ask for it with --metrics to download)")
    backend = pckh_backend(pose_backend, weights)
    if backend == "openpose" or _pose_backend_available(backend):
        plan.append("pckh")
    else:
        notes.append(f"pckh skipped: the pose backend {backend!r} is not installed (pip install 'posetransfer[pose]')")
    return plan, notes


def pckh_backend(pose_backend: str | None, weights: WeightPaths) -> str:
    """The estimator behind ``pckh``: the one asked for, else ``openpose`` (the network that made
    the annotations, as PATN's calPCKH) when its weights are on this machine, else ``mediapipe``."""
    if pose_backend:
        return pose_backend
    return "openpose" if find_weights("openpose_body", weights.openpose) else "mediapipe"


def pckh_key(backend: str) -> str:
    """metrics.json key of a PCKh: ``pckh`` only for PATN's estimator, ``pckh_<backend>`` otherwise."""
    return "pckh" if backend == "openpose" else f"pckh_{backend}"


def _pose_backend_available(name: str) -> bool:
    from posetransfer.pose.extract import get_backend

    try:
        get_backend(name)
    except PosetransferError:
        return False
    return True


def estimate_keypoints(
    images: np.ndarray, backend_name: str, *, progress: bool = False, openpose_weights: str | None = None
) -> np.ndarray:
    """Keypoints ``(N, 18, 2)`` of the generated images by the pose backend; all missing (-1) where
    it finds no person, which PCKh then counts as wrong (as OpenPose's empty output in PATN). The
    ``openpose`` backend runs on each image exactly as PATN's compute_coordinates (no resizing
    or retries of :func:`~posetransfer.pose.extract.extract_pose`)."""
    from tqdm import tqdm

    from posetransfer.pose.extract import NoPersonError, extract_pose, get_backend
    from posetransfer.pose.schema import empty_pose

    backend = get_backend(backend_name, **({"weights": openpose_weights} if backend_name == "openpose" else {}))
    out = np.empty((len(images), 18, 2), dtype=np.float32)
    for i in tqdm(range(len(images)), desc="pose", unit="img", disable=not progress, leave=False):
        if hasattr(backend, "pose_cords"):
            out[i] = backend.pose_cords(images[i])[0]
            continue
        try:
            out[i] = extract_pose(images[i], backend).keypoints
        except NoPersonError:
            out[i] = empty_pose()
    return out


def evaluate_set(
    data: EvaluationSet,
    metrics: Sequence[str],
    *,
    bound: int | None = None,
    weights: WeightPaths | None = None,
    fid_real: str | Path | None = None,
    pose_backend: str | None = None,
    device: str | None = None,
    progress: bool = False,
    log: Callable[[str], None] = lambda s: None,
    pg2_mask_of: str = "target",
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Compute ``metrics`` on a loaded :class:`EvaluationSet` -> (metrics.json dict, per-pair values).

    ``bound=None`` applies PATN's 40-pixel white padding exactly on 176-wide images (its
    DeepFashion protocol, for ``ssim_patn`` and ``is``) and none otherwise. ``pg2_mask_of``: whose
    keypoints make the pg2 mask of ``mask_ssim_pg2`` / ``mask_is`` / ``masked_l1``: "target"
    (PG2's paper) or "condition" (PG2's released ``score_mask.py``). The Inception and LPIPS
    networks run on ``device`` (default: CUDA when available); SSIM and the pixel metrics on the
    CPU. ``pose_backend=None``: see :func:`pckh_backend`; the PCKh key names the estimator
    (:func:`pckh_key`).
    """
    weights = weights or WeightPaths()
    device = resolve_device(device)
    gen_size, tgt_size = data.generated.shape[1:3], data.targets.shape[1:3]
    if gen_size != tgt_size:
        same_size = [m for m in metrics if m not in M.PIDM_RESIZED_METRICS]
        if same_size:
            raise PosetransferError(
                f"cannot compute {', '.join(same_size)}: the generated images are {gen_size[0]}x{gen_size[1]}, "
                f"the targets {tgt_size[0]}x{tgt_size[1]}; only {' and '.join(M.PIDM_RESIZED_METRICS)} resize "
                "(PIDM's SSIMs compare the files as read: give targets of the generated size with --targets)"
            )  # fmt: skip
    width = data.generated.shape[2]
    if bound is None:
        bound = 40 if width == PATN_DEEPFASHION_WIDTH else 0
    if "mask_lpips_gfla" in metrics:  # before any network is loaded: GFLA's mask is Market's 128x64 only
        from posetransfer.evaluation.protocols import check_gfla_mask_size

        try:
            check_gfla_mask_size(data.generated.shape[1:3])
        except ValueError as err:
            raise PosetransferError(f"cannot compute the metrics: {err}") from None
    masks = data.masks("pg2", of=pg2_mask_of) if any(m in M.PG2_MASK_METRICS for m in metrics) else None
    if masks is not None and pg2_mask_of != "target":
        log(f"pg2 masks of the {pg2_mask_of} images' keypoints (PG2's released score_mask.py)")
    patn_masks = data.masks("patn") if any(m in M.PATN_MASK_METRICS for m in metrics) else None
    inception = real = lpips_model = None
    if any(m in M.INCEPTION_METRICS for m in metrics):
        from posetransfer.evaluation.inception import load_fid_inception

        inception = load_fid_inception(weights.inception).to(device)
        if "fid" in metrics:
            real_source = Path(fid_real) if fid_real else data.images_dir
            log(f"FID real statistics from {real_source}")
            real = real_statistics(inception, real_source, progress=progress)
    if any(m in metrics for m in ("lpips", "lpips_gfla", "mask_lpips_gfla", "lpips_pidm")):
        from posetransfer.evaluation.lpips import load_lpips_alex

        lpips_model = load_lpips_alex(weights.alexnet, weights.lpips).to(device)
    from posetransfer.evaluation import fid as FID

    tv_protocols = [m for m in metrics if m in FID.TORCHVISION_PROTOCOLS]
    tv_real: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if tv_protocols:
        tv_net = FID.load_network(tv_protocols[0], weights.inception_gfla).to(device)
        real_source = Path(fid_real) if fid_real else data.images_dir
        for protocol in tv_protocols:
            log(f"{protocol} real statistics from {real_source}")
            tv_real[protocol] = FID.real_statistics(protocol, tv_net, real_source, progress=progress)
    per_pair: dict[str, np.ndarray] = {}
    try:
        if gen_size == tgt_size:
            result = M.compute_metrics(
                data.generated, data.targets, masks, [m for m in metrics if m in M.COMPUTED_BY_COMPUTE_METRICS],
                patn_masks=patn_masks, bound=bound,
                inception=inception, real_stats=real, lpips_model=lpips_model, per_pair=per_pair, progress=progress,
            )  # fmt: skip
        else:  # only the PIDM metrics, which resize (checked above)
            result = {"pairs": int(len(data.generated))}
        for protocol in tv_protocols:
            feats = FID.features(protocol, tv_net, data.generated)
            result[protocol] = M.frechet_distance(*M.feature_statistics(feats), *tv_real[protocol])
            if protocol in FID.DROP_REMAINDER_PROTOCOLS:
                result[f"{protocol}_images"] = int(len(feats))  # GFLA / PIDM drop the last incomplete batch of 64
        _protocol_metrics(data, metrics, result, per_pair, lpips_model)
    except ValueError as err:  # too few images for IS splits / FID statistics, ...
        raise PosetransferError(f"cannot compute the metrics: {err}") from None
    for wanted in [m for m in metrics if m in ("pckh", "pckh_mediapipe")]:
        from posetransfer.evaluation.pck import pckh

        backend = "mediapipe" if wanted == "pckh_mediapipe" else pckh_backend(pose_backend, weights)
        key = pckh_key(backend)
        if key in result:
            continue
        if wanted == "pckh" and key != "pckh":
            log(f"PCKh estimated with {backend}, reported as {key}: PATN's pckh needs the OpenPose "
                "network that made the annotations (body_pose_model.pth, --openpose-weights)")
        pred = estimate_keypoints(data.generated, backend, progress=progress, openpose_weights=weights.openpose)
        result[key], _, _ = pckh(pred, data.target_keypoints)
    ordered = {m: result[m] for m in M.ALL_METRICS if m in result}
    ordered.update({k: v for k, v in result.items() if k.startswith("pckh_") and k not in ordered})
    for extra in ("is_std", "mask_is_std", "mask_is_patn_std", "fid_gfla_images", "fid_pidm_images"):
        if extra in result:
            ordered[extra] = result[extra]
    if any(m in metrics for m in ("ssim_patn", "mask_ssim_patn", "is")):
        ordered["ssim_patn_bound"] = bound
    ordered["pairs"] = result["pairs"]
    return ordered, per_pair


def _protocol_metrics(data: EvaluationSet, metrics: Sequence[str], result: dict, per_pair: dict, lpips_model) -> None:
    """The SSIM / LPIPS conventions of GFLA, PIDM and CFLD (:mod:`.protocols`), into ``result``."""
    from posetransfer.evaluation import protocols as P

    for name, fn in (("ssim_gfla", P.ssim_gfla), ("ssim_pidm", P.ssim_pidm)):
        if name in metrics:
            per_pair[name] = fn(data.generated, data.targets)
            result[name] = float(np.mean(per_pair[name]))
    if "lpips_gfla" in metrics:
        from posetransfer.evaluation.lpips import lpips_distances

        d = per_pair.get("lpips")
        if d is None:
            d = lpips_distances(lpips_model, data.generated, data.targets)
        result["lpips_gfla"] = P.lpips_gfla(d)
    if "mask_lpips_gfla" in metrics:  # the patn mask of the targets' keypoints, as GFLA's line 524
        per_pair["mask_lpips_gfla"] = P.mask_lpips_gfla_distances(lpips_model, data.generated, data.targets, data.masks("patn"))
        result["mask_lpips_gfla"] = P.mask_lpips_gfla(per_pair["mask_lpips_gfla"])
    if "lpips_pidm" in metrics:  # both images resized to 256x176 by cv2 first, as PIDM's lines 503-504
        per_pair["lpips_pidm"] = P.lpips_pidm_distances(lpips_model, data.generated, data.targets)
        result["lpips_pidm"] = P.lpips_pidm(per_pair["lpips_pidm"])


def write_metrics_json(path: str | Path, values: dict[str, float]) -> None:
    """``metrics.json``: non-finite values (inf PSNR of identical images, NaN) become null (valid JSON)."""
    clean = {k: (v if not isinstance(v, float) or np.isfinite(v) else None) for k, v in values.items()}
    atomic_write_json(path, clean)


def run_evaluation(
    generated_dir: str | Path,
    data: str | Path,
    out_dir: str | Path,
    *,
    split: str | None = None,
    metrics: Sequence[str] | None = None,
    bound: int | None = None,
    weights: WeightPaths | None = None,
    fid_real: str | Path | None = None,
    pose_backend: str | None = None,
    name: str | None = None,
    show: int = 8,
    progress: bool = False,
    log: Callable[[str], None] = lambda s: None,
    pg2_mask_of: str = "target",
    targets_dir: str | Path | None = None,
    paper: dict | None = None,
    device: str | None = None,
) -> dict[str, float]:
    """Evaluate ``generated_dir`` against ``data`` and write ``metrics.json``, ``table.md`` and
    ``report.html`` into ``out_dir``; returns the metrics. ``metrics=None``: see :func:`plan_metrics`.

    ``paper``: a recipe's published row (``PaperRow`` as a dict); None = the one ``generate``
    recorded in ``generated_dir/generated.json``, if any. With one, the reports show it beside
    ours with the difference, and ``metrics.json`` holds it under ``"paper"`` (:mod:`.paper`);
    ``metrics.json["generated"]`` is the checkpoint and step of that record. ``device``: where the
    metrics' networks run (default: CUDA when available)."""
    from posetransfer.evaluation.paper import (
        PAPER_KEY, check_paper_metrics, paper_comparison, paper_lines, paper_rows, read_generated_record,
    )  # fmt: skip
    from posetransfer.evaluation.report import format_table, write_html_report

    record = read_generated_record(generated_dir)
    if paper is None and record is not None and record.get("paper"):
        paper = record["paper"]
        check_paper_metrics(paper, f"{Path(generated_dir) / 'generated.json'}")
    if record is not None and record.get("finished") is False:
        log(f"{Path(generated_dir) / 'generated.json'}: the generation did not finish (generate --resume completes it)")
    weights = weights or WeightPaths()
    plan, notes = plan_metrics(metrics, weights, pose_backend)
    for n in notes:
        log(n)
    data_set = load_evaluation_set(generated_dir, data, split, progress=progress, targets_dir=targets_dir,
                                   generated_any_size=any(m in M.PIDM_RESIZED_METRICS for m in plan))  # fmt: skip
    if fid_real is None and any(m in plan for m in ("fid", "fid_gfla", "fid_pidm", "fid_cfld")):
        from posetransfer.evaluation.fid import default_real_folder

        fid_real = default_real_folder(data, split, log)  # the training split, as GFLA and PIDM
    log(f"{len(data_set.pairs)} generated images; metrics: {', '.join(plan)}")
    values, per_pair = evaluate_set(
        data_set, plan, bound=bound, weights=weights, fid_real=fid_real, pose_backend=pose_backend,
        progress=progress, log=log, pg2_mask_of=pg2_mask_of, device=device,
    )  # fmt: skip
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    label = name or Path(generated_dir).resolve().name
    rows = [(label, values)]
    saved: dict = dict(values)
    if paper is not None:
        comparison = paper_comparison(values, paper)
        rows += paper_rows(comparison)
        saved[PAPER_KEY] = comparison
    if record is not None:
        saved["generated"] = {k: record.get(k) for k in ("checkpoint", "step", "finished")}
    table = format_table(rows)
    if paper is not None:
        table += "\n" + "\n".join(paper_lines(comparison)) + "\n"
    write_metrics_json(out_dir / "metrics.json", saved)
    atomic_write_text(out_dir / "table.md", table + ("\n" + "\n".join(f"- {n}" for n in notes) + "\n" if notes else ""))
    ranked = ("ssim_pg2", "ssim_patn", "lpips", "psnr", "l1")  # the first one present ranks the pairs
    same_size = data_set.generated.shape[1:3] == data_set.targets.shape[1:3]  # the report shows them side by side
    key = next((m for m in (*ranked, *M.ALL_METRICS) if m in per_pair and len(per_pair[m]) == len(data_set.pairs)), None)
    if key is not None and same_size:
        src_dir = data_set.images_dir

        def triplet(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            h, w = data_set.targets.shape[1:3]
            try:
                source = read_image(src_dir / data_set.pairs[i][0], size=(h, w))
            except DataError:  # a source of another size (or unreadable) is shown grey, not fatal
                source = np.full((h, w, 3), 128, np.uint8)
            return source, data_set.generated[i], data_set.targets[i]

        write_html_report(
            out_dir / "report.html", title=f"posetransfer evaluation: {label}", metric=key,
            values=per_pair[key], names=data_set.pairs, load_triplet=triplet, table_md=table, notes=notes, k=show,
        )  # fmt: skip
    else:  # the best and worst pairs need a per-pair metric; a report.html of an earlier run would mislead
        (out_dir / "report.html").unlink(missing_ok=True)
        why = "the generated images and the targets differ in size" if key else "none of the metrics is computed per pair (fid and is are set-level)"
        log(f"report.html not written: {why}")
    return values
