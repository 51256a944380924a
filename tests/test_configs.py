"""Every shipped config loads, validates and instantiates its networks (full size, no forward pass);
config errors name the key and the file; inheritance and ``--set`` overrides behave."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml

from posetransfer.errors import ConfigError
from posetransfer.training.config import (
    apply_overrides,
    config_from_dict,
    dump_config,
    load_config,
    parse_override,
)
from posetransfer.training.tasks import get_task_class

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
ALL_YAML = sorted(CONFIGS.rglob("*.yaml"))
#: ``_*.yaml`` files are fragments: shared bases of the recipes beside them, not runs
# the multiview paper's Table 1 rows: pix2pix, G+D_I, G+D_P, (G+D_I+D_P)-S, (G+D_I+D_P)-M
MULTIVIEW_TABLE1 = ("pix2pix", "g_di", "g_dp", "g_di_dp_s", "g_di_dp_m")
RECIPES = [p for p in ALL_YAML if not p.name.startswith("_")]
FRAGMENTS = [p for p in ALL_YAML if p.name.startswith("_")]
TABLE1 = ["g1_ce_l1", "g1_hme_l1", "g1_l1", "g1_posemaskloss", "g1_d", "g1_g2_d"]




def test_the_table1_recipes_and_the_debug_config_are_shipped():
    for dataset in ("market", "deepfashion"):
        names = sorted(p.stem for p in (CONFIGS / "pg2" / dataset).glob("*.yaml") if not p.name.startswith("_"))
        assert names == sorted(TABLE1)
        names = sorted(p.stem for p in (CONFIGS / "multiview" / dataset).glob("*.yaml") if not p.name.startswith("_"))
        assert names == sorted(MULTIVIEW_TABLE1)
    assert (CONFIGS / "debug" / "tiny.yaml").is_file()
    assert (CONFIGS / "debug" / "multiview_tiny.yaml").is_file()
    # 6 PG2 rows and 5 multiview rows per data set, plus the two debug configs
    assert len(RECIPES) == 2 * (len(TABLE1) + len(MULTIVIEW_TABLE1)) + 2


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_config_instantiates_its_networks(path):
    config = load_config(path)
    task_cls = get_task_class(config.task)
    assert set(config.model) == set(task_cls.networks)
    for name in config.model:
        net = task_cls.network_class(name)(**config.model[name])  # full size; constructing only
        assert sum(p.numel() for p in net.parameters()) > 0
        # the complete kwargs (what model.json stores) name every constructor argument
        full = config.network_kwargs(name)
        assert set(full) == set(inspect.signature(type(net)).parameters)
        assert {k: full[k] for k in config.model[name]} == config.model[name]
    # the resolved config round-trips through its JSON form (what checkpoints store)
    assert dump_config(config_from_dict(dump_config(config))) == dump_config(config)
    for name in task_cls.required_init:
        assert name in config.init_from


def test_fragments_are_bases_of_recipes():
    for fragment in FRAGMENTS:
        users = [p for p in RECIPES if yaml.safe_load(p.read_text()).get("base") == fragment.name]
        assert users, f"{fragment} is not used as a base"


@pytest.mark.parametrize(
    "dataset, size, blocks, batch, it1, it2",
    [("market", [128, 64], 5, 16, 22000, 14000), ("deepfashion", [256, 256], 6, 8, 30000, 20000)],
)
def test_recipes_follow_the_paper(dataset, size, blocks, batch, it1, it2):
    """PG2 sec. 4.1: Adam(2e-5, 0.5, 0.999), batch 16/8, 22k+14k / 30k+20k, N=5/6, flip."""
    folder = CONFIGS / "pg2" / dataset
    configs = {name: load_config(folder / f"{name}.yaml") for name in TABLE1}
    for name, c in configs.items():
        assert c.optim.lr == 2e-5 and c.optim.betas == (0.5, 0.999)
        assert c.train.batch_size == batch
        assert c.data.flip == 0.5 and c.data.heatmap == "disk" and c.data.radius == 4
        assert c.train.iterations == (it2 if name == "g1_g2_d" else it1)
        for net in c.model.values():
            assert net["image_size"] == size
    emb = {n: configs[n].model["g1"]["pose_embedding"] for n in TABLE1 if "g1" in configs[n].model}
    assert emb == {"g1_ce_l1": "ce", "g1_hme_l1": "hme", "g1_l1": "concat", "g1_posemaskloss": "concat", "g1_d": "concat"}
    assert configs["g1_l1"].loss.reconstruction == "l1"
    assert configs["g1_ce_l1"].loss.reconstruction == "l1"
    assert configs["g1_posemaskloss"].loss.reconstruction == "pose_mask_l1"
    assert configs["g1_posemaskloss"].model["g1"]["num_blocks"] == blocks
    assert configs["g1_d"].task == "pg2_g1_d" and configs["g1_d"].loss.reconstruction == "pose_mask_l1"
    stage2 = configs["g1_g2_d"]
    assert stage2.task == "pg2_stage2"
    assert stage2.model["g2"]["num_blocks"] == blocks - 2  # G2 has N-2 blocks (sec. 3.3)
    assert stage2.init_from["g1"] == f"runs/pg2/{dataset}/g1_posemaskloss"  # refines G1-poseMaskLoss


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


TINY = """
task: pg2_stage1
model:
  g1: {base_channels: 4, num_blocks: 2, image_size: [16, 8], z_dim: 4}
data:
  train: some/where/train
train:
  batch_size: 2
  iterations: 3
"""


def test_a_misspelt_key_names_the_key_and_the_file(tmp_path):
    base = _write(tmp_path / "base.yaml", TINY)
    child = _write(tmp_path / "sub" / "child.yaml", "base: ../base.yaml\ntrain:\n  batchsize: 4\n")
    with pytest.raises(ConfigError) as err:
        load_config(child)
    assert "train.batchsize" in str(err.value) and "unknown key" in str(err.value)
    assert "child.yaml" in str(err.value)
    # a misspelling inherited from the base is reported against the base file
    _write(base, TINY.replace("  iterations: 3", "  iterations: 3\n  sead: 1"))
    _write(child, "base: ../base.yaml\n")
    with pytest.raises(ConfigError) as err:
        load_config(child)
    assert "train.sead" in str(err.value) and "base.yaml" in str(err.value) and "child.yaml" not in str(err.value)


@pytest.mark.parametrize(
    "override, key",
    [
        ("loss.reconstrution=l1", "loss.reconstrution"),  # task-owned section
        ("data.flipp=0.5", "data.flipp"),
        ("model.g1.base_channel=4", "model.g1.base_channel"),  # not a G1 constructor argument
        ("model.g9={}", "model.g9"),  # not a network of the task
        ("optim.beta=[0.5,0.9]", "optim.beta"),
        ("trian.seed=1", "trian"),
    ],
)
def test_unknown_keys_everywhere_are_errors(tmp_path, override, key):
    path = _write(tmp_path / "c.yaml", TINY)
    with pytest.raises(ConfigError) as err:
        load_config(path, [override])
    assert key in str(err.value)
    assert f"--set {override}" in str(err.value)


def test_wrong_values_and_missing_sections(tmp_path):
    path = _write(tmp_path / "c.yaml", TINY)
    with pytest.raises(ConfigError, match="train.precision"):
        load_config(path, ["train.precision=fp16"])
    with pytest.raises(ConfigError, match="loss.reconstruction"):
        load_config(path, ["loss.reconstruction=l2"])
    with pytest.raises(ConfigError, match="unknown task 'pg3'"):
        load_config(path, ["task=pg3"])
    with pytest.raises(ConfigError, match="init_from.g1: missing"):
        load_config(path, ["task=pg2_stage2", "model={g2: {}, d: {}}"])
    _write(tmp_path / "bad.yaml", "task: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: invalid YAML"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    _write(tmp_path / "loop.yaml", "base: loop.yaml\n")
    with pytest.raises(ConfigError, match="circular"):
        load_config(tmp_path / "loop.yaml")


def test_inheritance_merges_mappings_and_overrides_parse_as_yaml(tmp_path):
    _write(tmp_path / "base.yaml", TINY)
    child = _write(tmp_path / "child.yaml", "base: base.yaml\nmodel:\n  g1:\n    pose_embedding: hme\n")
    c = load_config(child, ["train.batch_size=4", "train.precision=bf16", "data.test={path: x, split: test}"])
    assert c.model["g1"] == {"base_channels": 4, "num_blocks": 2, "image_size": [16, 8], "z_dim": 4, "pose_embedding": "hme"}
    assert c.train.batch_size == 4 and c.train.precision == "bf16" and c.train.iterations == 3
    assert c.data.train.path == "some/where/train" and c.data.train.split is None
    assert (c.data.test.path, c.data.test.split) == ("x", "test")
    assert parse_override("a.b=[1, 2]") == (("a", "b"), [1, 2])
    assert parse_override("a=null") == (("a",), None)
    assert parse_override("a=2.0e-5") == (("a",), 2e-5)
    # PyYAML reads "2e-5" as a string; the typed field still takes it as a number
    assert load_config(tmp_path / "base.yaml", ["optim.lr=2e-5"]).optim.lr == 2e-5
    with pytest.raises(ConfigError):
        parse_override("no_equals_sign")
    assert apply_overrides({"a": {"b": 1}}, ["a.c=2"]) == {"a": {"b": 1, "c": 2}}
