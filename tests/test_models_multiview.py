"""Networks of the multiview model: ConvLSTM recurrence, generator, PatchGAN, pix2pix baseline."""

from __future__ import annotations

import json
import math

import pytest
import torch
from _model_mixin import ModelTesterMixin

from posetransfer.errors import ConfigError
from posetransfer.losses.multiview import MultiViewLossWeights, generator_loss
from posetransfer.models.multiview import (
    BiConvLSTM,
    ConvLSTM,
    ConvLSTMCell,
    MultiViewGenerator,
    PatchDiscriminator,
    Pix2PixGenerator,
    receptive_field,
    reverse_padded,
)
from posetransfer.training.config import complete_kwargs

TINY = dict(base_channels=8, n_res=1, pose_base_channels=8, lstm_hidden_channels=8)


def sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


# ---------------------------------------------------------------- ConvLSTM, hand-checked


# gate -> (weight on x, weight on h, bias), gates in the cell's order i, f, o, g
GATES = {"i": (0.5, -0.3, 0.1), "f": (-0.2, 0.4, 0.2), "o": (0.3, 0.6, -0.1), "g": (0.8, -0.5, 0.05)}


def hand_cell() -> ConvLSTMCell:
    cell = ConvLSTMCell(in_channels=1, hidden_channels=1, kernel_size=1)
    with torch.no_grad():
        for row, name in enumerate("ifog"):
            wx, wh, b = GATES[name]
            cell.gates.weight[row, 0, 0, 0] = wx  # input channel 0 = x
            cell.gates.weight[row, 1, 0, 0] = wh  # input channel 1 = h
            cell.gates.bias[row] = b
    return cell


def hand_steps(xs: list[float]) -> list[tuple[float, float]]:
    """The LSTM equations by hand, in float64, from h = c = 0."""
    h = c = 0.0
    out = []
    for x in xs:
        pre = {k: wx * x + wh * h + b for k, (wx, wh, b) in GATES.items()}
        c = sig(pre["f"]) * c + sig(pre["i"]) * math.tanh(pre["g"])
        h = sig(pre["o"]) * math.tanh(c)
        out.append((h, c))
    return out


def test_convlstm_cell_two_steps_match_hand_computation():
    cell = hand_cell()
    (h1, c1), (h2, c2) = hand_steps([1.0, -2.0])
    # by hand, step 1: i = sig(0.6), f = sig(0.0) (c0 = 0 anyway), o = sig(0.2), g = tanh(0.85)
    assert c1 == pytest.approx(sig(0.6) * math.tanh(0.85), abs=1e-12)
    assert h1 == pytest.approx(sig(0.2) * math.tanh(c1), abs=1e-12)
    x1 = torch.tensor([[[[1.0]]]])
    x2 = torch.tensor([[[[-2.0]]]])
    th1, tc1 = cell(x1)
    th2, tc2 = cell(x2, (th1, tc1))
    assert th1.item() == pytest.approx(h1, abs=1e-6)
    assert tc1.item() == pytest.approx(c1, abs=1e-6)
    assert th2.item() == pytest.approx(h2, abs=1e-6)
    assert tc2.item() == pytest.approx(c2, abs=1e-6)


def test_convlstm_sequence_and_bidirectional_hand_computation():
    lstm = ConvLSTM(in_channels=1, hidden_channels=1, kernel_size=1)
    lstm.cell.load_state_dict(hand_cell().state_dict())
    xs = [1.0, -2.0, 0.5]
    seq = torch.tensor(xs).view(1, 3, 1, 1, 1)
    out, (h, c) = lstm(seq)
    expected = hand_steps(xs)
    assert out.shape == (1, 3, 1, 1, 1)
    assert out.flatten().tolist() == pytest.approx([e[0] for e in expected], abs=1e-6)
    assert (h.item(), c.item()) == pytest.approx(expected[-1], abs=1e-6)

    bi = BiConvLSTM(in_channels=1, hidden_channels=1, kernel_size=1)
    bi.forward_lstm.load_state_dict(lstm.state_dict())
    bi.backward_lstm.load_state_dict(lstm.state_dict())
    bout, (hf, hb) = bi(seq)
    backward = hand_steps(xs[::-1])[::-1]  # backward output at photo t, aligned to t
    assert bout.shape == (1, 3, 2, 1, 1)
    assert bout[0, :, 0].flatten().tolist() == pytest.approx([e[0] for e in expected], abs=1e-6)
    assert bout[0, :, 1].flatten().tolist() == pytest.approx([e[0] for e in backward], abs=1e-6)
    assert hf.item() == pytest.approx(expected[-1][0], abs=1e-6)
    assert hb.item() == pytest.approx(backward[0][0], abs=1e-6)  # after the first photo


def test_bidirectional_equals_forward_plus_reversed_backward_run():
    torch.manual_seed(0)
    bi = BiConvLSTM(in_channels=3, hidden_channels=4, kernel_size=3)
    x = torch.randn(2, 4, 3, 5, 6)
    out, (hf, hb) = bi(x)
    fwd, (hf_ref, _) = bi.forward_lstm(x)
    bwd, (hb_ref, _) = bi.backward_lstm(x.flip(1))
    torch.testing.assert_close(out, torch.cat([fwd, bwd.flip(1)], dim=2))
    torch.testing.assert_close(hf, hf_ref)
    torch.testing.assert_close(hb, hb_ref)
    torch.testing.assert_close(hb, out[:, 0, 4:])  # backward final state sits at photo 0
    torch.testing.assert_close(hf, out[:, -1, :4])


def test_photo_order_changes_the_forward_direction():
    torch.manual_seed(1)
    lstm = ConvLSTM(in_channels=2, hidden_channels=3)
    x = torch.randn(1, 3, 2, 4, 4)
    _, (h, _) = lstm(x)
    _, (h_rev, _) = lstm(x.flip(1))
    assert (h - h_rev).abs().max() > 1e-3
    # ... while a permutation-invariant summary (the mean) would not see the difference
    torch.testing.assert_close(x.mean(1), x.flip(1).mean(1))


def test_padded_lengths_match_unpadded_runs():
    torch.manual_seed(2)
    bi = BiConvLSTM(in_channels=2, hidden_channels=3)
    a = torch.randn(1, 2, 2, 4, 4)  # 2 photos
    b = torch.randn(1, 4, 2, 4, 4)  # 4 photos
    padded = torch.cat([torch.cat([a, torch.randn(1, 2, 2, 4, 4)], 1), b])
    out, (hf, hb) = bi(padded, torch.tensor([2, 4]))
    out_a, (hf_a, hb_a) = bi(a)
    out_b, (hf_b, hb_b) = bi(b)
    torch.testing.assert_close(out[0, :2], out_a[0])
    assert out[0, 2:].abs().max() == 0  # padding outputs are zero
    torch.testing.assert_close(out[1], out_b[0])
    torch.testing.assert_close(hf, torch.cat([hf_a, hf_b]))
    torch.testing.assert_close(hb, torch.cat([hb_a, hb_b]))
    with pytest.raises(ValueError, match="1..4"):
        bi(padded, torch.tensor([0, 4]))


def test_reverse_padded():
    x = torch.arange(8).view(2, 4)
    assert reverse_padded(x, torch.tensor([2, 4])).tolist() == [[1, 0, 2, 3], [7, 6, 5, 4]]
    assert reverse_padded(x, None).tolist() == [[3, 2, 1, 0], [7, 6, 5, 4]]


# ---------------------------------------------------------------- generator


def test_generator_defaults_are_the_papers():
    g = MultiViewGenerator()
    assert g.image_encoder.out_channels == 256  # 64 -> 128 -> 256 after two stride-2 convs
    strided = [m for m in g.image_encoder.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == 2
    assert sum(type(m).__name__ == "ResidualBlock" for m in g.image_encoder.modules()) == 6
    assert len(g.up) == 2 and all(isinstance(u[0], torch.nn.ConvTranspose2d) for u in g.up)
    assert g.pose_encoder.skip_channels == [64, 128] and g.pose_encoder.out_channels == 256
    json.dumps(complete_kwargs(MultiViewGenerator, {}))  # the constructor arguments are the saved config


@pytest.mark.parametrize("k", [1, 2, 5])
def test_generator_shapes_for_1_to_5_photos(k):
    torch.manual_seed(0)
    g = MultiViewGenerator(**TINY)
    y = g(torch.rand(2, k, 3, 16, 12) * 2 - 1, torch.rand(2, 3, 16, 12))
    assert y.shape == (2, 3, 16, 12)
    assert y.abs().max() <= 1


def test_generator_is_order_aware_and_uses_every_photo():
    torch.manual_seed(0)
    g = MultiViewGenerator(**TINY).eval()
    src = torch.rand(1, 3, 3, 16, 16) * 2 - 1
    pose = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        y = g(src, pose)
        y_rev = g(src.flip(1), pose)
        changed = src.clone()
        changed[:, 1] = -changed[:, 1]
        y_mid = g(changed, pose)
    assert (y - y_rev).abs().max() > 1e-5
    assert (y - y_mid).abs().max() > 1e-5


def test_generator_num_sources_matches_unpadded():
    torch.manual_seed(0)
    g = MultiViewGenerator(**TINY).eval()
    a = torch.rand(1, 2, 3, 8, 8)
    pose = torch.rand(1, 3, 8, 8)
    padded = torch.cat([a, torch.rand(1, 3, 3, 8, 8)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(g(padded, pose, torch.tensor([2])), g(a, pose))


def test_generator_rejects_bad_inputs():
    g = MultiViewGenerator(**TINY)
    pose = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="1 to 5"):
        g(torch.rand(1, 6, 3, 16, 16), pose)
    with pytest.raises(ValueError, match="B, K, C, H, W"):
        g(torch.rand(1, 3, 16, 16), pose)
    with pytest.raises(ConfigError, match="18x16.*multiple of 4"):
        g(torch.rand(1, 1, 3, 18, 16), torch.rand(1, 3, 18, 16))
    with pytest.raises(ConfigError, match="unknown norm"):
        MultiViewGenerator(norm="group")


def test_generator_rebuilds_from_config():
    torch.manual_seed(0)
    g = MultiViewGenerator(**TINY, fusion_blocks=1).eval()
    g2 = MultiViewGenerator(**json.loads(json.dumps(complete_kwargs(MultiViewGenerator, {**TINY, "fusion_blocks": 1})))).eval()
    g2.load_state_dict(g.state_dict())
    x, p = torch.rand(1, 2, 3, 8, 8), torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(g(x, p), g2(x, p), rtol=0, atol=0)


def test_generator_bf16_autocast_and_channels_last():
    torch.manual_seed(0)
    g = MultiViewGenerator(**TINY).eval()
    x, p = torch.rand(1, 2, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        ref = g(x, p)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = g(x, p)
        g_cl = g.to(memory_format=torch.channels_last)
        y_cl = g_cl(x, p.to(memory_format=torch.channels_last))
    assert y.dtype == torch.bfloat16 and y.shape == ref.shape
    assert (y.float() - ref).abs().max() < 0.1
    torch.testing.assert_close(y_cl, ref, rtol=1e-4, atol=1e-5)


def _rectangles(n: int, k: int, size: int, gen: torch.Generator):
    """Synthetic identities: a square of the identity's colour on black, and a white reference
    patch in the sources' corner. The sources show the square at random places; the pose map marks
    (in white) where the target must show it, so the colour can only come from the sources."""
    colours = torch.rand(n, 3, generator=gen) * 2 - 1
    src = -torch.ones(n, k, 3, size, size)
    src[:, :, :, :4, :4] = 1
    pose = torch.zeros(n, 3, size, size)
    tgt = -torch.ones(n, 3, size, size)
    for b in range(n):
        for j in range(k):
            y, x = torch.randint(4, size - 8, (2,), generator=gen).tolist()
            src[b, j, :, y : y + 8, x : x + 8] = colours[b].view(3, 1, 1)
        y, x = torch.randint(0, size - 8, (2,), generator=gen).tolist()
        pose[b, :, y : y + 8, x : x + 8] = 1
        tgt[b, :, y : y + 8, x : x + 8] = colours[b].view(3, 1, 1)
    return src, pose, tgt




def test_tiny_generator_learns_on_synthetic_rectangles():
    """L1 falls, and the generator takes the square's colour from the source photos (E_I path).

    Batch norm here: instance norm (the default) standardises each feature map per image, which
    for these flat two-colour scenes also removes most of the colour's magnitude, so learning the
    colour takes several times more steps (it does learn it; the position comes much sooner).
    """
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    g = MultiViewGenerator(**TINY, norm="batch")
    opt = torch.optim.Adam(g.parameters(), lr=3e-3, betas=(0.5, 0.999))
    losses = []
    for _ in range(200):
        src, pose, tgt = _rectangles(4, 2, 16, gen)
        loss = generator_loss(g(src, pose), tgt, weights=MultiViewLossWeights())["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.5 * first, (first, last)

    g.eval()
    src, pose, tgt = _rectangles(16, 2, 16, gen)
    with torch.no_grad():
        right = g(src, pose)
        wrong = g(src.roll(1, dims=0), pose)  # every target given another identity's photos
    square = (pose[:, :1] > 0).expand_as(tgt)
    err_right = (right - tgt).abs()[square].mean()
    err_wrong = (wrong - tgt).abs()[square].mean()
    assert err_right < err_wrong - 0.03, (err_right, err_wrong)


# ---------------------------------------------------------------- discriminators


def test_patchgan_receptive_field_is_70():
    d = PatchDiscriminator()
    assert d.receptive_field() == 70
    assert PatchDiscriminator(n_layers=1).receptive_field() == 16  # pix2pix's 16x16 PatchGAN
    assert PatchDiscriminator(n_layers=5).receptive_field() == 286  # ... and its 286x286 one
    # the generic formula on a hand-made stack: 3x3/s1 then 3x3/s2 then 3x3/s1 -> 1 + 2 + 2 + 4
    stack = torch.nn.Sequential(
        torch.nn.Conv2d(1, 1, 3), torch.nn.Conv2d(1, 1, 3, stride=2), torch.nn.Conv2d(1, 1, 3)
    )
    assert receptive_field(stack) == 9


def test_patchgan_receptive_field_empirically():
    """Perturbing a pixel changes only the logits whose 70x70 window contains it."""
    torch.manual_seed(0)
    d = PatchDiscriminator(base_channels=4, norm="none").double()
    x = torch.randn(1, 3, 96, 96, dtype=torch.float64)
    x2 = x.clone()
    x2[0, :, 50, 50] += 10
    with torch.no_grad():
        diff = (d(x) - d(x2)).abs()[0, 0]
    rows = diff.abs().amax(1).nonzero().flatten()
    # logit i sees input rows 8i - 23 .. 8i + 46: stride 8; the paddings of 1 add up to
    # 1*1 + 1*2 + 1*4 + 1*8 + 1*8 = 23 (padding times the stride before each conv)
    expected = [i for i in range(diff.shape[0]) if 8 * i - 23 <= 50 <= 8 * i + 46]
    assert rows.tolist() == expected


def test_pose_discriminator_takes_image_and_pose():
    d_p = PatchDiscriminator(in_channels=6, base_channels=8)
    img, pose = torch.randn(2, 3, 128, 64), torch.rand(2, 3, 128, 64)
    out = d_p(img, pose)
    assert out.shape == (2, 1, 14, 6)
    torch.testing.assert_close(out, d_p(torch.cat([img, pose], 1)))


# ---------------------------------------------------------------- pix2pix baseline


def test_pix2pix_unet_shapes_and_padding():
    torch.manual_seed(0)
    g = Pix2PixGenerator(base_channels=4, num_downs=5).eval()
    for h, w in [(64, 32), (40, 20)]:  # 40x20 is not a multiple of 32: padded and cropped back
        y = g(torch.randn(1, 3, h, w), torch.rand(1, 3, h, w))
        assert y.shape == (1, 3, h, w) and y.abs().max() <= 1
    full = Pix2PixGenerator()  # pix2pix's unet_256: 8 downs, widths 64 .. 512, 3 dropout blocks
    convs = [next(m for m in d if isinstance(m, torch.nn.Conv2d)) for d in full.downs]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 512, 512, 512, 512]
    assert convs[0].in_channels == 6  # source image + pose map
    assert sum(isinstance(m, torch.nn.Dropout) for m in full.modules()) == 3


# ---------------------------------------------------------------- shared model checks (tests/_model_mixin.py)


def _rand(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


class TestMultiViewGenerator(ModelTesterMixin):
    model_class = MultiViewGenerator
    init_kwargs = dict(TINY, max_sources=3)
    output_shape = (3, 16, 8)
    bad_kwargs = {"max_sources": 0}

    def inputs(self, batch, seed=0):
        return _rand((batch, 2, 3, 16, 8), seed), _rand((batch, 3, 16, 8), seed + 100)


class TestPatchDiscriminator(ModelTesterMixin):
    model_class = PatchDiscriminator
    init_kwargs = dict(in_channels=3, base_channels=8, n_layers=2)
    output_shape = (1, 6, 6)  # 32x32 in: two stride-2 4x4 convs (8x8), then two stride-1 4x4 convs (pad 1)
    bad_kwargs = {"n_layers": 0}

    def inputs(self, batch, seed=0):
        return (_rand((batch, 3, 32, 32), seed),)


class TestPix2PixGenerator(ModelTesterMixin):
    model_class = Pix2PixGenerator
    init_kwargs = dict(base_channels=8, num_downs=3, norm="instance")
    output_shape = (3, 16, 8)
    bad_kwargs = {"num_downs": 1}

    def inputs(self, batch, seed=0):
        return _rand((batch, 3, 16, 8), seed), _rand((batch, 3, 16, 8), seed + 100)
