"""FID by protocol: which Inception, which preprocessing, which real set, and cached real statistics.

==============  ===========================================================================
``fid``         pytorch-fid's TF-Inception port (:mod:`.inception`), every image (PATN, PG2)
``fid_gfla``    torchvision's ImageNet Inception v3 with GFLA's preprocessing and batching
                (:mod:`.inception_gfla`; GFLA ``script/metrics.py`` class ``FID``; PIDM's copy):
                the last incomplete batch of 64 is dropped, from both sets
``fid_pidm``    ``fid_gfla`` with PIDM's read (``utils/metrics.py`` lines 98-121): every image, generated
                and real, ``cv2.resize(imread(f).astype(np.float32), (176, 256))`` (``INTER_LINEAR``,
                to 256x176 whatever its size) before ``/ 255`` (:func:`.protocols.pidm_resize`);
                so real images of several sizes make one set. PIDM's real set is its
                ``train_256x256_pngs`` (line 644)
``fid_cfld``    the same network and preprocessing with every image (CFLD ``models/metrics.py``
                ``build_metric``, ``pose_transfer_test.py``); CFLD's real set is its
                ``train_highres/*.jpg`` resized by PIL bicubic to 256x176 (``FidRealDeepFashion``):
                give that folder as the real set to reproduce it
==============  ===========================================================================

``TORCHVISION_PROTOCOLS`` are the protocols of torchvision's Inception (``fid_gfla``, ``fid_pidm``,
``fid_cfld``); ``DROP_REMAINDER_PROTOCOLS`` those that drop the last incomplete batch of 64.

The real set defaults to the data set's **training** split, as GFLA's ``PERSON_IMAGE_GENERATION.md``
prescribes ("For FID, the real data distributions are calculated over the whole training set";
``--fid_real_path=./dataset/market/train_12864``) and PIDM's ``utils/metrics.py`` hard-codes
(``real_path = './deepfashion/train_256x256_pngs/'``); a data set without a training split falls
back to the evaluated split, and the log says so.

Real statistics are cached: ``posetransfer evaluate fid-stats DIR --protocol P --out stats.npz``
writes ``mu``, ``sigma``, ``n`` (images used) and ``protocol``; ``--fid-real`` accepts such a file
(its protocol must match the metric) or a folder. pytorch-fid's own ``.npz`` files (``mu`` and
``sigma`` only) are accepted for ``fid``, never for the torchvision protocols.

Not reproduced, on purpose: GFLA writes ``statistics.npz`` into the real folder and reuses it
silently (here the cache is keyed by the files' names, sizes and times); GFLA's ``get_activations``
lowers ``self.batch_size`` for good when a set is smaller than 64, which would also shrink the
batches of the generated set computed after it (only for real sets under 64 images). PIDM's copy
resizes every image to 176x256 with ``cv2.resize`` before the network: ``fid_pidm``.

GFLA lists a folder as ``glob('*.jpg') + glob('*.png')`` in the file system's order; the order
decides which images the dropped last batch leaves out, so here the names are sorted within each
extension (jpg first, as GFLA) to make the result reproducible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from posetransfer.errors import DataError, PosetransferError
from posetransfer.utils.io import atomic_path, read_image

PROTOCOLS = ("fid", "fid_gfla", "fid_pidm", "fid_cfld")
TORCHVISION_PROTOCOLS = ("fid_gfla", "fid_pidm", "fid_cfld")
DROP_REMAINDER_PROTOCOLS = ("fid_gfla", "fid_pidm")  # GFLA's get_activations and PIDM's copy
CHUNK = 640  # images read at once (a multiple of GFLA's batch of 64)


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise PosetransferError(f"unknown FID protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    return protocol


def load_network(protocol: str, weights: str | None = None, *, download: bool = True):
    """The Inception of ``protocol`` with its published weights (via the weights registry)."""
    if check_protocol(protocol) == "fid":
        from posetransfer.evaluation.inception import load_fid_inception

        return load_fid_inception(weights, download=download)
    from posetransfer.evaluation.inception_gfla import load_gfla_inception

    return load_gfla_inception(weights, download=download)


def weights_name(protocol: str) -> str:
    """The registry entry the protocol's network loads."""
    return "fid_inception" if check_protocol(protocol) == "fid" else "inception_v3_google"


def features(protocol: str, model, images: np.ndarray, *, drop_remainder: bool | None = None, progress: bool = False) -> np.ndarray:
    """``(M, 2048)`` float64 features of uint8 images ``(N, H, W, 3)`` by the protocol's network;
    ``fid_gfla`` / ``fid_pidm`` drop the last incomplete batch of 64 (``M < N``) unless
    ``drop_remainder=False``; ``fid_cfld`` keeps every image. ``fid_pidm`` resizes each image to
    256x176 first (:func:`.protocols.pidm_resize`, one at a time: a resized set in float32 would
    not fit in memory), so its images may be of any size, e.g. PIDM's 256x256 outputs."""
    if check_protocol(protocol) == "fid":
        from posetransfer.evaluation.inception import inception_outputs

        return inception_outputs(model, images, progress=progress)[0]
    from posetransfer.evaluation.inception_gfla import gfla_features

    if drop_remainder is None:
        drop_remainder = protocol in DROP_REMAINDER_PROTOCOLS
    if protocol == "fid_pidm":
        images = _PidmResized(images)
    return gfla_features(model, images, drop_remainder=drop_remainder)


class _PidmResized:
    """A sequence of images resized by :func:`.protocols.pidm_resize` when indexed."""

    def __init__(self, images):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> np.ndarray:
        from posetransfer.evaluation.protocols import pidm_resize

        return pidm_resize(np.asarray(self.images[i])[None])[0]


def list_real_images(folder: Path, protocol: str) -> list[str]:
    """The real set's file names: every image for ``fid``; GFLA's ``*.jpg`` then ``*.png`` (each
    sorted, see the module doc) for the torchvision protocols (CFLD globs ``*.jpg`` only; a folder of
    jpgs lists the same)."""
    from posetransfer.data.layouts import list_images

    if not folder.is_dir():
        raise DataError(folder, "FID real image folder does not exist")
    names = list_images(folder)
    if protocol in TORCHVISION_PROTOCOLS:
        names = sorted(n for n in names if n.endswith(".jpg")) + sorted(n for n in names if n.endswith(".png"))
    if len(names) < 2:
        raise DataError(folder, "the FID real set needs at least 2 images" + (" (*.jpg or *.png, as GFLA's script)" if protocol in TORCHVISION_PROTOCOLS else ""))
    return names


def folder_statistics(
    protocol: str, model, folder: str | Path, *, progress: bool = False
) -> tuple[np.ndarray, np.ndarray, int]:
    """(mu, sigma, n used) of a folder of real images by the protocol (read in chunks)."""
    from posetransfer.evaluation.inception_gfla import GFLA_BATCH, used_count
    from posetransfer.evaluation.metrics import feature_statistics

    folder = Path(folder)
    names = list_real_images(folder, protocol)
    if protocol in DROP_REMAINDER_PROTOCOLS:
        names = names[: used_count(len(names), GFLA_BATCH)]  # GFLA drops the last incomplete batch
    feats = []
    for i in range(0, len(names), CHUNK):
        chunk = [read_image(folder / n) for n in names[i : i + CHUNK]]
        shapes = {im.shape for im in chunk}
        if len(shapes) > 1 and protocol != "fid_pidm":  # PIDM resizes every image: sizes may differ
            raise DataError(folder, f"real images of different sizes {sorted(shapes)[:2]}: FID reads every image at its own size, so one set must share one size")
        batch = chunk if protocol == "fid_pidm" else np.stack(chunk)
        feats.append(features(protocol, model, batch, drop_remainder=False, progress=progress))
    mu, sigma = feature_statistics(np.concatenate(feats))
    return mu, sigma, len(names)


def write_statistics(path: str | Path, protocol: str, mu: np.ndarray, sigma: np.ndarray, n: int, *, overwrite: bool = False) -> None:
    """``stats.npz`` with ``mu``, ``sigma``, ``n`` and ``protocol`` (atomically; never silently replaced)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise DataError(path, "FID statistics are written to an .npz file")
    if path.exists() and not overwrite:
        raise DataError(path, "already exists (pass --overwrite to replace it)")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, mu=mu, sigma=sigma, n=np.int64(n), protocol=np.array(protocol))


def read_statistics(path: str | Path, protocol: str) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of an ``.npz``; its ``protocol`` must be ``protocol`` (pytorch-fid's files
    without one are taken as ``fid``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "FID statistics file does not exist")
    try:
        with np.load(path) as z:
            mu, sigma = z["mu"], z["sigma"]
            stored = str(z["protocol"]) if "protocol" in z.files else None
    except (OSError, KeyError, ValueError) as err:
        raise DataError(path, f"not an FID statistics file with mu and sigma ({err})") from None
    if stored is None and protocol != "fid":
        raise DataError(path, f"has no protocol field (pytorch-fid's format, protocol fid); it cannot serve {protocol}: write one with `posetransfer evaluate fid-stats DIR --protocol {protocol}`")
    if stored is not None and stored != protocol:
        raise DataError(path, f"holds {stored} statistics, not {protocol}: FID protocols use different networks and cannot be mixed")
    if mu.ndim != 1 or sigma.shape != (mu.size, mu.size):
        raise DataError(path, f"mu {mu.shape} and sigma {sigma.shape} are not a mean and its covariance")
    return mu, sigma


def _cache_key(folder: Path, names: list[str], protocol: str) -> str:
    h = hashlib.sha1(f"{protocol}:{folder.resolve()}".encode())
    for n in names:
        st = (folder / n).stat()
        h.update(f"{n}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def real_statistics(
    protocol: str, model, source: str | Path, *, cache: bool = True, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of a real set: an ``.npz`` (:func:`read_statistics`) or a folder, whose
    statistics are cached in ``<cache>/fid_stats/<protocol>-<key>.npz`` (the key hashes the folder,
    its files' names, sizes and times)."""
    from posetransfer.utils.weights import cache_dir

    check_protocol(protocol)
    source = Path(source)
    if source.suffix == ".npz":
        return read_statistics(source, protocol)
    names = list_real_images(source, protocol)
    cached = cache_dir() / "fid_stats" / f"{protocol}-{_cache_key(source, names, protocol)}.npz"
    if cache and cached.is_file():
        return read_statistics(cached, protocol)
    mu, sigma, n = folder_statistics(protocol, model, source, progress=progress)
    if cache:
        write_statistics(cached, protocol, mu, sigma, n, overwrite=True)
    return mu, sigma


def default_real_folder(data: str | Path, split: str | None, log: Callable[[str], None] = lambda s: None) -> Path:
    """The real set of a data set: its training split's images; the evaluated split's when the
    data set has no training split (the log says so)."""
    from posetransfer.data.layouts import resolve_dataset

    try:
        return resolve_dataset(data, "train").images_dir
    except DataError:
        files = resolve_dataset(data, split)
        log(f"FID real set: {data} has no training split; using the evaluated images {files.images_dir}")
        return files.images_dir
