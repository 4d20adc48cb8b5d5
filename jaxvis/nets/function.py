"""`from_function`: any JAX callable `apply_fn(params, images) -> {layer: activation}` as a jaxvis network.

Intermediate-layer gradients (Grad-CAM's taps) need no cooperation from the function:
the function is traced to a jaxpr once per input shape and re-evaluated with the tap
added where the layer's value is produced (inside nested `jit`s too), so `d/d tap`
is the gradient with respect to that activation. Guided, deconvnet and redirected
ReLUs need a hook: if `apply_fn` takes a keyword argument `relu`, jaxvis passes the
ReLU to use (`net.relu_rules` says which rules a network supports). The layer graph
(`net.graph()`) is read from the function's jaxpr (:mod:`jaxvis.nets.traced`).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.extend import core as jcore

from ..errors import NetworkError
from .layers import Table
from .ops import RELU_MODES, relu_fn
from .protocol import LayerRef, NetBase


@dataclasses.dataclass(frozen=True)
class FunctionLayer:
    """One row of a function network's layer table (MATLAB-style listing)."""

    index: int
    name: str
    type: str
    description: str
    inputs: tuple[str, ...] = ()


class FunctionLayers(Table[FunctionLayer]):
    """Layer table of a function network: names in the function's output order, shapes at the input size."""

    def __init__(self, names: Sequence[str], shapes: dict[str, tuple[int, ...]]):
        self._set_rows(FunctionLayer(i, n, "Function output", "×".join(map(str, shapes[n][1:])))
                       for i, n in enumerate(names))

    def __repr__(self) -> str:
        w = max(len(r.name) for r in self._rows) + 2
        rows = [f"  {len(self)}×1 Layer array with layers:", ""]
        rows += [f"  {r.index:4d}   {r.name!r:<{w}}   {r.type}   {r.description}" for r in self._rows]
        return "\n".join(rows)


def _eval_with_taps(jaxpr: jcore.Jaxpr, consts, args, taps: dict) -> list:
    """Evaluate `jaxpr`, adding `taps[var]` to a variable right where it is produced.

    Calls (`jit`, `closed_call`) whose outputs carry taps are inlined, so the tap reaches
    every later use inside them; other equations are bound as they are.
    """
    env: dict = {}

    def read(v):
        return v.val if isinstance(v, jcore.Literal) else env[v]

    def write(v, val):
        env[v] = val + taps[v] if v in taps else val

    for v, val in zip(jaxpr.constvars, consts):
        write(v, val)
    for v, val in zip(jaxpr.invars, args):
        write(v, val)
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        inner = eqn.params.get("jaxpr")
        if isinstance(inner, jcore.ClosedJaxpr) and eqn.primitive.name in ("pjit", "jit", "closed_call"):
            # Inline so a tap on an inner intermediate reaches the later inner uses.
            inner_taps = {iv: taps[ov] for iv, ov in zip(inner.jaxpr.outvars, eqn.outvars)
                          if ov in taps and not isinstance(iv, jcore.Literal)}
            outs = _eval_with_taps(inner.jaxpr, inner.consts, invals, inner_taps)
            for v, val in zip(eqn.outvars, outs):
                env[v] = val  # taps were added inside
            continue
        bound = eqn.primitive.get_bind_params(eqn.params)
        subfuns, params = bound if isinstance(bound, tuple) else ((), bound)  # JAX < 0.7 also returned subfuns
        with eqn.ctx.manager:
            outs = eqn.primitive.bind(*subfuns, *invals, **params)
        for v, val in zip(eqn.outvars, outs if eqn.primitive.multiple_results else [outs]):
            write(v, val)
    return [read(v) for v in jaxpr.outvars]


def _production_order(jaxpr: jcore.Jaxpr) -> list[tuple[int, ...]]:
    """For each output of `jaxpr`, where it is computed: the equation index path (into nested jits).

    Sorting outputs by it recovers graph order even when the dict came back key-sorted.
    """
    where: dict = {}
    for i, eqn in enumerate(jaxpr.eqns):
        inner = eqn.params.get("jaxpr")
        sub = _production_order(inner.jaxpr) if isinstance(inner, jcore.ClosedJaxpr) else None
        for j, v in enumerate(eqn.outvars):
            where[v] = (i, *(sub[j] if sub and j < len(sub) else ()))
    return [where.get(v, (-1,)) if not isinstance(v, jcore.Literal) else (-1,) for v in jaxpr.outvars]


class FunctionNetwork(NetBase):
    """A network defined by a JAX function; satisfies :class:`jaxvis.nets.protocol.Net`.

    Built by :func:`from_function`; see there for the arguments. `relu_rules` is every rule when
    the function takes a `relu` keyword, else only 'standard'; `graph()` and `layer_params()` are
    read from the function's jaxpr.
    """

    def __init__(self, apply_fn: Callable, params: Any, *, input_size: tuple[int, int], layers: Sequence[str],
                 shapes: dict[str, tuple[int, ...]], classes: list[str] | None,
                 preprocess: Callable[[jax.Array], jax.Array] | None, name: str, logits: str | None):
        self._fn, self.params = apply_fn, params
        self.input_size: tuple[int, int] = (int(input_size[0]), int(input_size[1]))
        self.classes, self.name, self._preprocess = classes, name, preprocess
        self.layers = FunctionLayers(layers, shapes)
        self.logits_layer = logits
        self._takes_relu = "relu" in inspect.signature(apply_fn).parameters
        # Without a `relu` keyword only the function's own ReLU runs.
        self.relu_rules: frozenset[str] = frozenset(RELU_MODES if self._takes_relu else ("standard",))

    def __repr__(self) -> str:
        return f"FunctionNetwork({self.name!r}, input_size={self.input_size}, layers={len(self.layers)})"

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(self.layers.names)

    def layer_name(self, layer: LayerRef) -> str:
        return self.layers[layer].name

    def require_weights(self, layers: Sequence[str]) -> None:
        """Function networks hold whatever weights they were given."""

    def _call(self, params, x, relu: str) -> dict:
        if relu == "standard":
            out = self._fn(params, x)
        elif self._takes_relu:
            out = self._fn(params, x, relu=relu_fn(relu))
        else:
            raise NetworkError(
                f"relu={relu!r} needs a ReLU hook: give {self.name!r}'s apply_fn a keyword argument `relu` "
                f"(default jax.nn.relu) and call it for every ReLU, e.g. def apply_fn(params, x, relu=jax.nn.relu)")
        if not isinstance(out, dict):
            raise NetworkError(f"apply_fn of {self.name!r} must return a dict {{layer name: activation}}, "
                               f"got {type(out).__name__}")
        return out

    def apply(self, params: Any, images: jax.Array, layers: Sequence[str], *, normalize: bool = True,
              relu: str = "standard", taps: dict[str, jax.Array] | None = None) -> dict[str, jax.Array]:
        """Pure: images (N×H×W×3 RGB 0..255, preprocessed here when `normalize`) → {layer: activation}.

        Activations of rank < 4 come back as N×1×1×C (fully connected layers), as
        :class:`jaxvis.Network` returns them.
        """
        x = self._preprocess(images) if normalize and self._preprocess is not None else images
        if not taps:
            out = self._call(params, x, relu)
        else:
            closed, shapes = jax.make_jaxpr(lambda p, y: self._call(p, y, relu), return_shape=True)(params, x)
            flat_keys = list(shapes)  # dict outputs flatten in sorted key order
            pos = {k: i for i, k in enumerate(sorted(flat_keys))}
            var_taps = {}
            for k, t in taps.items():
                v = closed.jaxpr.outvars[pos[k]]
                if isinstance(v, jcore.Literal):
                    raise NetworkError(f"layer {k!r} of {self.name!r} is a constant; it cannot be tapped")
                var_taps[v] = t.reshape(v.aval.shape)
            flat = _eval_with_taps(closed.jaxpr, closed.consts, jax.tree.leaves((params, x)), var_taps)
            out = {k: flat[pos[k]] for k in flat_keys}
        return {n: _as_nhwc(out[n]) for n in layers}


def _as_nhwc(a: jax.Array) -> jax.Array:
    return a.reshape(a.shape[0], 1, 1, -1) if a.ndim != 4 else a


def from_function(apply_fn: Callable, params: Any = None, *, input_size: int | tuple[int, int],
                  layers: Sequence[str] | None = None, classes: Sequence[str] | None = None,
                  preprocess: Callable[[jax.Array], jax.Array] | None = None, name: str | None = None,
                  logits: str | None = None) -> FunctionNetwork:
    """Wrap any JAX function as a jaxvis network, accepted by every public jaxvis function.

    Args:
      apply_fn: `apply_fn(params, images) -> {layer name: activation}`, images N×H×W×3
        float32 in the network's own input range (what `preprocess` returns). Activations
        N×H×W×C (or N×C for dense layers). Optionally a keyword argument `relu`: the ReLU
        to use (jaxvis passes guided/deconvnet/redirected ReLUs through it).
      params: the weights (any pytree), passed back to `apply_fn`; None if it closes over them.
      input_size: H×W (or one int) the network expects; used for class maps and defaults.
      layers: layer names in graph order (default: the function's outputs in their dict order).
      classes: class names (index = class id) if the network classifies.
      preprocess: maps RGB 0..255 images to the network's input (e.g. torchvision's
        mean/std); default: identity, i.e. the network takes 0..255 RGB.
      name: label for messages and outputs.
      logits: the layer holding pre-softmax class scores (for `class_logit` objectives,
        saliency, Grad-CAM); default: the last layer if `classes` is given.

    Returns:
      A :class:`FunctionNetwork`.

    Raises:
      NetworkError: the function fails at `input_size` or does not return a dict of arrays;
      LayerError: `layers`/`logits` name outputs the function does not return (with close matches).
    """
    hw = (int(input_size), int(input_size)) if isinstance(input_size, int) else tuple(int(v) for v in input_size)
    if len(hw) != 2 or min(hw) < 1:
        raise NetworkError(f"input_size must be an int or (H, W) of positive ints, got {input_size!r}")
    label = str(name or getattr(apply_fn, "__name__", "function"))
    probe = jax.ShapeDtypeStruct((1, *hw, 3), jnp.float32)
    pre = preprocess if preprocess is not None else (lambda x: x)
    try:
        closed, shapes = jax.make_jaxpr(lambda p, x: apply_fn(p, pre(x)), return_shape=True)(params, probe)
    except Exception as e:  # the user's function: report what it raised, at what input
        raise NetworkError(f"apply_fn of {label!r} fails on a 1×{hw[0]}×{hw[1]}×3 float32 image "
                           f"(input_size={hw}): {type(e).__name__}: {e}") from e
    if not isinstance(shapes, dict) or not all(hasattr(v, "shape") for v in shapes.values()):
        raise NetworkError(f"apply_fn of {label!r} must return a dict {{layer name: activation array}}, "
                           f"got {type(shapes).__name__}")
    order = sorted(shapes, key=dict(zip(sorted(shapes), _production_order(closed.jaxpr))).__getitem__)
    shapes = {k: tuple(shapes[k].shape) for k in order}
    names = list(shapes) if layers is None else list(layers)
    table = FunctionLayers(list(shapes), shapes)
    for n in names:
        table.index(n)  # LayerError with close matches
    cls = None if classes is None else [str(c) for c in classes]
    if logits is None and cls is not None:
        logits = names[-1]
    if logits is not None:
        table.index(logits)
        if cls is not None and shapes[logits][-1] != len(cls):
            raise NetworkError(f"logits layer {logits!r} has {shapes[logits][-1]} outputs but {len(cls)} classes "
                               f"were given")
    net = FunctionNetwork(apply_fn, params, input_size=hw, layers=names, shapes=shapes, classes=cls,
                          preprocess=preprocess, name=label, logits=logits)
    return net
