"""Pieces shared by the attribution methods.

The methods are written against a pure `fn(params, images) -> {layer: N×H×W×C}`; the
jitted kernels built on such an `fn` are cached on the `fn` (so they go when it goes)
and count their traces, so repeated calls with new targets or images of the
same size never retrace. Network wrappers keep one `fn` per (net, layers, ReLU rule).
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import AttributionError, ImageError
from ..images import ImageLike, fit_to_size, to_batch
from .targets import Target, resolve

ActivationFn = Callable[[Any, jax.Array], dict]


# ----------------------------------------------------------------------- scores
def unit_score(acts: dict, layer: str, channel) -> jax.Array:
    """N scores: spatial mean of `acts[layer][..., channel]` (`channel` may be traced)."""
    a = jnp.take(acts[layer], channel, axis=-1)
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
            fn._jaxvis_kernels = e
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


def _net_fns(net) -> dict:
    return net.__dict__.setdefault("_attribution_fns", {})


def trace_counts(obj) -> collections.Counter:
    """How often each attribution kernel was traced.

    Args:
      obj: a pure `fn` (keys `(kind, *static)`) or a Network (keys `(kind, relu, *static)`).
    """
    from ..network import Network
    if isinstance(obj, Network):
        out = collections.Counter()
        for (_, relu), fn in _net_fns(obj).items():
            for (kind, *rest), n in _entry(fn).traces.items():
                out[(kind, relu, *rest)] += n
        return out
    return collections.Counter(_entry(obj).traces)


def net_function(net, layers: tuple[str, ...], relu: str = "standard") -> Callable:
    """One cached pure function per (net, layers, relu): kernels built on it are reused.

    It is `net.function`: `f(params, images, taps=None)`; a zero tap added to a layer's
    output gives gradients at that intermediate activation (Grad-CAM), without hooks.
    """
    fns = _net_fns(net)
    key = (tuple(layers), relu)
    if key not in fns:
        fns[key] = net.function(layers, relu=relu)
    return fns[key]


# ----------------------------------------------------------------------- network facts
def score_layers(net) -> tuple[str | None, str | None]:
    """(pre-softmax layer, softmax layer) of a network; None where absent."""
    soft = [s for s in net.steps if s.kind == "softmax"]
    if not soft:
        return None, None
    return soft[-1].inputs[0], soft[-1].name


def layer_shapes(net, layers, hw: tuple[int, int]) -> dict[str, tuple]:
    """Output shapes (N=1) of `layers` for an hw input, without computing anything."""
    names = tuple(layers)
    spec = jax.ShapeDtypeStruct((1, *hw, 3), jnp.float32)
    out = jax.eval_shape(lambda p, x: net.apply(p, x, names), net.params, spec)
    return {n: tuple(v.shape) for n, v in out.items()}


def network_target(net, target, score: str, image: np.ndarray) -> Target:
    """Resolve `target` for `net`; None means the class the network predicts for `image`."""
    logit, prob = score_layers(net)
    if target is None:
        if logit is None:
            raise AttributionError("target=None means 'the predicted class', but this network has no "
                                   "class scores; pass a (layer, channel) target")
        out = net.jitted([logit])(net.params, jnp.asarray(image[None]))[logit]
        target = int(np.argmax(np.asarray(out).reshape(-1)))
    if isinstance(target, (tuple, list)):
        def channels(layer):
            net.require_weights([layer])
            return layer_shapes(net, [layer], image.shape[:2])[layer][-1]
        return resolve(target, classes=net.classes, logit_layer=logit, prob_layer=prob, score=score,
                       layer_name=net.layer_name, num_channels=channels)
    t = resolve(target, classes=net.classes, logit_layer=logit, prob_layer=prob, score=score)
    net.require_weights([t.layer])
    return t


def prepare_image(net, image: ImageLike, resize: str) -> np.ndarray:
    """One image as float32 H×W×3 0..255 at the network's input size (as `classify` sees it)."""
    batch, single = to_batch(image)
    if not single and len(batch) != 1:
        raise ImageError(f"attribution maps explain one image at a time; got a batch of {len(batch)}")
    return fit_to_size(batch, net.input_size, resize)[0]


# ----------------------------------------------------------------------- options and chunks
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
    return int(math.floor(x + 0.5))  # MATLAB rounds halves away from zero (x >= 0 here)


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
        from ..display import mat2gray
        if self.method in ("grad_cam", "occlusion"):
            return mat2gray(self.map)
        return np.clip(np.abs(self.map) / _p99(self.map), 0.0, 1.0)

    def overlay(self, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
        """:meth:`display_map` blended over the image: H×W×3 float in [0, 1]."""
        from ..display import overlay
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
        from ..display import apply_colormap, save_png
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
