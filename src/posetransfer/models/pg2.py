"""PG2 networks: the stage-I generator G1, the stage-II generator G2 and the pair discriminator D.

Paper: Ma et al., "Pose Guided Person Image Generation", NIPS 2017,
sections 3.1 (G1), 3.2 (G2 and D) and 3.3 (architecture). Where the paper is silent the layer
widths and wiring follow the authors' TensorFlow code, charliememory/Pose-Guided-Person-Image-
Generation: ``GeneratorCNN_Pose_UAEAfterResidual`` (G1, ``models.py`` / ``models256.py``),
``UAE_noFC_After2Noise`` (Market G2) and ``UAE_noFC_AfterNoise`` (DeepFashion G2) with
``noise_dim=0`` and ``activation_fn=tf.nn.relu`` as ``trainer.py`` calls them, and
``DCGANDiscriminator`` / ``DCGANDiscriminator_256`` (``wgan_gp_128x64.py``).

Where the official code differs from the paper's prose, the code was followed and the comment
says so. All constructor arguments are plain JSON values so that the trainer can save them as
the model's config. Losses are not here (see :mod:`posetransfer.losses`).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from posetransfer.models.validation import check_bool, check_choice, check_positive_ints
from posetransfer.models.blocks import (
    ConvReLU,
    SimpleResidualBlock,
    Upsample2x,
    check_divisible,
    conv3x3,
    init_xavier_,
)

__all__ = ["G1", "G2", "PairDiscriminator", "POSE_EMBEDDINGS"]

PoseEmbedding = Literal["concat", "ce", "hme"]
POSE_EMBEDDINGS: tuple[str, ...] = ("concat", "ce", "hme")


def _check_positive(**values: int) -> None:
    check_positive_ints(**values)  # ModelConfigError (a ValueError) naming the argument


def _check_image(x: torch.Tensor, channels: int, size: tuple[int, int] | None, name: str) -> None:
    """Reject inputs of the wrong rank/channels/size with a message naming the argument."""
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{name} must have shape (B, {channels}, H, W), got {tuple(x.shape)}")
    if size is not None and tuple(x.shape[-2:]) != size:
        raise ValueError(
            f"{name} must be {size[0]}x{size[1]} (the model's image_size; its bottleneck is sized "
            f"for it), got {x.shape[-2]}x{x.shape[-1]}"
        )


class ResidualEncoder(nn.Module):
    """G1's encoder: a 3x3 conv to ``base`` channels, then ``num_blocks`` residual blocks.

    Block ``i`` (0-based) works at ``base * (i + 1)`` channels ("the number of filters are
    increased linearly with each block", sec. 3.3) and is followed by a 3x3 stride-2 conv+ReLU
    to the next block's width ``base * (i + 2)``, except after the last block. Official code:
    ``channel_num = hidden_num * (idx + 1)`` ... ``slim.conv2d(x, hidden_num * (idx + 2), 3, 2)``.
    The output of every residual block is kept as a skip connection.
    """

    def __init__(self, in_channels: int, base_channels: int, num_blocks: int):
        super().__init__()
        self.widths = [base_channels * (i + 1) for i in range(num_blocks)]
        self.conv_in = ConvReLU(in_channels, base_channels)
        self.blocks = nn.ModuleList(SimpleResidualBlock(w) for w in self.widths)
        self.downs = nn.ModuleList(
            ConvReLU(self.widths[i], self.widths[i + 1], stride=2) for i in range(num_blocks - 1)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.conv_in(x)
        skips: list[torch.Tensor] = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            skips.append(x)
            if i < len(self.downs):
                x = self.downs[i](x)
        return x, skips


class G1(nn.Module):
    """PG2 stage-I generator: a U-Net-like residual autoencoder with a fully-connected bottleneck.

    ``forward(image, pose) -> image``: ``image`` is the condition image I_A ``(B, 3, H, W)`` in
    [-1, 1]; ``pose`` is the target pose P_B, whose form depends on ``pose_embedding``
    (:attr:`pose_input` names it for the trainer):

    - ``"concat"`` (PG2's G1, sec. 3.1): ``(B, pose_channels, H, W)`` heatmaps concatenated with
      the image at the input.
    - ``"ce"`` (coordinate embedding ablation, sec. 4.2): the ``(B, 2 * pose_channels)`` vector of
      normalised ``(y, x)`` coordinates (``pose.encodings.coordinate_vector``) through two FC
      layers (``pose_channels*2 -> z_dim``, ReLU, ``z_dim -> z_dim``), concatenated with the image
      embedding at the bottleneck FC. The paper gives no widths for these layers; ``z_dim`` is
      our choice so that the pose and image codes have equal size.
    - ``"hme"`` (heatmap embedding ablation, sec. 4.2): ``(B, pose_channels, H, W)`` heatmaps
      through an independent encoder of the same structure (conv, residual blocks, FC to
      ``z_dim``), whose FC feature is concatenated with the image embedding at the bottleneck.
      Only the image encoder feeds skip connections to the decoder.

    Architecture (official ``GeneratorCNN_Pose_UAEAfterResidual``, ReLU activation):

    - Encoder: :class:`ResidualEncoder` (block ``i`` has ``base*(i+1)`` channels); the smallest
      map is ``H / 2**(num_blocks-1)`` x ``W / 2**(num_blocks-1)`` (8x4 at 128x64 with N=5,
      8x8 at 256x256 with N=6).
    - Bottleneck: flatten -> FC to ``z_dim`` -> FC back to a ``base_channels``-wide map of the
      smallest size (official code: ``hidden_num`` channels, not the encoder's last width).
      Neither FC has an activation (sec. 3.3).
    - Decoder, level ``k = 0..N-1`` from the bottom: concatenate the encoder skip of that level,
      a simplified residual block at the concatenated width, then (except at the top) nearest x2
      upsampling and a **1x1** conv+ReLU to ``base*(N-1-k)`` channels. The 1x1 conv is what the
      official code does (``slim.conv2d(x, hidden_num*(repeat_num-idx-1), 1, 1)``) although the
      paper says all convs are 3x3. Note that the deepest skip is the encoder's last block output
      itself, so in the official design the FC is not a strict information bottleneck.
    - Output: a 3x3 conv to ``image_channels``, no activation.

    Weights are Xavier-uniform with zero biases (``slim`` defaults). No normalisation, no dropout.
    """

    def __init__(
        self,
        *,
        image_channels: int = 3,
        pose_channels: int = 18,
        base_channels: int = 128,
        num_blocks: int = 5,
        image_size: tuple[int, int] | list[int] = (128, 64),
        z_dim: int = 64,
        pose_embedding: PoseEmbedding = "concat",
    ):
        super().__init__()
        _check_positive(
            image_channels=image_channels,
            pose_channels=pose_channels,
            base_channels=base_channels,
            num_blocks=num_blocks,
            z_dim=z_dim,
        )
        check_choice("pose_embedding", pose_embedding, POSE_EMBEDDINGS)
        factor = 2 ** (num_blocks - 1)
        self.image_size = check_divisible(
            image_size, factor, f"G1 with num_blocks={num_blocks} halves it {num_blocks - 1} times"
        )
        self.image_channels = image_channels
        self.pose_channels = pose_channels
        self.pose_embedding = pose_embedding
        self.num_blocks = num_blocks
        self.base_channels = base_channels
        self.z_dim = z_dim
        self.bottom_size = (self.image_size[0] // factor, self.image_size[1] // factor)
        bottom_pixels = self.bottom_size[0] * self.bottom_size[1]

        encoder_in = image_channels + (pose_channels if pose_embedding == "concat" else 0)
        self.encoder = ResidualEncoder(encoder_in, base_channels, num_blocks)
        top_width = self.encoder.widths[-1]
        self.fc_encode = nn.Linear(top_width * bottom_pixels, z_dim)

        code_dim = z_dim
        if pose_embedding == "ce":
            self.pose_fc = nn.Sequential(
                nn.Linear(2 * pose_channels, z_dim), nn.ReLU(inplace=True), nn.Linear(z_dim, z_dim)
            )
            code_dim += z_dim
        elif pose_embedding == "hme":
            self.pose_encoder = ResidualEncoder(pose_channels, base_channels, num_blocks)
            self.pose_fc_encode = nn.Linear(top_width * bottom_pixels, z_dim)
            code_dim += z_dim
        self.fc_decode = nn.Linear(code_dim, base_channels * bottom_pixels)

        # Decoder: level k from the bottom concatenates the encoder skip of width base*(N-k)
        # with the incoming map (base channels at the bottom, base*(N-k) after each 1x1 conv).
        self.dec_blocks = nn.ModuleList()
        self.dec_ups = nn.ModuleList()
        incoming = base_channels
        for k in range(num_blocks):
            width = incoming + self.encoder.widths[num_blocks - 1 - k]
            self.dec_blocks.append(SimpleResidualBlock(width))
            if k < num_blocks - 1:
                incoming = base_channels * (num_blocks - 1 - k)
                self.dec_ups.append(nn.Sequential(Upsample2x(), ConvReLU(width, incoming, kernel_size=1)))
        self.conv_out = conv3x3(width, image_channels)
        init_xavier_(self)

    @property
    def pose_input(self) -> Literal["heatmaps", "coords"]:
        """What ``forward`` expects as ``pose``: the ``target_heatmaps`` or ``target_coords`` batch key."""
        return "coords" if self.pose_embedding == "ce" else "heatmaps"

    def forward(self, image: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        _check_image(image, self.image_channels, self.image_size, "G1 image")
        if self.pose_embedding == "ce":
            if pose.ndim != 2 or pose.shape[1] != 2 * self.pose_channels:
                raise ValueError(
                    f"G1 with pose_embedding='ce' takes pose coordinates of shape "
                    f"(B, {2 * self.pose_channels}), got {tuple(pose.shape)}"
                )
        else:
            _check_image(pose, self.pose_channels, self.image_size, "G1 pose heatmaps")

        x = torch.cat([image, pose], dim=1) if self.pose_embedding == "concat" else image
        x, skips = self.encoder(x)
        # flatten/reshape (not view): the map may be channels_last, i.e. not contiguous as NCHW.
        code = self.fc_encode(x.flatten(1))
        if self.pose_embedding == "ce":
            code = torch.cat([code, self.pose_fc(pose)], dim=1)
        elif self.pose_embedding == "hme":
            p, _ = self.pose_encoder(pose)
            code = torch.cat([code, self.pose_fc_encode(p.flatten(1))], dim=1)
        x = self.fc_decode(code).reshape(-1, self.base_channels, *self.bottom_size)
        if skips[-1].is_contiguous(memory_format=torch.channels_last):
            # keep the decoder in the encoder's memory format (reshape produced NCHW-contiguous)
            x = x.contiguous(memory_format=torch.channels_last)

        for k, block in enumerate(self.dec_blocks):
            x = block(torch.cat([x, skips[-1 - k]], dim=1))
            if k < len(self.dec_ups):
                x = self.dec_ups[k](x)
        return self.conv_out(x)


class G2(nn.Module):
    """PG2 stage-II generator: a fully-convolutional U-Net that predicts a difference map.

    ``forward(image, stage1) -> (refined, difference)`` with ``refined = stage1 + difference``
    (sec. 3.2: "G2 ... aims to generate an appearance difference map"; official ``G2 = G1 +
    DiffMap``). The input is the channel concatenation of the stage-I result and the condition
    image, in the official order ``concat([out1, x])``.

    Architecture (official ``UAE_noFC_After2Noise`` / ``UAE_noFC_AfterNoise``, ``noise_dim=0``),
    ``num_blocks`` = N-2 of G1 (3 at 128x64, 4 at 256x256):

    - 3x3 conv+ReLU to ``base`` channels; block ``i`` = two 3x3 conv+ReLU to ``base*(i+1)``
      channels. Unlike G1 the official G2 blocks have **no residual add**, and its stride-2
      conv keeps the block's width (``slim.conv2d(x, channel_num, 3, 2)``).
    - Decoder, level ``k`` from the bottom: concatenate the encoder output of that level, two
      3x3 conv+ReLU at a constant ``base`` width, then nearest x2 upsampling (not at the top).
      The bottom level concatenates the last encoder output with itself (the decoder input *is*
      that output); we keep this to match the official widths.
    - ``top_skip``: the official Market model (``UAE_noFC_After2Noise``) has no skip at full
      resolution; the DeepFashion model (``UAE_noFC_AfterNoise``) has one. ``True`` (default,
      matching the paper's figure) keeps it; set ``False`` to reproduce the Market code.
    - Output 3x3 conv to ``image_channels``, no activation. Xavier weights, no normalisation.
    """

    def __init__(
        self,
        *,
        image_channels: int = 3,
        base_channels: int = 128,
        num_blocks: int = 3,
        image_size: tuple[int, int] | list[int] = (128, 64),
        top_skip: bool = True,
    ):
        super().__init__()
        _check_positive(image_channels=image_channels, base_channels=base_channels, num_blocks=num_blocks)
        check_bool("top_skip", top_skip)
        factor = 2 ** (num_blocks - 1)
        # G2 is fully convolutional; image_size is validated so that the U-Net levels align.
        self.image_size = check_divisible(
            image_size, factor, f"G2 with num_blocks={num_blocks} halves it {num_blocks - 1} times"
        )
        self.image_channels = image_channels
        self.num_blocks = num_blocks
        self.top_skip = top_skip
        widths = [base_channels * (i + 1) for i in range(num_blocks)]
        self.skip_levels = set(range(0 if top_skip else 1, num_blocks))

        self.conv_in = ConvReLU(2 * image_channels, base_channels)
        self.enc_blocks = nn.ModuleList()
        self.downs = nn.ModuleList()
        previous = base_channels
        for i, width in enumerate(widths):
            self.enc_blocks.append(nn.Sequential(ConvReLU(previous, width), ConvReLU(width, width)))
            if i < num_blocks - 1:
                self.downs.append(ConvReLU(width, width, stride=2))
            previous = width

        self.dec_blocks = nn.ModuleList()
        incoming = widths[-1]
        for k in range(num_blocks):
            level = num_blocks - 1 - k
            width = incoming + (widths[level] if level in self.skip_levels else 0)
            self.dec_blocks.append(
                nn.Sequential(ConvReLU(width, base_channels), ConvReLU(base_channels, base_channels))
            )
            incoming = base_channels
        self.upsample = Upsample2x()
        self.conv_out = conv3x3(base_channels, image_channels)
        init_xavier_(self)

    def forward(self, image: torch.Tensor, stage1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_image(image, self.image_channels, None, "G2 image")
        _check_image(stage1, self.image_channels, None, "G2 stage1")
        if image.shape != stage1.shape:
            raise ValueError(
                f"G2 image {tuple(image.shape)} and stage1 {tuple(stage1.shape)} differ in shape"
            )
        factor = 2 ** (self.num_blocks - 1)
        if image.shape[-2] % factor or image.shape[-1] % factor:
            raise ValueError(
                f"G2 input {image.shape[-2]}x{image.shape[-1]} is not divisible by {factor}"
            )

        x = self.conv_in(torch.cat([stage1, image], dim=1))
        skips: list[torch.Tensor] = []
        for i, block in enumerate(self.enc_blocks):
            x = block(x)
            skips.append(x)
            if i < len(self.downs):
                x = self.downs[i](x)
        for k, block in enumerate(self.dec_blocks):
            level = self.num_blocks - 1 - k
            if level in self.skip_levels:
                x = torch.cat([x, skips[level]], dim=1)
            x = block(x)
            if level > 0:
                x = self.upsample(x)
        difference = self.conv_out(x)
        return stage1 + difference, difference


class PairDiscriminator(nn.Module):
    """PG2's discriminator D: a DCGAN discriminator on (condition image, image) pairs.

    ``forward(condition, image) -> logits (B,)``: D sees the channel concatenation of I_A and
    either the real target I_B or the generated Î_B2 (sec. 3.2, "we pair the G2 output with the
    condition image"); it returns raw logits for BCE-with-logits (eqs. 2-3).

    Architecture (official ``DCGANDiscriminator`` at 128x64 / ``DCGANDiscriminator_256``):
    ``num_layers`` stride-2 **5x5** convs (the official tflib code uses 5x5, not DCGAN-paper's
    4x4) with widths ``base * min(2**i, 8)`` (64, 128, 256, 512[, 512]), LeakyReLU(0.2), BatchNorm
    on every layer but the first, then a linear layer from the flattened map to one logit.
    "Adapting the input to the resolution" (sec. 3.3) is done as the official code does: 4 layers
    at 128x64 (8x4 map), 5 at 256x256 (8x8). Weights N(0, 0.02), as ``set_weights_stdev(0.02)``.

    Deviation: the official trainers feed D single images (``input_dim=3``; the condition image
    I_A is used as an extra negative) rather than the pairs the paper describes. We follow the
    paper; ``in_channels`` must equal the two inputs' channels together.
    """

    def __init__(
        self,
        *,
        in_channels: int = 6,
        base_channels: int = 64,
        image_size: tuple[int, int] | list[int] = (128, 64),
        num_layers: int = 4,
    ):
        super().__init__()
        _check_positive(in_channels=in_channels, base_channels=base_channels, num_layers=num_layers)
        factor = 2**num_layers
        self.image_size = check_divisible(
            image_size, factor, f"PairDiscriminator with num_layers={num_layers} halves it {num_layers} times"
        )
        self.in_channels = in_channels
        layers: list[nn.Module] = []
        previous = in_channels
        for i in range(num_layers):
            width = base_channels * min(2**i, 8)
            layers.append(nn.Conv2d(previous, width, kernel_size=5, stride=2, padding=2))
            if i > 0:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            previous = width
        self.features = nn.Sequential(*layers)
        bottom = (self.image_size[0] // factor) * (self.image_size[1] // factor)
        self.classifier = nn.Linear(previous * bottom, 1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        x = torch.cat([condition, image], dim=1)
        _check_image(x, self.in_channels, self.image_size, "PairDiscriminator (condition, image) pair")
        return self.classifier(self.features(x).flatten(1))[:, 0]
