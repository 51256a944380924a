"""The ``openpose`` pose backend: CMU's COCO-18 body network (Cao et al. 2017, "Realtime Multi-Person
2D Pose Estimation using Part Affinity Fields") with PATN's multi-scale inference and grouping.

Why: the field's keypoint annotations of Market-1501 and DeepFashion were made with this network,
and PATN's PCKh (``tool/compute_coordinates.py`` then ``tool/calPCKH_*.py``; Zhu et al. 2019,
"Progressive Pose Attention Transfer for Person Image Generation", section 4) runs the same network
on the generated images. A different estimator (mediapipe) finds a different neck and ears, so its
PCKh is reported under another name (``pckh_mediapipe``).

**Network.** The two-branch, six-stage CPM of the paper (section 3, Fig. 3: VGG-19 front end to
``conv4_4_CPM``, then per stage a PAF branch ``L1`` of 38 channels and a confidence-map branch
``L2`` of 19). Parameter names are those of the standard converted Caffe weights
``body_pose_model.pth`` of the PyTorch OpenPose ports (flat keys ``conv1_1.weight`` ...
``Mconv7_stage6_L2.bias``; registry entry ``openpose_body`` of :mod:`posetransfer.utils.weights`).
No ReLU follows the last convolution of either branch, as in the Caffe model (one PyTorch port
lists ``Mconv7_stage6_L1`` twice among its linear layers, which puts a ReLU on the stage-6
confidence maps; that typo is not copied).

**Inference, as PATN's ``compute_coordinates.py``** (Python 2, scikit-image of 2018):

* the RGB image is reversed to BGR; for each ``scale_search`` in (0.5, 1, 1.5, 2) it is resized
  to ``(shape * scale * 368 / H).astype(int32)`` with scikit-image's ``resize(order=3,
  preserve_range=True)`` (the 0.13/0.14 defaults: ``mode='constant'``, ``clip=True``, no
  anti-aliasing), fed as ``img / 255 - 0.5`` without padding (PATN's arithmetic; the Caffe model
  and the PyTorch ports use ``/ 256``), and both outputs are resized back to the image size with
  ``order=1``;
* the confidence maps are *averaged* over the scales; the affinity fields are *summed* (PATN never
  divides ``paf_avg``; kept, since its PCKh numbers come from it);
* peaks: the confidence map smoothed by ``gaussian_filter(sigma=3)``, a pixel ``>=`` its four
  neighbours and ``> 0.1``; its score is the unsmoothed value;
* limbs: for every candidate pair, 10 points on the segment (``np.linspace``, rounded half away
  from zero as Python 2's ``round``), the PAF projected on the unit vector; kept when more than 80%
  of the projections exceed 0.05 and the mean plus ``min(0.5 * H / length - 1, 0)`` is positive;
  greedy matching by that score;
* people: PATN's subset assembly (merging two partial people joined by a limb when disjoint; limbs
  17 and 18, shoulder-ear, never start a person); people with fewer than 4 parts or a mean score
  below 0.4 are dropped; the person with the highest total score is returned, as integer ``(y, x)``
  pixels, -1 where missing.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from posetransfer.pose.extract import Detection
from posetransfer.pose.schema import MISSING, NUM_KEYPOINTS
from posetransfer.utils.devices import resolve_device

BOXSIZE = 368
SCALE_SEARCH = (0.5, 1.0, 1.5, 2.0)
PEAK_THRESHOLD = 0.1  # th1
PAF_THRESHOLD = 0.05  # th2
MID_NUM = 10
PEAK_SIGMA = 3

# PATN tool/compute_coordinates.py: 1-based part pairs of the 19 limbs and their PAF channels
# (offset by 19 there: the Keras model's heat maps and PAFs were once one 57-channel blob).
LIMB_SEQ: tuple[tuple[int, int], ...] = (
    (2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12), (12, 13),
    (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18), (3, 17), (6, 18),
)  # fmt: skip
MAP_IDX: tuple[tuple[int, int], ...] = (
    (31, 32), (39, 40), (33, 34), (35, 36), (41, 42), (43, 44), (19, 20), (21, 22), (23, 24),
    (25, 26), (27, 28), (29, 30), (47, 48), (49, 50), (53, 54), (51, 52), (55, 56), (37, 38), (45, 46),
)  # fmt: skip


# ----------------------------------------------------------------------------- the network


def _vgg_front() -> list[tuple[str, tuple]]:
    """(name, (in, out, kernel, stride, padding)) or (name, "pool") of the shared front end."""
    return [
        ("conv1_1", (3, 64, 3, 1, 1)), ("conv1_2", (64, 64, 3, 1, 1)), ("pool1_stage1", "pool"),
        ("conv2_1", (64, 128, 3, 1, 1)), ("conv2_2", (128, 128, 3, 1, 1)), ("pool2_stage1", "pool"),
        ("conv3_1", (128, 256, 3, 1, 1)), ("conv3_2", (256, 256, 3, 1, 1)), ("conv3_3", (256, 256, 3, 1, 1)),
        ("conv3_4", (256, 256, 3, 1, 1)), ("pool3_stage1", "pool"),
        ("conv4_1", (256, 512, 3, 1, 1)), ("conv4_2", (512, 512, 3, 1, 1)),
        ("conv4_3_CPM", (512, 256, 3, 1, 1)), ("conv4_4_CPM", (256, 128, 3, 1, 1)),
    ]  # fmt: skip


def _stage(stage: int, branch: int) -> list[tuple[str, tuple]]:
    out = 38 if branch == 1 else 19
    if stage == 1:
        return [
            (f"conv5_1_CPM_L{branch}", (128, 128, 3, 1, 1)), (f"conv5_2_CPM_L{branch}", (128, 128, 3, 1, 1)),
            (f"conv5_3_CPM_L{branch}", (128, 128, 3, 1, 1)), (f"conv5_4_CPM_L{branch}", (128, 512, 1, 1, 0)),
            (f"conv5_5_CPM_L{branch}", (512, out, 1, 1, 0)),
        ]  # fmt: skip
    layers = [(f"Mconv1_stage{stage}_L{branch}", (185, 128, 7, 1, 3))]
    layers += [(f"Mconv{i}_stage{stage}_L{branch}", (128, 128, 7, 1, 3)) for i in range(2, 6)]
    layers += [(f"Mconv6_stage{stage}_L{branch}", (128, 128, 1, 1, 0)), (f"Mconv7_stage{stage}_L{branch}", (128, out, 1, 1, 0))]
    return layers


def _sequential(spec: list[tuple[str, tuple]], *, relu_last: bool) -> nn.Sequential:
    layers: list[tuple[str, nn.Module]] = []
    for i, (name, v) in enumerate(spec):
        if v == "pool":
            layers.append((name, nn.MaxPool2d(kernel_size=2, stride=2, padding=0)))
            continue
        cin, cout, k, s, p = v
        layers.append((name, nn.Conv2d(cin, cout, kernel_size=k, stride=s, padding=p)))
        if relu_last or i < len(spec) - 1:
            layers.append((f"relu_{name}", nn.ReLU(inplace=True)))
    return nn.Sequential(OrderedDict(layers))


class BodyPoseNet(nn.Module):
    """CMU's COCO-18 body network. ``forward(x (N, 3, H, W))`` -> ``(paf (N, 38, H/8, W/8),
    heatmaps (N, 19, H/8, W/8))`` (stride 8, floor). :meth:`load_published` takes the flat keys of
    ``body_pose_model.pth``; :meth:`published_state_dict` gives this network's state in that layout."""

    def __init__(self):
        super().__init__()
        self.model0 = _sequential(_vgg_front(), relu_last=True)
        for stage in range(1, 7):
            for branch in (1, 2):
                setattr(self, f"model{stage}_{branch}", _sequential(_stage(stage, branch), relu_last=False))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model0(x)
        out = features
        for stage in range(1, 7):
            paf = getattr(self, f"model{stage}_1")(out)
            heat = getattr(self, f"model{stage}_2")(out)
            out = torch.cat([paf, heat, features], 1)
        return paf, heat

    def published_state_dict(self) -> dict[str, torch.Tensor]:
        """State in the layout of ``body_pose_model.pth``: ``<layer>.weight`` / ``<layer>.bias``."""
        return {k.split(".", 1)[1]: v for k, v in self.state_dict().items()}

    def load_published(self, state: dict[str, torch.Tensor], source: str = "body_pose_model.pth") -> None:
        from posetransfer.utils.weights import WeightsError

        mine = self.state_dict()
        expected = {k.split(".", 1)[1]: k for k in mine}
        missing = [k for k in expected if k not in state]
        if missing:
            raise WeightsError(f"{source}: not the OpenPose COCO body network (body_pose_model.pth): missing {missing[:3]}")
        for flat, full in expected.items():
            if tuple(state[flat].shape) != tuple(mine[full].shape):
                raise WeightsError(f"{source}: {flat} has shape {tuple(state[flat].shape)}, expected {tuple(mine[full].shape)}")
        self.load_state_dict({full: state[flat] for flat, full in expected.items()})


def load_body_pose_net(path: str | Path | None = None, *, download: bool = True) -> BodyPoseNet:
    """The network with the published converted weights (registry entry ``openpose_body``)."""
    from posetransfer.utils.weights import load_state_dict, resolve_weights

    file = resolve_weights("openpose_body", path, download=download)
    with torch.device("meta"):  # no random initialisation of 52 M parameters that are overwritten
        net = BodyPoseNet()
    net = net.to_empty(device="cpu")
    net.load_published(load_state_dict("openpose_body", file), str(file))
    return net.eval().requires_grad_(False)


# ----------------------------------------------------------------------------- multi-scale maps


def resize_skimage014(image: np.ndarray, shape: tuple[int, int], order: int) -> np.ndarray:
    """``skimage.transform.resize(image, shape, order=order, preserve_range=True)`` with the defaults
    of scikit-image 0.13/0.14 that PATN ran (``mode='constant'``, ``cval=0``, ``clip=True``, no
    anti-aliasing, float64): the affine map from output to input pixel centres, then ``warp``.
    The current ``resize`` changed its defaults and its order-3 kernel, hence the explicit warp."""
    from skimage.transform import AffineTransform, warp

    rows, cols = int(shape[0]), int(shape[1])
    fy, fx = image.shape[0] / rows, image.shape[1] / cols
    matrix = np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5], [0, 0, 1]], dtype=np.float64)
    out_shape = (rows, cols) + tuple(image.shape[2:])
    return warp(np.asarray(image, dtype=np.float64), AffineTransform(matrix=matrix), output_shape=out_shape,
                order=order, mode="constant", cval=0.0, clip=True, preserve_range=True)  # fmt: skip


@torch.no_grad()
def multiscale_maps(
    net: BodyPoseNet, image_rgb: np.ndarray, scales: tuple[float, ...] = SCALE_SEARCH, boxsize: int = BOXSIZE
) -> tuple[np.ndarray, np.ndarray]:
    """PATN's ``heatmap_avg (H, W, 19)`` (mean over scales) and ``paf_avg (H, W, 38)`` (sum over
    scales, as PATN) of an RGB uint8 image."""
    ori = np.asarray(image_rgb)[:, :, ::-1]  # B, G, R order
    h, w = ori.shape[:2]
    device = next(net.parameters()).device
    heat_avg = np.zeros((h, w, 19))
    paf_avg = np.zeros((h, w, 38))
    for s in scales:
        scale = s * boxsize / h
        new_size = (np.array(ori.shape[:2]) * scale).astype(np.int32)
        test = resize_skimage014(ori, tuple(new_size), order=3)
        x = torch.from_numpy((test / 255 - 0.5).transpose(2, 0, 1)[None].astype(np.float32)).to(device)
        paf, heat = net(x)
        heat_avg += resize_skimage014(heat[0].permute(1, 2, 0).cpu().numpy(), (h, w), order=1)
        paf_avg += resize_skimage014(paf[0].permute(1, 2, 0).cpu().numpy(), (h, w), order=1)
    heat_avg /= len(scales)
    return heat_avg, paf_avg


# ----------------------------------------------------------------------------- peaks and grouping


def find_peaks(heatmap_avg: np.ndarray, th1: float = PEAK_THRESHOLD) -> list[list[tuple[int, int, float, int]]]:
    """Per part (18), its peaks ``(x, y, score, id)`` in PATN's order (row-major), ids consecutive."""
    from scipy.ndimage import gaussian_filter

    all_peaks, counter = [], 0
    for part in range(NUM_KEYPOINTS):
        ori = heatmap_avg[:, :, part]
        m = gaussian_filter(ori, sigma=PEAK_SIGMA)
        up = np.zeros(m.shape)
        up[1:, :] = m[:-1, :]
        down = np.zeros(m.shape)
        down[:-1, :] = m[1:, :]
        left = np.zeros(m.shape)
        left[:, 1:] = m[:, :-1]
        right = np.zeros(m.shape)
        right[:, :-1] = m[:, 1:]
        binary = np.logical_and.reduce((m >= up, m >= down, m >= left, m >= right, m > th1))
        ys, xs = np.nonzero(binary)
        peaks = [(int(x), int(y), float(ori[y, x]), counter + i) for i, (x, y) in enumerate(zip(xs, ys))]
        all_peaks.append(peaks)
        counter += len(peaks)
    return all_peaks


def _round_py2(v: np.ndarray) -> np.ndarray:
    """Python 2's ``round``: halves away from zero (Python 3 and numpy round them to even)."""
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def connect_limbs(
    all_peaks: list, paf_avg: np.ndarray, image_height: int, th2: float = PAF_THRESHOLD, mid_num: int = MID_NUM
) -> tuple[list[np.ndarray], list[int]]:
    """PATN's limb candidates: per limb a ``(K, 5)`` array ``[id_a, id_b, score, i, j]``; and the
    limbs without candidates on either side (``special_k``)."""
    connection_all: list[np.ndarray] = []
    special_k: list[int] = []
    for k, ((a, b), (pa, pb)) in enumerate(zip(LIMB_SEQ, MAP_IDX)):
        score_mid = paf_avg[:, :, [pa - 19, pb - 19]]
        cand_a, cand_b = all_peaks[a - 1], all_peaks[b - 1]
        n_a, n_b = len(cand_a), len(cand_b)
        if n_a == 0 or n_b == 0:
            special_k.append(k)
            connection_all.append(np.zeros((0, 5)))
            continue
        candidates = []
        for i in range(n_a):
            for j in range(n_b):
                vec = np.subtract(cand_b[j][:2], cand_a[i][:2]).astype(np.float64)
                norm = np.sqrt(vec[0] * vec[0] + vec[1] * vec[1])
                if norm == 0:  # PATN divides by zero here; its NaN scores fail both criteria
                    continue
                vec = vec / norm
                xs = _round_py2(np.linspace(cand_a[i][0], cand_b[j][0], num=mid_num)).astype(int)
                ys = _round_py2(np.linspace(cand_a[i][1], cand_b[j][1], num=mid_num)).astype(int)
                vec_x = score_mid[ys, xs, 0]
                vec_y = score_mid[ys, xs, 1]
                score_midpts = vec_x * vec[0] + vec_y * vec[1]
                with_prior = sum(score_midpts) / len(score_midpts) + min(0.5 * image_height / norm - 1, 0)
                criterion1 = len(np.nonzero(score_midpts > th2)[0]) > 0.8 * len(score_midpts)
                if criterion1 and with_prior > 0:
                    candidates.append([i, j, with_prior, with_prior + cand_a[i][2] + cand_b[j][2]])
        candidates = sorted(candidates, key=lambda c: c[2], reverse=True)
        connection = np.zeros((0, 5))
        for i, j, s, _ in candidates:
            if i not in connection[:, 3] and j not in connection[:, 4]:
                connection = np.vstack([connection, [cand_a[i][3], cand_b[j][3], s, i, j]])
                if len(connection) >= min(n_a, n_b):
                    break
        connection_all.append(connection)
    return connection_all, special_k


def group_people(all_peaks: list, connection_all: list[np.ndarray], special_k: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """PATN's ``subset (P, 20)`` (18 peak ids or -1, total score, part count; weak people dropped)
    and ``candidate (K, 4)`` (x, y, score, id of every peak)."""
    subset = -1 * np.ones((0, 20))
    flat = [p for peaks in all_peaks for p in peaks]
    candidate = np.array(flat, dtype=np.float64).reshape(-1, 4)
    for k in range(len(LIMB_SEQ)):
        if k in special_k:
            continue
        part_as, part_bs = connection_all[k][:, 0], connection_all[k][:, 1]
        index_a, index_b = np.array(LIMB_SEQ[k]) - 1
        for i in range(len(connection_all[k])):
            found = 0
            subset_idx = [-1, -1]
            for j in range(len(subset)):
                if subset[j][index_a] == part_as[i] or subset[j][index_b] == part_bs[i]:
                    if found < 2:  # PATN would raise an IndexError on a third match
                        subset_idx[found] = j
                    found += 1
            if found == 1:
                j = subset_idx[0]
                if subset[j][index_b] != part_bs[i]:
                    subset[j][index_b] = part_bs[i]
                    subset[j][-1] += 1
                    subset[j][-2] += candidate[part_bs[i].astype(int), 2] + connection_all[k][i][2]
            elif found == 2:  # two partial people joined by this limb: merge them when disjoint
                j1, j2 = subset_idx
                membership = ((subset[j1] >= 0).astype(int) + (subset[j2] >= 0).astype(int))[:-2]
                if len(np.nonzero(membership == 2)[0]) == 0:
                    subset[j1][:-2] += subset[j2][:-2] + 1
                    subset[j1][-2:] += subset[j2][-2:]
                    subset[j1][-2] += connection_all[k][i][2]
                    subset = np.delete(subset, j2, 0)
                else:
                    subset[j1][index_b] = part_bs[i]
                    subset[j1][-1] += 1
                    subset[j1][-2] += candidate[part_bs[i].astype(int), 2] + connection_all[k][i][2]
            elif not found and k < 17:
                row = -1 * np.ones(20)
                row[index_a] = part_as[i]
                row[index_b] = part_bs[i]
                row[-1] = 2
                row[-2] = sum(candidate[connection_all[k][i, :2].astype(int), 2]) + connection_all[k][i][2]
                subset = np.vstack([subset, row])
    keep = [i for i in range(len(subset)) if not (subset[i][-1] < 4 or subset[i][-2] / subset[i][-1] < 0.4)]
    return subset[keep], candidate


def best_person(subset: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """``(18, 2)`` int ``(y, x)`` of the highest-scoring person, all -1 when there is none."""
    if len(subset) == 0:
        return np.full((NUM_KEYPOINTS, 2), MISSING, dtype=int)
    best = subset[int(np.argmax(subset[:, -2]))]
    out = np.full((NUM_KEYPOINTS, 2), MISSING, dtype=int)
    for part in range(NUM_KEYPOINTS):
        if best[part] != -1:
            x, y = candidate[int(best[part]), 0], candidate[int(best[part]), 1]
            out[part] = (int(y), int(x))
    return out


def compute_coordinates(heatmap_avg: np.ndarray, paf_avg: np.ndarray, image_height: int) -> tuple[np.ndarray, float, int]:
    """PATN's ``compute_cordinates``: ``(18, 2)`` int ``(y, x)`` (-1 missing), plus the person's total
    score and the number of people kept (0: all -1)."""
    peaks = find_peaks(heatmap_avg)
    connections, special_k = connect_limbs(peaks, paf_avg, image_height)
    subset, candidate = group_people(peaks, connections, special_k)
    score = float(subset[:, -2].max()) if len(subset) else 0.0
    return best_person(subset, candidate), score, len(subset)


# ----------------------------------------------------------------------------- the backend


class OpenPoseBackend:
    """:class:`~posetransfer.pose.extract.PoseBackend` on CMU's body network, PATN's way (module doc).

    ``weights``: a local ``body_pose_model.pth`` (else the registry's lookup: the
    ``$POSETRANSFER_WEIGHTS_DIR`` folder, the cache, a download). ``device``: default CUDA when
    available. One detection per image, the highest-scoring person, as PATN keeps.
    """

    name = "openpose"

    def __init__(self, weights: str | Path | None = None, *, device: str | None = None, download: bool = True,
                 scales: tuple[float, ...] = SCALE_SEARCH, net: BodyPoseNet | None = None):  # fmt: skip
        self.net = net if net is not None else load_body_pose_net(weights, download=download)
        if device is not None or net is None:  # a given network stays where it is unless told
            self.net = self.net.to(resolve_device(device))
        self.scales = tuple(scales)

    def pose_cords(self, image: np.ndarray) -> tuple[np.ndarray, float, int]:
        """PATN's integer keypoints of an RGB uint8 image (see :func:`compute_coordinates`)."""
        heat, paf = multiscale_maps(self.net, image, self.scales)
        return compute_coordinates(heat, paf, image.shape[0])

    def extract(self, image: np.ndarray) -> list[Detection]:
        kp, score, people = self.pose_cords(image)
        if people == 0:
            return []
        kp = kp.astype(np.float32)
        vis = kp[:, 0] >= 0
        conf = np.where(vis, 1.0, 0.0).astype(np.float32)
        pts = kp[vis]
        bbox = (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))
        return [Detection(kp, conf, bbox, score)]
