"""The device-side data path (data/device.py) against the worker path (PairDataset), on CPU.

Same data set, same seeds: the batch made on the device must equal the collated worker items:
exactly for the heatmaps, coordinates, keypoints, pose mask and unwarped images; within OpenCV's
rasterisation for the stick figure, and OpenCV's fixed-point bilinear weights for warped images
(the tolerances below are what was measured, with margin).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from posetransfer.bench.train import bench_poses
from posetransfer.data import device as dd
from posetransfer.data.datasets import PairDataset
from posetransfer.data.transforms import Augment
from posetransfer.pose import encodings


@pytest.mark.parametrize("size", [(128, 64), (256, 176)])
def test_torch_encodings_match_the_numpy_ones(size):
    kp = bench_poses(size, 12, seed=3)
    kp[0, 4] = [size[0] + 3, 5]  # out of frame: missing
    kp[1, :] = -1  # nobody
    t = torch.from_numpy(kp)
    assert torch.equal(dd.disk_heatmaps(t, size, 4), torch.from_numpy(encodings.disk_heatmaps(kp, size, 4)))
    torch.testing.assert_close(dd.gaussian_heatmaps(t, size, 6.0), torch.from_numpy(encodings.gaussian_heatmaps(kp, size, 6.0)),
                               atol=1e-6, rtol=0)  # fmt: skip
    assert torch.equal(dd.coordinate_vector(t, size), torch.from_numpy(encodings.coordinate_vector(kp, size)))
    stick = dd.stick_figure(t, size)
    ref = torch.from_numpy(encodings.stick_figure(kp, size))
    assert stick.shape == ref.shape
    differ = (stick - ref).abs().amax(dim=1) > 1e-6
    assert differ.float().mean() < 0.01  # OpenCV's thick-line edges
    assert stick[1].sum() == 0


def _worker_batch(ds: PairDataset, epoch: int, indices: list[int]) -> dict:
    ds.set_epoch(epoch)
    return default_collate([ds[i] for i in indices])


@pytest.mark.parametrize("augment", [None, Augment(flip=0.5), Augment(flip=0.5, pair=True),
                                     Augment(flip=0.5, crop=(0.8, 1.0), rotation=10.0)])  # fmt: skip
def test_device_batches_equal_the_worker_batches(mini_market, augment):
    ds = PairDataset(mini_market, augment=augment, seed=7)
    indices = list(range(0, 24, 2))
    batches = dd.DeviceBatches(ds, [[(3, i) for i in indices]], "cpu")
    assert batches.bank.where == "device" and batches.bank.images.dtype == torch.uint8
    got = next(iter(batches))
    want = _worker_batch(ds, 3, indices)
    assert set(got) == set(want)
    assert got["source_name"] == want["source_name"] and got["target_name"] == want["target_name"]
    for key in ("source_keypoints", "target_keypoints", "target_coords"):
        torch.testing.assert_close(got[key], want[key], atol=1e-4, rtol=0, msg=key)
    torch.testing.assert_close(got["target_heatmaps"], want["target_heatmaps"], atol=1e-4, rtol=0)
    warped = augment is not None and augment.crop is not None
    for key in ("source_image", "target_image"):
        diff = (got[key] - want[key]).abs() * 127.5  # in uint8 levels
        if warped:
            assert diff.mean() < 0.5 and diff.max() <= 4, key  # OpenCV: 5-bit bilinear weights (measured: 0.12, 3)
        else:
            assert diff.max() < 1e-4, key
    assert torch.equal(got["target_mask"], want["target_mask"])  # pose.masks itself, on the same keypoints
    assert ((got["target_stick"] - want["target_stick"]).abs().amax(1) > 1e-6).float().mean() < 0.01
    if augment is not None:  # the draws really moved something
        plain = _worker_batch(PairDataset(mini_market, seed=7), 3, indices)
        assert not torch.equal(plain["target_keypoints"], want["target_keypoints"])


def test_params_follow_the_pair_dataset_draws(mini_market):
    aug = Augment(flip=0.5, crop=(0.7, 1.0), rotation=5.0)
    ds = PairDataset(mini_market, augment=aug, seed=1)
    batches = dd.DeviceBatches(ds, [], "cpu")
    rng = np.random.default_rng([1, 2, 5])
    assert batches.params(2, 5) == (aug.sample(rng, ds.size), aug.sample(rng, ds.size))
    paired = dd.DeviceBatches(PairDataset(mini_market, augment=Augment(flip=0.5, pair=True), seed=1), [], "cpu")
    first, second = paired.params(2, 5)
    assert first == second == Augment(flip=0.5).sample(np.random.default_rng([1, 2, 5]), ds.size)


def test_the_bank_decodes_each_image_once(mini_market):
    ds = PairDataset(mini_market)
    batches = dd.DeviceBatches(ds, [], "cpu")
    names = {n for pair in ds.pairs for n in pair}
    assert batches.bank.images.shape == (len(names), 128, 64, 3)
