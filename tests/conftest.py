"""Shared test fixtures: the real data in ../shared/data, small thread counts for the 2-core CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("POSETRANSFER_SHARED_DATA", REPO.parent / "shared" / "data"))
SHARED_PAPERS = Path(os.environ.get("POSETRANSFER_SHARED_PAPERS", REPO.parent / "shared" / "papers"))

# One intra-op thread: the tests' networks are tiny, results stay deterministic, and two threads
# on a 2-core machine shared with anything else wait for each other (measured: a tiny training
# step took 4.8 s with 2 threads under load against 0.06 s with 1; docs/benchmarks.md).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared data folder {SHARED_DATA} is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def papers_dir() -> Path:
    """The papers' text (PG2 and the multi-view paper, as extracted from their PDFs)."""
    if not SHARED_PAPERS.is_dir():
        pytest.skip(f"the shared papers folder {SHARED_PAPERS} is not present")
    return SHARED_PAPERS


@pytest.fixture(scope="session")
def annotations_dir(shared_data) -> Path:
    return shared_data / "annotations"


@pytest.fixture(scope="session")
def mini_market(shared_data) -> Path:
    return shared_data / "real-mini" / "mini_market_128x64"


@pytest.fixture(scope="session")
def mini_fashion(shared_data) -> Path:
    return shared_data / "real-mini" / "mini_fashion_256x176"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` need a CUDA device: skipped without one (scripts/device_check.sh runs them)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
