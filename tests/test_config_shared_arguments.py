"""Image size and source count live in one place each (``data.image_size``, ``data.max_sources``)
and are written into the constructor arguments of the networks that take them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from posetransfer.errors import ConfigError
from posetransfer.training.config import config_from_dict, dump_config, load_config
from posetransfer.training.tasks import get_task_class

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_one_switch_sets_every_network():
    c = load_config(CONFIGS / "pg2" / "deepfashion" / "g1_g2_d.yaml", ["data.image_size=[256,176]", "model.d.num_layers=4"])
    assert c.model["g2"]["image_size"] == [256, 176] and c.model["d"]["image_size"] == [256, 176]
    assert c.data.image_size == (256, 176) and get_task_class(c.task)(c).image_size == (256, 176)
    assert c.network_kwargs("g2")["image_size"] == [256, 176]  # what model.json saves
    g1 = load_config(CONFIGS / "pg2" / "market" / "g1_posemaskloss.yaml", ["data.image_size=[64,32]"])
    assert g1.model["g1"]["image_size"] == [64, 32]


def test_source_count_reaches_the_generator():
    single = load_config(CONFIGS / "multiview" / "market" / "g_di_dp_s.yaml")
    multi = load_config(CONFIGS / "multiview" / "market" / "g_di_dp_m.yaml")
    assert single.model["g"]["max_sources"] == 1 and multi.model["g"]["max_sources"] == 5
    assert "max_sources" not in load_config(CONFIGS / "multiview" / "market" / "pix2pix.yaml").model["g"]


RAW = {"task": "pg2_g1_d", "data": {"train": "x"}, "train": {"batch_size": 1, "iterations": 1}}


def test_network_sizes_without_data_size_and_disagreements():
    sized = {"g1": {"image_size": [32, 16]}, "d": {"image_size": [32, 16]}}
    c = config_from_dict({**RAW, "model": sized})
    assert c.data.image_size == (32, 16)  # configs written before data.image_size existed
    assert dump_config(config_from_dict(dump_config(c))) == dump_config(c)
    with pytest.raises(ConfigError, match=r"networks disagree on the image size .*model.d.image_size=\[16, 8\]"):
        config_from_dict({**RAW, "model": {"g1": {"image_size": [32, 16]}, "d": {"image_size": [16, 8]}}})


def test_a_network_stating_another_size_does_not_fit_the_data():
    c = config_from_dict({**RAW, "data": {"train": "x", "image_size": [64, 32]},
                          "model": {"g1": {"base_channels": 4, "num_blocks": 2, "image_size": [32, 16]},
                                    "d": {"base_channels": 4, "num_layers": 2, "image_size": [32, 16]}}})  # fmt: skip
    task = get_task_class(c.task)(c)
    torch.manual_seed(0)
    with pytest.raises(ConfigError, match=r"model.g1: works at 32x16, but data.image_size is 64x32"):
        task.check_image_size(task.build_networks())
