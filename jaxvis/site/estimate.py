"""The gallery's plan and time estimate, from a short measured warm-up, printed before any rendering.

The warm-up times two jitted programs on this machine, each on one block-sized batch (best of two runs
after a compiling one):

* the preset's image pipeline alone: parameterisation, transforms, optimizer and projection on an
  identity network (it also tells the size of the image the network sees);
* the network's forward + image gradient, cut at the most expensive planned layer.

A unit-step of layer L then costs pipeline + network × MACs(L) / MACs(that layer) (the graph view's
multiply-adds), and every layer adds one compile (its own program). Blocks are dealt to `jax.distributed`
processes and sharded over each process's devices, so the render divides by processes × devices; each
process compiles every layer it renders.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..engine import objectives as O
from ..engine.presets import get as get_preset
from ..engine.visualize import visualize
from ..nets.cpu import jit
from ..nets.function import from_function
from .plan import LayerPlan


@dataclasses.dataclass(frozen=True)
class LayerCost:
    """One planned layer: units, steps, measured-and-scaled seconds per unit-step, and its render time."""

    name: str
    units: int
    steps: int
    macs: int
    seconds_per_unit_step: float

    @property
    def seconds(self) -> float:
        return self.units * self.steps * self.seconds_per_unit_step


@dataclasses.dataclass(frozen=True)
class GalleryEstimate:
    """What a gallery job will do and how long it should take here (:func:`estimate`).

    Attributes:
      layers: per-layer costs.
      compile_seconds: one layer's compile (network + pipeline, measured).
      warmup_seconds: what the warm-up itself took.
      seen_size: (H, W) of the images the network sees (after the preset's transforms).
      platform: 'cpu', 'gpu', …; devices: local devices per process; processes: `jax.process_count()`.
      block: units per engine call.
    """

    layers: tuple[LayerCost, ...]
    compile_seconds: float
    warmup_seconds: float
    seen_size: tuple[int, int]
    platform: str
    devices: int
    processes: int
    block: int

    @property
    def units(self) -> int:
        return sum(lc.units for lc in self.layers)

    @property
    def compute_seconds(self) -> float:
        """Rendering compute summed over layers, on one device."""
        return sum(lc.seconds for lc in self.layers)

    def seconds(self, *, units: int | None = None, steps: int | None = None, workers: int | None = None) -> float:
        """Projected wall time: compute split over `workers` (default processes × devices) plus the compiles
        each process runs; `units`/`steps` replay the plan with at most that many units per layer / steps."""
        w = workers or self.processes * self.devices
        total = 0.0
        for lc in self.layers:
            n = lc.units if units is None else min(lc.units, units)
            total += n * (lc.steps if steps is None else steps) * lc.seconds_per_unit_step
        per_process_layers = len(self.layers) if w <= 1 else min(len(self.layers), math.ceil(self.blocks / w) or 1)
        return total / w + self.compile_seconds * per_process_layers

    @property
    def blocks(self) -> int:
        return sum(math.ceil(lc.units / self.block) for lc in self.layers)

    def text(self) -> str:
        """The plan as printed by `jaxvis gallery` before rendering."""
        w = self.processes * self.devices
        lines = [f"gallery plan: {len(self.layers)} layers, {self.units} units, {self.blocks} blocks of {self.block}; "
                 f"the network sees {self.seen_size[0]}×{self.seen_size[1]}; {self.platform}, {self.devices} "
                 f"device(s) × {self.processes} process(es)",
                 f"  {'layer':<24} {'units':>6} {'steps':>6} {'ms/unit-step':>13} {'time':>10}"]
        for lc in self.layers:
            lines.append(f"  {lc.name:<24} {lc.units:>6} {lc.steps:>6} {1e3 * lc.seconds_per_unit_step:>13.1f} "
                         f"{duration(lc.seconds / w):>10}")
        total = self.seconds()
        lines.append(f"  estimated total: {duration(total)} (compute {duration(self.compute_seconds / w)} + "
                     f"{duration(self.compile_seconds)} compile per layer; from a {self.warmup_seconds:.0f}-s warm-up "
                     f"on this machine)")
        steps = self.layers[0].steps if self.layers else 0
        cheaper = []
        for u in (16, 4):
            if any(lc.units > u for lc in self.layers):
                cheaper.append(f"--units {u}: {duration(self.seconds(units=u))}")
        for s in (128, 32):
            if steps > s:
                cheaper.append(f"--steps {s}: {duration(self.seconds(steps=s))}")
        if len(self.layers) > 2:
            last = self.layers[-1]
            one = dataclasses.replace(self, layers=(last,))
            cheaper.append(f"--layers {last.name}: {duration(one.seconds())}")
        for n in (2 * w, 8 * w):
            cheaper.append(f"{n} processes or devices (jax.distributed, blocks split): {duration(self.seconds(workers=n))}"
                           + (" (as fast as this machine each)" if self.platform == "cpu" else ""))
        lines.append("  cheaper: " + "; ".join(cheaper))
        return "\n".join(lines)


def duration(s: float) -> str:
    """Seconds as '42 s', '13 min', '5.2 h' or '3.1 days'."""
    if s < 90:
        return f"{s:.0f} s"
    if s < 90 * 60:
        return f"{s / 60:.0f} min"
    if s < 48 * 3600:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def _best(f, runs: int = 2) -> tuple[float, float]:
    """(first call's seconds, best of `runs` later calls)."""
    t = time.perf_counter()
    jax.block_until_ready(f())
    first = time.perf_counter() - t
    best = math.inf
    for _ in range(runs):
        t = time.perf_counter()
        jax.block_until_ready(f())
        best = min(best, time.perf_counter() - t)
    return first, best


def estimate(net, plans: Sequence[LayerPlan], *, preset: str = "lucid", steps: int | None = None,
             image_size: int | None = None, block: int = 32, devices: Sequence | None = None,
             warmup_steps: int = 4) -> GalleryEstimate:
    """Measure a short warm-up and project a gallery job's time (see the module docstring).

    Args:
      net: the network.
      plans: the layers to render (:func:`jaxvis.site.plan.plan_layers`).
      preset, steps, image_size, block: the gallery's settings.
      devices: local devices the blocks are sharded over (default all local devices).
      warmup_steps: optimisation steps of the timed pipeline calls.

    Returns:
      :class:`GalleryEstimate`.
    """
    t0 = time.perf_counter()
    pre = get_preset(preset)
    n_steps = pre.steps if steps is None else int(steps)
    hw = tuple(net.input_size) if image_size is None else (int(image_size), int(image_size))
    devices = list(jax.local_devices() if devices is None else devices)
    platform = devices[0].platform
    b = int(block) if platform != "cpu" else min(int(block), 8)  # per-image cost is flat in the batch on CPU

    seen: list[tuple[int, int]] = []

    def identity(params, x):
        seen.append(tuple(int(v) for v in x.shape[1:3]))
        return {"image": x}

    ident = from_function(identity, {}, input_size=hw, name="identity")
    objs = [O.channel("image", c % 3) for c in range(b)]
    run = lambda: visualize(ident, objs, preset=pre, steps=warmup_steps, image_size=hw, batch_size=b,  # noqa: E731
                            devices=devices[:1], progress=False).raw
    pipe_first, pipe = _best(run)
    seen_hw = seen[-1] if seen else hw
    pipe_per = pipe / (b * warmup_steps)

    costly = max(plans, key=lambda lp: _macs(net, lp.name, seen_hw))
    fn = net.function([costly.name])
    grad = jit(jax.grad(lambda p, x: jnp.sum(jnp.mean(fn(p, x)[costly.name], axis=tuple(range(1, 4))))
                        if len(costly.shape) == 3 else jnp.sum(fn(p, x)[costly.name]), argnums=1))
    x = jax.device_put(jnp.asarray(np.random.default_rng(0).uniform(0, 255, (b, *seen_hw, 3)), jnp.float32),
                       devices[0])
    params = jax.device_put(net.params, devices[0])
    net_first, net_run = _best(lambda: grad(params, x))
    top = max(_macs(net, costly.name, seen_hw), 1)
    net_per = net_run / b
    layers = tuple(LayerCost(lp.name, len(lp.units), n_steps, _macs(net, lp.name, seen_hw),
                             pipe_per + net_per * _macs(net, lp.name, seen_hw) / top) for lp in plans)
    compile_s = max(pipe_first - pipe, 0.0) + max(net_first - net_run, 0.0)
    return GalleryEstimate(layers, compile_s, time.perf_counter() - t0, seen_hw, platform, len(devices),
                           jax.process_count(), int(block))


def _macs(net, layer: str, hw: tuple[int, int]) -> int:
    return sum(net.graph(hw).macs(layer).values())
