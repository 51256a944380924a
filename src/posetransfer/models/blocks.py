"""Small convolutional building blocks shared by the generators.

PG2 (paper sec. 3.3) builds both generators from 3x3 convolutions followed by ReLU, with no
normalisation and no dropout; its residual block is "simplified" to two consecutive conv-ReLU
layers whose output is added to the block input (sec. 3.1, "Generator G1"). The official
TensorFlow code (charliememory/Pose-Guided-Person-Image-Generation, ``models.py``) uses
``slim.conv2d`` with SAME padding, Xavier (Glorot-uniform) weights and zero biases; the helpers
here reproduce that.

Everything here is layout-agnostic (works on ``channels_last`` tensors) and autocast-safe: no
``.view`` on possibly non-contiguous tensors, and no dtype-specific code.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from posetransfer.errors import ModelConfigError
from posetransfer.models.validation import check_image_size

__all__ = [
    "ConvReLU",
    "SimpleResidualBlock",
    "Upsample2x",
    "conv3x3",
    "check_divisible",
    "init_xavier_",
]


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """A 3x3 convolution with "same" padding (output size = input size / stride for even sizes)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1)


class ConvReLU(nn.Sequential):
    """``conv(kernel_size, stride) -> ReLU``: the basic layer of the PG2 generators."""

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int = 3, stride: int = 1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2),
            nn.ReLU(inplace=True),
        )


class SimpleResidualBlock(nn.Module):
    """PG2's simplified residual block: ``x + relu(conv(relu(conv(x))))`` at a constant width.

    The paper (sec. 3.1) keeps "only two consecutive conv-relu inside a residual block"; the
    official code adds the block input after the second ReLU and applies no activation after
    the addition (``x = conv(x); x = conv(x); x = x + res``), which is what this does.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = ConvReLU(channels, channels)
        self.conv2 = ConvReLU(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


class Upsample2x(nn.Module):
    """Nearest-neighbour x2 upsampling (the official code's ``tf.image.resize_nearest_neighbor``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="nearest")


def check_divisible(image_size: tuple[int, int] | list[int], factor: int, what: str) -> tuple[int, int]:
    """Validate an ``(height, width)`` pair and that both sides are divisible by ``factor``.

    Networks with a fully-connected bottleneck (or a linear classifier) need the exact size of
    the smallest feature map at construction time; a size that does not halve cleanly would
    silently produce a map of another size, so it is rejected here with a clear message.

    Returns the size as a tuple of two ints.
    """
    height, width = check_image_size(image_size)
    if height % factor or width % factor:
        raise ModelConfigError(
            f"image_size {height}x{width} is not divisible by {factor} ({what}); "
            f"choose a size whose height and width are multiples of {factor} or change the depth"
        )
    return height, width


def init_xavier_(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every conv and linear layer (``slim`` defaults)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
