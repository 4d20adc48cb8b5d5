"""`jaxvis.configure_cpu()`: XLA:CPU flags that make jaxvis's networks faster on CPU.

`import jaxvis` changes no global state. XLA reads `XLA_FLAGS` once, when JAX first starts
a backend, so call `jaxvis.configure_cpu()` before any JAX computation (the `jaxvis`
command and the scripts in scripts/ do, first thing). It only adds flags that `XLA_FLAGS`
does not already name (the user's value wins; e.g.
`XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=individual_convolution` restores XLA's
default convolutions) and does nothing when `JAXVIS_XLA_DEFAULTS=0`. Calling it again is
harmless (idempotent). Called after JAX started its CPU backend, it is too late: it warns
once and changes nothing. The flags only concern XLA:CPU; GPU and TPU compilation ignores
them. Child processes inherit the environment, flags included.

Flags (measurements in docs/benchmarks.md):

* `--xla_cpu_experimental_ynn_fusion_type=` (empty: no YNNPACK fusions): XLA:CPU then
  runs convolutions with its Eigen kernels instead of YNNPACK. The forward + image
  gradient of AlexNet to conv5 (batch 30, 224×224) took 0.57 s instead of 0.77 s on a
  2-core AMD EPYC (AVX2), SqueezeNet to fire9-concat 0.71 s instead of 1.08 s.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import MutableMapping

DEFAULT_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=",)
ENV_SWITCH = "JAXVIS_XLA_DEFAULTS"


def _cpu_backend_started() -> bool:
    # JAX has no public "is a backend initialised?" query (jax.extend.backend.backends() would start one), so
    # peek at the already-imported bridge module without importing anything; absent → not started.
    bridge = sys.modules.get("jax._src.xla_bridge")
    backends = getattr(bridge, "_backends", None) or {}
    return "cpu" in backends


def configure_cpu(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Add jaxvis's XLA:CPU speed flags to `XLA_FLAGS`, unless already named there.

    Call before JAX starts a backend (before the first JAX computation). Idempotent.

    Args:
        environ: the environment to change (default `os.environ`).

    Returns:
        The flags added (empty when none were missing, `JAXVIS_XLA_DEFAULTS=0`, or JAX had
        already started its CPU backend — then with a warning).
    """
    env = os.environ if environ is None else environ
    if env.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return []
    current = env.get("XLA_FLAGS", "")
    named = {tok.split("=", 1)[0] for tok in current.split()}
    missing = [f for f in DEFAULT_FLAGS if f.split("=", 1)[0] not in named]
    if not missing:
        return []
    if _cpu_backend_started():
        warnings.warn(
            f"jaxvis.configure_cpu: JAX's CPU backend has already started, so {' '.join(missing)} cannot take "
            f"effect (jaxvis's convolutions run 1.3-1.5× faster with it). Call jaxvis.configure_cpu() before "
            f"running JAX code, set the flag in XLA_FLAGS yourself, or set {ENV_SWITCH}=0 to silence this.",
            stacklevel=2)
        return []
    env["XLA_FLAGS"] = " ".join([current, *missing]).strip()
    return missing
