"""VGG19 perceptual loss: the second term of the multiview paper's reconstruction loss (eq. 1).

    L_G = ||y - G(x, p)||_1 + sum_k lambda_k ||Phi_k(y) - Phi_k(G(x, p))||_1        (eq. 1)

"Phi_k(.) denotes the feature maps of an image at k-th layer of a visual perception network. We
use VGG19 [25] network which is trained on ImageNet dataset. lambda_k is a hyperparameter which
represents the importance of k-th layer" (section 3.3). The paper names neither the layers nor the
weights; our defaults are pix2pixHD's ``VGGLoss`` (Wang et al. 2018), the usual choice for this
loss: relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 with weights 1/32, 1/16, 1/8, 1/4, 1. Both are
constructor arguments. Each ``||.||_1`` is the mean absolute difference over a layer's features.

The network is torchvision's ``vgg19().features`` rebuilt here (no torchvision dependency) with
the same module indices, so torchvision's ImageNet state dict (``features.N.weight``/``.bias``)
loads as it is. Weights come from the one registry (:mod:`posetransfer.utils.weights`, entry
``vgg19``), looked up, in order, at: the explicit ``weights_path``; the folder in
``$POSETRANSFER_WEIGHTS_DIR``; the XDG cache (``~/.cache/posetransfer``); otherwise they are
downloaded from torchvision's URL and checked against the hash prefix in the file name
(torchvision's convention: the first 8 hex digits of the file's sha256). Any failure is a
:class:`~posetransfer.utils.weights.WeightsError` (a
:class:`~posetransfer.errors.CheckpointError`) naming the file, where it comes from and where to
put it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from posetransfer.errors import CheckpointError, ConfigError
from posetransfer.utils import weights as W

__all__ = [
    "DEFAULT_LAYERS",
    "DEFAULT_LAYER_WEIGHTS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "VGG19_LAYER_INDEX",
    "VGG19_URL",
    "VGG19Features",
    "VGGPerceptualLoss",
    "resolve_vgg19_weights",
    "weights_dirs",
]

VGG19_URL = W.REGISTRY["vgg19"].url
WEIGHTS_ENV = W.ENV_DIR
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision's VGG config "E" (VGG19): conv widths, "M" = 2x2 max pool.
_VGG19_CFG: list[int | str] = [
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
]  # fmt: skip


def _layer_index() -> dict[str, int]:
    """Name -> index in ``vgg19().features``: ``convB_C``, ``reluB_C`` (block B, conv C), ``poolB``."""
    names: dict[str, int] = {}
    idx, block, conv = 0, 1, 1
    for v in _VGG19_CFG:
        if v == "M":
            names[f"pool{block}"] = idx
            idx += 1
            block, conv = block + 1, 1
        else:
            names[f"conv{block}_{conv}"] = idx
            names[f"relu{block}_{conv}"] = idx + 1
            idx += 2
            conv += 1
    return names


VGG19_LAYER_INDEX: dict[str, int] = _layer_index()
DEFAULT_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
DEFAULT_LAYER_WEIGHTS: tuple[float, ...] = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


def _file_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def weights_dirs() -> list[Path]:
    """Folders searched for downloaded weights, in order (the registry's): ``$POSETRANSFER_WEIGHTS_DIR``, the cache."""
    return W.search_dirs()


def resolve_vgg19_weights(
    weights_path: str | Path | None = None, *, url: str = VGG19_URL, download: bool = True
) -> Path:
    """Find (or fetch) the ImageNet VGG19 weights file through the weights registry
    (:mod:`posetransfer.utils.weights`, entry ``vgg19``); see the module docstring for the order."""
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise W.WeightsError(f"{path}: VGG19 weights file does not exist")
        return path
    return W.resolve_weights("vgg19", download=download, url=None if url == VGG19_URL else url)


def _load_state_dict(path: Path) -> dict[str, Tensor]:
    # mmap (in the registry's reader): only the conv tensors we copy are read, not the 400+ MB classifier.
    return W.read_state_dict(path, "VGG19")


class VGG19Features(nn.Module):
    """torchvision's ``vgg19().features`` up to the deepest requested layer, frozen, in eval mode.

    ``forward(x)`` takes images already ImageNet-normalised and returns the requested layers'
    activations in the order of ``layers``. Module indices match torchvision's, so its state dict
    keys ``features.N.weight`` load into ``self.features``.
    """

    def __init__(self, *, layers: Sequence[str] = DEFAULT_LAYERS):
        super().__init__()
        unknown = [name for name in layers if name not in VGG19_LAYER_INDEX]
        if unknown:
            raise ConfigError(
                f"unknown VGG19 layer(s) {unknown}; known: convB_C / reluB_C (B 1..5, C 1..4), poolB"
            )
        if not layers:
            raise ConfigError("the perceptual loss needs at least one VGG19 layer")
        self.layers = list(layers)
        self._indices = [VGG19_LAYER_INDEX[name] for name in self.layers]
        last = max(self._indices)
        modules: list[nn.Module] = []
        in_ch = 3
        for v in _VGG19_CFG:
            if len(modules) > last:
                break
            if v == "M":
                modules.append(nn.MaxPool2d(2, 2))
            else:
                modules += [nn.Conv2d(in_ch, int(v), 3, padding=1), nn.ReLU(inplace=False)]
                in_ch = int(v)
        self.features = nn.Sequential(*modules[: last + 1])
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Features:  # noqa: D102 - always frozen
        return super().train(False)

    def load_torchvision(self, path: str | Path) -> None:
        """Load a torchvision VGG19 state dict (extra keys such as ``classifier.*`` are ignored)."""
        path = Path(path)
        state = _load_state_dict(path)
        own = self.features.state_dict()
        missing = [f"features.{k}" for k in own if f"features.{k}" not in state]
        if missing:
            raise CheckpointError(
                f"{path}: not a torchvision VGG19 state dict (missing {', '.join(missing[:4])}"
                f"{' ...' if len(missing) > 4 else ''})"
            )
        sub = {}
        for k, v in own.items():
            got = state[f"features.{k}"]
            if tuple(got.shape) != tuple(v.shape):
                raise CheckpointError(
                    f"{path}: features.{k} has shape {tuple(got.shape)}, VGG19 needs {tuple(v.shape)}"
                )
            sub[k] = got
        self.features.load_state_dict(sub)

    def forward(self, x: Tensor) -> list[Tensor]:
        wanted = {idx: i for i, idx in enumerate(self._indices)}
        out: list[Tensor | None] = [None] * len(self._indices)
        for idx, module in enumerate(self.features):
            x = module(x)
            if idx in wanted:
                # The same index may be requested twice; fill every slot that asks for it.
                for i, j in enumerate(self._indices):
                    if j == idx:
                        out[i] = x
        return [o for o in out if o is not None]


class VGGPerceptualLoss(nn.Module):
    """``sum_k lambda_k * mean|Phi_k(pred) - Phi_k(target)|`` over VGG19 layers (eq. 1, 2nd term).

    Inputs are images in ``input_range`` (``(-1, 1)``, the generators' tanh range, by default);
    they are mapped to [0, 1] and ImageNet-normalised before VGG19. The target's features carry no
    gradient; VGG19 is frozen, so the gradient flows to ``pred`` only. Features are compared in
    float32 even under autocast.

    Weights: see :func:`resolve_vgg19_weights` (``weights_path``, ``url``, ``download``).
    """

    def __init__(
        self,
        *,
        layers: Sequence[str] = DEFAULT_LAYERS,
        layer_weights: Sequence[float] | None = None,
        weights_path: str | Path | None = None,
        url: str = VGG19_URL,
        download: bool = True,
        input_range: tuple[float, float] = (-1.0, 1.0),
    ):
        super().__init__()
        layers = list(layers)
        if layer_weights is None:
            if layers == list(DEFAULT_LAYERS):
                layer_weights = DEFAULT_LAYER_WEIGHTS
            else:
                layer_weights = [1.0] * len(layers)
        if len(layer_weights) != len(layers):
            raise ConfigError(
                f"{len(layers)} VGG19 layers but {len(layer_weights)} layer weights were given"
            )
        self.layer_weights = [float(w) for w in layer_weights]
        self.vgg = VGG19Features(layers=layers)
        self.vgg.load_torchvision(resolve_vgg19_weights(weights_path, url=url, download=download))
        lo, hi = input_range
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        # x01 = (x - lo) / (hi - lo); z = (x01 - mean) / std  ==  x * scale + shift
        self.register_buffer("scale", 1.0 / ((hi - lo) * std), persistent=False)
        self.register_buffer("shift", (-lo / (hi - lo) - mean) / std, persistent=False)

    def features(self, x: Tensor) -> list[Tensor]:
        return self.vgg(x * self.scale.to(x.dtype) + self.shift.to(x.dtype))

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            target_feats = self.features(target)
        pred_feats = self.features(pred)
        loss = pred.new_zeros((), dtype=torch.float32)
        for w, fp, ft in zip(self.layer_weights, pred_feats, target_feats):
            loss = loss + w * F.l1_loss(fp.float(), ft.float())
        return loss
