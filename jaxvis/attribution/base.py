"""Pieces shared by the attribution methods.

The methods are written against a pure `fn(params, images) -> {layer: N×H×W×C}`; the
jitted kernels built on such an `fn` are cached on the `fn` (so they go when it goes)
and count their traces, so repeated calls with new targets or images of the
same size never retrace.

Network wrappers use only the network protocol (`name`, `input_size`, `classes`,
`params`, `layer_names`, `layer_name`, `require_weights`, `apply`, `function`, `jitted`),
so they work for any network object, including one defined by a plain function. What
they learn about a network (its `fn` per (layers, ReLU rule), its class-score layer,
layer shapes, Grad-CAM's default feature layer) is kept in a weak-keyed cache: it lives
as long as the network and never keeps it alive.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import weakref
from collections.abc import Callable
from typing import Any, Literal, overload

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import AttributionError, ImageError, MissingWeightsError
from ..imaging.images import ImageLike, fit_to_size, to_batch
from .targets import Target, resolve

ActivationFn = Callable[[Any, jax.Array], dict]


# ----------------------------------------------------------------------- scores
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


# ----------------------------------------------------------------------- kernel cache
class _FnKernels:
    def __init__(self):
        self.jitted: dict = {}
        self.traces: collections.Counter = collections.Counter()


_UNTAGGABLE: dict = {}  # for callables that take no attributes (rare): kept for the process


def _entry(fn: Callable) -> _FnKernels:
    # The cache hangs on `fn` itself: the kernels close over `fn`, so a global weak-keyed
    # table would keep every `fn` alive; as an attribute it is a cycle the GC collects with `fn`.
    e = getattr(fn, "_jaxvis_kernels", None)
    if e is None:
        e = _FnKernels()
        try:
            fn._jaxvis_kernels = e  # type: ignore[attr-defined]  # a per-function cache slot
        except AttributeError:
            e = _UNTAGGABLE.setdefault(fn, e)
    return e


def kernel(fn: Callable, kind: str, static: tuple, build: Callable) -> Callable:
    """`jax.jit(build(fn, *static))`, cached per (fn, kind, static), counting traces."""
    entry = _entry(fn)
    key = (kind, *static)
    if key not in entry.jitted:
        raw = build(fn, *static)

        def counted(*args):
            entry.traces[key] += 1  # runs only while tracing
            return raw(*args)

        entry.jitted[key] = jax.jit(counted)
    return entry.jitted[key]


# ----------------------------------------------------------------------- per-network cache
_NETS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def net_cache(net) -> dict:
    """A dict that lives as long as `net` (values must not refer to `net` strongly).

    A network that cannot be weakly referenced or hashed gets a fresh dict: correct, but
    nothing is reused between calls (each call traces again).
    """
    try:
        return _NETS.setdefault(net, {})
    except TypeError:
        return {}


def layer_names(net) -> tuple[str, ...]:
    """`net.layer_names` (graph order)."""
    names = getattr(net, "layer_names", None)
    if names is None:  # jaxvis.Network before the protocol gave it `layer_names`
        names = tuple(layer.name for layer in net.layers)
    return tuple(names)


def net_function(net, layers: tuple[str, ...], relu: str = "standard") -> Callable:
    """One cached pure function per (net, layers, relu): kernels built on it are reused.

    `f(params, images, taps=None) -> {layer: activation}` calls `net.apply`; a zero tap added
    to a layer's output gives gradients at that intermediate activation (Grad-CAM), without
    hooks. It holds `net` weakly, so the cache does not keep the network alive.
    """
    cache = net_cache(net)
    key = ("fn", tuple(layers), relu)
    if key not in cache:
        layers = tuple(layers)
        net.require_weights(layers)
        ref: Callable[[], Any]
        try:
            ref = weakref.ref(net)
        except TypeError:
            ref = lambda: net

        def fn(params, images, taps=None):
            return ref().apply(params, images, layers, relu=relu, taps=taps)

        cache[key] = fn
    return cache[key]


def trace_counts(obj) -> collections.Counter:
    """How often each attribution kernel was traced.

    Args:
      obj: a pure `fn` (keys `(kind, *static)`) or a network (keys `(kind, relu, *static)`).
    """
    if callable(obj) and not hasattr(obj, "apply"):
        return collections.Counter(_entry(obj).traces)
    out: collections.Counter = collections.Counter()
    for key, fn in net_cache(obj).items():
        if key[0] == "fn":
            for (kind, *rest), n in _entry(fn).traces.items():
                out[(kind, key[2]) + tuple(rest)] += n
    return out


# ----------------------------------------------------------------------- network facts
def computable(net, layer: str) -> bool:
    """Whether the loaded weights suffice to compute `layer`."""
    try:
        net.require_weights([layer])
        return True
    except MissingWeightsError:
        return False


def layer_shapes(net, layers, hw: tuple[int, int]) -> dict[str, tuple]:
    """Output shapes (N=1) of `layers` for an hw input, without computing anything (cached)."""
    cache = net_cache(net)
    todo = tuple(n for n in layers if ("shape", n, tuple(hw)) not in cache)
    if todo:
        spec = jax.ShapeDtypeStruct((1, *hw, 3), jnp.float32)
        out = jax.eval_shape(lambda p, x: net.apply(p, x, todo), net.params, spec)
        for n, v in out.items():
            cache[("shape", n, tuple(hw))] = tuple(v.shape)
    return {n: cache[("shape", n, tuple(hw))] for n in layers}


def class_layer(net, image: np.ndarray) -> tuple[str | None, tuple[str, ...]]:
    """(layer holding the pre-softmax class scores or None, the 1×1×len(classes) layers).

    Found from the protocol alone: among the layers whose output is 1×1×len(classes),
    the last one that is not a probability distribution (a softmax output is ≥ 0 and
    sums to 1 — no class-score vector does both). Decided once per network, on the first
    image it sees.
    """
    cache = net_cache(net)
    if "class_layer" not in cache:
        cache["class_layer"] = _find_class_layer(net, image)
    return cache["class_layer"]


def _find_class_layer(net, image: np.ndarray) -> tuple[str | None, tuple[str, ...]]:
    if not net.classes:  # unnamed class scores: only a declared logits layer (e.g. an imported graph's output)
        lg = getattr(net, "logits_layer", None)
        return (lg, (lg,)) if lg is not None and computable(net, lg) else (None, ())
    names = layer_names(net)
    net.require_weights([names[-1]])  # class scores sit at the end: name the missing weights now
    k = len(net.classes)
    shapes = layer_shapes(net, [n for n in names if computable(net, n)], tuple(image.shape[:2]))
    cands = tuple(n for n, s in shapes.items() if s[1:] == (1, 1, k))
    if not cands:
        return None, ()
    out = net.jitted(cands)(net.params, jnp.asarray(image[None]))
    probs = set()
    for n in cands:
        v = np.asarray(out[n], np.float64).reshape(-1)
        if v.min() >= 0 and abs(v.sum() - 1) < 1e-3:
            probs.add(n)
    logits = [n for n in cands if n not in probs]
    return (logits[-1] if logits else None), cands


def network_target(net, target, score: str, image: np.ndarray, reduction_layer=None) -> Target:
    """Resolve `target` for `net`; None means the class the network predicts for `image`.

    `reduction_layer` (Grad-CAM's ReductionLayer) makes a class target score channel
    `class index` of that layer instead of the class-score layer.
    """
    red = None if reduction_layer is None else net.layer_name(reduction_layer)
    if isinstance(target, (tuple, list)):
        def channels(layer):
            net.require_weights([layer])
            return layer_shapes(net, [layer], image.shape[:2])[layer][-1]
        t = resolve(target, classes=net.classes, class_layer=None, score=score, layer_name=net.layer_name,
                    num_channels=channels)
        if red is not None and red != t.layer:
            raise AttributionError(f"reduction_layer {red!r} contradicts the unit target {tuple(target)!r}, "
                                   f"which is scored at {t.layer!r}; leave reduction_layer out")
        return t
    logit, cands = class_layer(net, image)
    if target is None:
        if logit is None:
            raise AttributionError("target=None means 'the predicted class', but this network has no "
                                   "class scores; pass a (layer, channel) target")
        out = net.jitted(cands)(net.params, jnp.asarray(image[None]))[logit]
        target = int(np.argmax(np.asarray(out).reshape(-1)))
    if red is None or red == logit:
        t = resolve(target, classes=net.classes, class_layer=logit, score=score,
                    num_channels=lambda l: layer_shapes(net, [l], image.shape[:2])[l][-1])
        net.require_weights([t.layer])
        return t
    if score != "logit":
        raise AttributionError(f"score={score!r} applies to the class scores ({logit!r}); with "
                               f"reduction_layer={red!r} the score is that layer's own activation")
    t = resolve(target, classes=net.classes, class_layer=red, score="logit")
    net.require_weights([red])
    c = layer_shapes(net, [red], image.shape[:2])[red][-1]
    if t.channel >= c:
        raise AttributionError(f"class {t.channel} is not a channel of reduction layer {red!r} "
                               f"({c} channels, 0..{c - 1})")
    return dataclasses.replace(t, score="activation")


def prepare_image(net, image: ImageLike, resize: str) -> np.ndarray:
    """One image as float32 H×W×3 0..255 at the network's input size (as `classify` sees it)."""
    batch, single = to_batch(image)
    if not single and len(batch) != 1:
        raise ImageError(f"attribution maps explain one image at a time; got a batch of {len(batch)}")
    return fit_to_size(batch, net.input_size, resize)[0]


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


# ----------------------------------------------------------------------- result
@dataclasses.dataclass
class Attribution:
    """An attribution map and what produced it.

    Attributes:
      map: H×W float32 map aligned with `image` (positive = supports the target).
      image: H×W×3 float32 0..255: the image exactly as the network saw it (resized/cropped).
      method: 'gradient', 'smoothgrad', 'integrated_gradients', 'guided_backprop',
        'deconvnet', 'grad_cam' or 'occlusion'.
      target: the resolved :class:`Target` (layer, channel, class index and name).
      score: the target's score on `image`.
      options: every setting used, defaults filled in (noise sigma, steps, layer, mask size, …).
      raw: method-specific unreduced result: H×W×3 per-colour attributions (saliency
        methods), the feature-map-resolution map (Grad-CAM), or the grid of score changes
        per mask position (occlusion).
    """

    map: np.ndarray
    image: np.ndarray
    method: str
    target: Target
    score: float
    options: dict
    raw: np.ndarray | None = None

    def display_map(self) -> np.ndarray:
        """The map scaled to [0, 1] for display.

        Gradient maps are sparse with a few extreme pixels, so |map| is divided by its
        99th percentile and clipped (as the SmoothGrad authors' code displays them);
        Grad-CAM and occlusion maps are mat2gray'd (min → 0, max → 1), as MATLAB's examples show them.
        """
        from ..imaging.display import mat2gray
        if self.method in ("grad_cam", "occlusion"):
            return mat2gray(self.map)
        return np.clip(np.abs(self.map) / _p99(self.map), 0.0, 1.0)

    def overlay(self, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
        """:meth:`display_map` blended over the image: H×W×3 float in [0, 1]."""
        from ..imaging.display import overlay
        return overlay(self.image.astype(np.uint8), self.display_map(), alpha=alpha, cmap=cmap, normalize=False)

    def save(self, path, *, style: str = "overlay", alpha: float = 0.5, cmap: str = "jet") -> None:
        """Write a PNG atomically.

        Args:
          path: destination file.
          style: 'overlay' (map over the photo), 'map' (colour-mapped map alone) or 'rgb'
            (per-colour attributions of the saliency methods, the usual guided-backprop
            picture: grey = 0, clipped at the 99th percentile of |value|).
          alpha: weight of the map in the overlay.
          cmap: colormap name.
        """
        from ..imaging.display import apply_colormap, save_png
        if style == "overlay":
            save_png(path, self.overlay(alpha, cmap))
        elif style == "map":
            save_png(path, apply_colormap(self.display_map(), cmap))
        elif style == "rgb":
            if self.raw is None or self.raw.ndim != 3 or self.raw.shape[-1] != 3:
                raise AttributionError(f"style='rgb' needs per-colour attributions; {self.method} has none")
            save_png(path, np.clip(self.raw / (2 * _p99(self.raw)) + 0.5, 0.0, 1.0))
        else:
            raise AttributionError(f"style must be 'overlay', 'map' or 'rgb', not {style!r}")


def _p99(a: np.ndarray) -> float:
    return max(float(np.percentile(np.abs(a), 99)), 1e-12)
