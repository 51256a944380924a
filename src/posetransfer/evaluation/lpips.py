"""LPIPS (Zhang et al. 2018), AlexNet backbone, v0.1 linear heads: the variant GFLA, NTED and PIDM
report on DeepFashion.

The ``lpips`` package imports torchvision (not installable next to this project's torch), so its
network is written here with the *same state-dict keys*: the AlexNet ``features`` of torchvision
(``features.0.weight`` ... ``features.10.bias``, loaded from torchvision's ``alexnet-owt-7be5be79.pth``)
and the five 1x1 heads ``lin0.model.1.weight`` ... ``lin4.model.1.weight`` of lpips' ``v0.1/alex.pth``.

The computation is lpips' ``LPIPS(net="alex", version="0.1").forward(x, y)`` with inputs in [-1, 1]:
the scaling layer ``(x - shift) / scale`` with lpips' ImageNet constants, the five ReLU outputs of
AlexNet (relu1 ... relu5), each unit-normalised over channels (``x / (||x|| + 1e-10)``), squared
differences weighted by the 1x1 heads, averaged over space and summed over layers.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from posetransfer.utils.weights import WeightsError, load_state_dict

# lpips' ScalingLayer constants (lpips/pretrained_networks + lpips/lpips.py).
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
CHANNELS = (64, 192, 384, 256, 256)


def alexnet_features() -> nn.Sequential:
    """torchvision's ``alexnet().features`` (same layer indices, hence the same keys)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


class NetLinLayer(nn.Module):
    """lpips' ``NetLinLayer``: dropout (inactive in eval) then a 1x1 conv without bias to one channel."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


# lpips' alexnet slices: relu1 = features[0:2], relu2 = [2:5], relu3 = [5:8], relu4 = [8:10], relu5 = [10:12].
_SLICE_ENDS = (2, 5, 8, 10, 12)


class LPIPSAlex(nn.Module):
    """``forward(x, y)``: images ``(N, 3, H, W)`` in [-1, 1] -> LPIPS distance per image ``(N,)``."""

    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.features = alexnet_features()
        for i, c in enumerate(CHANNELS):
            setattr(self, f"lin{i}", NetLinLayer(c))

    def _layers(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs, start = [], 0
        for end in _SLICE_ENDS:
            for layer in self.features[start:end]:
                x = layer(x)
            outs.append(x)
            start = end
        return outs

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx = self._layers((x - self.shift) / self.scale)
        fy = self._layers((y - self.shift) / self.scale)
        total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for i, (a, b) in enumerate(zip(fx, fy)):
            a = a / (a.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            total = total + getattr(self, f"lin{i}")((a - b) ** 2).mean(dim=(1, 2, 3))
        return total


def load_lpips_alex(
    alexnet_path: str | None = None, lpips_path: str | None = None, *, download: bool = True
) -> LPIPSAlex:
    """LPIPS-Alex with torchvision's AlexNet and lpips' v0.1 heads (resolved by :mod:`.weights`)."""
    model = LPIPSAlex()
    alex = load_state_dict("alexnet", alexnet_path, download=download)
    feats = {k[len("features."):]: v for k, v in alex.items() if k.startswith("features.")}
    heads = load_state_dict("lpips_alex", lpips_path, download=download)
    try:
        model.features.load_state_dict(feats, strict=True)
        model.load_state_dict({k: v for k, v in heads.items() if k.startswith("lin")}, strict=False)
    except RuntimeError as err:
        raise WeightsError(f"the LPIPS / AlexNet weights do not match the network: {err}") from None
    missing = [f"lin{i}.model.1.weight" for i in range(len(CHANNELS)) if f"lin{i}.model.1.weight" not in heads]
    if missing:
        raise WeightsError(f"the LPIPS weights lack {missing}")
    return model.eval().requires_grad_(False)


@torch.no_grad()
def lpips_distances(
    model: LPIPSAlex, generated: np.ndarray, target: np.ndarray, *, batch_size: int = 32
) -> np.ndarray:
    """LPIPS per pair of uint8 ``(N, H, W, 3)`` images (scaled to [-1, 1] as lpips' ``im2tensor``)."""
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(generated), batch_size):
        g = torch.from_numpy(np.ascontiguousarray(generated[i : i + batch_size])).to(device)
        t = torch.from_numpy(np.ascontiguousarray(target[i : i + batch_size])).to(device)
        g = g.permute(0, 3, 1, 2).float() / 127.5 - 1
        t = t.permute(0, 3, 1, 2).float() / 127.5 - 1
        out.append(model(g, t).double().cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)
