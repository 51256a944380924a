"""Generated test images as PATN's, GFLA's and PIDM's released test scripts write them, converted to the
``<from-stem>___<to-stem>.png`` files ``posetransfer evaluate`` reads (``posetransfer evaluate
import``).

``patn-strip``
    PATN (tengteng95/Pose-Transfer) ``test.py`` saves, per test pair, the strip of
    ``models/PATN.py`` ``get_current_visuals`` (lines 254-273): five panels of the image width,
    ``source | source pose | target | target pose | generated``, through ``util/visualizer.py``
    ``save_images`` (line 137) as ``<P1 name>___<P2 name>_vis.jpg`` (the names keep their ``.jpg``;
    ``models/PATN.py`` line 113). Its ``tool/getMetrics_*.py`` ``load_generated_images`` (market
    lines 55-83) takes the panel width as ``int(width / 5)``, the generated image as panel 5
    (``img[:, 4*w:5*w]``), and the pair from the name (``[:-8]`` drops ``_vis.jpg`` or ``_vis.png``,
    then ``split('___')``). The same is done here.
``gfla``
    GFLA (RenYurui/Global-Flow-Local-Attention) ``test.py`` saves the generated image alone
    (``model/pose_model.py`` line 116 ``save_results(img_gen, data_name='vis')``) as
    ``<P1 stem>_2_<P2 name>`` with ``_vis.jpg`` in place of the extension (lines 110, and
    ``model/base_model.py`` lines 224-237, ``data_ext='jpg'``); ``script/metrics.py``
    ``preprocess_path_for_deform_task`` (lines 414-439) finds the target as the text after the last
    ``_2_`` up to ``_vis``. The same split is done here (the source is the text before that ``_2_``).
``pidm``
    PIDM (ankanbhunia/PIDM) ``utils/gen.py`` saves each sample alone as PNG under
    ``batch['path']`` (lines 153-155 / 170-172), which ``data/fashion_data.py`` ``get_image_path``
    (lines 141-145) makes ``<source>_2_<target>_vis.png`` from the ``test_pairs.txt`` paths
    (``img/<GENDER>/<Category>/id_<8 digits>/<NN>_<V>_<view>.jpg``, ``.jpg`` replaced by ``.png``,
    lines 65-67) through ``path_to_fashion_name`` (lines 147-154): the parts of ``fashion/...``
    joined, the id's ``_`` removed and every ``_`` of the file name but the first, the extension
    dropped. That is the rule of GFLA's ``script/generate_fashion_datasets.py`` (lines 48-55) which
    named the field's DeepFashion files, so the two stems are the stems of the field's
    annotation and pairs files (``fashionWOMENBlouses_Shirtsid0000074003_1front``). PIDM's
    ``utils/metrics.py`` ``preprocess_path_for_deform_task`` (lines 421-446) takes the target as
    the text after the last ``_2_``; here every ``_2_`` of the name is tried and the (source,
    target) split that is a pair of the given pairs file (``--pairs``, e.g. the field's
    ``fasion-resize-pairs-test.csv``) is kept: a name that is no pair of that file is an error
    naming the file (PIDM's script would skip it in SSIM and LPIPS, printing the missing
    ground-truth path, line 441, but keep it in the FID of the whole folder, line 650).

The pixels are written unchanged as PNG (lossless), so the metrics see what the released scripts
decode from the JPEG files.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from posetransfer.errors import DataError

LAYOUTS = ("patn-strip", "gfla", "pidm")
PATN_PANELS = 5  # source, source pose, target, target pose, generated
PATN_GENERATED_PANEL = 4
PATN_TARGET_PANEL = 2
SEPARATOR = "___"


def _strip_vis(path: Path, name: str) -> str:
    for suffix in ("_vis.jpg", "_vis.png"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    raise DataError(path, "released test images are named ..._vis.jpg or ..._vis.png")


def parse_released_name(path: str | Path, layout: str) -> tuple[str, str]:
    """(source stem, target stem) of a released test image's file name."""
    path = Path(path)
    base = _strip_vis(path, path.name)
    if layout == "patn-strip":
        parts = base.split(SEPARATOR)
        if len(parts) != 2 or not all(parts):
            raise DataError(path, f"PATN names its strips <source>{SEPARATOR}<target>_vis.jpg")
        return tuple(os.path.splitext(p)[0] if p.lower().endswith((".jpg", ".png")) else p for p in parts)  # type: ignore[return-value]
    if layout == "pidm":
        raise ValueError("the pidm layout is parsed against a pairs file: use parse_pidm_name")
    if layout == "gfla":
        if "_2_" not in base:
            raise DataError(path, "GFLA names its images <source-stem>_2_<target-stem>_vis.jpg")
        src, tgt = base.rsplit("_2_", 1)
        if not src or not tgt:
            raise DataError(path, "GFLA names its images <source-stem>_2_<target-stem>_vis.jpg")
        return src, tgt
    raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")


PIDM_SEPARATOR = "_2_"


def _stem(name: str) -> str:
    return os.path.splitext(name)[0]


def parse_pidm_name(path: str | Path, pairs: set[tuple[str, str]], pairs_path: str | Path = "the pairs file") -> tuple[str, str]:
    """(source stem, target stem) of PIDM's ``<source>_2_<target>_vis.png`` that is a pair of
    ``pairs`` (a set of (source stem, target stem)); a :class:`DataError` naming the file otherwise.

    Every ``_2_`` of the name is tried as the separator (the field's names hold none, so in practice
    there is one); the split must be a pair of the file, and exactly one may be.
    """
    path = Path(path)
    base = _strip_vis(path, path.name)
    splits = []
    start = base.find(PIDM_SEPARATOR)
    while start > 0:
        src, tgt = base[:start], base[start + len(PIDM_SEPARATOR) :]
        if tgt and (src, tgt) in pairs:
            splits.append((src, tgt))
        start = base.find(PIDM_SEPARATOR, start + 1)
    if not splits:
        if PIDM_SEPARATOR not in base:
            raise DataError(path, "PIDM names its images <source-stem>_2_<target-stem>_vis.png")
        raise DataError(path, f"is no pair of {pairs_path} (PIDM's <source-stem>_2_<target-stem>_vis.png)")
    if len(splits) > 1:
        raise DataError(path, f"splits into {len(splits)} pairs of {pairs_path}: {splits[0]} and {splits[1]}")
    return splits[0]


def read_pair_stems(pairs_path: str | Path) -> list[tuple[str, str]]:
    """The (source stem, target stem) rows of a ``from,to`` pairs file, in its order."""
    from posetransfer.pose.io import read_pairs

    return [(_stem(a), _stem(b)) for a, b in read_pairs(pairs_path)]


def strip_panel(image: np.ndarray, panel: int = PATN_GENERATED_PANEL, path: str | Path = "<image>") -> np.ndarray:
    """Panel ``panel`` (0-based) of a PATN strip, ``w = int(width / 5)`` as its ``getMetrics``."""
    width = image.shape[1]
    if width % PATN_PANELS:
        raise DataError(path, f"is {width} pixels wide: a PATN strip is 5 panels of equal width")
    w = width // PATN_PANELS
    return image[:, panel * w : (panel + 1) * w]


def convert_released(
    src: str | Path, layout: str, out: str | Path, *, overwrite: bool = False, targets_out: str | Path | None = None,
    pairs: str | Path | None = None, log=lambda s: None,
) -> int:
    """Write ``out/<from-stem>___<to-stem>.png`` for every released image in ``src``; returns the count.

    ``targets_out`` (``patn-strip`` only): also write each strip's target panel there under the same
    name, for ``evaluate --targets`` (PATN's getMetrics compares the generated panel with this
    JPEG-compressed copy of the target, not with the data set's image). ``pairs`` (``pidm``, where
    it is required): the ``from,to`` file the names are matched against; how many of its pairs have
    no image is logged. Every name is checked (and no two images may map onto one name) before
    anything is written.
    """
    from posetransfer.data.layouts import list_images
    from posetransfer.utils.io import check_output, read_image, save_image

    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise DataError(src, "folder of released test images does not exist")
    if (pairs is None) == (layout == "pidm"):
        raise DataError(pairs or src, "--pairs (a from,to pairs file) is needed by, and only by, the pidm layout")
    pair_set: set[tuple[str, str]] = set()
    if pairs is not None:
        pair_set = set(read_pair_stems(pairs))
        if not pair_set:
            raise DataError(pairs, "holds no pairs")
    names = list_images(src)
    if not names:
        raise DataError(src, "holds no images")
    targets: dict[str, Path] = {}
    for n in names:
        if layout == "pidm":
            a, b = parse_pidm_name(src / n, pair_set, pairs)  # type: ignore[arg-type]
        else:
            a, b = parse_released_name(src / n, layout)
        dest = f"{a}{SEPARATOR}{b}.png"
        if dest in targets:
            raise DataError(src / n, f"maps onto {dest} as {targets[dest].name} does")
        targets[dest] = src / n
    if targets_out is not None and layout != "patn-strip":
        raise DataError(src, f"--targets-out needs the patn-strip layout: {layout} images hold no target")
    check_output(out, kind="dir", overwrite=overwrite)
    if targets_out is not None:
        targets_out = check_output(targets_out, kind="dir", overwrite=overwrite, option="--targets-out")
        targets_out.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    for dest, path in targets.items():
        image = read_image(path)
        if layout == "patn-strip":
            if targets_out is not None:
                save_image(targets_out / dest, np.ascontiguousarray(strip_panel(image, PATN_TARGET_PANEL, path)))
            image = np.ascontiguousarray(strip_panel(image, path=path))
        save_image(out / dest, image)
    if pairs is not None:
        missing = len(pair_set) - len(targets)
        log(f"{missing} of the {len(pair_set)} pairs of {pairs} have no image in {src}" if missing else
            f"every one of the {len(pair_set)} pairs of {pairs} has its image")
    return len(targets)
