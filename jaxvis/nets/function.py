"""`from_function`: any JAX callable `apply_fn(params, images) -> {layer: activation}` as a jaxvis network.

Intermediate-layer gradients (Grad-CAM's taps) and ReLU backward rules (guided backprop,
deconvnet, lucid's RedirectedReLU) need no cooperation from the function: it is traced to a
jaxpr once per input shape (cached on the network) and re-evaluated (:mod:`jaxvis.nets.relu_rules`)
with the tap added where the layer's value is produced (inside nested `jit`s too), so `d/d tap`
is the gradient with respect to that activation, and with every recognised ReLU computed by the
rule's `custom_vjp`. A function that takes a keyword argument `relu` is passed the rule's ReLU
instead (the explicit override). The layer graph (`net.graph()`) is read from the function's
jaxpr (:mod:`jaxvis.nets.traced`).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.extend import core as jcore

from ..errors import NetworkError
from .flax_modules import is_flax, module_function
from .layers import Table
from .ops import RELU_MODES, relu_fn
from .protocol import LayerRef, NetBase
from .relu_rules import PATTERNS, JaxprProgram, analyse

# Channel counts `from_function` tries, in order, when the function fails on 3-channel images.
CHANNEL_CANDIDATES = (1, 4, 2, *range(5, 33))


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

    Built by :func:`from_function`; see there for the arguments. `relu_rules` is every rule unless the
    function holds a ReLU-like pattern that is not recognised (then only 'standard', and asking for a
    rule raises a NetworkError naming the pattern); `graph()` and `layer_params()` are read from the
    function's jaxpr.
    """

    def __init__(self, apply_fn: Callable, params: Any, *, input_size: tuple[int, int], layers: Sequence[str],
                 shapes: dict[str, tuple[int, ...]], classes: list[str] | None,
                 preprocess: Callable[[jax.Array], jax.Array] | None, name: str, logits: str | None,
                 input_channels: int = 3, relu_rules: frozenset[str] | None = None):
        self._fn, self.params = apply_fn, params
        self.input_size: tuple[int, int] = (int(input_size[0]), int(input_size[1]))
        self.input_channels = int(input_channels)
        self.classes, self.name, self._preprocess = classes, name, preprocess
        self.layers = FunctionLayers(layers, shapes)
        self.logits_layer = logits
        self._takes_relu = "relu" in inspect.signature(apply_fn).parameters
        self.relu_rules: frozenset[str] = frozenset(RELU_MODES) if relu_rules is None else frozenset(relu_rules)

    def __repr__(self) -> str:
        return f"FunctionNetwork({self.name!r}, input_size={self.input_size}, layers={len(self.layers)})"

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(self.layers.names)

    def layer_name(self, layer: LayerRef) -> str:
        return self.layers[layer].name

    def require_weights(self, layers: Sequence[str]) -> None:
        """Function networks hold whatever weights they were given."""

    def _program(self, params, x, relu: str | None) -> tuple[JaxprProgram, Any]:
        """The function's jaxpr for these argument shapes, analysed (cached on the network), and its output
        tree. `relu` is passed as the function's `relu` keyword (the explicit override), or None."""
        leaves, tree = jax.tree.flatten((params, x))
        avals = [jax.typeof(v) for v in leaves]
        specs = [jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=a.weak_type) for a in avals]
        key = ("net", "program", tree, tuple((a.shape, str(a.dtype), a.weak_type) for a in avals), relu)

        def build():
            fn = self._fn if relu is None else functools.partial(self._fn, relu=relu_fn(relu))
            closed, out = jax.make_jaxpr(lambda p, y: fn(p, y), return_shape=True)(*jax.tree.unflatten(tree, specs))
            return analyse(closed), jax.tree.structure(out)
        return self.cache.memo(key, build)

    def _rule(self, relu: str, program: JaxprProgram) -> Callable:
        if program.unknown:
            raise NetworkError(
                f"relu={relu!r} needs every ReLU of {self.name!r} recognised, but its function holds "
                f"{program.unknown[0]}; recognised ReLUs: {'; '.join(PATTERNS)}. Write that activation as one of "
                f"these, or give apply_fn a keyword argument `relu` and call it for every ReLU-like activation")
        return relu_fn(relu)

    def _check(self, out) -> dict:
        if not isinstance(out, dict):
            raise NetworkError(f"apply_fn of {self.name!r} must return a dict {{layer name: activation}}, "
                               f"got {type(out).__name__}")
        return out

    def apply(self, params: Any, images: jax.Array, layers: Sequence[str], *, normalize: bool = True,
              relu: str = "standard", taps: dict[str, jax.Array] | None = None) -> dict[str, jax.Array]:
        """Pure: images (N×H×W×C, preprocessed here when `normalize`) → {layer: activation}.

        Activations of rank < 4 come back as N×1×1×C (fully connected layers), as
        :class:`jaxvis.Network` returns them.
        """
        if relu not in RELU_MODES:
            relu_fn(relu)  # ModelError naming the modes
        x = self._preprocess(images) if normalize and self._preprocess is not None else images
        by_keyword = relu != "standard" and self._takes_relu
        if not taps and (relu == "standard" or by_keyword):
            out = self._check(self._fn(params, x, relu=relu_fn(relu)) if by_keyword else self._fn(params, x))
        else:
            program, tree = self._program(params, x, relu if by_keyword else None)
            rule = None if relu == "standard" or by_keyword else self._rule(relu, program)
            where = self._check(jax.tree.unflatten(tree, range(tree.num_leaves)))
            var_taps: dict = {}
            for k, t in (taps or {}).items():
                v = program.outs[where[k]]
                if not isinstance(v, int):
                    raise NetworkError(f"layer {k!r} of {self.name!r} is a constant; it cannot be tapped")
                var_taps[v] = var_taps[v] + t if v in var_taps else t
            flat = program.run(jax.tree.leaves((params, x)), rule, var_taps)
            out = jax.tree.unflatten(tree, flat)
        return {n: _as_nhwc(out[n]) for n in layers}


def _as_nhwc(a: jax.Array) -> jax.Array:
    return a.reshape(a.shape[0], 1, 1, -1) if a.ndim != 4 else a


def _trace(apply_fn: Callable, params: Any, pre: Callable, hw: tuple[int, int], label: str,
           input_channels: int | None) -> tuple[jcore.ClosedJaxpr, Any, int]:
    """The function traced on one hw image: (jaxpr, output shapes, channels), trying channel counts if not given."""
    def trace(c):
        probe = jax.ShapeDtypeStruct((1, *hw, c), jnp.float32)
        return jax.make_jaxpr(lambda p, x: apply_fn(p, pre(x)), return_shape=True)(params, probe)

    first = 3 if input_channels is None else int(input_channels)
    try:
        return (*trace(first), first)
    except Exception as e:  # the user's function: report what it raised, at what input
        err = e
    if input_channels is None and isinstance(err, (TypeError, ValueError)):  # shape errors: another channel count?
        for c in CHANNEL_CANDIDATES:
            try:
                return (*trace(c), c)
            except Exception:  # not this count either
                continue
    tried = "" if input_channels is not None else (
        f"; it fails for every channel count from 1 to {max(CHANNEL_CANDIDATES)} too: give input_channels= if it "
        "takes more" if isinstance(err, (TypeError, ValueError)) else "")
    raise NetworkError(f"apply_fn of {label!r} fails on a 1×{hw[0]}×{hw[1]}×{first} float32 image "
                       f"(input_size={hw}): {type(err).__name__}: {err}{tried}") from err


def from_function(apply_fn: Callable, params: Any = None, *, input_size: int | tuple[int, int],
                  layers: Sequence[str] | None = None, classes: Sequence[str] | None = None,
                  preprocess: Callable[[jax.Array], jax.Array] | None = None, name: str | None = None,
                  logits: str | None = None, input_channels: int | None = None) -> FunctionNetwork:
    """Wrap any JAX function as a jaxvis network, accepted by every public jaxvis function.

    Args:
      apply_fn: `apply_fn(params, images) -> {layer name: activation}`, images N×H×W×C float32 in the
        network's own input range (what `preprocess` returns). A Flax module (NNX, or Linen with
        `params` its variables) is taken as :func:`from_flax` takes it. Activations N×H×W×C (or N×C for dense
        layers). ReLUs written as `jax.nn.relu`, `jnp.maximum(x, 0)`, `jnp.where(x > 0, x, 0)` or Flax's
        `nn.relu` get guided/deconvnet/redirected backward rules without a hook (docs/attribution.md);
        a keyword argument `relu`, if the function takes one, is passed the rule's ReLU instead.
      params: the weights (any pytree), passed back to `apply_fn`; None if it closes over them.
      input_size: H×W (or one int) the network expects; used for class maps and defaults.
      layers: layer names in graph order (default: the function's outputs in their dict order).
      classes: class names (index = class id) if the network classifies.
      preprocess: maps images as jaxvis reads them (RGB or gray 0..255 for 3- and 1-channel networks, the
        arrays as given for others) to the network's input (e.g. torchvision's mean/std); default:
        identity.
      name: label for messages and outputs.
      logits: the layer holding pre-softmax class scores (for `class_logit` objectives,
        saliency, Grad-CAM); default: the last layer if `classes` is given.
      input_channels: image channels the function takes; default: 3 if it runs on 3-channel images,
        else the first count from 1 to 32 it runs on (`jax.make_jaxpr` on shapes only).

    Returns:
      A :class:`FunctionNetwork`.

    Raises:
      NetworkError: the function fails at `input_size` or does not return a dict of arrays;
      LayerError: `layers`/`logits` name outputs the function does not return (with close matches).
    """
    if is_flax(apply_fn):
        return from_flax(apply_fn, params, input_size=input_size, layers=layers, classes=classes,
                         preprocess=preprocess, name=name, logits=logits, input_channels=input_channels)
    hw = (int(input_size), int(input_size)) if isinstance(input_size, int) else tuple(int(v) for v in input_size)
    if len(hw) != 2 or min(hw) < 1:
        raise NetworkError(f"input_size must be an int or (H, W) of positive ints, got {input_size!r}")
    if input_channels is not None and (isinstance(input_channels, bool) or not isinstance(input_channels, int)
                                       or input_channels < 1):
        raise NetworkError(f"input_channels must be a positive int, got {input_channels!r}")
    label = str(name or getattr(apply_fn, "__name__", "function"))
    pre = preprocess if preprocess is not None else (lambda x: x)
    closed, shapes, channels = _trace(apply_fn, params, pre, hw, label, input_channels)
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
    # Rules need every ReLU-like pattern recognised (a function with a `relu` keyword is passed the rule instead).
    takes_relu = "relu" in inspect.signature(apply_fn).parameters
    rules = RELU_MODES if takes_relu or not analyse(closed).unknown else ("standard",)
    return FunctionNetwork(apply_fn, params, input_size=hw, layers=names, shapes=shapes, classes=cls,
                           preprocess=preprocess, name=label, logits=logits, input_channels=channels,
                           relu_rules=frozenset(rules))


def from_flax(module: Any, variables: Any = None, *, input_size: int | tuple[int, int],
              layers: Sequence[str] | None = None, classes: Sequence[str] | None = None,
              preprocess: Callable[[jax.Array], jax.Array] | None = None, name: str | None = None,
              logits: str | None = None, input_channels: int | None = None,
              apply_kwargs: dict | None = None) -> FunctionNetwork:
    """A Flax module as it is, as a jaxvis network: every named submodule's output is a layer.

    NNX modules are run in eval mode on a copy (BatchNorm's running statistics, no Dropout); Linen
    modules through `module.apply(variables, x, capture_intermediates=True, **apply_kwargs)`. Layer
    names: NNX attribute paths joined by '.' (``layer1.0.conv1``), Linen scope paths joined by '/'
    (``Block_0/Conv_1``); the module's own output is 'output' (a dict output's entries keep their keys).
    Guided backprop, deconvnet and RedirectedReLU work on its `nnx.relu` / `nn.relu` /
    `jax.nn.relu` without a hook (see :func:`from_function`).

    Args:
      module: a Flax NNX module, a Linen module, or a Linen module's bound `apply`.
      variables: the Linen module's variables (`module.init(key, x)`); None for NNX.
      input_size, layers, classes, preprocess, name, logits, input_channels: as for :func:`from_function`
        (`name` defaults to the module's class name; `logits`, with classes, to the last layer).
      apply_kwargs: extra keyword arguments of every call, e.g. ``{"train": False}``.

    Returns:
      A :class:`FunctionNetwork`.

    Raises:
      NetworkError: not a Flax module, Linen variables missing (or NNX variables given), or the module
        fails on an `input_size` image; LayerError: `layers`/`logits` name no submodule (with close matches).
    """
    fn, params, label = module_function(module, variables, apply_kwargs)
    return from_function(fn, params, input_size=input_size, layers=layers, classes=classes, preprocess=preprocess,
                         name=name or label, logits=logits, input_channels=input_channels)
