"""One model-input contract: a data set item and the inference batch for the same photo and pose
are identical, with non-default encoding parameters (stick thickness, pose-mask radius/closing),
for PG2 pairs and multi-view groups; and the spec itself (unknown mask parameters, sizes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from posetransfer.data.inputs import InputSpec, batch_of, encode_pose, model_inputs
from posetransfer.data.synth import synthesize
from posetransfer.errors import ConfigError
from posetransfer.inference import Pipeline
from posetransfer.pose import encodings
from posetransfer.pose.library import library_pose
from posetransfer.training.checkpoint import save_checkpoint
from posetransfer.training.config import config_from_dict, dump_config
from posetransfer.training.tasks import get_task_class
from posetransfer.utils.io import read_image

SIZE = (32, 16)
# not the encodings' defaults: a pipeline that dropped them would feed a different pose
ENCODING = {"stick_thickness": 2, "mask": {"radius": 2, "closing": 3}}


@pytest.fixture(scope="module")
def people(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("inputs") / "people"
    synthesize(out, size=SIZE, identities=3, views=3, seed=1, test_fraction=0.34, progress=False)
    return out / "train"


def _checkpoint(root: Path, raw: dict) -> Path:
    config = config_from_dict(raw)
    task = get_task_class(config.task)(config)
    torch.manual_seed(0)
    nets = task.build_networks()
    kwargs = {n: config.network_kwargs(n) for n in nets}
    save_checkpoint(root, 1, nets, kwargs, set(nets), dump_config(config), {"step": 1}, config.task)
    return root


def _pg2(root: Path, people: Path) -> Path:
    return _checkpoint(root, {
        "task": "pg2_stage1",
        "model": {"g1": {"base_channels": 4, "num_blocks": 2, "z_dim": 4, "pose_embedding": "concat"}},
        "data": {"train": str(people), "image_size": list(SIZE), "heatmap": "gaussian", "sigma": 3.0, **ENCODING},
        "train": {"batch_size": 1, "iterations": 1},
    })  # fmt: skip


def _multiview(root: Path, people: Path) -> Path:
    return _checkpoint(root, {
        "task": "multiview",
        "model": {"g": {"base_channels": 4, "n_down": 1, "n_res": 1, "pose_base_channels": 4},
                  "d_image": {"base_channels": 4, "n_layers": 1}, "d_pose": {"base_channels": 4, "n_layers": 1}},
        "loss": {"perceptual_weight": 0.0},
        "data": {"train": str(people), "image_size": list(SIZE), "min_sources": 1, "max_sources": 2, **ENCODING},
        "train": {"batch_size": 1, "iterations": 1},
    })  # fmt: skip


def test_pair_item_and_inference_batch_are_identical(people, tmp_path):
    pipe = Pipeline.from_checkpoint(_pg2(tmp_path / "run", people), device="cpu")
    item = pipe.task.dataset_at(str(people))[0]
    source = read_image(people / "images" / item["source_name"])
    batch = pipe.batch([source], item["target_keypoints"].numpy())
    assert set(batch) == {"source_image", "target_keypoints", "target_heatmaps", "target_coords", "target_stick", "target_mask"}
    for key, value in batch.items():
        assert torch.equal(value[0], item[key]), key
    # the parameters did reach the encodings (not the defaults)
    kp = item["target_keypoints"].numpy()
    np.testing.assert_array_equal(batch["target_mask"][0, 0].numpy(), encodings.pose_mask(kp, SIZE, radius=2, closing=3))
    np.testing.assert_array_equal(batch["target_stick"][0].numpy(), encodings.stick_figure(kp, SIZE, thickness=2))
    np.testing.assert_array_equal(batch["target_heatmaps"][0].numpy(), encodings.gaussian_heatmaps(kp, SIZE, sigma=3.0))
    assert not torch.equal(batch["target_stick"][0], torch.from_numpy(encodings.stick_figure(kp, SIZE)))


def test_group_item_and_inference_batch_are_identical(people, tmp_path):
    pipe = Pipeline.from_checkpoint(_multiview(tmp_path / "run", people), device="cpu")
    assert pipe.max_sources == 2
    ds = pipe.task.dataset_at(str(people))
    item = ds[0]
    k = int(item["num_sources"])
    sources = [read_image(people / "images" / n) for n in item["sources"].split("|")]
    batch = pipe.batch(sources, item["target_keypoints"].numpy())
    assert set(batch) == {"source_images", "target_keypoints", "target_stick", "target_mask"}
    assert torch.equal(batch["source_images"][0], item["source_images"][:k])
    for key in ("target_keypoints", "target_stick", "target_mask"):
        assert torch.equal(batch[key][0], item[key]), key
    kp = item["target_keypoints"].numpy()
    np.testing.assert_array_equal(batch["target_mask"][0, 0].numpy(), encodings.pose_mask(kp, SIZE, radius=2, closing=3))


def test_model_inputs_keys_values_and_batch_of():
    spec = InputSpec(image_size=SIZE, radius=1, encodings=("heatmaps", "mask"))
    kp = library_pose("standing_front", SIZE)
    white = np.full((*SIZE, 3), 255, np.uint8)
    item = model_inputs(spec, [white], kp, target_image=np.zeros((*SIZE, 3), np.uint8))
    assert set(item) == {"source_image", "target_image", "target_keypoints", "target_heatmaps", "target_mask"}
    assert float(item["source_image"].min()) == 1.0 and float(item["target_image"].max()) == -1.0
    np.testing.assert_array_equal(item["target_heatmaps"].numpy(), encodings.disk_heatmaps(kp, SIZE, radius=1))
    assert item["target_mask"].shape == (1, *SIZE)
    batch = batch_of({**item, "name": "x"})
    assert batch["target_mask"].shape == (1, 1, *SIZE) and batch["name"] == ["x"]
    group = InputSpec(image_size=SIZE, encodings=("stick",), group=True)
    assert model_inputs(group, [white, white], kp)["source_images"].shape == (2, 3, *SIZE)
    assert set(encode_pose(kp, group)) == {"stick"}


def test_spec_checks():
    with pytest.raises(ConfigError, match="unknown parameter.*thickness"):
        InputSpec(mask={"thickness": 3})
    assert InputSpec(mask={"closing": 3, "radius": 2}) == InputSpec(mask={"radius": 2, "closing": 3})
    assert InputSpec().at_size((8, 4)).image_size == (8, 4)
    with pytest.raises(ValueError, match="model works at"):
        InputSpec(image_size=(8, 4)).at_size((16, 8))
    with pytest.raises(ConfigError, match=r"data.mask.*unknown parameter"):
        config_from_dict({"task": "pg2_stage1", "model": {"g1": {}}, "data": {"train": "x", "mask": {"bogus": 1}},
                          "train": {"batch_size": 1, "iterations": 1}})  # fmt: skip
