"""Real-vs-fake user study kit (PG2, Ma et al. 2017, section 4.3).

PG2 showed raters a shuffled mix of 55 real and 55 generated images for one second each, asked
"real or generated?", ignored each rater's first 10 answers as practice, and reported
R2G (the share of *real* images rated generated) and G2R (the share of *generated* images rated real).

:func:`export_study` writes the image set and its answer key; :func:`score_study` scores collected
answers. The web page that shows the images, one second each, and stores the answers is
:mod:`posetransfer.studio.study` (``posetransfer serve --study``), which uses both.

Files:

* ``answer_key.csv``: ``image,truth,source`` with ``truth`` in {real, generated} and ``source`` the
  original file (kept out of the folder shown to raters);
* answers CSV (collected): ``rater,image,answer`` with ``answer`` in {real, generated}, rows in the
  order each rater answered.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from posetransfer.errors import DataError
from posetransfer.utils.io import atomic_write_text

TRUTHS = ("real", "generated")
# Accepted spellings in collected answers.
_ANSWER_ALIASES = {"real": "real", "r": "real", "1": "real", "generated": "generated", "fake": "generated",
                   "g": "generated", "f": "generated", "0": "generated"}  # fmt: skip


def export_study(
    real_images: Sequence[str | Path],
    generated_images: Sequence[str | Path],
    out_dir: str | Path,
    *,
    n_real: int = 55,
    n_gen: int = 55,
    seed: int = 0,
) -> list[dict[str, str]]:
    """Sample ``n_real`` real and ``n_gen`` generated images (without replacement), shuffle them,
    copy them to ``out_dir/images/0001.png ...`` and write ``out_dir/answer_key.csv``.

    Returns the answer-key rows. The numbering carries no hint of the truth (one random order).
    """
    real_images = [Path(p) for p in real_images]
    generated_images = [Path(p) for p in generated_images]
    for kind, files, n in (("real", real_images, n_real), ("generated", generated_images, n_gen)):
        if len(files) < n:
            raise DataError(Path(out_dir), f"the study needs {n} {kind} images, only {len(files)} were given")
        for f in files:
            if not f.is_file():
                raise DataError(f, "image file does not exist")
    rng = np.random.default_rng(seed)
    chosen = [(p, "real") for p in rng.choice(np.array(real_images, dtype=object), n_real, replace=False)]
    chosen += [(p, "generated") for p in rng.choice(np.array(generated_images, dtype=object), n_gen, replace=False)]
    order = rng.permutation(len(chosen))
    out_dir = Path(out_dir)
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(len(chosen))))
    rows = []
    for number, idx in enumerate(order, start=1):
        src, truth = chosen[idx]
        name = f"{number:0{width}d}{src.suffix.lower()}"
        tmp = images_dir / f".{name}.tmp"
        shutil.copyfile(src, tmp)
        tmp.replace(images_dir / name)
        rows.append({"image": name, "truth": truth, "source": str(src)})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["image", "truth", "source"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out_dir / "answer_key.csv", buf.getvalue())
    return rows


def _read_csv(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    if not path.is_file():
        raise DataError(path, "file does not exist")
    reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))
    if reader.fieldnames is None or any(c not in reader.fieldnames for c in columns):
        raise DataError(path, f"expected the columns {','.join(columns)}, found {reader.fieldnames}", 1)
    return [(i, row) for i, row in enumerate(reader, start=2)]


def read_answer_key(path: str | Path) -> dict[str, str]:
    """``{image: truth}`` from an ``answer_key.csv``."""
    path = Path(path)
    key = {}
    for line, row in _read_csv(path, ("image", "truth")):
        truth = row["truth"].strip().lower()
        if truth not in TRUTHS:
            raise DataError(path, f"truth must be real or generated, found {row['truth']!r}", line)
        key[row["image"].strip()] = truth
    return key


def score_study(answer_key: str | Path | dict[str, str], answers_csv: str | Path, practice: int = 10) -> dict[str, float]:
    """R2G and G2R of collected answers, ignoring the first ``practice`` answers of each rater.

    ``R2G = #(real rated generated) / #(real)`` and ``G2R = #(generated rated real) / #(generated)``,
    counted over all raters' scored answers (PG2's Table 2 pools the raters). Returns
    ``{"r2g", "g2r", "n_real", "n_generated", "raters"}``.
    """
    key = answer_key if isinstance(answer_key, dict) else read_answer_key(answer_key)
    answers_csv = Path(answers_csv)
    seen: dict[str, int] = defaultdict(int)
    counts = {"real": 0, "generated": 0}
    wrong = {"real": 0, "generated": 0}
    for line, row in _read_csv(answers_csv, ("rater", "image", "answer")):
        rater, image = row["rater"].strip(), row["image"].strip()
        answer = _ANSWER_ALIASES.get(row["answer"].strip().lower())
        if answer is None:
            raise DataError(answers_csv, f"answer must be real or generated, found {row['answer']!r}", line)
        if image not in key:
            raise DataError(answers_csv, f"image {image!r} is not in the answer key", line)
        seen[rater] += 1
        if seen[rater] <= practice:
            continue
        truth = key[image]
        counts[truth] += 1
        wrong[truth] += answer != truth
    return {
        "r2g": wrong["real"] / counts["real"] if counts["real"] else float("nan"),
        "g2r": wrong["generated"] / counts["generated"] if counts["generated"] else float("nan"),
        "n_real": counts["real"],
        "n_generated": counts["generated"],
        "raters": len(seen),
    }
