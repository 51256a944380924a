"""Networks of the multi-image pose-transfer model (the "multi-view paper": one generator with a
bidirectional ConvLSTM image encoder, discriminators D_I and D_P).

The paper's generator ``G`` has three parts (its section 3.1, Fig. 2):

* ``E_I`` (:class:`ImageEncoder` + :class:`BiConvLSTM`): a ResNet feature extractor applied to each
  photo of one identity, then a *bidirectional* convolutional LSTM over the 1 to 5 photos, giving
  the appearance code ``C_I`` (section 3.1.1).
* ``E_P`` (:class:`PoseEncoder`): a U-Net encoder on the RGB stick-figure pose map, "two 3x3
  convolutions, each followed by a ReLU, and 2x2 max pooling", channels doubling, keeping every
  level for the skip connections, giving ``C_P`` (section 3.1.2).
* the decoder (inside :class:`MultiViewGenerator`): ``C_I`` and ``C_P`` are concatenated, then a
  U-Net decoder with the ``E_P`` skips: "upsample ... 2x2 up-convolution [halving the channels] ...
  3x3 convolution and ReLU" (section 3.1.3).

Section 4.2 adds that encoder and decoder "follow the network architecture as presented in [38]"
(the CycleGAN/Johnson ResNet generator): "two stride-2 convolution layers and several residual
blocks, and two fractionally-strided convolutions with stride 1/2. Each layer of the image encoder
only contains convolutional residual blocks. For DeepFashion, we use 6 residual blocks." We read
this as: ``E_I`` = 7x7 stem, two stride-2 3x3 convolutions (64 -> 128 -> 256 channels) and 6
residual blocks at 256 channels; the decoder's two up-sampling steps are Johnson's 3x3
fractionally-strided (transposed) convolutions; instance normalisation as in [38].

What the paper leaves open and we had to choose (all are constructor arguments):

* ConvLSTM kernel 3x3 and hidden width = the ``E_I`` feature width (256); gates from one
  convolution over ``concat(x, h)`` (Shi et al. 2015 [32] without peepholes); zero initial state.
* ``C_I`` = 1x1 convolution over the concatenated *final* hidden states of the two directions
  (the forward pass ends on the last photo, the backward pass on the first one).
* ``C_I``/``C_P`` fusion = concatenation then a 3x3 conv + norm + ReLU back to 256 channels,
  followed by ``fusion_blocks`` residual blocks (0 by default: the paper puts its residual blocks
  in ``E_I``).
* ``E_P`` uses ``same`` padding (the original U-Net's valid convolutions would shrink the map)
  and no normalisation (U-Net [23] has none); the decoder uses the generator's norm.
* Weight init N(0, 0.02) as in pix2pix [11] / CycleGAN [38] for the layers followed by a norm;
  PyTorch's default for ``E_P`` and the ConvLSTM (no norm there); LSTM forget-gate bias 1.

The discriminators ``D_I`` and ``D_P`` are both :class:`PatchDiscriminator` (pix2pix's 70x70
PatchGAN, section 4.2): ``D_I`` on images (3 channels), ``D_P`` on an image concatenated with a pose
map (3 + 3 channels). :class:`Pix2PixGenerator` is the pix2pix U-Net baseline of Table 1.

Every network takes keyword constructor arguments only (JSON-serialisable); checkpoints save the
complete set (``training.config.complete_kwargs``) in ``model.json`` beside the weights.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from posetransfer.errors import ModelConfigError
from posetransfer.models.validation import check_int, check_number, check_positive_ints

__all__ = [
    "BiConvLSTM",
    "ConvLSTM",
    "ConvLSTMCell",
    "ImageEncoder",
    "MultiViewGenerator",
    "PatchDiscriminator",
    "Pix2PixGenerator",
    "PoseEncoder",
    "ResidualBlock",
    "receptive_field",
]

NormName = Literal["instance", "batch", "none"]
_NORMS = ("instance", "batch", "none")


def _check_norm(norm: str) -> None:
    if not isinstance(norm, str) or norm not in _NORMS:
        raise ModelConfigError(f"unknown norm {norm!r}; expected one of {', '.join(_NORMS)}")


def _norm(norm: str, channels: int) -> nn.Module:
    """Normalisation layer by name; instance norm without affine parameters, as CycleGAN [38]."""
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


def _conv_block(
    in_ch: int, out_ch: int, kernel: int, stride: int, norm: str, reflect_pad: int = 0
) -> nn.Sequential:
    """[reflection pad] conv, norm, ReLU: the c7s1-k / dk units of Johnson et al. and [38]."""
    layers: list[nn.Module] = []
    if reflect_pad:
        layers.append(nn.ReflectionPad2d(reflect_pad))
        padding = 0
    else:
        padding = kernel // 2
    layers += [
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=norm != "batch"),
        _norm(norm, out_ch),
        nn.ReLU(inplace=True),
    ]
    return nn.Sequential(*layers)


def _init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """pix2pix/CycleGAN initialisation: conv weights N(0, gain), batch-norm weights N(1, gain)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


def receptive_field(module: nn.Module) -> int:
    """Receptive field (pixels, one side) of a plain chain of convolutions, in module order.

    ``r_out = r_in + (k - 1) * j``, ``j_out = j_in * s`` (``j`` = the input-pixel stride between
    neighbouring outputs). Only valid for a purely sequential stack, which is what the PatchGAN is.
    """
    r, j = 1, 1
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            k, s, d = m.kernel_size[0], m.stride[0], m.dilation[0]
            r += (k - 1) * d * j
            j *= s
    return r


class ResidualBlock(nn.Module):
    """Johnson/CycleGAN residual block: two reflect-padded 3x3 convs with norm, identity skip."""

    def __init__(self, *, channels: int, norm: NormName = "instance"):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=norm != "batch"),
            _norm(norm, channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=norm != "batch"),
            _norm(norm, channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


# --------------------------------------------------------------------------------------------
# Convolutional LSTM (E_I's recurrence over the photos of one identity)
# --------------------------------------------------------------------------------------------


class ConvLSTMCell(nn.Module):
    """One step of a convolutional LSTM (Shi et al. 2015, the paper's [32]; no peepholes).

    One convolution over ``concat(x, h)`` gives ``4 * hidden_channels`` maps, split in this order
    into the input gate ``i``, forget gate ``f``, output gate ``o`` and candidate ``g``::

        i, f, o = sigmoid(.), sigmoid(.), sigmoid(.);  g = tanh(.)
        c' = f * c + i * g;   h' = o * tanh(c')

    The convolution's input channels are ``[x channels..., h channels...]``.
    """

    def __init__(
        self, *, in_channels: int, hidden_channels: int, kernel_size: int = 3, forget_bias: float = 1.0
    ):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ModelConfigError(f"ConvLSTM kernel_size must be odd (same padding), got {kernel_size}")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.gates = nn.Conv2d(
            in_channels + hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2
        )
        # A forget-gate bias of 1 (Jozefowicz et al. 2015) keeps the cell state flowing early on.
        with torch.no_grad():
            self.gates.bias.zero_()
            self.gates.bias[hidden_channels : 2 * hidden_channels].fill_(forget_bias)

    def initial_state(self, x: Tensor) -> tuple[Tensor, Tensor]:
        b, _, h, w = x.shape
        z = x.new_zeros(b, self.hidden_channels, h, w)
        return z, z

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """``x``: (B, C_in, H, W); ``state`` = (h, c), zeros when None. Returns the new (h, c)."""
        h, c = self.initial_state(x) if state is None else state
        i, f, o, g = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


def _check_lengths(lengths: Tensor | None, batch: int, steps: int) -> Tensor | None:
    if lengths is None:
        return None
    lengths = torch.as_tensor(lengths).reshape(-1)
    if lengths.numel() != batch:
        raise ValueError(f"lengths has {lengths.numel()} entries for a batch of {batch}")
    if bool((lengths < 1).any()) or bool((lengths > steps).any()):
        raise ValueError(f"every length must be in 1..{steps}, got {lengths.tolist()}")
    return lengths


def reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence of ``x`` (B, K, ...) over its first ``lengths[b]`` steps.

    The padding steps after ``lengths[b]`` stay where they are, so the function is its own inverse.
    ``lengths=None`` reverses all K steps.
    """
    if lengths is None:
        return x.flip(1)
    b, k = x.shape[:2]
    t = torch.arange(k, device=x.device).expand(b, k)
    lens = lengths.to(x.device).view(b, 1)
    idx = torch.where(t < lens, lens - 1 - t, t)
    idx = idx.view(b, k, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, idx)


class ConvLSTM(nn.Module):
    """A single-direction convolutional LSTM run over a sequence of feature maps.

    ``forward(x (B, K, C, H, W), lengths=None)`` returns ``(outputs (B, K, hidden, H, W), (h, c))``
    with ``(h, c)`` the state after the last *valid* step. ``lengths`` (B,) gives the number of valid
    steps per sample when sequences of different lengths are padded into one batch: past its length
    a sample's state is frozen and its outputs are zero.
    """

    def __init__(
        self, *, in_channels: int, hidden_channels: int, kernel_size: int = 3, forget_bias: float = 1.0
    ):
        super().__init__()
        self.cell = ConvLSTMCell(
            in_channels=in_channels,
            hidden_channels=hidden_channels,
            kernel_size=kernel_size,
            forget_bias=forget_bias,
        )

    def forward(
        self, x: Tensor, lengths: Tensor | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if x.dim() != 5:
            raise ValueError(f"ConvLSTM expects (B, K, C, H, W), got shape {tuple(x.shape)}")
        b, k = x.shape[:2]
        lengths = _check_lengths(lengths, b, k)
        state = self.cell.initial_state(x[:, 0])
        outputs = []
        for t in range(k):
            h, c = self.cell(x[:, t], state)
            if lengths is not None:
                valid = (lengths.to(x.device) > t).view(b, 1, 1, 1)
                h = torch.where(valid, h, state[0])
                c = torch.where(valid, c, state[1])
                outputs.append(h * valid.to(h.dtype))
            else:
                outputs.append(h)
            state = (h, c)
        return torch.stack(outputs, dim=1), state


class BiConvLSTM(nn.Module):
    """Bidirectional ConvLSTM (the paper's "bC-LSTM", section 3.1.1): two ConvLSTMs with their own
    weights, one over the photos in order, one over them reversed.

    ``forward(x (B, K, C, H, W), lengths=None)`` returns ``(outputs, (h_forward, h_backward))``:
    ``outputs[:, t]`` = ``concat(forward output at t, backward output at t)`` (B, K, 2*hidden, H, W),
    aligned to the photo index; ``h_forward`` is the forward state after the last photo and
    ``h_backward`` the backward state after the first photo (each direction's final hidden state).
    """

    def __init__(
        self, *, in_channels: int, hidden_channels: int, kernel_size: int = 3, forget_bias: float = 1.0
    ):
        super().__init__()
        kw = dict(
            in_channels=in_channels,
            hidden_channels=hidden_channels,
            kernel_size=kernel_size,
            forget_bias=forget_bias,
        )
        self.forward_lstm = ConvLSTM(**kw)
        self.backward_lstm = ConvLSTM(**kw)

    def forward(
        self, x: Tensor, lengths: Tensor | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if x.dim() != 5:
            raise ValueError(f"BiConvLSTM expects (B, K, C, H, W), got shape {tuple(x.shape)}")
        lengths = _check_lengths(lengths, x.shape[0], x.shape[1])
        out_f, (h_f, _) = self.forward_lstm(x, lengths)
        out_b, (h_b, _) = self.backward_lstm(reverse_padded(x, lengths), lengths)
        out_b = reverse_padded(out_b, lengths)
        return torch.cat([out_f, out_b], dim=2), (h_f, h_b)


# --------------------------------------------------------------------------------------------
# Encoders
# --------------------------------------------------------------------------------------------


class ImageEncoder(nn.Module):
    """Per-photo ResNet feature extractor of ``E_I`` (section 3.1.1 and 4.2): c7s1-``base``, then
    ``n_down`` stride-2 3x3 convs doubling the width, then ``n_res`` residual blocks.

    Input (N, 3, H, W) -> (N, base * 2**n_down, H / 2**n_down, W / 2**n_down).
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        base_channels: int = 64,
        n_down: int = 2,
        n_res: int = 6,
        norm: NormName = "instance",
    ):
        super().__init__()
        _check_norm(norm)
        layers: list[nn.Module] = [_conv_block(in_channels, base_channels, 7, 1, norm, reflect_pad=3)]
        ch = base_channels
        for _ in range(n_down):
            layers.append(_conv_block(ch, ch * 2, 3, 2, norm))
            ch *= 2
        layers += [ResidualBlock(channels=ch, norm=norm) for _ in range(n_res)]
        self.net = nn.Sequential(*layers)
        self.out_channels = ch

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class PoseEncoder(nn.Module):
    """``E_P``: U-Net encoder on the RGB stick-figure map (section 3.1.2).

    Level ``l`` (0..n_down) = two 3x3 conv + ReLU at ``base * 2**l`` channels; a 2x2 max pool goes
    between levels. Returns ``(C_P, skips)`` where ``skips[l]`` is level ``l``'s output at
    resolution ``H / 2**l`` (l < n_down) and ``C_P`` the deepest level at ``H / 2**n_down``.
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        base_channels: int = 64,
        n_down: int = 2,
        norm: NormName = "none",
    ):
        super().__init__()
        _check_norm(norm)
        self.levels = nn.ModuleList()
        ch_in = in_channels
        for level in range(n_down + 1):
            ch = base_channels * 2**level
            self.levels.append(
                nn.Sequential(_conv_block(ch_in, ch, 3, 1, norm), _conv_block(ch, ch, 3, 1, norm))
            )
            ch_in = ch
        self.out_channels = ch_in
        self.skip_channels = [base_channels * 2**level for level in range(n_down)]

    def forward(self, pose_map: Tensor) -> tuple[Tensor, list[Tensor]]:
        skips: list[Tensor] = []
        x = pose_map
        for i, level in enumerate(self.levels):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = level(x)
            skips.append(x)
        return skips[-1], skips[:-1]


# --------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------


class MultiViewGenerator(nn.Module):
    """The paper's generator ``G(x, p)``: ``E_I`` + bidirectional ConvLSTM, ``E_P``, U-Net decoder.

    ``forward(source_images (B, K, 3, H, W), target_pose_map (B, 3, H, W), num_sources=None)``
    returns the generated image (B, 3, H, W) in [-1, 1] (tanh). K is 1 to ``max_sources``; the
    photos' order matters (it is a recurrence). ``num_sources`` (B,) lets a batch mix identities
    with different numbers of photos: sample ``b`` uses its first ``num_sources[b]`` photos and
    the rest is padding (still run through the per-photo ResNet, so with ``norm="batch"`` it
    enters the batch statistics; the default instance norm is per photo and unaffected).
    Source images are in [-1, 1]; the pose map is the stick figure of
    ``pose.encodings.stick_figure`` (any fixed range works, it is learnt).
    H and W must be multiples of ``2**n_down``.

    Defaults are the paper's DeepFashion values (section 4.2): base 64, two stride-2 convs,
    6 residual blocks at 256 channels.
    """

    def __init__(
        self,
        *,
        image_channels: int = 3,
        pose_channels: int = 3,
        base_channels: int = 64,
        n_down: int = 2,
        n_res: int = 6,
        pose_base_channels: int = 64,
        lstm_hidden_channels: int | None = None,
        lstm_kernel_size: int = 3,
        fusion_blocks: int = 0,
        norm: NormName = "instance",
        pose_norm: NormName = "none",
        max_sources: int = 5,
        init_gain: float = 0.02,
    ):
        super().__init__()
        _check_norm(norm)
        _check_norm(pose_norm)
        check_positive_ints(image_channels=image_channels, pose_channels=pose_channels, base_channels=base_channels,
                            n_down=n_down, pose_base_channels=pose_base_channels, lstm_kernel_size=lstm_kernel_size,
                            max_sources=max_sources)  # fmt: skip
        check_int("n_res", n_res, 0)
        check_int("fusion_blocks", fusion_blocks, 0)
        if lstm_hidden_channels is not None:
            check_int("lstm_hidden_channels", lstm_hidden_channels, 1)
        check_number("init_gain", init_gain, 0.0)
        if n_down < 1:
            raise ModelConfigError(f"n_down must be at least 1, got {n_down}")
        if max_sources < 1:
            raise ModelConfigError(f"max_sources must be at least 1, got {max_sources}")
        self.n_down = n_down
        self.max_sources = max_sources

        # E_I: per-photo ResNet features, then the bidirectional ConvLSTM over the photos.
        self.image_encoder = ImageEncoder(
            in_channels=image_channels, base_channels=base_channels, n_down=n_down, n_res=n_res, norm=norm
        )
        feat = self.image_encoder.out_channels
        hidden = lstm_hidden_channels or feat
        self.lstm = BiConvLSTM(in_channels=feat, hidden_channels=hidden, kernel_size=lstm_kernel_size)
        # C_I = 1x1 conv over concat(final forward h, final backward h).
        self.appearance = nn.Conv2d(2 * hidden, feat, 1)

        # E_P: U-Net encoder on the stick figure.
        self.pose_encoder = PoseEncoder(
            in_channels=pose_channels, base_channels=pose_base_channels, n_down=n_down, norm=pose_norm
        )

        # Fusion of C_I and C_P (section 3.1.3: "concatenated in the intermediate stage").
        fuse: list[nn.Module] = [_conv_block(feat + self.pose_encoder.out_channels, feat, 3, 1, norm)]
        fuse += [ResidualBlock(channels=feat, norm=norm) for _ in range(fusion_blocks)]
        self.fusion = nn.Sequential(*fuse)

        # U-Net decoder: per level, a fractionally-strided conv halving the width (Johnson/[38]),
        # concatenation with the E_P skip of that resolution, then 3x3 conv + norm + ReLU.
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        ch = feat
        for level in reversed(range(n_down)):
            out = ch // 2
            self.up.append(
                nn.Sequential(
                    nn.ConvTranspose2d(ch, out, 3, stride=2, padding=1, output_padding=1, bias=norm != "batch"),
                    _norm(norm, out),
                    nn.ReLU(inplace=True),
                )
            )
            self.merge.append(_conv_block(out + self.pose_encoder.skip_channels[level], out, 3, 1, norm))
            ch = out
        self.to_image = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ch, image_channels, 7), nn.Tanh())
        # pix2pix/CycleGAN's N(0, init_gain) init for the Johnson-style parts, whose convolutions
        # are all followed by a norm. E_P (U-Net, no norm) and the ConvLSTM keep PyTorch's
        # Kaiming-uniform default: with N(0, 0.02) and no norm, the signal through E_P's six
        # convolutions shrinks by ~0.1 per layer and its gradient vanishes.
        for part in (self.image_encoder, self.fusion, self.up, self.merge, self.to_image):
            _init_weights(part, init_gain)

    def encode_appearance(self, source_images: Tensor, num_sources: Tensor | None = None) -> Tensor:
        """``E_I``: (B, K, 3, H, W) photos -> ``C_I`` (B, feat, H / 2**n_down, W / 2**n_down)."""
        b, k = source_images.shape[:2]
        feats = self.image_encoder(source_images.flatten(0, 1))
        feats = feats.view(b, k, *feats.shape[1:])
        _, (h_f, h_b) = self.lstm(feats, num_sources)
        return self.appearance(torch.cat([h_f, h_b], dim=1))

    def forward(
        self, source_images: Tensor, target_pose_map: Tensor, num_sources: Tensor | None = None
    ) -> Tensor:
        if source_images.dim() != 5:
            raise ValueError(
                f"source_images must be (B, K, C, H, W), got shape {tuple(source_images.shape)}"
            )
        b, k, _, h, w = source_images.shape
        if not 1 <= k <= self.max_sources:
            raise ValueError(f"the generator takes 1 to {self.max_sources} source images, got {k}")
        if target_pose_map.shape[0] != b or target_pose_map.shape[-2:] != (h, w):
            raise ValueError(
                f"target_pose_map shape {tuple(target_pose_map.shape)} does not match source images "
                f"{tuple(source_images.shape)}"
            )
        m = 2**self.n_down
        if h % m or w % m:
            raise ModelConfigError(
                f"image size {h}x{w} (height x width) is not a multiple of {m}: the generator "
                f"downsamples {self.n_down} times; crop or resize the data, or change n_down"
            )
        c_i = self.encode_appearance(source_images, num_sources)
        c_p, skips = self.pose_encoder(target_pose_map)
        x = self.fusion(torch.cat([c_i, c_p], dim=1))
        for up, merge, skip in zip(self.up, self.merge, reversed(skips)):
            x = merge(torch.cat([up(x), skip], dim=1))
        return self.to_image(x)


# --------------------------------------------------------------------------------------------
# Discriminators D_I, D_P
# --------------------------------------------------------------------------------------------


class PatchDiscriminator(nn.Module):
    """pix2pix's PatchGAN ``NLayerDiscriminator`` [11]: 4x4 convs, LeakyReLU 0.2, one logit per patch.

    With ``n_layers=3`` each output logit sees a 70x70 input patch (section 4.2: "The discriminator
    uses 70x70 patch and averages all scores"; the averaging happens in the loss, which takes the
    mean over the logit map). ``D_I`` = ``PatchDiscriminator(in_channels=3)``; ``D_P`` =
    ``PatchDiscriminator(in_channels=6)`` on ``concat(image, pose map)``. Returns raw logits
    (B, 1, h, w); the loss applies the sigmoid.

    Norm: pix2pix defaults to batch norm and CycleGAN [38] to instance norm; with the paper's batch
    of one target image the two agree during training, and instance norm also agrees at eval time,
    so it is our default.
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        base_channels: int = 64,
        n_layers: int = 3,
        norm: NormName = "instance",
        init_gain: float = 0.02,
    ):
        super().__init__()
        _check_norm(norm)
        if n_layers < 1:
            raise ModelConfigError(f"n_layers must be at least 1, got {n_layers}")
        bias = norm != "batch"
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, base_channels, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(base_channels * prev, base_channels * mult, 4, stride=stride, padding=1, bias=bias),
                _norm(norm, base_channels * mult),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(nn.Conv2d(base_channels * mult, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)
        _init_weights(self, init_gain)

    def receptive_field(self) -> int:
        """Side of the input patch one output logit sees (70 for ``n_layers=3``)."""
        return receptive_field(self.net)

    def forward(self, x: Tensor, condition: Tensor | None = None) -> Tensor:
        """``x`` (B, C, H, W); ``condition`` (e.g. ``D_P``'s pose map) is concatenated on channels."""
        if condition is not None:
            x = torch.cat([x, condition], dim=1)
        return self.net(x)


# --------------------------------------------------------------------------------------------
# pix2pix baseline (Table 1)
# --------------------------------------------------------------------------------------------


class Pix2PixGenerator(nn.Module):
    """pix2pix's U-Net generator [11] (``UnetGenerator``), the "pix2pix" row of Table 1.

    Input: ``concat(source image, target pose map)``; output in [-1, 1]. ``num_downs`` 4x4 stride-2
    convolutions (LeakyReLU 0.2 before each but the first, norm on all but the first and innermost),
    widths ``base * min(2**i, 8)``; a mirrored decoder of 4x4 transposed convolutions (ReLU before,
    norm after, tanh at the end) with skips, dropout 0.5 in the inner 8x-wide decoder blocks when
    ``dropout`` is on. pix2pix uses ``num_downs=8`` for 256x256.

    Sizes: an input whose sides are not multiples of ``2**num_downs`` (DeepFashion's 256x176,
    Market's 128x64 with 8 downs) is zero-padded around to the next multiple and the output is
    cropped back, so any size works.

    ``test_mode`` is what ``eval()`` means. ``"pix2pix"`` (default): as pix2pix's released
    ``test.py``, which calls ``model.eval()`` only under ``--eval`` (off by default) and forces
    ``batch_size = 1``: each image is generated alone with batch norm on its own statistics and
    dropout on (the paper, "Image-to-Image Translation with Conditional Adversarial Networks",
    section 3.1, keeps dropout at test time as its noise), running statistics untouched.
    ``"eval"``: PyTorch's usual eval mode (running statistics, no dropout).
    """

    def __init__(
        self,
        *,
        image_channels: int = 3,
        pose_channels: int = 3,
        base_channels: int = 64,
        num_downs: int = 8,
        norm: NormName = "batch",
        dropout: bool = True,
        init_gain: float = 0.02,
        test_mode: str = "pix2pix",
    ):
        super().__init__()
        _check_norm(norm)
        if num_downs < 2:
            raise ModelConfigError(f"num_downs must be at least 2, got {num_downs}")
        if test_mode not in ("pix2pix", "eval"):
            raise ModelConfigError(f"test_mode must be 'pix2pix' or 'eval', got {test_mode!r}")
        self.num_downs = num_downs
        self.test_mode = test_mode
        bias = norm != "batch"
        ch = [base_channels * min(2**i, 8) for i in range(num_downs)]
        self.downs = nn.ModuleList()
        for i in range(num_downs):
            c_in = image_channels + pose_channels if i == 0 else ch[i - 1]
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2, inplace=False)]
            layers.append(nn.Conv2d(c_in, ch[i], 4, stride=2, padding=1, bias=bias))
            if 0 < i < num_downs - 1:
                layers.append(_norm(norm, ch[i]))
            self.downs.append(nn.Sequential(*layers))
        self.ups = nn.ModuleList()
        for i in range(num_downs):
            c_in = ch[i] if i == num_downs - 1 else 2 * ch[i]
            c_out = image_channels if i == 0 else ch[i - 1]
            layers = [
                nn.ReLU(inplace=False),
                nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=bias or i == 0),
            ]
            if i == 0:
                layers.append(nn.Tanh())
            else:
                layers.append(_norm(norm, c_out))
                if dropout and 4 <= i <= num_downs - 2:
                    layers.append(nn.Dropout(0.5))
            self.ups.append(nn.Sequential(*layers))
        _init_weights(self, init_gain)

    def forward(self, source_image: Tensor, target_pose_map: Tensor) -> Tensor:
        if not self.training and self.test_mode == "pix2pix":
            return self._pix2pix_test(source_image, target_pose_map)
        return self._unet(source_image, target_pose_map)

    def _pix2pix_test(self, source_image: Tensor, target_pose_map: Tensor) -> Tensor:
        """pix2pix's test time: one image at a time, batch norm and dropout in training mode."""
        layers = [m for m in self.modules() if isinstance(m, (nn.BatchNorm2d, nn.Dropout))]
        saved = [
            (m, m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None)
            for m in layers if isinstance(m, nn.BatchNorm2d)
        ]  # fmt: skip
        try:
            for m in layers:
                m.training = True
                if isinstance(m, nn.BatchNorm2d):
                    m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch: left as it is
            out = [self._unet(source_image[i : i + 1], target_pose_map[i : i + 1]) for i in range(source_image.shape[0])]
        finally:
            for m in layers:
                m.training = False
            for m, momentum, tracked in saved:
                m.momentum = momentum
                if tracked is not None:
                    m.num_batches_tracked.copy_(tracked)
        return torch.cat(out)

    def _unet(self, source_image: Tensor, target_pose_map: Tensor) -> Tensor:
        x = torch.cat([source_image, target_pose_map], dim=1)
        h, w = x.shape[-2:]
        m = 2**self.num_downs
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        feats = []
        for down in self.downs:
            x = down(x)
            feats.append(x)
        u = self.ups[-1](feats[-1])
        for i in range(self.num_downs - 2, -1, -1):
            u = self.ups[i](torch.cat([feats[i], u], dim=1))
        return u[..., ph // 2 : ph // 2 + h, pw // 2 : pw // 2 + w]
