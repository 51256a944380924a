"""The TF-Inception v3 (2015-12-05) that defines FID and the Inception Score, in plain torch.

Reference: pytorch-fid's ``FIDInceptionA/C/E_1/E_2`` port (``src/pytorch_fid/inception.py``) with its
weights ``pt_inception-2015-12-05-6726825d.pth``, the standard FID implementation. pytorch-fid builds
the network by patching ``torchvision.models.inception_v3``; the same modules, with torchvision's
names, are in :mod:`.inception_blocks` (``tf_pools=True``), so pytorch-fid's file loads unchanged. The TF-specific details of the port are
kept: average pools that ignore padding, max pooling in the last block's pool branch, BatchNorm eps
0.001, and a 1008-way classifier (the TF graph's class count).

Outputs:

* ``pool3`` (N, 2048): the final average pool, the FID features (Heusel et al. 2017);
* ``logits`` (N, 1008) = ``pool3 @ fc.weight.T``, *without* the bias: the original Inception Score
  code (Salimans et al. 2016, openai/improved-gan, copied by PG2's and PATN's ``inception_score.py``)
  multiplies ``pool_3`` by the ``softmax/logits/MatMul`` weights and applies the softmax directly.

Input normalisation follows pytorch-fid: images in [0, 1], bilinear resize to 299x299
(``align_corners=False``), then scaled to [-1, 1]. The original TF graph resized inside the graph
with TF1's bilinear kernel, so IS values differ from the TF numbers in the third decimal at most
(a known property of every PyTorch port of the IS).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from posetransfer.evaluation.inception_blocks import FEATURE_DIM, InceptionV3Trunk
from posetransfer.utils.weights import WeightsError, load_state_dict

NUM_CLASSES = 1008


class FIDInceptionV3(InceptionV3Trunk):
    """Inception v3 as in pytorch-fid's ``fid_inception_v3()`` (no aux classifier, 1008 classes).

    ``forward(images)`` takes float images ``(N, 3, H, W)`` in [0, 1] and returns
    ``(pool3 (N, 2048), logits (N, 1008))``; see the module docstring for the normalisation.
    ``resize_input=False`` skips the resize to 299 (tests on small inputs only: the network needs at
    least 75x75).
    """

    def __init__(self, *, resize_input: bool = True):
        super().__init__(num_classes=NUM_CLASSES, tf_pools=True)
        self.resize_input = resize_input

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = images
        if self.resize_input:
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        pool3 = self.features(x)
        logits = pool3 @ self.fc.weight.t()  # no bias: the original IS code (module docstring)
        return pool3, logits


def load_fid_inception(path: str | None = None, *, download: bool = True) -> FIDInceptionV3:
    """The FID Inception with pytorch-fid's weights (resolved by :mod:`.weights`), in eval mode."""
    state = load_state_dict("fid_inception", path, download=download)
    model = FIDInceptionV3()
    # Files saved by older torch lack BatchNorm's num_batches_tracked buffers; they are unused in eval.
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise WeightsError(
            f"the Inception weights do not match pytorch-fid's network: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return model.eval().requires_grad_(False)


@torch.no_grad()
def inception_outputs(
    model: FIDInceptionV3, images: np.ndarray, *, batch_size: int = 50, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """pool3 features ``(N, 2048)`` float64 and class probabilities ``(N, 1008)`` float64 of uint8
    images ``(N, H, W, 3)``."""
    from tqdm import tqdm

    feats, probs = [], []
    device = next(model.parameters()).device
    for i in tqdm(range(0, len(images), batch_size), desc="inception", disable=not progress, leave=False):
        x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size])).to(device)
        x = x.permute(0, 3, 1, 2).float() / 255.0
        pool3, logits = model(x)
        feats.append(pool3.double().cpu())
        probs.append(torch.softmax(logits.double(), dim=1).cpu())
    if not feats:
        return np.zeros((0, FEATURE_DIM)), np.zeros((0, NUM_CLASSES))
    return torch.cat(feats).numpy(), torch.cat(probs).numpy()
