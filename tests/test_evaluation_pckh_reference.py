"""``pckh`` against a reference written directly from PATN's released PCKh script.

github.com/tengteng95/Pose-Transfer (281ee2d) ``tool/calPCKH_market.py`` (``calPCKH_fashion.py``
is the same code): ``PARTS_SEL`` (line 8), ``isRight`` (lines 21-28), ``how_many_right_seq``
(lines 30-35), ``ValidPoints`` (lines 37-42), ``get_head_wh`` (lines 44-66) and the loop of lines
80-107 (``alpha = 0.5``, line 79). Its keypoints are lists of ``x`` and ``y`` read from the csv
files; here the targets are every row of the field's annotation files and the "predictions" are
those rows with hand-made errors (shifts, dropped and invented points).
"""

from __future__ import annotations

import numpy as np
import pytest

from posetransfer.evaluation.pck import pckh
from reference_protocols import read_annotations

MISSING = -1
PARTS_SEL = [0, 1, 14, 15, 16, 17]


def _is_right(px, py, tx, ty, hz, alpha):
    if px == -1 or py == -1 or tx == -1 or ty == -1:
        return 0
    if abs(px - tx) < hz[0] * alpha and abs(py - ty) < hz[1] * alpha:
        return 1
    return 0


def _head_wh(x_coords, y_coords):
    final_w, final_h = -1, -1
    comps = [[x_coords[c], y_coords[c]] for c in PARTS_SEL if not (x_coords[c] == MISSING or y_coords[c] == MISSING)]
    if len(comps) >= 2:
        xs = [c[0] for c in comps]
        ys = [c[1] for c in comps]
        final_w = max(xs) - min(xs)
        final_h = max(ys) - min(ys)
    return final_w, final_h


def reference_pckh(pred: np.ndarray, target: np.ndarray, alpha: float = 0.5) -> tuple[int, int]:
    """(nCorrect, nAll) of calPCKH for (N, 18, 2) (y, x) arrays."""
    n_all = n_correct = 0
    for p, t in zip(pred.tolist(), target.tolist()):
        pycords, pxcords = [v[0] for v in p], [v[1] for v in p]
        tycords, txcords = [v[0] for v in t], [v[1] for v in t]
        x_box, y_box = _head_wh(txcords, tycords)
        if x_box == -1 or y_box == -1:
            continue
        n_all += sum(1 for item in tycords if item != -1)  # ValidPoints(tycords)
        n_correct += sum(_is_right(pxcords[i], pycords[i], txcords[i], tycords[i], (x_box, y_box), alpha) for i in range(len(pxcords)))
    return n_correct, n_all


@pytest.mark.parametrize("name", ["market-annotation-test.csv", "fasion-resize-annotation-test.csv"])
def test_pckh_equals_calpckh_on_every_annotation_row(annotations_dir, name):
    _, target = read_annotations(annotations_dir / name)
    rng = np.random.default_rng(0)
    pred = target + rng.integers(-6, 7, target.shape)  # errors of a few pixels, both axes
    present = (target != -1).all(axis=-1)
    drop = rng.random(present.shape) < 0.1
    pred[drop] = -1  # keypoints the estimator missed
    invent = (~present) & (rng.random(present.shape) < 0.3)
    pred[invent] = rng.integers(0, 60, (int(invent.sum()), 2))  # keypoints the target lacks
    want_correct, want_all = reference_pckh(pred, target)
    score, correct, total = pckh(pred.astype(np.float32), target.astype(np.float32))
    assert (correct, total) == (want_correct, want_all)
    assert score == pytest.approx(want_correct / want_all, abs=1e-12)
    assert 0.2 < score < 0.95  # the perturbation leaves both right and wrong keypoints
