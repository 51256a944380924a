"""Reference routines written directly from the authors' released scripts (not from our code).

* :func:`pg2_get_pose_mask`: charliememory/Pose-Guided-Person-Image-Generation, ``utils.py``
  lines 90-143 (``_getPoseMask``), 147-166 (``_getSparseKeypoint``), 191-198 (``_sparse2dense``);
  the same routine is copied in ``datasets/convert_market.py`` lines 229-284, which builds the
  training masks. Python 2 original: ``xrange`` is ``range`` here and ``/`` between two ints is
  Python 2's floor division (:func:`py2_div`).
* :func:`patn_produce_ma_mask`: tengteng95/Pose-Transfer, ``tool/pose_utils.py`` lines 108-143.
  ``skimage.draw.circle(r, c, radius, shape)`` of the original was renamed
  ``skimage.draw.disk((r, c), radius, shape=shape)`` (the same ``ellipse`` call) in scikit-image 0.19.
* :func:`gfla_calculate_mask_lpips` (GFLA's mask-LPIPS): RenYurui/Global-Flow-Local-Attention
  (3afa8fe), ``script/metrics.py`` lines 509-567 (``LPIPS.calculate_mask_lpips``), 571-607
  (``produce_ma_mask``), 609-617 (``load_pose_cords_from_strings``, ``create_masked_image``),
  385-402 (``get_image_list``), 414-439 (``preprocess_path_for_deform_task``) and the call of
  lines 645 and 650-651. GFLA's ``produce_ma_mask`` differs from PATN's ``tool/pose_utils.py``
  lines 108-143 only in its default ``img_size=(128, 64)`` and a local ``MISSING_VALUE = -1``
  (``diff`` of the two functions); GFLA's ``util/pose_utils.py`` lines 119-154 is PATN's, line for
  line. So :func:`gfla_produce_ma_mask` calls :func:`patn_produce_ma_mask` with that default.
* :func:`read_annotations`: the annotation files as both projects read them
  (Pose-Transfer ``tool/pose_utils.py`` lines 91-94, ``load_pose_cords_from_strings``: JSON lists
  of ints, ``(y, x)``); PG2's ``peaks`` are OpenPose's ``[(x, y, ...)]`` per joint, empty when the
  joint was not found, which is the annotation files' ``-1``.

Running this file (``python tests/reference_protocols.py``) recomputes, with these slow
per-pose routines (minutes), the digests of every annotation row's reference mask in
``tests/data/protocol_mask_digests.json``, which ``tests/test_pose_masks.py`` compares our
vectorised masks against on every row in a few seconds.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from skimage.draw import disk, polygon
from skimage.morphology import dilation, erosion

try:  # square(n) is deprecated since scikit-image 0.25 for footprint_rectangle((n, n)), the same footprint
    from skimage.morphology import footprint_rectangle

    def square(n: int) -> np.ndarray:
        return footprint_rectangle((n, n))
except ImportError:  # older scikit-image
    from skimage.morphology import square

DIGESTS = Path(__file__).resolve().parent / "data" / "protocol_mask_digests.json"
CHUNK = 1000  # rows per digest: a mismatch names the block of rows to look at
# frame sizes of the two data sets' annotation files (PG2 / PATN: Market 128x64, DeepFashion 256x176)
FILE_SIZES = {
    "market-annotation-train.csv": (128, 64),
    "market-annotation-test.csv": (128, 64),
    "fasion-resize-annotation-test.csv": (256, 176),
}
MISSING_VALUE = -1


def read_annotations(path: Path) -> tuple[list[str], np.ndarray]:
    """``name:keypoints_y:keypoints_x`` rows -> names and int ``(N, 18, 2)`` ``(y, x)``."""
    names, poses = [], []
    lines = Path(path).read_text().splitlines()
    for line in lines[1:]:
        if not line.strip():
            continue
        name, ys, xs = line.split(":")
        names.append(name.strip())
        poses.append(np.concatenate([np.expand_dims(json.loads(ys), -1), np.expand_dims(json.loads(xs), -1)], axis=1))
    return names, np.asarray(poses, dtype=np.int64).reshape(-1, 18, 2)


def py2_div(a, b):
    """Python 2's ``a / b``: floor division when both are ints, true division otherwise."""
    if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)):
        return a // b
    return a / b


def peaks_from_pose(pose: np.ndarray) -> list:
    """PG2's ``peaks``: per joint ``[(x, y)]``, or ``[]`` when the annotation says -1."""
    peaks = []
    for y, x in pose.tolist():
        peaks.append([] if (y == MISSING_VALUE or x == MISSING_VALUE) else [(x, y)])
    return peaks


def _get_sparse_keypoint(r, c, k, height, width, radius=4):
    r = int(r)
    c = int(c)
    k = int(k)
    indices = []
    values = []
    for i in range(-radius, radius + 1):
        for j in range(-radius, radius + 1):
            distance = np.sqrt(float(i**2 + j**2))
            if r + i >= 0 and r + i < height and c + j >= 0 and c + j < width:
                if distance <= radius:  # mode 'Solid'
                    indices.append([r + i, c + j, k])
                    values.append(1)
    return indices, values


def _sparse2dense(indices, values, shape):
    dense = np.zeros(shape)
    for i in range(len(indices)):
        r = indices[i][0]
        c = indices[i][1]
        k = indices[i][2]
        dense[r, c, k] = values[i]
    return dense


def pg2_get_pose_mask(peaks, height, width, radius=4):
    """``_getPoseMask(peaks, height, width, radius=4, mode='Solid')`` of the released ``utils.py``."""
    limbSeq = [[2, 3], [2, 6], [3, 4], [4, 5], [6, 7], [7, 8], [2, 9], [9, 10],
               [10, 11], [2, 12], [12, 13], [13, 14], [2, 1], [1, 15], [15, 17],
               [1, 16], [16, 18], [2, 17], [2, 18], [9, 12], [12, 6], [9, 3], [17, 18]]  # fmt: skip
    indices = []
    values = []
    for limb in limbSeq:
        p0 = peaks[limb[0] - 1]
        p1 = peaks[limb[1] - 1]
        if 0 != len(p0) and 0 != len(p1):
            r0 = p0[0][1]
            c0 = p0[0][0]
            r1 = p1[0][1]
            c1 = p1[0][0]
            ind, val = _get_sparse_keypoint(r0, c0, 0, height, width, radius)
            indices.extend(ind)
            values.extend(val)
            ind, val = _get_sparse_keypoint(r1, c1, 0, height, width, radius)
            indices.extend(ind)
            values.extend(val)
            distance = np.sqrt((r0 - r1) ** 2 + (c0 - c1) ** 2)
            sampleN = int(distance / radius)
            if sampleN > 1:
                for i in range(1, sampleN):
                    r = r0 + py2_div((r1 - r0) * i, sampleN)
                    c = c0 + py2_div((c1 - c0) * i, sampleN)
                    ind, val = _get_sparse_keypoint(r, c, 0, height, width, radius)
                    indices.extend(ind)
                    values.extend(val)
    shape = [height, width, 1]
    dense = np.squeeze(_sparse2dense(indices, values, shape))
    dense = dilation(dense, square(5))
    dense = erosion(dense, square(5))
    return dense


def patn_produce_ma_mask(kp_array, img_size, point_radius=4):
    """``produce_ma_mask(kp_array, img_size, point_radius=4)`` of the released ``tool/pose_utils.py``."""
    mask = np.zeros(shape=img_size, dtype=bool)
    limbs = [[2, 3], [2, 6], [3, 4], [4, 5], [6, 7], [7, 8], [2, 9], [9, 10],
             [10, 11], [2, 12], [12, 13], [13, 14], [2, 1], [1, 15], [15, 17],
             [1, 16], [16, 18], [2, 17], [2, 18], [9, 12], [12, 6], [9, 3], [17, 18]]  # fmt: skip
    limbs = np.array(limbs) - 1
    for f, t in limbs:
        from_missing = kp_array[f][0] == MISSING_VALUE or kp_array[f][1] == MISSING_VALUE
        to_missing = kp_array[t][0] == MISSING_VALUE or kp_array[t][1] == MISSING_VALUE
        if from_missing or to_missing:
            continue
        norm_vec = kp_array[f] - kp_array[t]
        norm_vec = np.array([-norm_vec[1], norm_vec[0]])
        with np.errstate(divide="ignore", invalid="ignore"):  # a zero-length limb: NaN, draws nothing
            norm_vec = point_radius * norm_vec / np.linalg.norm(norm_vec)
        vetexes = np.array([
            kp_array[f] + norm_vec,
            kp_array[f] - norm_vec,
            kp_array[t] - norm_vec,
            kp_array[t] + norm_vec,
        ])  # fmt: skip
        if not np.isfinite(vetexes).all():
            # polygon() with NaN vertices returns no pixel (its bounds int(ceil(nan)) make an
            # empty range); skipped explicitly rather than relying on that cast
            continue
        yy, xx = polygon(vetexes[:, 0], vetexes[:, 1], shape=img_size)
        mask[yy, xx] = True
    for i, joint in enumerate(kp_array):
        if kp_array[i][0] == MISSING_VALUE or kp_array[i][1] == MISSING_VALUE:
            continue
        yy, xx = disk((joint[0], joint[1]), radius=point_radius, shape=img_size)
        mask[yy, xx] = True
    mask = dilation(mask, square(5))
    mask = erosion(mask, square(5))
    return mask


# ----------------------------------------------------------------------------- GFLA's mask-LPIPS


def gfla_produce_ma_mask(kp_array, img_size=(128, 64), point_radius=4):
    """GFLA ``script/metrics.py`` lines 571-607: PATN's ``produce_ma_mask`` with a default size."""
    return patn_produce_ma_mask(kp_array, img_size, point_radius)


def gfla_get_image_list(flist):
    """Lines 385-402: a list as it is; a folder: its ``*.jpg`` then its ``*.png``, sorted together."""
    import glob
    import os

    if isinstance(flist, list):
        return flist
    if os.path.isdir(flist):
        flist = list(glob.glob(flist + "/*.jpg")) + list(glob.glob(flist + "/*.png"))
        flist.sort()
        return flist
    return []


def gfla_preprocess_path_for_deform_task(gt_path, distorted_path):
    """Lines 414-439: pairs each generated ``<from>_2_<to>_vis.png`` (sorted) with ``gt_path/<to>.jpg``;
    a generated file without its ground truth is skipped (printed there)."""
    import os

    distorted_image_list = sorted(gfla_get_image_list(distorted_path))
    gt_list, distorated_list = [], []
    for distorted_image in distorted_image_list:
        image = os.path.basename(distorted_image)
        image = image.split("_2_")[-1]
        image = image.split("_vis")[0] + ".jpg"
        gt_image = os.path.join(gt_path, image)
        if not os.path.isfile(gt_image):
            continue
        gt_list.append(gt_image)
        distorated_list.append(distorted_image)
    return gt_list, distorated_list


def gfla_read_annotation_file(bones_lst):
    """``pd.read_csv(bonesLst, sep=':').set_index('name')`` (lines 520-521) as a dict of rows
    ``{name: {'keypoints_y': str, 'keypoints_x': str}}``: ``.loc[name]`` of a name that is not in
    the file is a ``KeyError`` (the script stops), as indexing this dict. (pandas is not a
    dependency here; the files are plain ``name:[ys]:[xs]`` rows, read as pandas splits them.)"""
    lines = Path(bones_lst).read_text().splitlines()
    header = lines[0].split(":")
    rows = {}
    for line in lines[1:]:
        if not line:
            continue
        row = dict(zip(header, line.split(":")))
        rows[row.pop("name")] = row
    return rows


def gfla_load_pose_cords_from_strings(y_str, x_str):
    """Lines 609-612."""
    y_cords = json.loads(y_str)
    x_cords = json.loads(x_str)
    return np.concatenate([np.expand_dims(y_cords, -1), np.expand_dims(x_cords, -1)], axis=1)


def gfla_create_masked_image(ano_to):
    """Lines 614-617: the mask of the row's keypoints at the default 128x64."""
    kp_to = gfla_load_pose_cords_from_strings(ano_to["keypoints_y"], ano_to["keypoints_x"])
    return gfla_produce_ma_mask(kp_to)


def gfla_calculate_mask_lpips(model_forward, path_1, path_2, bones_lst, batch_size=64, sort=True):
    """``LPIPS.calculate_mask_lpips(path_1, path_2, batch_size=64, sort=True)``, lines 509-567.

    ``path_1``: generated files, ``path_2``: their ground truths (``main`` passes the lists of
    :func:`gfla_preprocess_path_for_deform_task` with ``sort=False``, line 651). ``bones_lst``:
    the annotation file the script reads from its fixed path (line 519,
    ``./dataset/market_data/market-annotation-test.csv``). ``model_forward(x, y)``: the
    ``DistModel.forward`` of the PerceptualSimilarity of GFLA's time (``self.model.forward``,
    line 562), which returns the per-image distances as a flat numpy array by default
    (``retNumpy=True``: ``self.d0.cpu().data.numpy().flatten()``).
    """
    import os

    import torch
    from imageio.v2 import imread  # the script's ``from imageio import imread`` (imageio 2's behaviour)

    if sort:
        files_1 = sorted(gfla_get_image_list(path_1))
        files_2 = sorted(gfla_get_image_list(path_2))
    else:
        files_1 = gfla_get_image_list(path_1)
        files_2 = gfla_get_image_list(path_2)
    imgs_1 = []
    imgs_2 = []
    annotation_file = gfla_read_annotation_file(bones_lst)
    for i in range(len(files_1)):
        string = annotation_file[os.path.basename(files_2[i])]
        mask = np.tile(np.expand_dims(gfla_create_masked_image(string).astype(np.float32), -1), (1, 1, 3))
        imgs_1.append((imread(str(files_1[i])).astype(np.float32) / 127.5 - 1) * mask)
        imgs_2.append((imread(str(files_2[i])).astype(np.float32) / 127.5 - 1) * mask)
    imgs_1 = np.array(imgs_1)
    imgs_2 = np.array(imgs_2)
    imgs_1 = imgs_1.transpose((0, 3, 1, 2))
    imgs_2 = imgs_2.transpose((0, 3, 1, 2))
    result = []
    d0 = imgs_1.shape[0]
    if batch_size > d0:
        batch_size = d0
    n_batches = d0 // batch_size
    for i in range(n_batches):
        start = i * batch_size
        end = start + batch_size
        img_1_batch = torch.from_numpy(imgs_1[start:end]).type(torch.FloatTensor)
        img_2_batch = torch.from_numpy(imgs_2[start:end]).type(torch.FloatTensor)
        result.append(model_forward(img_1_batch, img_2_batch))
    distance = np.average(result)
    return distance


def reference_mask(protocol: str, pose: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The released routine of ``protocol`` on one int ``(18, 2)`` ``(y, x)`` pose, bool ``(H, W)``."""
    if protocol == "pg2":
        return pg2_get_pose_mask(peaks_from_pose(pose), size[0], size[1]) > 0.5
    if protocol == "patn":
        return patn_produce_ma_mask(pose, size)
    raise ValueError(protocol)


def digest(masks: np.ndarray) -> str:
    """SHA-256 of a stack of masks as packed bits (``> 0.5``)."""
    return hashlib.sha256(np.packbits(np.asarray(masks) > 0.5).tobytes()).hexdigest()


def write_digests(annotations: Path) -> dict:
    out: dict = {}
    for name, size in FILE_SIZES.items():
        _, poses = read_annotations(annotations / name)
        out[name] = {"size": list(size), "rows": len(poses), "chunk": CHUNK}
        for protocol in ("pg2", "patn"):
            masks = np.stack([reference_mask(protocol, p, size) for p in poses])
            out[name][protocol] = [digest(masks[s : s + CHUNK]) for s in range(0, len(masks), CHUNK)]
            print(name, protocol, len(poses), flush=True)
    DIGESTS.parent.mkdir(exist_ok=True)
    DIGESTS.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    write_digests(root / "annotations")
