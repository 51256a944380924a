"""Pretrained weights the metrics need, found locally or downloaded once, with a clear error offline.

The metrics of the field are defined by specific pretrained networks (each metric's original paper and released script): FID and
the Inception Score by the TF-Inception graph of 2015-12-05 (here its PyTorch port by pytorch-fid),
LPIPS by torchvision's AlexNet plus the v0.1 linear heads of the ``lpips`` package. Other weights
give other numbers, so each file is named, pinned to its published URL and checked when known.

Resolution order for a weight ``name`` (first hit wins):

1. an explicit path passed by the caller (``--inception-weights``, ``--lpips-weights`` ...);
2. ``$POSETRANSFER_WEIGHTS_DIR/<filename>``;
3. the cache ``~/.cache/posetransfer/<filename>`` (``$XDG_CACHE_HOME`` respected);
4. a download into the cache (``torch.hub.download_url_to_file``, progress bar), then a checksum.

A failed download (no network) raises :class:`WeightsError` naming the file, its URL and where to
put it; nothing half-downloaded is left in the cache.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from posetransfer.errors import PosetransferError

ENV_DIR = "POSETRANSFER_WEIGHTS_DIR"


class WeightsError(PosetransferError):
    """Pretrained weights are missing, cannot be downloaded, or do not match their checksum."""


@dataclass(frozen=True)
class WeightSpec:
    """One downloadable weight file.

    ``sha256_prefix`` follows torch.hub's convention: the leading hex digits of the file's SHA-256
    embedded in its published name (``alexnet-owt-7be5be79.pth``); None when the publisher gives none.
    """

    name: str
    url: str
    filename: str
    sha256_prefix: str | None
    description: str
    option: str  # the command-line option that points to a local copy


REGISTRY: dict[str, WeightSpec] = {
    spec.name: spec
    for spec in (
        WeightSpec(
            name="fid_inception",
            url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
            filename="pt_inception-2015-12-05-6726825d.pth",
            sha256_prefix="6726825d",
            description="TF-Inception (2015-12-05) ported to PyTorch by pytorch-fid (FID, IS)",
            option="--inception-weights",
        ),
        WeightSpec(
            name="alexnet",
            url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            filename="alexnet-owt-7be5be79.pth",
            sha256_prefix="7be5be79",
            description="torchvision's ImageNet AlexNet (LPIPS backbone)",
            option="--alexnet-weights",
        ),
        WeightSpec(
            name="lpips_alex",
            url="https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth",
            filename="lpips_v0.1_alex.pth",
            sha256_prefix=None,
            description="LPIPS v0.1 linear heads for AlexNet (richzhang/PerceptualSimilarity)",
            option="--lpips-weights",
        ),
    )
}


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "posetransfer"


def _spec(name: str) -> WeightSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise WeightsError(f"unknown weights {name!r}; known: {', '.join(REGISTRY)}") from None


def _check_sha256(path: Path, spec: WeightSpec) -> None:
    if spec.sha256_prefix is None:
        return
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    if not h.hexdigest().startswith(spec.sha256_prefix):
        raise WeightsError(
            f"{path}: SHA-256 {h.hexdigest()[:12]}... does not start with {spec.sha256_prefix} "
            f"({spec.description}); the file is corrupt or a different release: delete it and retry"
        )


def find_weights(name: str, path: str | Path | None = None) -> Path | None:
    """The local file for ``name`` by the resolution order above, or None (never downloads)."""
    spec = _spec(name)
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise WeightsError(f"{p}: weights file does not exist ({spec.description}, given by {spec.option})")
        return p
    env = os.environ.get(ENV_DIR)
    if env and (Path(env).expanduser() / spec.filename).is_file():
        return Path(env).expanduser() / spec.filename
    cached = cache_dir() / spec.filename
    return cached if cached.is_file() else None


def resolve_weights(name: str, path: str | Path | None = None, *, download: bool = True) -> Path:
    """The local file for ``name``, downloading it into the cache when needed (see module doc)."""
    spec = _spec(name)
    found = find_weights(name, path)
    if found is not None:
        return found
    target = cache_dir() / spec.filename
    how_to = (
        f"download {spec.url} and put it at {target} or in the folder named by ${ENV_DIR}, "
        f"or pass its path with {spec.option}"
    )
    if not download:
        raise WeightsError(f"the weights file {spec.filename} ({spec.description}) is not available offline: {how_to}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        torch.hub.download_url_to_file(spec.url, str(partial), progress=True)
        _check_sha256(partial, spec)
        os.replace(partial, target)
    except WeightsError:
        raise
    except Exception as err:  # no network, HTTP error, disk full ...
        raise WeightsError(
            f"could not download {spec.filename} ({spec.description}): {type(err).__name__}: {err}; {how_to}"
        ) from None
    finally:
        if partial.exists():
            partial.unlink()
    return target


def load_state_dict(name: str, path: str | Path | None = None, *, download: bool = True) -> dict[str, torch.Tensor]:
    """Resolve and load the weights ``name`` as a state dict (tensors only, ``weights_only=True``)."""
    file = resolve_weights(name, path, download=download)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:
        raise WeightsError(f"{file}: unreadable weights file ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{file}: expected a state dict, found {type(state).__name__}")
    return state
