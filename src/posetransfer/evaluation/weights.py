"""The metrics' pretrained weights: the one registry is :mod:`posetransfer.utils.weights`; these
names stay importable from here for the evaluation code and its users."""

from __future__ import annotations

from posetransfer.utils.weights import (  # noqa: F401 - re-exported
    ENV_DIR,
    REGISTRY,
    WeightsError,
    WeightSpec,
    cache_dir,
    find_weights,
    load_state_dict,
    resolve_weights,
)
