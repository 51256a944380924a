"""Checkpoints: safetensors weights + JSON model description + resumable training state.

Layout of a run folder::

    RUN_DIR/config.yaml                      the resolved config the run was started with
    RUN_DIR/checkpoints/latest               text file: the name of the newest complete checkpoint
    RUN_DIR/checkpoints/step_0001000/
        <network>.safetensors                one file per network (weights only: safe to load)
        model.json                           {"task", "step", "networks": {name: {"class", "kwargs", "trainable"}}}
        config.yaml, config.json             the resolved config
        state.pt                             optimizer states, step, RNG states, sampler position
                                             (plain tensors/lists: loaded with ``weights_only=True``)

A checkpoint folder is written under a temporary name, every file fsync'ed, then renamed into
place, and only then does ``latest`` (itself replaced atomically) point at it: a crash leaves
either the previous checkpoint or the new one, never a half-written folder that ``--resume`` or
``generate`` would pick up. ``model.json`` holds each network's class and complete constructor
kwargs, so a checkpoint rebuilds its own networks without the config or the code defaults.

Every problem reading a checkpoint is a :class:`~posetransfer.errors.CheckpointError` naming the file.

Safety of an interrupted write (:func:`clean_leftovers`, run at the start of every training run):
the ``.tmp-step_*`` folders of a checkpoint that was being written are removed; an ``.old-step_*``
folder (a re-saved step moved aside) is moved back when its step folder is missing, else removed.
``latest`` is only followed to a plain ``step_XXXXXXX`` name inside the run's own ``checkpoints``
folder. The bytes of the files are a function of their contents (``.safetensors`` headers with
sorted keys) and the files and folders get the user's umask.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from posetransfer.errors import CheckpointError
from posetransfer.utils.io import atomic_write_text, umask_mode

__all__ = [
    "FORMAT_VERSION",
    "MODEL_JSON",
    "STATE_FILE",
    "step_dirname",
    "save_checkpoint",
    "latest_checkpoint",
    "resolve_checkpoint",
    "read_model_json",
    "read_checkpoint_config",
    "load_state",
    "load_weights",
    "build_network",
    "load_networks",
    "load_network_from",
]

FORMAT_VERSION = 1
MODEL_JSON = "model.json"
STATE_FILE = "state.pt"
CONFIG_JSON = "config.json"
CONFIG_YAML = "config.yaml"
LATEST = "latest"
CHECKPOINTS = "checkpoints"
#: only classes from these packages are rebuilt from a model.json (it is user input)
ALLOWED_MODULE_PREFIXES = ("posetransfer.",)


_STEP_NAME = re.compile(r"^step_\d{7,}$")


def step_dirname(step: int) -> str:
    return f"step_{step:07d}"


def _write_bytes(path: Path, data: bytes, shown: Path) -> None:
    """Write ``data`` to a new file ``path``; an OSError (e.g. ENOSPC, a full disk) names ``shown``,
    the checkpoint file being written (not its temporary folder)."""
    try:
        with open(path, "wb") as fh:
            fh.write(data)
    except OSError as err:
        if err.errno is None:
            raise
        raise type(err)(err.errno, err.strerror or os.strerror(err.errno), str(shown)) from None


def safetensors_canonical(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """A ``.safetensors`` file whose bytes depend only on its contents.

    safetensors (0.8) keeps the metadata in a hash map, so its key order, and the file's bytes,
    differ from one process to the next. The header is re-serialised here with sorted keys (same
    compact separators, hence the same length; the tensor offsets are relative to the data and
    unchanged). Hand-written because the library offers no ordering option.
    """
    data = safetensors_bytes(tensors, metadata=metadata)
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    canon = json.dumps(header, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")
    if len(canon) > n:  # cannot happen for a reordering; keep the library's bytes then
        return data
    return data[:8] + canon + b" " * (n - len(canon)) + data[8 + n :]


def _mkdir_umask(path: Path) -> None:
    """``mkdtemp`` makes owner-only (0700) folders; give them what ``mkdir`` would (0777 less umask)."""
    os.chmod(path, umask_mode(0o777))


def clean_leftovers(run_dir: str | Path) -> list[str]:
    """Tidy what an interrupted :func:`save_checkpoint` left in ``RUN_DIR/checkpoints``; returns notes.

    ``.tmp-step_*`` folders (a checkpoint being written) and ``.latest.*.tmp`` files are removed. An
    ``.old-step_*`` folder holds a step moved aside while the same step was re-saved: when the step
    folder is missing (the kill came between the two renames) it is moved back, else removed.
    """
    root = Path(run_dir) / CHECKPOINTS
    notes: list[str] = []
    if not root.is_dir():
        return notes
    for entry in sorted(root.iterdir()):
        if entry.is_symlink():
            continue
        if entry.name.startswith(".tmp-") and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
            notes.append(f"removed the unfinished checkpoint {entry}")
        elif entry.name.startswith(".old-") and entry.is_dir():
            for inner in entry.iterdir():
                target = root / inner.name
                if _STEP_NAME.match(inner.name) and not target.exists() and (inner / MODEL_JSON).is_file():
                    os.replace(inner, target)
                    notes.append(f"restored {target} from an interrupted re-save")
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.startswith(f".{LATEST}.") and entry.name.endswith(".tmp") and entry.is_file():
            entry.unlink()
    return notes


def is_complete(step_dir: Path) -> bool:
    """A step folder with its model.json, state.pt and every network's weights."""
    try:
        model = json.loads((step_dir / MODEL_JSON).read_text(encoding="utf-8"))
        names = list(model["networks"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return (step_dir / STATE_FILE).is_file() and all((step_dir / f"{n}.safetensors").is_file() for n in names)


def step_folders(run_dir: str | Path) -> list[Path]:
    """The run's ``step_*`` folders (real folders inside ``checkpoints``, no links), oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _STEP_NAME.match(p.name) and p.is_dir() and not p.is_symlink()]
    return sorted(found, key=lambda p: int(p.name.split("_")[1]))


def find_resume_checkpoint(run_dir: str | Path) -> tuple[Path | None, str | None]:
    """The checkpoint ``--resume`` continues from, and a note when ``latest`` was not usable.

    ``latest`` when it names a complete checkpoint of this run; else (pointer deleted, or naming
    an unfinished step) the newest complete ``step_*`` folder, with a note saying so. A pointer
    naming anything outside the run's ``checkpoints`` folder is refused. ``(None, None)`` when the
    run has no checkpoint at all; a run whose step folders are all incomplete is refused (resuming
    from step 0 would overwrite them).
    """
    root = Path(run_dir) / CHECKPOINTS
    pointer = root / LATEST
    note = None
    if pointer.is_file():
        ckpt = latest_checkpoint(run_dir, strict=False)
        if ckpt is not None and is_complete(ckpt):
            return ckpt, None
        note = f"{pointer} does not name a complete checkpoint"
    elif pointer.exists() or pointer.is_symlink():
        raise CheckpointError(f"{pointer}: not a regular file; refusing to resume")
    steps = step_folders(run_dir)
    complete = [p for p in steps if is_complete(p)]
    if complete:
        why = note or f"{pointer} is missing"
        return complete[-1], f"{why}; resuming from the newest complete checkpoint {complete[-1].name}"
    if steps:
        raise CheckpointError(
            f"{root}: {len(steps)} checkpoint folder(s) but none complete and no valid {LATEST}; "
            "refusing to resume (it would restart at step 0 over them); move them away to start again"
        )
    if note:
        raise CheckpointError(f"{note} and the run has no other checkpoint; refusing to resume")
    return None, None


def class_path(module: nn.Module) -> str:
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    networks: dict[str, nn.Module],
    kwargs: dict[str, dict[str, Any]],
    trainable: set[str] | frozenset[str],
    config: dict[str, Any],
    state: dict[str, Any],
    task: str,
    keep: int | None = None,
) -> Path:
    """Write ``RUN_DIR/checkpoints/step_XXXXXXX`` atomically and point ``latest`` at it.

    ``networks`` are the plain modules (unwrap DDP first); ``kwargs`` their complete constructor
    arguments; ``state`` the resumable training state (optimizer state dicts, RNG states, ...).
    ``keep`` = number of newest checkpoints to keep (older ones are deleted after the new one is
    complete).
    """
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_dirname(step)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
    _mkdir_umask(tmp)
    try:
        for name, module in networks.items():
            tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}
            _write_bytes(tmp / f"{name}.safetensors",
                         safetensors_canonical(tensors, {"network": name, "class": class_path(module)}),
                         final / f"{name}.safetensors")  # fmt: skip
        model = {
            "format_version": FORMAT_VERSION,
            "task": task,
            "step": step,
            "networks": {
                name: {"class": class_path(module), "kwargs": kwargs[name], "trainable": name in trainable}
                for name, module in networks.items()
            },
        }
        (tmp / MODEL_JSON).write_text(json.dumps(model, indent=2) + "\n", encoding="utf-8")
        (tmp / CONFIG_JSON).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        (tmp / CONFIG_YAML).write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        # serialised in memory, then written: a full disk is then an OSError(ENOSPC) naming the file,
        # not torch's "enforce fail at inline_container.cc"
        buf = io.BytesIO()
        torch.save(state, buf)
        _write_bytes(tmp / STATE_FILE, buf.getvalue(), final / STATE_FILE)
        for f in tmp.iterdir():
            _fsync_file(f)
        _fsync_dir(tmp)
        if final.exists():  # re-saving the same step (e.g. after a resume): swap atomically-ish
            trash = Path(tempfile.mkdtemp(prefix=f".old-{final.name}-", dir=root))
            os.replace(final, trash / final.name)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    atomic_write_text(root / LATEST, final.name + "\n")
    if keep is not None:
        steps = sorted(p for p in root.glob("step_*") if p.is_dir())
        for old in steps[:-keep]:
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: str | Path, strict: bool = True) -> Path | None:
    """The checkpoint a run's ``latest`` names, or None when the run has none yet.

    The pointer must name a ``step_XXXXXXX`` folder inside the run's own ``checkpoints`` folder
    (no path, no link out of it): anything else is refused (a :class:`CheckpointError`), never
    followed. ``strict=False`` returns None instead when it names no complete checkpoint.
    """
    root = Path(run_dir) / CHECKPOINTS
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{pointer}: unreadable ({err})") from None
    if not _STEP_NAME.match(name):
        raise CheckpointError(f"{pointer}: points at {name[:80]!r}, not a step folder of this run; refusing to follow it")
    path = root / name
    if path.is_symlink() or (path.exists() and path.resolve().parent != root.resolve()):
        raise CheckpointError(f"{pointer}: {name} is a link out of {root}; refusing to follow it")
    if not (path / MODEL_JSON).is_file():
        if not strict:
            return None
        raise CheckpointError(f"{pointer}: points at {name!r}, which is not a complete checkpoint")
    return path


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder from a step folder, a run folder, or a run's ``checkpoints`` folder."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint does not exist")
    if (path / MODEL_JSON).is_file():
        return path
    for run in (path, path.parent) if path.name == CHECKPOINTS else (path,):
        if (run / CHECKPOINTS / LATEST).is_file():
            return latest_checkpoint(run)  # type: ignore[return-value]
    if path.is_file():
        raise CheckpointError(f"{path}: expected a checkpoint folder (with {MODEL_JSON}) or a run folder, got a file")
    raise CheckpointError(f"{path}: not a checkpoint (no {MODEL_JSON}) and not a run folder (no {CHECKPOINTS}/{LATEST})")


def read_model_json(ckpt: str | Path) -> dict[str, Any]:
    path = Path(ckpt) / MODEL_JSON
    try:
        model = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: unreadable ({err})") from None
    if not isinstance(model, dict) or not isinstance(model.get("networks"), dict):
        raise CheckpointError(f"{path}: malformed (no 'networks' mapping)")
    if model.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unsupported format_version {model.get('format_version')!r} (expected {FORMAT_VERSION})")
    for name, spec in model["networks"].items():
        if not (isinstance(spec, dict) and isinstance(spec.get("class"), str) and isinstance(spec.get("kwargs"), dict)):
            raise CheckpointError(f"{path}: network {name!r} needs 'class' and 'kwargs'")
    return model


def read_checkpoint_config(ckpt: str | Path) -> dict[str, Any]:
    path = Path(ckpt) / CONFIG_JSON
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: unreadable ({err})") from None


def load_state(ckpt: str | Path) -> dict[str, Any]:
    """The training state (``weights_only=True``: no arbitrary code runs while loading it)."""
    path = Path(ckpt) / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for corrupt files
        raise CheckpointError(f"{path}: unreadable training state ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    if not isinstance(state, dict) or "step" not in state:
        raise CheckpointError(f"{path}: malformed training state (no 'step')")
    return state


def _import_network_class(dotted: str, where: Path) -> type[nn.Module]:
    module_name, _, attr = dotted.rpartition(".")
    if not module_name.startswith(ALLOWED_MODULE_PREFIXES):
        raise CheckpointError(f"{where}: refusing to build class {dotted!r} (only posetransfer networks are allowed)")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise CheckpointError(f"{where}: unknown network class {dotted!r} ({err})") from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise CheckpointError(f"{where}: {dotted!r} is not a network class")
    return cls


def build_network(spec: dict[str, Any], where: Path) -> nn.Module:
    """Construct a network from a model.json entry (class + kwargs), with random weights."""
    cls = _import_network_class(spec["class"], where)
    try:
        return cls(**spec["kwargs"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{where}: cannot build {spec['class']} from its saved kwargs ({err})") from None


def load_weights(module: nn.Module, path: str | Path) -> None:
    """Load a safetensors file into ``module`` strictly (every key, every shape)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing weights file")
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: unreadable weights ({err})") from None
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        detail = " ".join(str(err).split())[:400]
        raise CheckpointError(f"{path}: weights do not match {type(module).__name__} ({detail})") from None


def load_networks(ckpt: str | Path, names: list[str] | None = None) -> tuple[dict[str, nn.Module], dict[str, Any]]:
    """Rebuild the networks of a checkpoint (on the CPU) and return them with the model.json."""
    ckpt = resolve_checkpoint(ckpt)
    model = read_model_json(ckpt)
    nets: dict[str, nn.Module] = {}
    for name, spec in model["networks"].items():
        if names is not None and name not in names:
            continue
        module = build_network(spec, ckpt / MODEL_JSON)
        load_weights(module, ckpt / f"{name}.safetensors")
        nets[name] = module
    if names is not None:
        missing = [n for n in names if n not in nets]
        if missing:
            raise CheckpointError(f"{ckpt / MODEL_JSON}: no network {', '.join(map(repr, missing))} (has {', '.join(model['networks'])})")
    return nets, model


def load_network_from(path: str | Path, name: str, expected_class: type | None = None) -> nn.Module:
    """One network of a checkpoint (``init_from``), checked to be of ``expected_class``."""
    nets, _ = load_networks(path, [name])
    module = nets[name]
    if expected_class is not None and not isinstance(module, expected_class):
        raise CheckpointError(
            f"{resolve_checkpoint(path) / MODEL_JSON}: network {name!r} is a {type(module).__name__}, expected {expected_class.__name__}"
        )
    return module
