"""XLA flags jaxvis sets by default, because they make its networks faster on CPU.

XLA reads `XLA_FLAGS` once, when JAX first starts a backend, so `import jaxvis` adds
them to the environment then (this module runs first in `jaxvis/__init__.py`), unless:

* `XLA_FLAGS` already names the flag: the user's value wins, e.g.
  `XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=individual_convolution` restores
  XLA's default convolutions;
* `JAXVIS_XLA_DEFAULTS=0`: jaxvis leaves `XLA_FLAGS` alone;
* JAX has already started its CPU backend (something ran JAX before `import jaxvis`):
  too late, jaxvis then warns once and changes nothing. Import jaxvis first, or set the
  flag yourself.

The flags only concern XLA:CPU; GPU and TPU compilation ignores them. Child processes
inherit the environment, flag included.

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

DEFAULT_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=",)
ENV_SWITCH = "JAXVIS_XLA_DEFAULTS"


def _cpu_backend_started() -> bool:
    bridge = sys.modules.get("jax._src.xla_bridge")
    backends = getattr(bridge, "_backends", None) or {}  # private: absent → assume not started
    return "cpu" in backends


def apply(environ=os.environ) -> list[str]:
    """Add the missing DEFAULT_FLAGS to `environ["XLA_FLAGS"]`; returns the flags added."""
    if environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return []
    current = environ.get("XLA_FLAGS", "")
    named = {tok.split("=", 1)[0] for tok in current.split()}
    missing = [f for f in DEFAULT_FLAGS if f.split("=", 1)[0] not in named]
    if not missing:
        return []
    if _cpu_backend_started():
        warnings.warn(
            f"jaxvis: JAX's CPU backend started before `import jaxvis`, so jaxvis could not add "
            f"{' '.join(missing)} to XLA_FLAGS (its convolutions run 1.3-1.5× faster with it). Import jaxvis "
            f"before running JAX code, set the flag yourself, or set {ENV_SWITCH}=0 to silence this.",
            stacklevel=3)
        return []
    environ["XLA_FLAGS"] = " ".join([current, *missing]).strip()
    return missing


applied = apply()
