"""The base of the attribution methods: one call's network, image and target, resolved once.

An :class:`AttributionMethod` is captum's shape: it is built for one (network, image, target)
— the image brought to the network's input size, the target resolved to a (layer, channel)
score with `net.logits_layer` as the only source of class scores — and each method is a small
subclass whose `attribute(...)` runs jitted kernels and returns an :class:`AttributionMap`.

Kernels are `build(fn, *layers, softmax)` for a pure `fn(params, images, taps=None) -> {layer: act}`.
A method compiles them on the network's one cache, `net.cache.jit(("attribution", kernel, relu,
*layers, softmax), ...)`, so repeated calls with new targets or new images of the same size never
retrace (`net.trace_counts` counts the traces). The cores that take a bare pure function
(:func:`jaxvis.attribution.gradient`, …) compile with :func:`function_kernel` instead.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, ClassVar, Literal, overload

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import AttributionError, ImageError, MissingWeightsError, TargetError
from ..imaging.images import ImageLike, fit_to_size, to_batch
from ..nets import cpu
from ..nets.protocol import Net
from .result import AttributionMap
from .targets import Target, resolve

Build = Callable[..., Callable]  # build(fn, *layers, softmax) -> kernel(params, ...)


# ----------------------------------------------------------------------- scores and kernels
def unit_score(acts: dict, layer: str, channel, softmax: bool = False) -> jax.Array:
    """N scores: spatial mean of `acts[layer][..., channel]` (`channel` may be traced).

    softmax=True scores the softmax over channels instead (a class probability when
    `layer` holds the 1×1 class scores).
    """
    a = acts[layer]
    if softmax:
        a = jax.nn.softmax(a, axis=-1)
    a = jnp.take(a, channel, axis=-1)
    return a.reshape(a.shape[0], -1).mean(axis=1)


@functools.partial(cpu.jit, static_argnums=(0, 1, 2))
def _on_function(build: Build, fn: Callable, static: tuple, *args):
    return build(fn, *static)(*args)


def function_kernel(fn: Callable, build: Build, *static) -> Callable:
    """The jitted kernel `build(fn, *static)` for a bare pure function (the cores' path).

    `fn` is a static argument of one module-level jit (:func:`jaxvis.nets.cpu.jit`), so jax's own compilation cache,
    keyed on (fn, static, argument shapes), reuses the compiled kernel for the same `fn`: jaxvis
    keeps no table of functions. A callable that cannot be hashed is compiled on each call.
    """
    try:
        hash(fn)
    except TypeError:
        return cpu.jit(build(fn, *static))
    return functools.partial(_on_function, build, fn, static)


# ----------------------------------------------------------------------- the prepared call
def prepare_image(net: Net, image: ImageLike, resize: str) -> np.ndarray:
    """One image as float32 H×W×C 0..255 at the network's input size (as `classify` sees it)."""
    batch, single = to_batch(image, channels=net.input_channels)
    if not single and len(batch) != 1:
        raise ImageError(f"attribution maps explain one image at a time; got a batch of {len(batch)}")
    return fit_to_size(batch, net.input_size, resize)[0]


def computable(net: Net, layer: str) -> bool:
    """Whether the loaded weights suffice to compute `layer`."""
    try:
        net.require_weights([layer])
        return True
    except MissingWeightsError:
        return False


class AttributionMethod:
    """Base class of the attribution methods (captum calls its own `Attribution`).

    Built once per call: it holds the network, the image as the network sees it, and the
    resolved target with its score layer; subclasses set `method` (the name the result carries)
    and `relu` (the ReLU backward rule of the function they differentiate) and implement
    `attribute(...)`.

    Attributes:
      net: the network.
      params: its weights, the kernels' first argument.
      image: H×W×C float32 0..255 at the network's input size (C = `net.input_channels`).
      hw: (H, W) of `image`.
      target: the resolved :class:`Target`.
      softmax: whether the score is the softmax over the class scores.
      resize: how the image was brought to the input size.
    """

    method: ClassVar[str]
    relu: ClassVar[str] = "standard"

    def __init__(self, net: Net, image: ImageLike, target=None, *, score: str = "logit", resize: str = "crop",
                 reduction_layer=None):
        """Prepare one call.

        Args:
          net: the network.
          image: one image (path, PIL image or H×W×3 0..255 array), resized to `net.input_size`
            like :func:`jaxvis.classify`.
          target: class index, class name or (layer, channel); None = the predicted class.
          score: class targets: 'logit' (pre-softmax class score) or 'softmax' (class probability).
          resize: 'crop', 'stretch' or 'none'.
          reduction_layer: Grad-CAM's ReductionLayer: a class target scores channel `class index`
            of this layer instead of the class-score layer (None: the class scores).
        """
        # Typed Any: the network's `cache` comes from NetBase, which every jaxvis network derives from; the
        # Net protocol does not declare it.
        self.net: Any = net
        self.params, self.resize = net.params, resize
        self.image = prepare_image(net, image, resize)
        self.hw = (int(self.image.shape[0]), int(self.image.shape[1]))
        self.target = self._resolve(target, score, reduction_layer)
        self.softmax = self.target.score == "softmax"

    def kernel(self, name: str, build: Build, layers: tuple[str, ...] | None = None) -> Callable:
        """`build(fn, *layers, softmax)` jitted on the network's cache (layers default: the target's)."""
        net, relu, soft = self.net, self.relu, self.softmax
        layers = (self.target.layer,) if layers is None else tuple(layers)
        return net.cache.jit(("attribution", name, relu, *layers, soft),
                             lambda: build(net.function(layers, relu=relu), *layers, soft))

    def channels(self, layer: str) -> int:
        """Channel count of `layer` at this input size, from shapes alone (memoised on the network)."""
        net, hw = self.net, self.hw
        net.require_weights([layer])
        spec = jax.ShapeDtypeStruct((1, *hw, net.input_channels), jnp.float32)
        return net.cache.memo(("attribution", "channels", layer, hw),
                              lambda: int(jax.eval_shape(lambda p, x: net.apply(p, x, (layer,)), net.params,
                                                         spec)[layer].shape[-1]))

    def result(self, map_: np.ndarray, score: float, raw: np.ndarray | None, options: dict) -> AttributionMap:
        """The :class:`AttributionMap` of this call; `options` gain the score and resize used."""
        return AttributionMap(map_, self.image, self.method, self.target, float(score),
                              {**options, "score": self.target.score, "resize": self.resize}, raw)

    def _resolve(self, target, score: str, reduction_layer) -> Target:
        net = self.net
        red = None if reduction_layer is None else net.layer_name(reduction_layer)
        if isinstance(target, (tuple, list)):
            t = resolve(target, classes=net.classes, logits_layer=None, score=score, layer_name=net.layer_name,
                        num_channels=self.channels)
            if red is not None and red != t.layer:
                raise AttributionError(f"reduction_layer {red!r} contradicts the unit target {tuple(target)!r}, "
                                       f"which is scored at {t.layer!r}; leave reduction_layer out")
            return t
        logits = net.logits_layer
        if logits is None:
            what = "the predicted class (target=None)" if target is None else f"a class target ({target!r})"
            raise TargetError(f"{net.name!r} has no class-score layer (net.logits_layer is None), so it cannot "
                              f"explain {what}; name a (layer, channel) target, or give the network its class "
                              "scores with from_function(..., logits=<layer>)")
        net.require_weights([logits])
        if target is None:
            out = net.jitted([logits])(net.params, jnp.asarray(self.image[None]))[logits]
            target = int(np.argmax(np.asarray(out).reshape(-1)))
        if red is None or red == logits:
            return resolve(target, classes=net.classes, logits_layer=logits, score=score, num_channels=self.channels)
        if score != "logit":
            raise AttributionError(f"score={score!r} applies to the class scores ({logits!r}); with "
                                   f"reduction_layer={red!r} the score is that layer's own activation")
        t = resolve(target, classes=net.classes, logits_layer=red, score="logit")
        c = self.channels(red)
        if t.channel >= c:
            raise AttributionError(f"class {t.channel} is not a channel of reduction layer {red!r} "
                                   f"({c} channels, 0..{c - 1})")
        return Target(red, t.channel, "class", "activation", t.class_index, t.class_name)


# ----------------------------------------------------------------------- options and chunks
@overload
def positive_int(value, name: str, allow_none: Literal[False] = False) -> int: ...
@overload
def positive_int(value, name: str, allow_none: bool) -> int | None: ...
def positive_int(value, name: str, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise AttributionError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def chunking(total: int, batch_size: int | None, default: int) -> tuple[int, int]:
    """(samples per jitted call, number of calls) for `total` samples, at most `batch_size` per call.

    Calls are balanced (50 samples at 16 → 4 calls of 13, not 16+16+16+2): one shape, so one
    trace, and at most calls−1 padded samples instead of up to batch_size−1.
    """
    n = math.ceil(total / (batch_size or default))
    return math.ceil(total / n), n


def pad_rows(a: np.ndarray, n: int) -> np.ndarray:
    """Pad axis 0 to length n by repeating the last row (padded rows get weight 0)."""
    return a if len(a) == n else np.concatenate([a, np.repeat(a[-1:], n - len(a), axis=0)])


def matlab_round(x: float) -> int:
    return math.floor(x + 0.5)  # MATLAB rounds halves away from zero (x >= 0 here)

