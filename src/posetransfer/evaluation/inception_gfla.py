"""torchvision's ImageNet Inception v3 as GFLA's FID script runs it (protocol ``fid_gfla``).

GFLA (Ren et al. 2020, "Deep Image Spatial Transformation for Person Image Generation", section 4),
PIDM (Bhunia et al. 2023) and CFLD (Lu et al. 2024) report an FID that is *not* pytorch-fid's: their
scripts (GFLA ``script/metrics.py`` class ``FID`` with ``script/inception.py``; PIDM's copy
``utils/metrics.py``; CFLD ``models/metrics.py`` ``build_metric``) take the blocks of
``torchvision.models.inception_v3(pretrained=True)``, i.e. the ImageNet weights
``inception_v3_google`` (registry entry of :mod:`posetransfer.utils.weights`), and:

* read each image as float32 / 255 (values in [0, 1], the image's own size);
* resize it bilinearly to 299x299 (``F.upsample(..., mode='bilinear')``, which is
  ``align_corners=False`` since PyTorch 0.4);
* apply torchvision's ``transform_input`` arithmetic to the [0, 1] values,
  ``x_c * (std_c / 0.5) + (mean_c - 0.5) / 0.5``, *without* the ImageNet normalisation that arithmetic
  was written to undo; so the network sees roughly [-0.03, 0.43] instead of [-1, 1]. This is what
  the scripts compute, and so what their published numbers are;
* run Conv2d_1a .. Mixed_7c with torchvision's two max pools and take the final adaptive average
  pool (2048-d) as the feature; no dropout, no fc, no aux classifier;
* GFLA / PIDM only: batch 64 (the whole set when it is smaller) and **drop the last incomplete
  batch** (``n_batches = d0 // batch_size``); CFLD keeps every image.

torchvision cannot be installed next to this project's torch, so the network is built from
:mod:`.inception_blocks` (torchvision's module names, ``tf_pools=False``); the whole state dict of the published file (fc and AuxLogits included)
loads with ``strict`` key checking. It differs from pytorch-fid's TF port (:mod:`.inception`) in
three places: average pools that count the padding, an average (not max) pool in Mixed_7c's pool
branch, and 1000 ImageNet classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from posetransfer.evaluation.inception_blocks import FEATURE_DIM, InceptionV3Trunk
from posetransfer.utils.weights import WeightsError, load_state_dict

NUM_CLASSES = 1000
GFLA_BATCH = 64  # GFLA script/metrics.py FID.__init__: self.batch_size = 64
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class TorchvisionInceptionV3(InceptionV3Trunk):
    """torchvision's ``Inception3`` (``aux_logits=True``, 1000 classes) with its module names.

    ``forward(images)`` takes float images ``(N, 3, H, W)`` in [0, 1] and returns the 2048-d
    features ``(N, 2048)`` exactly as GFLA's ``InceptionV3([3])`` block list computes them (module
    docstring). ``resize_input=False`` skips the resize to 299 (tests on small inputs only).
    """

    def __init__(self, *, resize_input: bool = True):
        super().__init__(num_classes=NUM_CLASSES, tf_pools=False, aux_classes=NUM_CLASSES)
        self.resize_input = resize_input

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        if self.resize_input:
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        # GFLA script/inception.py InceptionV3.forward (normalize_input): transform_input's
        # arithmetic applied to [0, 1] values (module docstring).
        scale = torch.tensor([s / 0.5 for s in IMAGENET_STD], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        shift = torch.tensor([(m - 0.5) / 0.5 for m in IMAGENET_MEAN], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        x = x * scale + shift
        return self.features(x)


def load_gfla_inception(path: str | None = None, *, download: bool = True) -> TorchvisionInceptionV3:
    """torchvision's Inception v3 with the published ``inception_v3_google`` weights, in eval mode."""
    state = load_state_dict("inception_v3_google", path, download=download)
    with torch.device("meta"):  # no random initialisation of 27 M parameters that are overwritten
        model = TorchvisionInceptionV3()
    model = model.to_empty(device="cpu")
    for name, buf in model.named_buffers():
        if name.endswith("num_batches_tracked"):
            buf.zero_()
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Files saved before PyTorch 0.4.1 lack BatchNorm's num_batches_tracked buffers (unused in eval).
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise WeightsError(
            f"the weights do not match torchvision's Inception v3 (inception_v3_google): "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return model.eval().requires_grad_(False)


def used_count(n: int, batch_size: int = GFLA_BATCH) -> int:
    """How many of ``n`` images GFLA's ``get_activations`` uses: whole batches of
    ``min(batch_size, n)`` only (the remainder is dropped)."""
    bs = min(batch_size, n)
    return 0 if bs == 0 else (n // bs) * bs


@torch.no_grad()
def gfla_features(
    model: TorchvisionInceptionV3,
    images: np.ndarray | Sequence[np.ndarray],
    *,
    batch_size: int = GFLA_BATCH,
    drop_remainder: bool = True,
) -> np.ndarray:
    """Features ``(M, 2048)`` float64 of uint8 images ``(N, H, W, 3)`` (a list of equal-size images
    also does), batched as GFLA's ``get_activations``: ``M = used_count(N)`` with
    ``drop_remainder`` (GFLA, PIDM), ``M = N`` without (CFLD)."""
    n = len(images)
    m = used_count(n, batch_size) if drop_remainder else n
    bs = max(1, min(batch_size, n))
    device = next(model.parameters()).device
    out = []
    for start in range(0, m, bs):
        stop = min(start + bs, m)
        batch = np.stack([np.asarray(images[i]) for i in range(start, stop)]).astype(np.float32) / 255
        x = torch.from_numpy(batch.transpose(0, 3, 1, 2)).to(device)
        out.append(model(x).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, FEATURE_DIM))
