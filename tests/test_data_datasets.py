"""PairDataset and MultiViewDataset on the real-mini photos (Market 128x64, DeepFashion 256x176)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _helpers import copy_plain_subset
from PIL import Image
from torch.utils.data import default_collate

from posetransfer.data.datasets import MultiViewDataset, PairDataset, drop_out_of_frame
from posetransfer.data.layouts import identity_of
from posetransfer.errors import DataError
from posetransfer.pose import encodings
from posetransfer.pose.io import (
    read_annotations,
    read_pairs,
    write_annotations,
    write_pairs,
)
from posetransfer.pose.schema import visible
from posetransfer.pose.transforms import flip_keypoints

PAIR_KEYS = {
    "source_image", "target_image", "source_keypoints", "target_keypoints", "target_heatmaps",
    "target_coords", "target_stick", "target_mask", "source_name", "target_name",
}  # fmt: skip



@pytest.mark.parametrize("which, size", [("mini_market", (128, 64)), ("mini_fashion", (256, 176))])
def test_pair_dataset_items(request, which, size):
    root = request.getfixturevalue(which)
    ds = PairDataset(root)
    pairs = read_pairs(root / "pairs.csv")
    ann = read_annotations(root / "annotation.csv")
    assert len(ds) == len(pairs) and ds.size == size
    h, w = size
    for i in (0, len(ds) - 1):
        item = ds[i]
        assert set(item) == PAIR_KEYS
        assert (item["source_name"], item["target_name"]) == pairs[i]
        shapes = {
            "source_image": (3, h, w), "target_image": (3, h, w), "source_keypoints": (18, 2),
            "target_keypoints": (18, 2), "target_heatmaps": (18, h, w), "target_coords": (36,),
            "target_stick": (3, h, w), "target_mask": (1, h, w),
        }  # fmt: skip
        for key, shape in shapes.items():
            assert item[key].shape == shape, key
            assert item[key].dtype == torch.float32, key
        for key in ("source_image", "target_image"):
            assert item[key].min() >= -1 and item[key].max() <= 1
            assert item[key].max() - item[key].min() > 1  # a real photo, not a constant
        # the image is the file, mapped to [-1, 1]
        raw = np.asarray(Image.open(root / "images" / pairs[i][1]).convert("RGB"), dtype=np.float32)
        np.testing.assert_allclose(item["target_image"].permute(1, 2, 0).numpy(), raw / 127.5 - 1, atol=1e-6)
        kp = item["target_keypoints"].numpy()
        np.testing.assert_array_equal(kp, drop_out_of_frame(ann[pairs[i][1]], size))
        assert set(torch.unique(item["target_heatmaps"]).tolist()) == {0.0, 1.0}
        assert set(torch.unique(item["target_mask"]).tolist()) == {0.0, 1.0}
        assert 0 <= item["target_stick"].min() and item["target_stick"].max() <= 1
        np.testing.assert_array_equal(item["target_heatmaps"].numpy(), encodings.disk_heatmaps(kp, size))
        np.testing.assert_array_equal(item["target_coords"].numpy(), encodings.coordinate_vector(kp, size))


def test_gaussian_heatmaps_option(mini_market):
    item = PairDataset(mini_market, heatmap="gaussian", sigma=6.0)[0]
    kp = item["target_keypoints"].numpy()
    np.testing.assert_allclose(item["target_heatmaps"].numpy(), encodings.gaussian_heatmaps(kp, (128, 64), sigma=6.0))
    with pytest.raises(ValueError):
        PairDataset(mini_market, heatmap="square")


@pytest.mark.parametrize("which", ["mini_market", "mini_fashion"])
def test_masks_cover_the_person(request, which):
    # PG2's pose mask drawn over real photos: every visible target keypoint lies inside it, and it
    # covers a body-sized share of the picture (neither a few dots nor the whole frame).
    ds = PairDataset(request.getfixturevalue(which))
    fractions = []
    for i in range(0, len(ds), 7):
        item = ds[i]
        mask = item["target_mask"][0].numpy()
        kp = item["target_keypoints"].numpy()
        ys, xs = np.floor(kp[visible(kp)] + 0.5).astype(int).T
        assert mask[np.minimum(ys, mask.shape[0] - 1), np.minimum(xs, mask.shape[1] - 1)].all(), item["target_name"]
        fractions.append(mask.mean())
    assert 0.05 < min(fractions) and max(fractions) < 0.6
    assert 0.1 < float(np.median(fractions)) < 0.5


def test_out_of_frame_keypoints_become_missing(tmp_path, mini_market):
    names = copy_plain_subset(mini_market, tmp_path, n=3, link=True)
    ann = read_annotations(tmp_path / "annotation.csv")
    kp = ann[names[1]].copy()
    kp[0] = (-18, 10)  # negative, as the field's DeepFashion file holds
    kp[1] = (130, 10)  # below the 128-row frame
    kp[2] = (20, 64)  # right of the 64-column frame
    kp[3] = (127, 63)  # last pixel: inside
    ann[names[1]] = kp
    write_annotations(tmp_path / "annotation.csv", ann)
    item = PairDataset(tmp_path)[0]
    assert item["target_name"] == names[1]
    got = item["target_keypoints"].numpy()
    np.testing.assert_array_equal(got[:3], -1)
    np.testing.assert_array_equal(got[3], (127, 63))
    np.testing.assert_array_equal(got[4:], kp[4:])


def test_wrong_size_image_named_at_getitem(tmp_path, mini_market):
    names = copy_plain_subset(mini_market, tmp_path, n=3)
    bad = tmp_path / "images" / names[1]
    Image.open(bad).resize((32, 64)).save(bad)
    ds = PairDataset(tmp_path)  # names are fine: construction does not decode images
    with pytest.raises(DataError, match=rf"{names[1]}: wrong image size 64x32 \(height x width\), expected 128x64"):
        ds[0]


def test_truncated_image_named_at_getitem(tmp_path, mini_market):
    names = copy_plain_subset(mini_market, tmp_path, n=3)
    bad = tmp_path / "images" / names[0]
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(DataError, match=names[0]):
        PairDataset(tmp_path)[0]


def test_pairs_naming_unknown_images_fail_at_construction(tmp_path, mini_market):
    names = copy_plain_subset(mini_market, tmp_path, n=3, link=True)
    pairs_csv = tmp_path / "pairs.csv"
    pairs_csv.write_text(f"from,to\n{names[0]},{names[1]}\n\n{names[1]},ghost.png\n")
    with pytest.raises(DataError) as err:
        PairDataset(tmp_path)
    assert str(err.value).startswith(f"{pairs_csv}, line 4: image 'ghost.png' is not in the annotation")
    # annotated but no file on disk
    (tmp_path / "images" / names[2]).unlink()
    pairs_csv.write_text(f"from,to\n{names[2]},{names[1]}\n")
    with pytest.raises(DataError, match=rf"line 2: image '{names[2]}' has no file"):
        PairDataset(tmp_path)


def test_jpg_names_with_png_files_say_names_must_match(tmp_path, mini_market):
    names = copy_plain_subset(mini_market, tmp_path, n=2, link=True)
    ann = read_annotations(tmp_path / "annotation.csv")
    jpg = {n.replace(".png", ".jpg"): kp for n, kp in ann.items()}
    write_annotations(tmp_path / "annotation.csv", jpg)
    write_pairs(tmp_path / "pairs.csv", [tuple(jpg)])
    with pytest.raises(DataError, match=rf"a file named '{names[0]}' exists: names must match the files exactly"):
        PairDataset(tmp_path)


def test_pairs_override_and_missing_pairs_file(tmp_path, mini_market):
    names = copy_plain_subset(mini_market, tmp_path, n=3, link=True)
    ds = PairDataset(tmp_path, pairs=[(names[2], names[0])])
    assert len(ds) == 1 and ds[0]["source_name"] == names[2]
    with pytest.raises(DataError, match="pair 0: image 'x.png' is not in the annotation"):
        PairDataset(tmp_path, pairs=[("x.png", names[0])])
    (tmp_path / "pairs.csv").unlink()
    with pytest.raises(DataError, match="has no pairs file"):
        PairDataset(tmp_path)


class _Flip:
    """A deterministic stand-in augmentation: flips when the rng says so, keypoints moved with it."""

    def __call__(self, image, kp, rng):
        if rng.random() < 0.5:
            return image[:, ::-1].copy(), flip_keypoints(kp, image.shape[1])
        return image, kp


def test_augment_seeded_per_item_and_epoch(mini_market):
    ds = PairDataset(mini_market, augment=_Flip(), seed=5)
    plain = PairDataset(mini_market)
    flips = []
    for i in range(12):
        a, b, ref = ds[i], ds[i], plain[i]
        torch.testing.assert_close(a["target_image"], b["target_image"])  # same seed, index, epoch
        flipped = not torch.equal(a["target_image"], ref["target_image"])
        if flipped:
            torch.testing.assert_close(a["target_image"], ref["target_image"].flip(-1))
            np.testing.assert_array_equal(
                a["target_keypoints"].numpy(), flip_keypoints(ref["target_keypoints"].numpy(), 64)
            )
            # the mask is computed from the moved keypoints
            np.testing.assert_array_equal(
                a["target_mask"][0].numpy(), encodings.pose_mask(a["target_keypoints"].numpy(), (128, 64))
            )
        flips.append((flipped, not torch.equal(a["source_image"], ref["source_image"])))
    assert len(set(flips)) > 1  # source and target are drawn independently and items differ
    before = [ds[i]["target_image"] for i in range(12)]
    ds.set_epoch(1)
    assert any(not torch.equal(before[i], ds[i]["target_image"]) for i in range(12))


def test_real_augment_keeps_shapes(mini_fashion):
    transforms = pytest.importorskip("posetransfer.data.transforms")
    ds = PairDataset(mini_fashion, augment=transforms.Augment(flip=0.5, crop=(0.8, 1.0), rotation=10))
    item = ds[3]
    assert item["target_image"].shape == (3, 256, 176) and item["target_mask"].shape == (1, 256, 176)
    kp = item["target_keypoints"].numpy()
    assert encodings.in_frame(kp, (256, 176))[visible(kp)].all()


@pytest.mark.parametrize("which", ["mini_market", "mini_fashion"])
def test_multiview_items(request, which):
    root = request.getfixturevalue(which)
    ds = MultiViewDataset(root, max_sources=5, seed=0)
    photos_per_identity = {}
    for n in read_annotations(root / "annotation.csv"):
        photos_per_identity.setdefault(identity_of(n), []).append(n)
    assert len(ds) == sum(len(v) >= 2 for v in photos_per_identity.values())
    h, w = ds.size
    ks = []
    for i in range(len(ds)):
        target, sources, other = ds.draw(i)
        ident = ds.groups[i][0]
        assert identity_of(target) == ident and all(identity_of(s) == ident for s in sources)
        assert target not in sources and len(set(sources)) == len(sources)
        assert 1 <= len(sources) <= min(5, len(photos_per_identity[ident]) - 1)
        assert identity_of(other) != ident  # the unpaired pose p~ comes from another identity
        ks.append(len(sources))
    assert max(ks) > 1  # K varies across items
    item = ds[int(np.argmax(ks))]
    k = max(ks)
    assert item["source_images"].shape == (k, 3, h, w) and item["source_keypoints"].shape == (k, 18, 2)
    assert item["target_image"].shape == (3, h, w) and item["target_stick"].shape == (3, h, w)
    assert item["target_mask"].shape == (1, h, w) and item["other_stick"].shape == (3, h, w)
    assert item["other_image"].shape == (3, h, w) and item["other_keypoints"].shape == (18, 2)
    assert len(item["source_names"]) == k and isinstance(item["target_name"], str)
    assert -1 <= item["source_images"].min() and item["source_images"].max() <= 1
    np.testing.assert_array_equal(
        item["target_stick"].numpy(), encodings.stick_figure(item["target_keypoints"].numpy(), (h, w))
    )
    # deterministic given the seed; another seed draws differently
    again = MultiViewDataset(root, max_sources=5, seed=0)
    assert [again.draw(i) for i in range(len(ds))] == [ds.draw(i) for i in range(len(ds))]
    other = MultiViewDataset(root, max_sources=5, seed=1)
    assert [other.draw(i) for i in range(len(ds))] != [ds.draw(i) for i in range(len(ds))]


def test_multiview_fixed_k_and_collate(mini_market):
    ds = MultiViewDataset(mini_market, num_sources=3, seed=0)
    counts: dict[str, int] = {}
    for n in read_annotations(mini_market / "annotation.csv"):
        counts[identity_of(n)] = counts.get(identity_of(n), 0) + 1
    assert len(ds) == sum(c >= 4 for c in counts.values()) == 29  # identities with 4+ photos
    assert all(len(ds.draw(i)[1]) == 3 for i in range(len(ds)))
    # items of equal K stack with the default collate function (the trainer's); K varying needs
    # data.groups.IdentityGroups' padding (MultiViewDataset.collate, used by nothing, was removed)
    batch = default_collate([ds[0], ds[1]])
    assert batch["source_images"].shape == (2, 3, 3, 128, 64)
    assert batch["target_image"].shape == (2, 3, 128, 64)
    assert batch["target_name"] == [ds[0]["target_name"], ds[1]["target_name"]]
    free = MultiViewDataset(mini_market, seed=0)
    k = [len(free.draw(i)[1]) for i in range(len(free))]
    i, j = k.index(1), next(n for n, v in enumerate(k) if v > 1)
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([free[i], free[j]])
    with pytest.raises(DataError, match="no identity has 7 or more"):
        MultiViewDataset(mini_market, num_sources=6)
