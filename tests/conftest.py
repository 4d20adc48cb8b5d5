"""Shared fixtures: paths to the repo's example photos and to ../shared (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

import jaxvis

jaxvis.configure_cpu()  # the speed flags the CLI and scripts use, before any test starts JAX's backend

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "images"
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "testdata").is_dir():
        pytest.skip(f"../shared (external reference data) is absent at {SHARED}: a user's clone has none")
    return SHARED


@pytest.fixture(scope="session")
def squeezenet():
    import jaxvis
    return jaxvis.load_model("squeezenet")


@pytest.fixture(scope="session")
def alexnet():
    import jaxvis
    return jaxvis.load_model("alexnet", weights=REPO / "weights" / "alexnet.h5")
