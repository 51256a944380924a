"""PG2 networks (G1 with its three pose embeddings, G2, the pair discriminator) on tiny widths."""

from __future__ import annotations

import json

import pytest
import torch
from _model_mixin import ModelTesterMixin

from posetransfer.losses import pose_mask_l1
from posetransfer.models import G1, G2, PairDiscriminator

H, W = 32, 16
TINY_G1 = dict(base_channels=8, num_blocks=3, image_size=(H, W), z_dim=16)


def _inputs(batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, H, W, generator=g) * 2 - 1
    heatmaps = (torch.rand(batch, 18, H, W, generator=g) > 0.9).float()
    coords = torch.rand(batch, 36, generator=g)
    return image, heatmaps, coords


def _pose_for(model: G1, heatmaps, coords):
    return coords if model.pose_input == "coords" else heatmaps




def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("embedding", ["concat", "ce", "hme"])
def test_g1_output_shape_for_every_pose_embedding(embedding):
    torch.manual_seed(0)
    model = G1(**TINY_G1, pose_embedding=embedding)
    image, heatmaps, coords = _inputs()
    out = model(image, _pose_for(model, heatmaps, coords))
    assert out.shape == (2, 3, H, W)
    assert out.dtype == torch.float32
    assert model.pose_input == ("coords" if embedding == "ce" else "heatmaps")


@pytest.mark.parametrize("top_skip", [True, False])
def test_g2_output_shapes(top_skip):
    torch.manual_seed(0)
    model = G2(base_channels=8, num_blocks=3, image_size=(H, W), top_skip=top_skip)
    image, _, _ = _inputs()
    refined, difference = model(image, torch.randn(2, 3, H, W))
    assert refined.shape == difference.shape == (2, 3, H, W)


def test_g2_refined_is_stage1_plus_difference_exactly():
    torch.manual_seed(0)
    model = G2(base_channels=8, num_blocks=3, image_size=(H, W))
    image, _, _ = _inputs()
    stage1 = torch.randn(2, 3, H, W)
    refined, difference = model(image, stage1)
    assert torch.equal(refined, stage1 + difference)
    assert difference.abs().sum() > 0


def test_g2_top_skip_switches_the_full_resolution_skip():
    with_skip = G2(base_channels=8, num_blocks=3, image_size=(H, W), top_skip=True)
    without = G2(base_channels=8, num_blocks=3, image_size=(H, W), top_skip=False)
    # Top decoder level: incoming base(8) + skip base(8) vs incoming only.
    assert with_skip.dec_blocks[-1][0][0].in_channels == 16
    assert without.dec_blocks[-1][0][0].in_channels == 8
    # Bottom level concatenates the last encoder output (24 ch) with itself, as the official code.
    assert with_skip.dec_blocks[0][0][0].in_channels == 48


@pytest.mark.parametrize("batch", [1, 3])
def test_discriminator_returns_one_logit_per_pair(batch):
    torch.manual_seed(0)
    model = PairDiscriminator(base_channels=8, image_size=(H, W), num_layers=3)
    cond, target = torch.randn(batch, 3, H, W), torch.randn(batch, 3, H, W)
    logits = model(cond, target)
    assert logits.shape == (batch,)
    # Conditioned on the pair: changing the condition image changes the logit.
    model.eval()
    assert not torch.allclose(model(cond, target), model(torch.randn(batch, 3, H, W), target))


# ---------------------------------------------------------------- architecture at full size


def _conv(cin: int, cout: int, k: int = 3) -> int:
    return k * k * cin * cout + cout


def test_default_g1_widths_and_parameter_count_match_hand_computation():
    # Built on the meta device: no memory, no compute; only the structure is inspected.
    with torch.device("meta"):
        model = G1()  # 128x64, base 128, N=5, z 64, concat
    enc = model.encoder
    assert enc.conv_in[0].in_channels == 21 and enc.conv_in[0].out_channels == 128
    assert [b.conv1[0].out_channels for b in enc.blocks] == [128, 256, 384, 512, 640]
    assert [b.conv2[0].out_channels for b in enc.blocks] == [128, 256, 384, 512, 640]
    assert [d[0].out_channels for d in enc.downs] == [256, 384, 512, 640]
    assert all(d[0].stride == (2, 2) for d in enc.downs)
    assert model.bottom_size == (8, 4)
    assert model.fc_encode.in_features == 640 * 8 * 4 and model.fc_encode.out_features == 64
    assert model.fc_decode.in_features == 64 and model.fc_decode.out_features == 128 * 8 * 4
    # Decoder residual widths from the bottom: 128 + 640, then 2 * 512, 2 * 384, 2 * 256, 2 * 128.
    assert [b.conv1[0].in_channels for b in model.dec_blocks] == [768, 1024, 768, 512, 256]
    assert [u[1][0].out_channels for u in model.dec_ups] == [512, 384, 256, 128]
    assert model.conv_out.out_channels == 3 and model.conv_out.in_channels == 256

    expected = (
        _conv(21, 128)
        + sum(2 * _conv(w, w) for w in (128, 256, 384, 512, 640))
        + _conv(128, 256) + _conv(256, 384) + _conv(384, 512) + _conv(512, 640)
        + (20480 * 64 + 64) + (64 * 4096 + 4096)
        + sum(2 * _conv(w, w) for w in (768, 1024, 768, 512, 256))
        + _conv(768, 512, 1) + _conv(1024, 384, 1) + _conv(768, 256, 1) + _conv(512, 128, 1)
        + _conv(256, 3)
    )
    assert _n_params(model) == expected == 70_795_075


def test_full_size_256_g1_builds_with_an_8x8_bottleneck():
    with torch.device("meta"):
        model = G1(num_blocks=6, image_size=(256, 256))
    assert model.bottom_size == (8, 8)
    assert model.fc_encode.in_features == 768 * 8 * 8
    assert [b.conv1[0].out_channels for b in model.encoder.blocks] == [128, 256, 384, 512, 640, 768]


def test_ablation_encoders_take_the_image_only_and_join_at_the_bottleneck():
    with torch.device("meta"):
        ce = G1(pose_embedding="ce")
        hme = G1(pose_embedding="hme")
    for model in (ce, hme):
        assert model.encoder.conv_in[0].in_channels == 3
        assert model.fc_decode.in_features == 2 * 64
        # Decoder skips come from the image encoder only: same widths as the concat G1.
        assert [b.conv1[0].in_channels for b in model.dec_blocks] == [768, 1024, 768, 512, 256]
    assert [m.in_features for m in ce.pose_fc if isinstance(m, torch.nn.Linear)] == [36, 64]
    assert hme.pose_encoder.conv_in[0].in_channels == 18
    assert hme.pose_fc_encode.out_features == 64


def test_discriminator_default_layers_follow_dcgan():
    with torch.device("meta"):
        d = PairDiscriminator()
        d256 = PairDiscriminator(image_size=(256, 256), num_layers=5)
    convs = [m for m in d.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512]
    assert convs[0].in_channels == 6 and convs[0].kernel_size == (5, 5) and convs[0].stride == (2, 2)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in d.features) == 3  # all but the first
    assert d.classifier.in_features == 512 * 8 * 4
    assert d256.classifier.in_features == 512 * 8 * 8


# ---------------------------------------------------------------- behaviour


@pytest.mark.parametrize("embedding", ["concat", "ce", "hme"])
def test_g1_gradients_reach_every_parameter(embedding):
    torch.manual_seed(0)
    model = G1(**TINY_G1, pose_embedding=embedding)
    image, heatmaps, coords = _inputs()
    model(image, _pose_for(model, heatmaps, coords)).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_g2_and_discriminator_gradients_reach_every_parameter():
    torch.manual_seed(0)
    g2 = G2(base_channels=8, num_blocks=3, image_size=(H, W))
    d = PairDiscriminator(base_channels=8, image_size=(H, W), num_layers=3)
    image, _, _ = _inputs()
    refined, _ = g2(image, torch.randn(2, 3, H, W))
    d(image, refined).sum().backward()
    for name, p in [*g2.named_parameters(), *d.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_ce_model_uses_coordinates_and_rejects_heatmaps():
    torch.manual_seed(0)
    model = G1(**TINY_G1, pose_embedding="ce")
    image, heatmaps, coords = _inputs()
    out_a = model(image, coords)
    out_b = model(image, coords.flip(0))
    assert not torch.allclose(out_a[0], out_b[0])
    with pytest.raises(ValueError, match="coordinates"):
        model(image, heatmaps)


@pytest.mark.parametrize("embedding", ["concat", "hme"])
def test_heatmap_models_depend_on_the_heatmaps(embedding):
    torch.manual_seed(0)
    model = G1(**TINY_G1, pose_embedding=embedding)
    image, heatmaps, _ = _inputs()
    assert not torch.allclose(model(image, heatmaps), model(image, 1 - heatmaps))
    with pytest.raises(ValueError, match="heatmaps"):
        model(image, torch.rand(2, 36))


def _models():
    torch.manual_seed(0)
    return {
        "g1-concat": G1(**TINY_G1),
        "g1-ce": G1(**TINY_G1, pose_embedding="ce"),
        "g1-hme": G1(**TINY_G1, pose_embedding="hme"),
        "g2": G2(base_channels=8, num_blocks=3, image_size=(H, W)),
        "d": PairDiscriminator(base_channels=8, image_size=(H, W), num_layers=3).eval(),
    }


def _run(name, model, image, heatmaps, coords, channels_last=False):
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        image = image.contiguous(memory_format=torch.channels_last)
        heatmaps = heatmaps.contiguous(memory_format=torch.channels_last)
    if name.startswith("g1"):
        return model(image, _pose_for(model, heatmaps, coords))
    if name == "g2":
        return model(image, image.flip(-1))[1]  # the difference map: the network's own output
    return model(image, image.flip(-1))


@pytest.mark.parametrize("name", ["g1-concat", "g1-ce", "g1-hme", "g2", "d"])
def test_bf16_autocast_and_channels_last_match_fp32(name):
    image, heatmaps, coords = _inputs()
    model = _models()[name]
    with torch.no_grad():
        reference = _run(name, model, image, heatmaps, coords)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = _run(name, model, image, heatmaps, coords)
        cl = _run(name, model, image, heatmaps, coords, channels_last=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            cl_low = _run(name, model, image, heatmaps, coords, channels_last=True)
    assert low.dtype == torch.bfloat16
    scale = reference.abs().max().item()
    torch.testing.assert_close(cl, reference, rtol=1e-4, atol=1e-5 * scale)
    for approx in (low, cl_low):
        err = (approx.float() - reference).abs().max().item()
        assert err <= 0.05 * scale, (name, err, scale)


def test_constructor_arguments_round_trip_through_json():
    kwargs = dict(TINY_G1, pose_embedding="hme")
    restored = json.loads(json.dumps(kwargs))  # image_size becomes a list
    a, b = G1(**kwargs), G1(**restored)
    assert b.image_size == (H, W)
    b.load_state_dict(a.state_dict())
    image, heatmaps, _ = _inputs()
    assert torch.equal(a(image, heatmaps), b(image, heatmaps))
    G2(**json.loads(json.dumps(dict(base_channels=8, num_blocks=3, image_size=[H, W], top_skip=False))))
    PairDiscriminator(**json.loads(json.dumps(dict(base_channels=8, image_size=[H, W], num_layers=3))))


# ---------------------------------------------------------------- validation


def test_invalid_image_size_raises_clear_value_error():
    with pytest.raises(ValueError, match=r"30x16 is not divisible by 4"):
        G1(base_channels=8, num_blocks=3, image_size=(30, 16))
    # 256x176 (the DeepFashion crop) cannot take G1's N=6: 176 / 32 is not an integer.
    with pytest.raises(ValueError, match=r"256x176 is not divisible by 32"):
        G1(base_channels=8, num_blocks=6, image_size=(256, 176))
    with pytest.raises(ValueError, match="divisible by 8"):
        G2(base_channels=8, num_blocks=4, image_size=(36, 16))
    with pytest.raises(ValueError, match="divisible by 16"):
        PairDiscriminator(base_channels=8, image_size=(32, 24), num_layers=4)
    with pytest.raises(ValueError, match="two positive ints"):
        G1(image_size=(128,))


def test_invalid_arguments_and_inputs_raise():
    with pytest.raises(ValueError, match="pose_embedding"):
        G1(**TINY_G1, pose_embedding="coords")
    with pytest.raises(ValueError, match="num_blocks"):
        G1(base_channels=8, num_blocks=0, image_size=(H, W))
    model = G1(**TINY_G1)
    with pytest.raises(ValueError, match="must be 32x16"):
        model(torch.zeros(1, 3, 64, 32), torch.zeros(1, 18, 64, 32))
    with pytest.raises(ValueError, match="in_channels|shape"):
        PairDiscriminator(base_channels=8, image_size=(H, W), num_layers=3)(
            torch.zeros(1, 3, H, W), torch.zeros(1, 1, H, W)
        )


# ---------------------------------------------------------------- training sanity


def test_tiny_g1_overfits_one_batch():
    torch.manual_seed(0)
    model = G1(**TINY_G1)
    image, heatmaps, _ = _inputs()
    target = torch.rand(2, 3, H, W, generator=torch.Generator().manual_seed(1)) * 2 - 1
    mask = heatmaps.amax(dim=1, keepdim=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = pose_mask_l1(model(image, heatmaps), target, mask)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])


# ---------------------------------------------------------------- shared model checks (tests/_model_mixin.py)


def _rand(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


class TestG1(ModelTesterMixin):
    model_class = G1
    init_kwargs = dict(TINY_G1, pose_embedding="concat")
    output_shape = (3, H, W)
    bad_kwargs = {"pose_embedding": "sum"}

    def inputs(self, batch, seed=0):
        return _rand((batch, 3, H, W), seed), (_rand((batch, 18, H, W), seed + 100) > 0.8).float()


class TestG2(ModelTesterMixin):
    model_class = G2
    init_kwargs = dict(base_channels=8, num_blocks=3, image_size=(H, W), top_skip=False)
    output_shape = (3, H, W)
    bad_kwargs = {"image_size": (30, 16)}

    def inputs(self, batch, seed=0):
        return _rand((batch, 3, H, W), seed), _rand((batch, 3, H, W), seed + 100)

    @staticmethod
    def output(result):
        return result[1]  # (refined, difference): the difference map is the network's own output


class TestPairDiscriminator(ModelTesterMixin):
    model_class = PairDiscriminator
    init_kwargs = dict(base_channels=8, image_size=(H, W), num_layers=3)
    output_shape = ()
    bad_kwargs = {"image_size": (36, 16)}

    def inputs(self, batch, seed=0):
        return _rand((batch, 3, H, W), seed), _rand((batch, 3, H, W), seed + 100)
