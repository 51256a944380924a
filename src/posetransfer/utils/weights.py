"""The one registry of every pretrained file posetransfer uses: found locally or downloaded once,
checksum-verified, with one clear error that names the file and where to put it.

Each metric or loss of the field is defined by a specific pretrained network, and other weights
give other numbers, so every file is named, pinned to its published URL and checked where a
checksum is published. Entries (``name``: file):

==========================  =====================================================================
``fid_inception``           pytorch-fid's port of the TF-Inception of 2015-12-05 (``fid``, ``is``)
``inception_v3_google``     torchvision's ImageNet Inception v3 (``fid_gfla``: GFLA, PIDM, CFLD)
``alexnet``                 torchvision's ImageNet AlexNet (LPIPS backbone)
``lpips_alex``              LPIPS v0.1 linear heads for AlexNet (``lpips`` package)
``vgg19``                   torchvision's ImageNet VGG19 (perceptual loss)
``openpose_body``           CMU OpenPose COCO-18 body network as converted to PyTorch
                            (``body_pose_model.pth``; the ``openpose`` pose backend, PCKh)
==========================  =====================================================================

Checksums: torchvision and pytorch-fid publish the leading hex digits of each file's SHA-256 in its
name (``alexnet-owt-7be5be79.pth``), which is what is checked for those files. The LPIPS heads'
full SHA-256 was computed here from the file shipped in the ``lpips==0.1.4`` wheel on PyPI
(``lpips/weights/v0.1/alex.pth``); that the file at the registered GitHub URL is byte-identical
could not be checked offline (a mismatch would be reported, never silently used). ``body_pose_model.pth`` has no published checksum (the PyTorch
OpenPose ports distribute it through Google Drive / Dropbox / the Hugging Face Hub), so it is not
checked.

Resolution order for a weight (first hit wins):

1. an explicit path given by the caller (``--inception-weights``, ``--openpose-weights`` ...);
2. ``$POSETRANSFER_WEIGHTS_DIR/<filename>``;
3. the cache ``$XDG_CACHE_HOME/posetransfer/<filename>`` (``~/.cache/posetransfer`` without it);
4. a download (into ``$POSETRANSFER_WEIGHTS_DIR`` when set, else into the cache), then the checksum.

Every failure raises :class:`WeightsError` naming the file, its URL and where to put it; a failed
or mismatching download leaves nothing behind. This module is the lowest layer (``utils/``): it
imports only :mod:`posetransfer.errors` and third-party packages.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from posetransfer.errors import CheckpointError

if TYPE_CHECKING:
    import torch

# torch is imported where a file is downloaded or read: the CLI's parser reads the registry
# (``posetransfer weights``) on every start-up, which otherwise would import torch (about 1 s).

ENV_DIR = "POSETRANSFER_WEIGHTS_DIR"


class WeightsError(CheckpointError):
    """Pretrained weights are missing, cannot be downloaded, or do not match their checksum.

    A :class:`CheckpointError` (a pretrained file is a checkpoint of someone else's training), so
    callers that catch checkpoint problems catch this too.
    """


@dataclass(frozen=True)
class WeightSpec:
    """One downloadable weight file.

    ``sha256`` is the published digest or its published prefix (torch.hub's ``name-<prefix>.pth``
    convention); None when the publisher gives none. ``aliases`` are other published names of the
    same file that are accepted when found locally.
    """

    name: str
    url: str
    filename: str
    sha256: str | None
    description: str
    option: str  # how a user points to a local copy (a command-line option or a config key)
    aliases: tuple[str, ...] = field(default=())

    @property
    def sha256_prefix(self) -> str | None:  # the name the first registry used
        return self.sha256


REGISTRY: dict[str, WeightSpec] = {
    spec.name: spec
    for spec in (
        WeightSpec(
            name="fid_inception",
            url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
            filename="pt_inception-2015-12-05-6726825d.pth",
            sha256="6726825d",
            description="TF-Inception (2015-12-05) ported to PyTorch by pytorch-fid (FID, IS)",
            option="--inception-weights",
        ),
        WeightSpec(
            name="inception_v3_google",
            # torchvision >= 0.13 (Inception_V3_Weights.IMAGENET1K_V1), what CFLD loads; GFLA's and
            # PIDM's torchvision (``inception_v3(pretrained=True)``, torchvision < 0.13) fetched the
            # same ImageNet weights under the name inception_v3_google-1a9a5a14.pth, accepted as an
            # alias. That the two files hold identical tensors could not be verified here (offline).
            url="https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
            filename="inception_v3_google-0cc3c7bd.pth",
            sha256="0cc3c7bd",
            description="torchvision's ImageNet Inception v3 (fid_gfla, as GFLA/PIDM/CFLD)",
            option="--inception-gfla-weights",
            aliases=("inception_v3_google-1a9a5a14.pth",),
        ),
        WeightSpec(
            name="alexnet",
            url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            filename="alexnet-owt-7be5be79.pth",
            sha256="7be5be79",
            description="torchvision's ImageNet AlexNet (LPIPS backbone)",
            option="--alexnet-weights",
        ),
        WeightSpec(
            name="lpips_alex",
            url="https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth",
            filename="lpips_v0.1_alex.pth",
            sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
            description="LPIPS v0.1 linear heads for AlexNet (richzhang/PerceptualSimilarity)",
            option="--lpips-weights",
        ),
        WeightSpec(
            name="vgg19",
            url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
            filename="vgg19-dcbb9e9d.pth",
            sha256="dcbb9e9d",
            description="torchvision's ImageNet VGG19 (perceptual loss)",
            option="`weights_path`; in a training config, `--set loss.vgg_weights=PATH`",
        ),
        WeightSpec(
            name="openpose_body",
            # The converted Caffe model of the PyTorch OpenPose ports (Hzzone/pytorch-openpose; the
            # same file is mirrored by lllyasviel/Annotators on the Hugging Face Hub). No checksum
            # is published for it, so none is checked.
            url="https://huggingface.co/lllyasviel/Annotators/resolve/main/body_pose_model.pth",
            filename="body_pose_model.pth",
            sha256=None,
            description="CMU OpenPose COCO-18 body network converted to PyTorch (openpose pose backend, PCKh)",
            option="--openpose-weights",
        ),
    )
}


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/posetransfer``, or ``~/.cache/posetransfer`` when it is not set."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "posetransfer"


def env_dir() -> Path | None:
    env = os.environ.get(ENV_DIR)
    return Path(env).expanduser() if env else None


def search_dirs() -> list[Path]:
    """Folders searched for weights files, in order: ``$POSETRANSFER_WEIGHTS_DIR``, the cache."""
    return [d for d in (env_dir(), cache_dir()) if d is not None]


def download_dir() -> Path:
    """Where a download lands: ``$POSETRANSFER_WEIGHTS_DIR`` when set, else the cache."""
    return env_dir() or cache_dir()


def spec(name: str) -> WeightSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise WeightsError(f"unknown weights {name!r}; known: {', '.join(REGISTRY)}") from None


_spec = spec  # the first registry's private name


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_sha256(path: Path, entry: WeightSpec, expected: str | None = None) -> None:
    """Raise :class:`WeightsError` unless the file's SHA-256 starts with the expected digest."""
    expected = expected if expected is not None else entry.sha256
    if expected is None:
        return
    digest = sha256_of(path)
    if not digest.startswith(expected):
        raise WeightsError(
            f"{path}: SHA-256 {digest[:12]}... does not match the published {expected[:12]} of "
            f"{entry.filename} ({entry.description}); the file is corrupt, an interrupted download or "
            "a different release: delete it and retry"
        )


def _hash_in_name(filename: str) -> str | None:
    """torch.hub's convention ``name-<sha256 prefix>.ext`` (at least 8 hex digits), else None."""
    import re

    m = re.search(r"-([a-f0-9]{8,})\.", filename)
    return m.group(1) if m else None


def find_weights(name: str, path: str | Path | None = None, *, filename: str | None = None) -> Path | None:
    """The local file for ``name`` by the resolution order above, or None (never downloads).

    ``filename`` replaces the registered file name (a caller-chosen URL names another file)."""
    entry = spec(name)
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise WeightsError(f"{p}: weights file does not exist ({entry.description}, given by {entry.option})")
        return p
    names = (filename,) if filename else (entry.filename, *entry.aliases)
    for d in search_dirs():
        for n in names:
            if (d / n).is_file():
                return d / n
    return None


def where_to_put(name: str, *, url: str | None = None, filename: str | None = None) -> str:
    """The sentence every weights error ends with: what to download and where to put it."""
    entry = spec(name)
    filename = filename or entry.filename
    return (
        f"download {url or entry.url} and put it at {download_dir() / filename} "
        f"(searched: {', '.join(str(d / filename) for d in search_dirs())}; ${ENV_DIR} names a folder "
        f"searched first; `posetransfer weights add {name} FILE` installs a downloaded copy), or pass its "
        f"path with {entry.option}"
    )


def resolve_weights(
    name: str, path: str | Path | None = None, *, download: bool = True, url: str | None = None
) -> Path:
    """The local file for ``name``, downloading it when needed (see the module doc).

    ``url`` replaces the registered URL (a mirror); the file is then named after the URL, and its
    checksum is the hash prefix in that name when it has one."""
    entry = spec(name)
    filename = url.rstrip("/").rsplit("/", 1)[-1] if url else None
    found = find_weights(name, path, filename=filename)
    if found is not None:
        return found
    filename = filename or entry.filename
    expected = _hash_in_name(filename) if url else entry.sha256
    how_to = where_to_put(name, url=url, filename=filename)
    if not download:
        raise WeightsError(
            f"the weights file {filename} ({entry.description}) is not on this machine and "
            f"downloading is off (not available offline): {how_to}"
        )
    target = download_dir() / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    import torch

    try:
        torch.hub.download_url_to_file(url or entry.url, str(partial), progress=True)
        check_sha256(partial, entry, expected)
        os.replace(partial, target)
    except WeightsError:
        raise
    except Exception as err:  # no network, HTTP error, disk full ...
        raise WeightsError(
            f"the weights file {filename} ({entry.description}) was not found and could not be "
            f"downloaded ({type(err).__name__}: {err}); {how_to}"
        ) from None
    finally:
        if partial.exists():
            partial.unlink()
    return target


def weights_status(name: str, *, verify: bool = False) -> dict:
    """What ``posetransfer weights list`` shows of one entry: where its file is (or None), and with
    ``verify`` whether its SHA-256 matches the published one ("ok", "mismatch", "no published
    checksum", "not found")."""
    entry = spec(name)
    found = find_weights(name)
    status = {
        "name": entry.name, "file": entry.filename, "description": entry.description, "option": entry.option,
        "url": entry.url, "sha256": entry.sha256, "path": str(found) if found else None,
        "bytes": found.stat().st_size if found else None,
    }  # fmt: skip
    if verify:
        if found is None:
            status["check"] = "not found"
        elif entry.sha256 is None:
            status["check"] = "no published checksum"
        else:
            status["check"] = "ok" if sha256_of(found).startswith(entry.sha256) else "mismatch"
    return status


def install_weights(name: str, source: str | Path, *, overwrite: bool = False) -> Path:
    """Copy a weights file obtained elsewhere (a browser download, another machine) to where
    :func:`find_weights` looks (``download_dir() / filename``), after checking it as a download is
    checked: its SHA-256 where one is published, and that it reads as a state dict. An existing file
    is replaced only with ``overwrite``; the copy is written beside it and renamed (atomic)."""
    entry = spec(name)
    source = Path(source).expanduser()
    if not source.is_file():
        raise WeightsError(f"{source}: no such file (the {entry.filename} to install as {name!r})")
    check_sha256(source, entry)
    read_state_dict(source, f"{name!r}")
    target = download_dir() / entry.filename
    if target.exists() and target.resolve() == source.resolve():
        return target  # already in place
    if target.exists() and not overwrite:
        raise WeightsError(f"{target}: already exists; pass --overwrite to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        import shutil

        shutil.copyfile(source, partial)
        os.replace(partial, target)
    finally:
        if partial.exists():
            partial.unlink()
    return target


def load_state_dict(
    name: str, path: str | Path | None = None, *, download: bool = True, url: str | None = None
) -> dict[str, torch.Tensor]:
    """Resolve and load the weights ``name`` as a state dict (tensors only, ``weights_only=True``).

    ``.safetensors`` files are read with safetensors; zip-format ``.pth`` files are memory-mapped
    (only the tensors used are read)."""
    file = resolve_weights(name, path, download=download, url=url)
    return read_state_dict(file, f"{name!r}")


def read_state_dict(file: str | Path, description: str) -> dict[str, torch.Tensor]:
    """A weights file as a state dict (tensors only, ``weights_only=True``), or a WeightsError
    naming the file and what it should hold (``description``)."""
    import torch

    file = Path(file)
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(file))
        else:
            try:
                state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:  # legacy (non-zip) serialisation cannot be memory-mapped
                state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types on corrupt files
        first = (str(err).strip().splitlines() or [""])[0]  # torch's messages run over many lines
        raise WeightsError(f"{file}: unreadable {description} weights file ({type(err).__name__}: {first})") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{file}: expected a state dict, found {type(state).__name__}")
    return state
