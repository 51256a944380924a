"""Typed training configs: YAML files with inheritance, ``--set`` overrides, unknown keys rejected.

A config file is YAML with these top-level sections (all validated by pydantic models with
``extra="forbid"``, so a misspelt key is a :class:`~posetransfer.errors.ConfigError` that names
the key *and the file it came from*)::

    base: ../_base.yaml          # optional: a file (or list of files) this one overrides
    description: "..."           # free text, shown in logs
    task: pg2_stage1             # which task (generator/discriminator steps), see training.tasks
    model:                       # one entry per network of the task: its constructor kwargs
      g1: {base_channels: 128, num_blocks: 5, image_size: [128, 64], pose_embedding: concat}
    init_from:                   # optional: network -> checkpoint (run dir or step dir) to load it from
      g1: runs/pg2/market/g1_posemaskloss
    loss: {...}                  # the task's loss options (schema owned by the task)
    data: {...}                  # the task's data options (schema owned by the task)
    optim: {lr: 2.0e-5, betas: [0.5, 0.999]}   # optional lr_schedule: {every: 50, unit: epochs, factor: 0.5}
    train: {batch_size: 16, iterations: 22000, precision: fp32, ...}
    paper:                       # optional: the published numbers of the table row (PaperRow)
      {title: ..., table: Table 1, row: G1-poseMaskLoss, dataset: Market-1501, metrics: {ssim_pg2: 0.340}}

Inheritance: ``base`` paths are relative to the file that names them; the bases are merged in
order, then the file itself is merged on top (mappings merge key by key, anything else replaces).
Overrides ``--set train.batch_size=4`` are applied last; the value is parsed as YAML
(``4`` -> int, ``[1, 2]`` -> list, ``null`` -> None, ``bf16`` -> str).

Paths *inside* a config (data sets, ``init_from`` checkpoints) are relative to the current
working directory, not to the config file: the shipped recipes name conventional locations such
as ``data/market`` and are meant to be run from the repository root.

Shared arguments live in ``data``: ``data.image_size`` (the model's frame) and ``data.max_sources``
(the most source photos) are written into the constructor arguments of every network that takes
``image_size`` / ``max_sources``, so ``--set data.image_size=[256,176]`` is the one switch
(:data:`SHARED_DATA_ARGUMENTS`). A network that states its own value keeps it (configs written
before, explicit experiments); all networks that take an image size must then agree, and a
config with network sizes but no ``data.image_size`` gets theirs. A resolved config (a checkpoint's
``config.json``) states the size in every network, so switch sizes in the YAML recipe; the trainer
rejects a network whose size differs from ``data.image_size`` (``Task.check_image_size``).

The ``model`` entries are checked against the network classes' signatures when the config is
loaded (an unknown constructor argument is an error naming it), and the complete keyword set
(config values plus the class defaults) is what checkpoints save in ``model.json``.
"""

from __future__ import annotations

import copy
import inspect
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)

from posetransfer.errors import ConfigError

__all__ = [
    "StrictModel",
    "DataSource",
    "PoseInputConfig",
    "SHARED_DATA_ARGUMENTS",
    "LRSchedule",
    "OptimConfig",
    "TrainConfig",
    "PaperRow",
    "Config",
    "load_config",
    "config_from_dict",
    "apply_overrides",
    "parse_override",
    "dump_config",
]


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class DataSource(StrictModel):
    """A data set folder and, for layouts that hold several splits (Market, DeepFashion), the split.

    In YAML either ``{path: data/market, split: train}`` or just the path string.
    """

    path: str
    split: Literal["train", "test"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, (str, Path)):
            return {"path": str(value)}
        return value


class PoseInputConfig(StrictModel):
    """Pose-encoding options every task's data section shares (read by ``Task.input_spec``)."""

    #: stick-figure line thickness in pixels (null: the encoding's size-dependent default)
    stick_thickness: PositiveInt | None = None
    #: keyword arguments of ``pose.encodings.pose_mask`` (e.g. radius, closing); empty = its defaults
    mask: dict[str, Any] = Field(default_factory=dict)

    @field_validator("mask")
    @classmethod
    def _mask_arguments(cls, value: dict[str, Any]) -> dict[str, Any]:
        from posetransfer.data.inputs import InputSpec

        try:
            InputSpec(mask=value)
        except ConfigError as err:
            raise ValueError(str(err)) from None
        return value


#: data-section keys written into the networks' constructor arguments of the same name
SHARED_DATA_ARGUMENTS = ("image_size", "max_sources")


class LRSchedule(StrictModel):
    """Step decay: the learning rate is multiplied by ``factor`` every ``every`` epochs (or iterations).

    The multi-view paper (sec. 4.2): "initial learning rate 1e-4, decay 0.5 every 50
    epochs" = ``{every: 50, unit: epochs, factor: 0.5}``. The rate at step ``s`` is a pure function
    of ``s`` (``lr * factor ** (n // every)``, ``n`` = ``s`` or its epoch), so a resumed run follows
    the same schedule without saving any scheduler state.
    """

    every: PositiveInt
    unit: Literal["epochs", "iterations"] = "epochs"
    factor: float = Field(default=0.5, gt=0.0, le=1.0)

    def scale(self, step: int, batches_per_epoch: int) -> float:
        """The factor applied to the initial rates at global step ``step`` (0-based)."""
        n = step // max(1, batches_per_epoch) if self.unit == "epochs" else step
        return self.factor ** (n // self.every)


class OptimConfig(StrictModel):
    """Adam settings, shared by the generator and discriminator optimizers.

    PG2 sec. 4.1: Adam with beta1 = 0.5, beta2 = 0.999 and initial learning rate 2e-5 for every
    network and both data sets.
    """

    lr: PositiveFloat = 2e-5
    betas: tuple[float, float] = (0.5, 0.999)

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        # Adam's running-average coefficients: each in [0, 1) (torch.optim.Adam's own check, made
        # here so a bad --set optim.betas is a config error naming the key, not a trace at step 0)
        if not all(0.0 <= b < 1.0 for b in value):
            raise ValueError(f"each beta must be in [0, 1), got {list(value)}")
        return value

    weight_decay: float = Field(default=0.0, ge=0.0)
    #: learning rate of the discriminator optimizer; ``null`` = same as ``lr``
    dis_lr: PositiveFloat | None = None
    #: optional step decay of both learning rates; ``null`` = constant rates (PG2)
    lr_schedule: LRSchedule | None = None


class TrainConfig(StrictModel):
    """The mechanics of a run: length, batch, intervals, numerics, seeds."""

    #: global batch size (split evenly across DDP ranks; PG2: 16 on Market, 8 on DeepFashion)
    batch_size: PositiveInt
    #: number of optimizer steps (PG2 Market: 22k stage I, 14k stage II; DeepFashion 30k + 20k)
    iterations: PositiveInt
    checkpoint_every: PositiveInt = 1000
    log_every: PositiveInt = 50
    #: image grid + held-out losses every this many steps
    sample_every: PositiveInt = 500
    #: number of test batches averaged for the held-out losses at each sample step
    eval_batches: NonNegativeInt = 4
    #: pairs shown in the logged image grids
    sample_count: PositiveInt = 8
    #: keep only the newest K checkpoints (``null`` keeps all)
    keep_checkpoints: PositiveInt | None = None
    #: ``auto`` = bf16 autocast on CUDA and on CPUs with native bf16 arithmetic, fp32 elsewhere
    #: (on an AVX2 CPU without it a bf16 step is several times slower: docs/benchmarks.md)
    precision: Literal["fp32", "bf16", "auto"] = "fp32"
    channels_last: bool = False
    num_workers: NonNegativeInt = 2
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: where batches are made: "workers" (data-loader processes, any data set size) or "device"
    #: (every image decoded once and held as uint8, encodings and augmentation computed for the
    #: whole batch on the training device: :mod:`posetransfer.data.device` for the PG2 pair tasks,
    #: :mod:`posetransfer.data.device_groups` for the multi-view and pix2pix identity groups)
    data_path: Literal["workers", "device"] = "workers"
    #: micro-batches per optimizer step (gradients accumulated; batch_size must divide evenly)
    grad_accum: PositiveInt = 1
    #: ``torch.compile`` the trainable networks (the call path only; checkpoints hold plain weights)
    compile: bool = False
    #: the ``torch.compile`` backend ("inductor"; "eager" only checks the wiring)
    compile_backend: str = "inductor"


class PaperRow(StrictModel):
    """The published numbers of the table row a recipe reproduces (``evaluate`` and ``reproduce``
    show them beside ours). Nothing in training reads it.

    ``metrics`` maps *our* metric names (``posetransfer.evaluation.metrics``) to the published
    values: each published column goes under the name of the metric that computes it as that paper
    did (PG2's SSIM is ``ssim_pg2``, its IS ``is``, mask-SSIM ``mask_ssim_pg2``, mask-IS
    ``mask_is``). The names are checked against the metric list by ``evaluate`` and ``reproduce``
    (this layer does not know the metrics).
    """

    #: the paper, by title
    title: str
    #: e.g. "Table 1"
    table: str
    #: the row label as printed in the table, e.g. "G1-poseMaskLoss"
    row: str
    #: the data set column group, e.g. "Market-1501"
    dataset: str
    #: our metric name -> the published value
    metrics: dict[str, float] = Field(min_length=1)
    #: free text: what is uncertain about the mapping (shown under the table)
    note: str = ""


class Config(StrictModel):
    """A complete, validated experiment config (see the module docstring for the file format).

    ``loss`` and ``data`` are instances of the task's own schemas (``Task.LossConfig`` and
    ``Task.DataConfig``), converted from the YAML mappings when the config is validated.
    """

    description: str = ""
    task: str
    model: dict[str, dict[str, Any]]
    init_from: dict[str, str] = Field(default_factory=dict)
    loss: SerializeAsAny[BaseModel]
    data: SerializeAsAny[BaseModel]
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig
    #: the published numbers of the table row this recipe reproduces (``null``: none)
    paper: PaperRow | None = None

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        from posetransfer.training.tasks import get_task_class

        try:
            get_task_class(value)
        except ConfigError as err:
            raise ValueError(str(err)) from None
        return value

    @model_validator(mode="before")
    @classmethod
    def _task_sections(cls, raw: Any) -> Any:
        """Validate ``loss``/``data`` with the task's schemas and ``model`` with the class signatures.

        Errors are raised as :class:`_SectionErrors` (not a ``ValueError``, so pydantic lets it
        through unchanged) carrying full key paths, which :func:`config_from_dict` turns into a
        ConfigError naming the file each key came from.
        """
        if not isinstance(raw, dict) or not isinstance(raw.get("task"), str):
            return raw
        from posetransfer.training.tasks import get_task_class

        try:
            task_cls = get_task_class(raw["task"])
        except ConfigError:
            return raw  # reported by the field validator
        raw = dict(raw)
        errors: list[tuple[tuple[Any, ...], str]] = _share_data_arguments(task_cls, raw)
        for section, schema in (("loss", task_cls.LossConfig), ("data", task_cls.DataConfig)):
            value = raw.get(section, {})
            if isinstance(value, BaseModel):
                value = value.model_dump()
            try:
                raw[section] = schema.model_validate(value if value is not None else {})
            except ValidationError as err:
                errors += [((section, *e["loc"]), _message(e)) for e in err.errors()]
        model = raw.get("model")
        if isinstance(model, dict):
            errors += _check_networks(task_cls, model, raw.get("init_from") or {})
        if errors:
            raise _SectionErrors(errors)
        return raw

    def network_kwargs(self, name: str) -> dict[str, Any]:
        """The full constructor kwargs of network ``name``: the config values plus class defaults."""
        from posetransfer.training.tasks import get_task_class

        cls = get_task_class(self.task).network_class(name)
        return complete_kwargs(cls, self.model[name])


class _SectionErrors(Exception):
    """Validation errors with their key paths, raised through pydantic (not a ValueError)."""

    def __init__(self, errors: list[tuple[tuple[Any, ...], str]]):
        super().__init__("; ".join(f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in errors))
        self.errors = errors


def complete_kwargs(cls: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` plus the defaults of ``cls.__init__`` for the arguments not given.

    Saved in ``model.json`` so a checkpoint rebuilds the same network even if a default changes.
    """
    sig = inspect.signature(cls)
    bound = sig.bind_partial(**kwargs)
    bound.apply_defaults()
    out = dict(bound.arguments)
    for name, p in sig.parameters.items():  # **kwargs catch-alls are flattened back
        if p.kind is inspect.Parameter.VAR_KEYWORD and name in out:
            out.update(out.pop(name))
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def _takes(cls: type, argument: str) -> bool:
    return argument in inspect.signature(cls).parameters


def _share_data_arguments(task_cls: Any, raw: dict[str, Any]) -> list:
    """Write ``data.<arg>`` into the kwargs of every network taking ``<arg>`` (module docstring).

    ``raw`` is changed in place (its ``model`` and ``data`` mappings are copied first).
    """
    model, data = raw.get("model"), raw.get("data", {})
    if isinstance(data, BaseModel):
        data = data.model_dump()
    if not isinstance(model, dict) or not isinstance(data, dict):
        return []  # reported by the section validation
    model = {k: (dict(v) if isinstance(v, dict) else ({} if v is None else v)) for k, v in model.items()}
    data = dict(data)
    fields = task_cls.DataConfig.model_fields
    errors: list[tuple[tuple[Any, ...], str]] = []
    for arg in SHARED_DATA_ARGUMENTS:
        if arg not in fields:
            continue
        takers = [
            n for n in task_cls.config_networks()
            if isinstance(model.get(n), dict) and _takes(task_cls.network_class(n), arg)
        ]  # fmt: skip
        value = data.get(arg, None if fields[arg].is_required() else fields[arg].default)
        if value is None and arg == "image_size":  # derive it from the networks that state one
            stated = [model[n][arg] for n in takers if arg in model[n]]
            value = stated[0] if stated else None
            if value is not None:
                data[arg] = value
        if value is None:
            continue
        for n in takers:  # lists, as YAML and JSON give them (a validated config holds tuples)
            model[n].setdefault(arg, list(value) if isinstance(value, tuple) else copy.deepcopy(value))
        if arg == "image_size":
            sizes = {n: list(model[n][arg]) for n in takers if isinstance(model[n][arg], (list, tuple))}
            if len({tuple(v) for v in sizes.values()}) > 1:
                said = ", ".join(f"model.{n}.image_size={v}" for n, v in sizes.items())
                errors.append((("model",), f"the networks disagree on the image size ({said}); set data.image_size only"))
    raw["model"], raw["data"] = model, data
    return errors


def _check_networks(task_cls: Any, model: dict[str, Any], init_from: dict[str, Any]) -> list:
    """Every network the task builds from config is present and its kwargs fit its constructor."""
    errors: list[tuple[tuple[Any, ...], str]] = []
    expected = task_cls.config_networks()
    for name in model:
        if name not in expected:
            errors.append((("model", name), f"task {task_cls.name!r} has no network {name!r} (networks: {', '.join(expected) or 'none'})"))
    for name in expected:
        if name not in model:
            errors.append((("model", name), "missing: the task needs the constructor arguments of this network"))
            continue
        kwargs = model[name]
        if kwargs is None:
            kwargs = {}
        if not isinstance(kwargs, dict):
            errors.append((("model", name), "must be a mapping of constructor arguments"))
            continue
        cls = task_cls.network_class(name)
        params = inspect.signature(cls).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        for key in kwargs:
            if key not in params and not takes_any:
                allowed = ", ".join(k for k, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD)
                errors.append((("model", name, key), f"not an argument of {cls.__name__} (arguments: {allowed})"))
                continue
        if not any(loc[:2] == ("model", name) for loc, _ in errors):
            errors += _try_build(cls, name, kwargs)
    for name in task_cls.required_init:
        if name not in init_from:
            errors.append((("init_from", name), f"missing: task {task_cls.name!r} loads network {name!r} from a checkpoint"))
    return errors


def _try_build(cls: type, name: str, kwargs: dict[str, Any]) -> list:
    """Build the network on the ``meta`` device (no memory, no weights) to run its own argument
    checks (:mod:`posetransfer.models.validation`) while the config is validated: a bad value is
    reported with its key and file before any run folder or data is touched."""
    import torch

    try:
        with torch.device("meta"):
            cls(**kwargs)
    except (ConfigError, ValueError, TypeError) as err:
        text = " ".join(str(err).split())
        key = text.split(" ")[0].rstrip(":")
        loc = ("model", name, key) if key in kwargs else ("model", name)
        return [(loc, f"{text} ({cls.__name__})")]
    except Exception:  # noqa: BLE001 - something the meta device cannot do: the real build will tell
        return []
    return []


def _message(err: dict[str, Any]) -> str:
    if err.get("type") == "extra_forbidden":
        return "unknown key"
    if err.get("type") == "missing":
        return "missing required key"
    return str(err.get("msg"))


# ----------------------------------------------------------------------------------------------
# Loading: YAML files with bases, overrides, origin tracking for error messages.


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML ({err})".replace("\n", " ")) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: unreadable config file ({err})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a YAML mapping, got {type(data).__name__}")
    return data


def _merge(dst: dict, dst_origins: dict, src: dict, src_origins: dict, prefix: tuple = ()) -> None:
    """Deep-merge ``src`` into ``dst``: mappings merge key by key, anything else replaces.

    ``*_origins`` map key paths to the file that set them, so an error can name the right file.
    """
    for key, value in src.items():
        path = (*prefix, key)
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            dst_origins.setdefault(path, src_origins.get(path, "?"))
            _merge(dst[key], dst_origins, value, src_origins, path)
            continue
        dst[key] = copy.deepcopy(value)
        for p in [p for p in dst_origins if p[: len(path)] == path]:
            del dst_origins[p]
        for p, o in src_origins.items():
            if p[: len(path)] == path:
                dst_origins[p] = o


def _record(value: Any, origins: dict, source: str, path: tuple) -> None:
    origins[path] = source
    if isinstance(value, dict):
        for k, v in value.items():
            _record(v, origins, source, (*path, k))


def _load_tree(path: Path, stack: tuple[Path, ...] = ()) -> tuple[dict, dict]:
    path = Path(os.path.normpath(path if path.is_absolute() else Path.cwd() / path))
    if path in stack:
        chain = " -> ".join(str(p) for p in (*stack, path))
        raise ConfigError(f"{path}: circular 'base' chain ({chain})")
    data = _read_yaml(path)
    merged: dict[str, Any] = {}
    origins: dict[tuple, str] = {}
    bases = data.pop("base", None)
    if bases is not None:
        if isinstance(bases, str):
            bases = [bases]
        if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
            raise ConfigError(f"{path}: 'base' must be a path or a list of paths")
        for base in bases:
            base_path = path.parent / base
            if not base_path.is_file():
                raise ConfigError(f"{path}: base config {base} does not exist ({base_path})")
            sub, sub_origins = _load_tree(base_path, (*stack, path))
            _merge(merged, origins, sub, sub_origins)
    own: dict[tuple, str] = {}
    for key, value in data.items():
        _record(value, own, str(_display(path)), (key,))
    _merge(merged, origins, data, own)
    return merged, origins


def _get(tree: dict, path: tuple, default: Any = KeyError) -> Any:
    node: Any = tree
    for key in path:
        if not isinstance(node, dict) or key not in node:
            if default is KeyError:
                raise KeyError(path)
            return default
        node = node[key]
    return node


def _set(tree: dict, path: tuple, value: Any) -> None:
    node = tree
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value


def _display(path: Path) -> Path:
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """``"train.batch_size=4"`` -> ``(("train", "batch_size"), 4)``; the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text}: expected key.sub=value")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text}: invalid key {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {text}: value is not valid YAML ({err})".replace("\n", " ")) from None
    return tuple(key.split(".")), value


def apply_overrides(raw: dict, overrides: list[str] | None, origins: dict | None = None) -> dict:
    """Apply ``key.sub=value`` strings to a raw config mapping (a new mapping is returned)."""
    out = copy.deepcopy(raw)
    for text in overrides or []:
        path, value = parse_override(text)
        _set(out, path, value)
        if origins is not None:
            for p in [p for p in origins if p[: len(path)] == path]:
                del origins[p]
            _record(value, origins, f"--set {text}", path)
            for n in range(1, len(path)):  # mappings the override created
                origins.setdefault(path[:n], f"--set {text}")
    return out


def config_from_dict(raw: dict, source: str = "<config>", origins: dict | None = None) -> Config:
    """Validate a raw mapping into a :class:`Config`; errors name the key and its source file."""
    origins = origins or {}

    def where(loc: tuple) -> str:
        for n in range(len(loc), 0, -1):
            if tuple(loc[:n]) in origins:
                return origins[tuple(loc[:n])]
        return source

    try:
        return Config.model_validate(raw)
    except _SectionErrors as err:
        items = err.errors
    except ValidationError as err:
        items = [(tuple(e["loc"]), _message(e)) for e in err.errors()]
    lines = [f"{where(loc)}: {'.'.join(map(str, loc)) or '(top level)'}: {msg}" for loc, msg in items]
    raise ConfigError("; ".join(lines))


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a config file (with its ``base`` chain), apply ``--set`` overrides and validate it."""
    path = Path(path)
    raw, origins = _load_tree(path)
    raw = apply_overrides(raw, overrides, origins)
    return config_from_dict(raw, source=str(_display(path if path.is_absolute() else Path.cwd() / path)), origins=origins)


def dump_config(config: Config) -> dict[str, Any]:
    """The resolved config as plain JSON/YAML-able data (what checkpoints store); no ``paper`` key
    when the config has none (so runs started before that section existed resume without a warning)."""
    out = config.model_dump(mode="json")
    if out.get("paper") is None:
        out.pop("paper", None)
    return out
