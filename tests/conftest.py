"""Shared fixtures: paths to the repo's example photos and to ../shared (skipped when absent)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

import jax


def _compile_fast() -> None:
    """Tests compile at LLVM's -O0 (XLA's backend optimisation level 0), unless XLA_FLAGS names the level.

    The default suite is dominated by XLA:CPU compiling small programs that then run for milliseconds:
    at level 0 the same files take 35 % less CPU time (engine, attribution, recipes, VGG16: 267 → 174 s;
    one engine test 44 → 12 s). The level changes how LLVM optimises the generated loops, not what they
    compute; convolutions and matrix products are library kernels either way. To test the code exactly
    as users compile it: `XLA_FLAGS=--xla_backend_optimization_level=2 python -m pytest`.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "--xla_backend_optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_optimization_level=0".strip()


_compile_fast()


def _share_compilations() -> None:
    """One XLA compilation cache for the whole test session, on disk, in a fresh folder.

    Most of the suite's time is XLA compiling: many tests build their own network object (a fresh jit
    cache) around the same computation, and subprocess tests recompile what the parent compiled. JAX's
    persistent cache is keyed by the compiled program, not the Python function, so those recompiles
    become disk reads. A fresh folder per session: nothing carries over between runs, so a test cannot
    pass because of another run's state. Set through the environment so subprocesses share it; a
    JAX_COMPILATION_CACHE_DIR already set by the caller is respected.
    """
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    folder = tempfile.mkdtemp(prefix="jaxvis-tests-xla-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    settings = dict(jax_compilation_cache_dir=folder, jax_persistent_cache_min_compile_time_secs=0,
                    jax_persistent_cache_min_entry_size_bytes=0)
    for name, value in settings.items():
        jax.config.update(name, value)
        os.environ[name.upper()] = str(value)


_share_compilations()

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
