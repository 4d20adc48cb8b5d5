"""Networks as ordered graphs of named steps, and the NNX module that runs them.

A network is a tuple of :class:`Step` in MATLAB's layer order. Each step names its
inputs, so one executor serves plain chains (AlexNet) and branches (SqueezeNet's fire
modules). Every intermediate goes into an ``out`` dict (as in big_vision), and
execution stops as soon as every requested layer is in it: asking for ``conv1``
traces nothing past ``conv1``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from ..errors import ModelError
from . import ops

LEARNABLE = ("conv", "fc")

# MATLAB's layer type names, for the layer table and analyze_network.
TYPE_NAMES = {
    "input": "Image Input", "conv": "Convolution", "relu": "ReLU",
    "lrn": "Cross Channel Normalization", "maxpool": "Max Pooling",
    "gap": "Global Average Pooling", "adaptive_avgpool": "Adaptive Average Pooling",
    "dropout": "Dropout", "fc": "Fully Connected", "concat": "Depth concatenation",
    "softmax": "Softmax", "output": "Classification Output", "flatten": "Flatten",
}


@dataclasses.dataclass(frozen=True)
class Step:
    """One named layer: its kind, its inputs (layer names) and static options."""

    name: str
    kind: str
    inputs: tuple[str, ...] = ()
    opts: tuple[tuple[str, Any], ...] = ()

    @property
    def o(self) -> dict[str, Any]:
        return dict(self.opts)

    @property
    def type_name(self) -> str:
        return TYPE_NAMES[self.kind]


def step(name: str, kind: str, inputs=(), **opts) -> Step:
    if isinstance(inputs, str):
        inputs = (inputs,)
    return Step(name, kind, tuple(inputs), tuple(sorted(opts.items())))


def param_key(layer: str) -> str:
    """The one key scheme: a layer's parameters live under its own name, in `Network.params` and as
    the NNX attribute of GraphNet (NNX accepts any string, '-' and ':' included), so
    `net.params["fire2-squeeze1x1"]["kernel"]`. Public form: `Network.param_path(layer)`."""
    return layer




class _Done(Exception):
    """Raised while tracing once every requested layer is computed."""


class GraphNet(nnx.Module):
    """Runs a step graph; learnable steps own an nnx.Conv / nnx.Linear named after the layer."""

    def __init__(self, steps: tuple[Step, ...], *, rngs: nnx.Rngs):
        self.steps = nnx.static(steps) if hasattr(nnx, "static") else steps
        for s in steps:
            o = s.o
            if s.kind == "conv":
                k = o["kernel"]
                setattr(self, param_key(s.name), nnx.Conv(
                    o["cin"], o["cout"], (k, k), strides=o.get("stride", 1),
                    padding=[(o.get("pad", 0),) * 2] * 2,
                    feature_group_count=o.get("groups", 1), rngs=rngs))
            elif s.kind == "fc":
                setattr(self, param_key(s.name), nnx.Linear(o["cin"], o["cout"], rngs=rngs))

    def __call__(self, x: jax.Array, want: tuple[str, ...], *, normalize: bool = True,
                 relu: str = "standard", taps: dict[str, jax.Array] | None = None) -> dict[str, jax.Array]:
        taps = taps or {}
        want_set, out = set(want) | set(taps), dict[str, jax.Array]()
        relu_fn = ops.relu_fn(relu)
        try:
            for s in self.steps:
                y = self._run(s, x if s.kind == "input" else [out[i] for i in s.inputs], normalize, relu_fn)
                # A tap added to a layer's output: d(result)/d(tap) at tap = 0 is the gradient with
                # respect to that intermediate activation (Grad-CAM) — no hooks, no second model.
                out[s.name] = y + taps[s.name] if s.name in taps else y
                if want_set.issubset(out):
                    raise _Done
        except _Done:
            pass
        return {n: out[n] for n in want}

    def _run(self, s: Step, xs, normalize, relu_fn):
        o, k = s.o, s.kind
        if k == "input":
            if not normalize:
                return xs
            return (xs * o["scale"] - jnp.asarray(o["mean"], xs.dtype)) / jnp.asarray(o["std"], xs.dtype)
        x = xs[0]
        if k == "conv":
            # ops.conv2d, not mod(x): same result, formulated for XLA:CPU (grouped and strided convs).
            mod = getattr(self, param_key(s.name))
            return ops.conv2d(x, mod.kernel[...], mod.bias[...], o.get("stride", 1), o.get("pad", 0),
                              o.get("groups", 1))
        if k == "fc":
            mod = getattr(self, param_key(s.name))
            return mod(x.reshape(x.shape[0], -1)).reshape(x.shape[0], 1, 1, -1)
        if k == "relu":
            return relu_fn(x)
        if k == "lrn":
            return ops.lrn(x, o["size"], o["alpha"], o["beta"], o["k"])
        if k == "maxpool":
            return ops.max_pool(x, o["kernel"], o["stride"], o.get("pad", 0), o.get("ceil", False))
        if k == "gap":
            return ops.global_avg_pool(x)
        if k == "adaptive_avgpool":
            return ops.adaptive_avg_pool(x, o["size"])
        if k in ("dropout", "output"):
            return x  # inference: dropout is the identity; the output layer reports prob
        if k == "flatten":
            return x.reshape(x.shape[0], 1, 1, -1)  # (H, W, C) order, as Keras's channels_last Flatten
        if k == "concat":
            return ops.concat_channels(xs)
        if k == "softmax":
            return jax.nn.softmax(x, axis=-1)
        raise ModelError(f"unknown step kind {k!r}; steps.py computes {', '.join(TYPE_NAMES)}")
