"""The ``openpose`` pose backend: the COCO-18 body network's parameter names and shapes against the
published converted weights' layout, PATN's peak finding and part-affinity grouping on hand-made
confidence maps and affinity fields, and the error naming the missing weights file.

The expected layout is written from github.com/Hzzone/pytorch-openpose ``src/model.py``
(``bodypose_model``: ``block0``, ``block1_1``/``block1_2``, ``block%d_1``/``block%d_2`` for stages
2-6; the file's keys are the layer names, ``util.transfer`` strips the module prefix). The grouping
follows github.com/tengteng95/Pose-Transfer ``tool/compute_coordinates.py`` (``compute_cordinates``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posetransfer.errors import PosetransferError
from posetransfer.pose import openpose_backend as O
from posetransfer.utils import weights as W
from _helpers import offline_weights

# (name, in, out, kernel) of every convolution of body_pose_model.pth, from the ported source
PUBLISHED = (
    [("conv1_1", 3, 64, 3), ("conv1_2", 64, 64, 3), ("conv2_1", 64, 128, 3), ("conv2_2", 128, 128, 3),
     ("conv3_1", 128, 256, 3), ("conv3_2", 256, 256, 3), ("conv3_3", 256, 256, 3), ("conv3_4", 256, 256, 3),
     ("conv4_1", 256, 512, 3), ("conv4_2", 512, 512, 3), ("conv4_3_CPM", 512, 256, 3), ("conv4_4_CPM", 256, 128, 3)]
    + [(f"conv5_{i}_CPM_L{b}", cin, cout, k) for b, last in ((1, 38), (2, 19))
       for i, cin, cout, k in ((1, 128, 128, 3), (2, 128, 128, 3), (3, 128, 128, 3), (4, 128, 512, 1), (5, 512, last, 1))]
    + [(f"Mconv{i}_stage{s}_L{b}", cin, cout, k) for s in range(2, 7) for b, last in ((1, 38), (2, 19))
       for i, cin, cout, k in ((1, 185, 128, 7), (2, 128, 128, 7), (3, 128, 128, 7), (4, 128, 128, 7),
                               (5, 128, 128, 7), (6, 128, 128, 1), (7, 128, last, 1))]
)  # fmt: skip


@pytest.fixture(autouse=True)
def no_weights_anywhere(tmp_path, monkeypatch):
    offline_weights(monkeypatch, tmp_path / "xdg")


def meta_net():
    with torch.device("meta"):  # parameters without storage: cheap, enough for the key checks
        return O.BodyPoseNet()


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return O.BodyPoseNet().eval()


def test_parameter_names_and_shapes_of_the_published_file(net):
    expected = {}
    for name, cin, cout, k in PUBLISHED:
        expected[f"{name}.weight"] = (cout, cin, k, k)
        expected[f"{name}.bias"] = (cout,)
    got = {k: tuple(v.shape) for k, v in net.published_state_dict().items()}
    assert got == expected
    assert len(PUBLISHED) == 12 + 10 + 70


def test_forward_shapes_stride_8_and_no_relu_on_the_outputs():
    net = O.BodyPoseNet().eval()  # its own copy: the biases are changed
    with torch.no_grad():
        for m in net.modules():  # push the last convolutions negative: the outputs must stay linear
            if isinstance(m, torch.nn.Conv2d) and m.out_channels in (19, 38):
                m.bias.fill_(-5.0)
        paf, heat = net(torch.rand(1, 3, 70, 45))
    assert paf.shape == (1, 38, 8, 5) and heat.shape == (1, 19, 8, 5)
    assert heat.max() < 0 and paf.max() < 0  # Caffe's model: no ReLU after Mconv7_stage6_L1/L2


def test_load_published_round_trip_and_clear_errors(tmp_path, net, monkeypatch):
    monkeypatch.setenv(W.ENV_DIR, str(tmp_path))
    torch.save(net.published_state_dict(), tmp_path / "body_pose_model.pth")
    loaded = O.load_body_pose_net(download=False)  # found in $POSETRANSFER_WEIGHTS_DIR
    torch.testing.assert_close(loaded.model6_2.Mconv7_stage6_L2.weight, net.model6_2.Mconv7_stage6_L2.weight)
    bad = dict(net.published_state_dict())
    bad["conv1_1.weight"] = torch.zeros(64, 3, 5, 5)
    with pytest.raises(W.WeightsError, match=r"x.pth: conv1_1.weight has shape \(64, 3, 5, 5\)"):
        meta_net().load_published(bad, "x.pth")
    del bad["Mconv7_stage6_L2.bias"]
    with pytest.raises(W.WeightsError, match="missing.*Mconv7_stage6_L2.bias"):
        meta_net().load_published(bad, "x.pth")


def test_missing_weights_name_the_file_and_where_to_put_it(tmp_path, capsys):
    from posetransfer.cli import main
    from posetransfer.pose.extract import get_backend
    from posetransfer.utils.io import save_image

    with pytest.raises(PosetransferError) as err:
        get_backend("openpose")
    msg = str(err.value)
    assert "body_pose_model.pth" in msg and str(tmp_path / "xdg" / "posetransfer" / "body_pose_model.pth") in msg
    assert "--openpose-weights" in msg and W.ENV_DIR in msg
    save_image(tmp_path / "a.png", np.zeros((32, 16, 3), np.uint8))
    assert main(["pose", "extract", str(tmp_path / "a.png"), "--backend", "openpose", "--out", str(tmp_path / "a.csv")]) == 2
    err_text = capsys.readouterr().err.strip()
    assert "body_pose_model.pth" in err_text and len(err_text.splitlines()) == 1
    assert not (tmp_path / "a.csv").exists()


# ----------------------------------------------------------------------------- hand-made maps

H, Wd = 200, 120
# A standing person (y, x) in the 18-keypoint order; limbs shorter than H / 2 (no distance penalty).
PERSON = np.array([
    (30, 60), (50, 60), (50, 40), (75, 35), (100, 32), (50, 80), (75, 85), (100, 88),
    (100, 48), (135, 48), (170, 48), (100, 72), (135, 72), (170, 72), (26, 55), (26, 65), (28, 48), (28, 72),
])  # fmt: skip


def _maps(people, amplitudes, shape=(H, Wd)):
    """Confidence maps (H, W, 19): a Gaussian (sigma 2) of the given height per visible part;
    affinity fields (H, W, 38): the unit limb vector within 2 px of each limb of each person."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    heat = np.zeros(shape + (19,))
    paf = np.zeros(shape + (38,))
    for kp, amp in zip(people, amplitudes):
        for part, (y, x) in enumerate(kp):
            if y >= 0:
                heat[:, :, part] = np.maximum(heat[:, :, part], amp * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 8.0))
        for (a, b), (ca, cb) in zip(O.LIMB_SEQ, O.MAP_IDX):
            pa, pb = kp[a - 1], kp[b - 1]
            if pa[0] < 0 or pb[0] < 0:
                continue
            v = np.array([pb[1] - pa[1], pb[0] - pa[0]], float)  # (x, y)
            length = np.hypot(*v)
            u = v / length
            rel_x, rel_y = xx - pa[1], yy - pa[0]
            along = rel_x * u[0] + rel_y * u[1]
            across = np.abs(rel_x * u[1] - rel_y * u[0])
            on = (along >= 0) & (along <= length) & (across <= 2)
            paf[on, ca - 19] = u[0]
            paf[on, cb - 19] = u[1]
    return heat, paf


def test_peaks_are_the_maxima_with_the_unsmoothed_score():
    heat, _ = _maps([PERSON], [0.8])
    peaks = O.find_peaks(heat)
    assert [len(p) for p in peaks] == [1] * 18
    assert [(p[0][1], p[0][0]) for p in peaks] == [tuple(k) for k in PERSON]  # stored (x, y)
    assert all(p[0][2] == pytest.approx(0.8) for p in peaks)
    assert [p[0][3] for p in peaks] == list(range(18))  # ids in part order
    heat[:, :, 3] *= 0.05  # below the 0.1 threshold once smoothed: no peak
    assert O.find_peaks(heat)[3] == []


def test_grouping_recovers_a_person_and_leaves_missing_parts_out():
    heat, paf = _maps([PERSON], [1.0])
    kp, score, people = O.compute_coordinates(heat, paf, H)
    assert people == 1 and score > 18
    np.testing.assert_array_equal(kp, PERSON)
    partial = PERSON.copy()
    partial[[10, 13]] = -1  # no ankles
    heat, paf = _maps([partial], [1.0])
    kp, _, _ = O.compute_coordinates(heat, paf, H)
    np.testing.assert_array_equal(kp, partial)


def test_two_people_are_kept_apart_and_the_stronger_is_returned():
    # a second person beside the first on a wider canvas; the first has weaker confidence maps
    second = PERSON + np.array([0, 130])
    heat, paf = _maps([PERSON, second], [0.6, 1.0], shape=(H, 260))
    peaks = O.find_peaks(heat)
    connections, special = O.connect_limbs(peaks, paf, H)
    subset, candidate = O.group_people(peaks, connections, special)
    assert len(subset) == 2 and sorted(subset[:, -1]) == [18, 18]
    np.testing.assert_array_equal(O.best_person(subset, candidate), second)  # the higher total score


def test_no_person_gives_all_missing_and_rounding_is_python2s():
    kp, score, people = O.compute_coordinates(np.zeros((40, 30, 19)), np.zeros((40, 30, 38)), 40)
    assert people == 0 and (kp == -1).all()
    np.testing.assert_array_equal(O._round_py2(np.array([0.5, 1.5, 2.5, 2.4])), [1, 2, 3, 2])


def test_backend_runs_the_multiscale_inference_on_an_image(net):
    backend = O.OpenPoseBackend(net=net, scales=(0.1,))
    image = np.random.default_rng(0).integers(0, 256, (40, 24, 3), dtype=np.uint8)
    heat, paf = O.multiscale_maps(backend.net, image, backend.scales)
    assert heat.shape == (40, 24, 19) and paf.shape == (40, 24, 38)
    kp, _, people = O.compute_coordinates(heat, paf, 40)
    assert kp.shape == (18, 2) and (people > 0 or (kp == -1).all())
    assert isinstance(backend.extract(image), list)


def test_resize_maps_pixel_centres_as_scikit_image():
    """Orders 0 and 1 equal today's ``skimage.transform.resize`` with PATN-era defaults (the same
    pixel-centre map); order 3 is ``warp``'s cubic, which ``resize`` used before scikit-image 0.19."""
    from skimage.transform import resize

    a = np.random.default_rng(0).random((16, 8, 3))
    for order in (0, 1):
        for shape in ((37, 19), (8, 4)):
            ref = resize(a, shape, order=order, mode="constant", anti_aliasing=False, preserve_range=True)
            np.testing.assert_allclose(O.resize_skimage014(a, shape, order), ref, atol=1e-12)
    np.testing.assert_allclose(O.resize_skimage014(a, (16, 8), 3), a, atol=1e-12)  # same size: identity


def test_partial_people_joined_by_the_shoulder_ear_limbs_are_merged():
    """Without a neck, arms and head start as separate partial people (limbs 2-5 and 13-16); the
    shoulder-ear limbs (17, 18) join them (PATN's ``found == 2`` merge). The legs, with no limb to
    the rest, stay people of 3 parts and are dropped (fewer than 4)."""
    kp = PERSON.copy()
    kp[[1, 8, 9, 10, 11, 12, 13]] = -1  # no neck, no hips, knees, ankles ...
    kp[[8, 9, 10]] = PERSON[[8, 9, 10]]  # ... except a right leg, a 3-part person on its own
    heat, paf = _maps([kp], [1.0])
    peaks = O.find_peaks(heat)
    connections, special = O.connect_limbs(peaks, paf, H)
    subset, candidate = O.group_people(peaks, connections, special)
    assert len(subset) == 1 and subset[0, -1] == 11  # 2 arms x 3 + nose, eyes, ears
    expected = kp.copy()
    expected[[8, 9, 10]] = -1
    np.testing.assert_array_equal(O.best_person(subset, candidate), expected)
    # without limbs 17 and 18 nothing joins them: only the 5-part head survives
    alone, _ = O.group_people(peaks, connections, special + [17, 18])
    assert sorted(alone[:, -1]) == [5]
