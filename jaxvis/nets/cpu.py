"""XLA:CPU options per compilation: every jaxvis program runs fast on CPU without global settings.

Every program jaxvis compiles goes through :func:`jit` (the networks' :class:`~jaxvis.nets.protocol.Cache`
uses it), which passes :data:`CPU_OPTIONS` as per-compilation `compiler_options` to programs that run on
the CPU and nothing to programs for a GPU or TPU. No environment variable and no JAX setting is changed:
`import jaxvis` and every call leave the process as they found it, and the user's own JAX code keeps
XLA's defaults.

The user keeps control: an option named in `XLA_FLAGS` (e.g.
`XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=individual_convolution`, XLA's default convolutions)
is not overridden, and `JAXVIS_XLA_DEFAULTS=0` turns jaxvis's options off. Both are read, never written.

Options (measurements in docs/benchmarks.md):

* `xla_cpu_experimental_ynn_fusion_type=""` (no YNNPACK fusions): XLA:CPU then runs convolutions with its
  Eigen kernels instead of YNNPACK. The forward + image gradient of AlexNet to conv5 (batch 30, 224×224)
  took 0.57 s instead of 0.77 s on a 2-core AMD EPYC (AVX2), SqueezeNet to fire9-concat 0.71 s instead
  of 1.08 s.

:func:`configure_cpu` set the same option through `XLA_FLAGS` before per-compilation options were used;
it now adds nothing measurable (docs/benchmarks.md) and is kept as a deprecated no-op.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import jax

CPU_OPTIONS: dict[str, str] = {"xla_cpu_experimental_ynn_fusion_type": ""}
ENV_SWITCH = "JAXVIS_XLA_DEFAULTS"
OFF = ("0", "false", "no", "off")


def compiler_options(platform: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The per-compilation XLA options jaxvis gives a program that runs on `platform`.

    Args:
        platform: 'cpu', 'gpu', 'cuda', 'rocm', 'tpu', … (a device's `platform`), or :data:`NESTED`.
        environ: the environment to read (default `os.environ`; never written).

    Returns:
        :data:`CPU_OPTIONS` for 'cpu', less any option `XLA_FLAGS` names (the user's value wins); {} for
        every other platform (the options are XLA:CPU's), for nested calls and when `JAXVIS_XLA_DEFAULTS=0`.
    """
    env = os.environ if environ is None else environ
    if platform != "cpu" or env.get(ENV_SWITCH, "1").strip().lower() in OFF:
        return {}
    named = {tok.split("=", 1)[0].lstrip("-") for tok in env.get("XLA_FLAGS", "").split()}
    return {k: v for k, v in CPU_OPTIONS.items() if k not in named}


def _default_platform() -> str:
    dev: Any = jax.config.jax_default_device  # type: ignore[attr-defined]  # `with jax.default_device(...)`; None: default
    if isinstance(dev, str):
        return dev
    return dev.platform if dev is not None else jax.default_backend()


NESTED = "nested"  # a call inside another trace: JAX accepts compiler options only on the outermost jit


def platform_of(*trees: Any) -> str:
    """The platform a jitted call on `trees` (its arguments, shardings) runs on: that of the first placed
    array or sharding found, else the default device's; :data:`NESTED` if any leaf is a tracer (the call is
    part of an outer program, whose own compilation takes the options)."""
    found = None
    for leaf in jax.tree.leaves(trees):
        if isinstance(leaf, jax.core.Tracer):
            return NESTED
        if found is None and isinstance(leaf, jax.Array):
            found = next(iter(leaf.devices())).platform
        elif found is None and isinstance(leaf, jax.sharding.Sharding):
            device: Any = next(iter(leaf.device_set))
            found = device.platform
    return found or _default_platform()


class Jit:
    """`jax.jit(fun, **jit_kwargs)` with :func:`compiler_options` for the platform each call runs on.

    One `jax.jit` per platform seen (usually one), built on its first call there; calls dispatch through
    it as through any `jax.jit` (JAX's own cache per shapes and static arguments).
    """

    def __init__(self, fun: Callable, **jit_kwargs):
        self.fun, self.jit_kwargs = fun, jit_kwargs
        self._by_platform: dict[str, Callable] = {}

    def for_platform(self, platform: str) -> Any:
        """The `jax.jit` object used for `platform` (e.g. to `.lower(...)` it)."""
        if platform not in self._by_platform:
            opts = compiler_options(platform)
            self._by_platform[platform] = jax.jit(self.fun, compiler_options=opts or None, **self.jit_kwargs)
        return self._by_platform[platform]

    def _platform(self, args, kwargs) -> str:
        kw = self.jit_kwargs
        return platform_of(kw.get("out_shardings"), kw.get("in_shardings"), kw.get("device"), args, kwargs) \
            if kw.get("backend") is None else kw["backend"]

    def __call__(self, *args, **kwargs):
        return self.for_platform(self._platform(args, kwargs))(*args, **kwargs)

    def lower(self, *args, **kwargs):
        """`jax.jit(...).lower(...)` for the platform these arguments run on."""
        return self.for_platform(self._platform(args, kwargs)).lower(*args, **kwargs)


def jit(fun: Callable | None = None, **jit_kwargs) -> Any:
    """:class:`Jit` of `fun` (usable as `jit(f, ...)`, `@jit` and `functools.partial(jit, ...)`)."""
    if fun is None:
        return lambda f: Jit(f, **jit_kwargs)
    return Jit(fun, **jit_kwargs)


def configure_cpu(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Deprecated no-op: jaxvis's programs get their XLA:CPU options per compilation (:func:`jit`).

    It used to add `--xla_cpu_experimental_ynn_fusion_type=` to `XLA_FLAGS`; with the option given per
    compilation that added nothing measurable (docs/benchmarks.md), and it changed global state.

    Args:
        environ: ignored (kept for compatibility).

    Returns:
        [] (no flag is added).
    """
    del environ
    warnings.warn("jaxvis.configure_cpu() is no longer needed and does nothing: jaxvis passes its XLA:CPU "
                  "options to each compilation itself. Remove the call.", DeprecationWarning, stacklevel=2)
    return []
