"""Generated test images as PATN's and GFLA's released test scripts write them, converted to the
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

The pixels are written unchanged as PNG (lossless), so the metrics see what the released scripts
decode from the JPEG files.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from posetransfer.errors import DataError

LAYOUTS = ("patn-strip", "gfla")
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
    if layout == "gfla":
        if "_2_" not in base:
            raise DataError(path, "GFLA names its images <source-stem>_2_<target-stem>_vis.jpg")
        src, tgt = base.rsplit("_2_", 1)
        if not src or not tgt:
            raise DataError(path, "GFLA names its images <source-stem>_2_<target-stem>_vis.jpg")
        return src, tgt
    raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")


def strip_panel(image: np.ndarray, panel: int = PATN_GENERATED_PANEL, path: str | Path = "<image>") -> np.ndarray:
    """Panel ``panel`` (0-based) of a PATN strip, ``w = int(width / 5)`` as its ``getMetrics``."""
    width = image.shape[1]
    if width % PATN_PANELS:
        raise DataError(path, f"is {width} pixels wide: a PATN strip is 5 panels of equal width")
    w = width // PATN_PANELS
    return image[:, panel * w : (panel + 1) * w]


def convert_released(
    src: str | Path, layout: str, out: str | Path, *, overwrite: bool = False, targets_out: str | Path | None = None
) -> int:
    """Write ``out/<from-stem>___<to-stem>.png`` for every released image in ``src``; returns the count.

    ``targets_out`` (``patn-strip`` only): also write each strip's target panel there under the same
    name, for ``evaluate --targets`` (PATN's getMetrics compares the generated panel with this
    JPEG-compressed copy of the target, not with the data set's image). Every name is checked (and
    no two images may map onto one name) before anything is written.
    """
    from posetransfer.data.layouts import list_images
    from posetransfer.utils.io import check_output, read_image, save_image

    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise DataError(src, "folder of released test images does not exist")
    names = list_images(src)
    if not names:
        raise DataError(src, "holds no images")
    targets: dict[str, Path] = {}
    for n in names:
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
    return len(targets)
