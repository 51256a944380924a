"""The device data path for identity groups (data/device_groups.py) against the worker path
(IdentityGroups items, default-collated), on CPU.

Same data set, same seeds, same (epoch, index) keys: the batch must have the worker batch's keys,
shapes and dtypes; equal draws (names, K, padding), keypoints, pose masks and (drawn on the host
with OpenCV, the default) stick figures; unwarped images equal, warped ones within OpenCV's
fixed-point bilinear weights (the tolerance of tests/test_data_device.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from posetransfer.data import device as dd
from posetransfer.data import device_groups as dg
from posetransfer.data.datasets import PairDataset
from posetransfer.data.groups import IdentityGroups
from posetransfer.data.pairs import group_by_identity
from posetransfer.data.synth import synthesize
from posetransfer.data.transforms import Augment
from posetransfer.errors import ConfigError
from posetransfer.pose.io import read_annotations, write_annotations

WARP = Augment(flip=0.5, crop=(0.8, 1.0), rotation=10.0)


@pytest.fixture(scope="module")
def people(tmp_path_factory) -> Path:
    """Synthetic people, identities with 2 to 4 photos (2-photo ones only serve as p~ for K >= 2)."""
    root = tmp_path_factory.mktemp("people")
    synthesize(root, size=(64, 32), identities=8, views=4, seed=5, progress=False)
    train = root / "train"
    ann_path = train / "annotation.csv"
    ann = read_annotations(ann_path)
    groups = group_by_identity(sorted(ann))
    assert len(groups) >= 5
    # keep 2, 3 or 4 photos per identity, so that K varies and some identities only serve as p~
    keep = {n: ann[n] for j, (_, names) in enumerate(sorted(groups.items())) for n in sorted(names)[: 2 + j % 3]}
    write_annotations(ann_path, keep)
    return train


def _worker_batch(ds: IdentityGroups, epoch: int, indices: list[int]) -> dict:
    ds.set_epoch(epoch)
    return default_collate([ds[i] for i in indices])


def _compare(got: dict, want: dict, warped: bool) -> None:
    assert set(got) == set(want)
    for key, value in want.items():
        if not torch.is_tensor(value):
            assert got[key] == value, key
            continue
        assert got[key].shape == value.shape and got[key].dtype == value.dtype, key
        if key.endswith("image") or key.endswith("images"):
            diff = (got[key] - value).abs() * 127.5  # uint8 levels
            if warped:
                assert diff.mean() < 0.5 and diff.max() <= 4, key  # OpenCV's 5-bit bilinear weights
            else:
                assert diff.max() < 1e-4, key
        else:  # keypoints, num_sources, stick figures (OpenCV's own), the pose mask
            assert torch.equal(got[key], value), key


@pytest.mark.parametrize("augment", [None, Augment(flip=0.5), WARP])
def test_group_batches_equal_the_worker_batches(people, augment):
    ds = IdentityGroups(people, min_sources=1, max_sources=3, pad_to=5, augment=augment, seed=7)
    indices = list(range(len(ds)))
    batches = dg.GroupDeviceBatches(ds, [[(2, i) for i in indices]], "cpu")
    got = next(iter(batches))
    want = _worker_batch(ds, 2, indices)
    assert {"source_images", "num_sources", "other_image", "other_stick", "target_mask", "target_stick"} <= set(want)
    _compare(got, want, warped=augment is not None and augment.crop is not None)
    counts = want["num_sources"]
    assert got["source_images"].shape[1] == 5 and len(set(counts.tolist())) > 1  # padded, K varies
    for j, k in enumerate(counts.tolist()):
        assert torch.equal(got["source_images"][j, k:], torch.zeros_like(got["source_images"][j, k:]))
        assert bool((got["source_keypoints"][j, k:] == -1).all())
    if augment is not None:  # the draws really moved something
        plain = _worker_batch(IdentityGroups(people, min_sources=1, max_sources=3, pad_to=5, seed=7), 2, indices)
        assert not torch.equal(plain["target_keypoints"], want["target_keypoints"])


def test_real_photos_batch_equals_the_worker_batch(mini_market):
    ds = IdentityGroups(mini_market, min_sources=2, max_sources=5, pad_to=5, augment=WARP, seed=3)
    indices = list(range(0, len(ds), 3))[:16]
    got = next(iter(dg.GroupDeviceBatches(ds, [[(1, i) for i in indices]], "cpu")))
    _compare(got, _worker_batch(ds, 1, indices), warped=True)


def test_fixed_k_without_padding_and_no_unpaired_pose(people):
    """pix2pix's data: one source, no p~; and a batch mixing K without pad_to is refused."""
    ds = IdentityGroups(people, min_sources=1, max_sources=1, augment=Augment(flip=0.5), unpaired=False, seed=1)
    batches = dg.GroupDeviceBatches(ds, [], "cpu")
    got = batches.batch([0, 1, 2])
    want = _worker_batch(ds, 0, [0, 1, 2])
    assert "other_image" not in want
    _compare(got, want, warped=False)
    assert got["source_images"].shape[1] == 1
    mixed = IdentityGroups(people, min_sources=1, max_sources=3, seed=7)
    ks = {len(mixed.draw(i)[1]) for i in range(len(mixed))}
    assert len(ks) > 1
    with pytest.raises(ConfigError, match="pad_to"):
        dg.GroupDeviceBatches(mixed, [], "cpu").batch(list(range(len(mixed))))


def test_each_photo_draws_its_own_augmentation_from_the_item_stream(people):
    ds = IdentityGroups(people, min_sources=1, max_sources=3, augment=WARP, seed=4)
    params = dg.GroupDeviceBatches(ds, [], "cpu").params(3, 2, 4)
    rng = np.random.default_rng([4, 3, 2, 1])
    assert params == [WARP.sample(rng, ds.size) for _ in range(4)]
    assert len(set(params)) == 4  # sources, target and p~ move independently


def test_the_draws_are_the_data_sets_own_at_the_items_epoch(people):
    ds = IdentityGroups(people, min_sources=1, max_sources=3, pad_to=3, seed=9)
    batches = dg.GroupDeviceBatches(ds, [], "cpu")
    ds.set_epoch(0)
    for epoch in (0, 5):
        got = batches.batch([(epoch, 1), (epoch, 3)])
        for j, i in enumerate((1, 3)):
            ds.set_epoch(epoch)
            target, sources, other = ds.draw(i)
            ds.set_epoch(0)
            assert (got["target_name"][j], got["sources"][j], got["other_name"][j]) == (target, "|".join(sources), other)
    assert ds.epoch == 0  # reading another epoch's draw leaves the data set's epoch alone


def test_the_bank_holds_every_photo_p_tilde_can_be(people):
    ds = IdentityGroups(people, min_sources=3, max_sources=3, seed=0)
    members = {n for _, photos in ds.groups for n in photos}
    bank = dg.GroupDeviceBatches(ds, [], "cpu").bank
    assert members < set(bank.names)  # identities with too few photos for a group still give p~
    assert set(bank.names) == {n for _, n in ds._all}
    assert bank.images.shape == (len(bank.names), 64, 32, 3) and bank.images.dtype == torch.uint8


def test_the_torch_stick_figure_differs_only_at_line_edges(people):
    ds = IdentityGroups(people, min_sources=1, max_sources=3, pad_to=3, augment=Augment(flip=0.5), seed=2)
    items = list(range(len(ds)))
    host = dg.GroupDeviceBatches(ds, [], "cpu").batch(items)
    torch_drawn = dg.GroupDeviceBatches(ds, [], "cpu", stick="device").batch(items)
    for key in ("target_stick", "other_stick"):
        differ = (torch_drawn[key] - host[key]).abs().amax(1) > 1e-6
        assert 0 < differ.float().mean() < 0.01, key
    with pytest.raises(ConfigError, match="stick"):
        dg.GroupDeviceBatches(ds, [], "cpu", stick="gpu")


def test_device_batches_picks_the_path_of_the_data_set(people, mini_market):
    groups = IdentityGroups(people, min_sources=1, max_sources=1, seed=0)
    assert isinstance(dg.device_batches(groups, [], "cpu"), dg.GroupDeviceBatches)
    assert isinstance(dg.device_batches(PairDataset(mini_market), [], "cpu"), dd.DeviceBatches)
    with pytest.raises(ConfigError, match="identity groups"):
        dg.device_batches(torch.utils.data.TensorDataset(torch.zeros(2)), [], "cpu")
    with pytest.raises(ConfigError, match="Augment"):
        dg.GroupDeviceBatches(IdentityGroups(people, min_sources=1, max_sources=1, augment=lambda i, k, r: (i, k)), [], "cpu")
