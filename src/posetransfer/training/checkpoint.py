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
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from posetransfer.errors import CheckpointError
from posetransfer.utils.io import atomic_write_text

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


def step_dirname(step: int) -> str:
    return f"step_{step:07d}"


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
    try:
        for name, module in networks.items():
            tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}
            save_file(tensors, str(tmp / f"{name}.safetensors"), metadata={"network": name, "class": class_path(module)})
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
        torch.save(state, tmp / STATE_FILE)
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


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None when the run has none yet."""
    root = Path(run_dir) / CHECKPOINTS
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    name = pointer.read_text(encoding="utf-8").strip()
    path = root / name
    if not name or not (path / MODEL_JSON).is_file():
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
