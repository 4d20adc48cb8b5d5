"""Gradient saliency maps: plain gradient, SmoothGrad, integrated gradients, guided backprop, deconvnet.

Core functions take a pure `fn(params, images) -> {layer: activation}` and a (layer,
channel) score; the samples of SmoothGrad (noisy copies) and integrated gradients (points
on the path) are generated inside one jitted call per chunk of `batch_size`, with
`jax.vmap`, and their gradients come from one batched backward pass — never a Python
loop per sample. Guided backprop and deconvnet are the plain gradient of a function whose
ReLUs have those backward rules (`relu="guided"|"deconvnet"` of the network's pure
function, :mod:`jaxvis.ops`), not hooks and not a second model.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import AttributionError
from ..images import ImageLike
from .common import (Attribution, chunking, kernel, net_function, network_target, pad_rows, positive_int,
                     prepare_image, unit_score)

METHODS = ("gradient", "smoothgrad", "integrated_gradients", "guided_backprop", "deconvnet")
RELU_OF = {"guided_backprop": "guided", "deconvnet": "deconvnet"}
DEFAULT_BATCH = 16  # backward passes at 227×227 per jitted call: bounds memory (~1 GB on SqueezeNet)


# ----------------------------------------------------------------------- kernels (pure)
def _grad_fn(fn, layer):
    def g(params, images, channel, weights):
        # Samples are independent, so the gradient of Σ w_i s_i holds w_i ∂s_i/∂x_i in row i.
        def total(x):
            s = unit_score(fn(params, x), layer, channel)
            return jnp.sum(weights * s), s
        return jax.grad(total, has_aux=True)(images)
    return g


def _build_smooth(fn, layer):
    g = _grad_fn(fn, layer)

    def k(params, image, keys, sigma, channel, weights):
        noisy = jax.vmap(lambda key: image + sigma * jax.random.normal(key, image.shape, image.dtype))(keys)
        grads, _ = g(params, noisy, channel, weights)
        return grads.sum(0)
    return k


def _build_ig(fn, layer):
    g = _grad_fn(fn, layer)

    def k(params, image, baseline, alphas, channel, weights):
        path = jax.vmap(lambda a: baseline + a * (image - baseline))(alphas)
        grads, _ = g(params, path, channel, weights)
        return grads.sum(0)
    return k


# ----------------------------------------------------------------------- core (framework-agnostic)
def gradient(fn, params, image, layer: str, channel: int) -> tuple[np.ndarray, float]:
    """∂score/∂image for one H×W×C image; score = spatial mean of `fn(...)[layer][..., channel]`.

    Returns:
      (H×W×C gradient, score).
    """
    k = kernel(fn, "gradient", (layer,), _grad_fn)
    g, s = k(params, jnp.asarray(image)[None], jnp.int32(channel), jnp.ones(1, jnp.float32))
    return np.asarray(g[0]), float(s[0])


def smoothgrad(fn, params, image, layer: str, channel: int, *, sigma: float, num_samples: int = 50,
               batch_size: int | None = None, seed: int = 0) -> np.ndarray:
    """SmoothGrad (Smilkov et al. 2017): mean gradient over `image + N(0, sigma²)` copies.

    Sample i uses key i of `jax.random.split(PRNGKey(seed), num_samples)`, so the result
    does not depend on `batch_size`.

    Returns:
      H×W×C mean gradient.
    """
    b, n = chunking(num_samples, batch_size, DEFAULT_BATCH)
    keys = np.asarray(jax.random.split(jax.random.PRNGKey(seed), num_samples))
    k = kernel(fn, "smoothgrad", (layer,), _build_smooth)
    x, total = jnp.asarray(image), 0.0
    for c in range(n):
        part = keys[c * b:(c + 1) * b]
        w = np.zeros(b, np.float32)
        w[:len(part)] = 1.0 / num_samples
        total = total + k(params, x, jnp.asarray(pad_rows(part, b)), jnp.float32(sigma), jnp.int32(channel),
                          jnp.asarray(w))
    return np.asarray(total)


def integrated_gradients(fn, params, image, layer: str, channel: int, *, baseline=0.0, steps: int = 50,
                         batch_size: int | None = None) -> np.ndarray:
    """Integrated gradients (Sundararajan et al. 2017), midpoint rule with `steps` points.

    attribution = (image − baseline) × mean of ∂score/∂x at x = baseline + α(image − baseline),
    α = (k + ½)/steps. Completeness: the attributions sum to score(image) − score(baseline),
    up to the quadrature error.

    Returns:
      H×W×C attributions.
    """
    b, n = chunking(steps, batch_size, DEFAULT_BATCH)
    alphas = (np.arange(steps, dtype=np.float32) + 0.5) / steps
    x = jnp.asarray(image)
    base = jnp.broadcast_to(jnp.asarray(baseline, x.dtype), x.shape)
    k = kernel(fn, "integrated_gradients", (layer,), _build_ig)
    total = 0.0
    for c in range(n):
        part = alphas[c * b:(c + 1) * b]
        w = np.zeros(b, np.float32)
        w[:len(part)] = 1.0 / steps
        total = total + k(params, x, base, jnp.asarray(pad_rows(part, b)), jnp.int32(channel), jnp.asarray(w))
    return np.asarray((x - base) * total)


def reduce_channels(raw: np.ndarray, method: str) -> np.ndarray:
    """H×W×C → H×W map: max |·| over colours (Simonyan et al.), or the signed sum for
    integrated gradients (keeps completeness: the map sums to the score difference)."""
    return (raw.sum(-1) if method == "integrated_gradients" else np.abs(raw).max(-1)).astype(np.float32)


# ----------------------------------------------------------------------- Network wrapper
def saliency(net, image: ImageLike, target=None, method: str = "gradient", *, noise_level: float = 0.15,
             num_samples: int = 50, baseline=None, steps: int = 50, score: str = "logit",
             batch_size: int | None = None, seed: int = 0, resize: str = "crop") -> Attribution:
    """Which pixels the target's score is most sensitive to.

    Args:
      net: the network.
      image: one image (path, PIL image or H×W×3 0..255 array); resized to
        `net.input_size` like :func:`jaxvis.classify` (the returned `.image` is what was used).
      target: class index, class name, or (layer, channel) for a hidden unit; None = the
        predicted class.
      method: 'gradient' (|∂score/∂x|, Simonyan et al. 2014), 'smoothgrad' (gradient averaged
        over noisy copies), 'integrated_gradients' (path integral from `baseline`),
        'guided_backprop' (Springenberg et al. 2015) or 'deconvnet' (Zeiler & Fergus 2014).
      noise_level: SmoothGrad noise σ as a fraction of the image's pixel range
        (max − min), 0.15 as in the SmoothGrad paper's recommended 10–20 %.
      num_samples: SmoothGrad noisy copies.
      baseline: integrated-gradients start point in 0..255 pixels: None = black (0), a
        number, a colour (3,) or an H×W×3 image at the network's input size.
      steps: integrated-gradients quadrature points.
      score: 'logit' (pre-softmax class score, default) or 'probability'.
      batch_size: most samples per jitted call (bounds memory); default 16.
      seed: SmoothGrad noise seed.
      resize: 'crop', 'stretch' or 'none' (see :func:`jaxvis.classify`).

    Returns:
      :class:`Attribution`: `.map` H×W (max |·| over colours; for integrated gradients the
      signed colour sum), `.raw` H×W×3 per-colour values, `.target`, `.score`, `.options`.
    """
    if method not in METHODS:
        raise AttributionError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    num_samples = positive_int(num_samples, "num_samples")
    steps = positive_int(steps, "steps")
    batch_size = positive_int(batch_size, "batch_size", allow_none=True)
    if not isinstance(noise_level, numbers.Real) or not np.isfinite(noise_level) or noise_level < 0:
        raise AttributionError(f"noise_level must be a finite number >= 0 (a fraction of the pixel range), "
                               f"got {noise_level!r}")
    x = prepare_image(net, image, resize)
    base = _baseline(baseline, x) if method == "integrated_gradients" else None  # bad input fails before compiling
    t = network_target(net, target, score, x)
    fn = net_function(net, (t.layer,), RELU_OF.get(method, "standard"))
    raw, s = gradient(fn, net.params, x, t.layer, t.channel)  # also the score, in the same pass
    opts: dict = {"method": method, "score": t.score, "layer": t.layer, "channel": t.channel, "resize": resize}
    if method == "smoothgrad":
        sigma = float(noise_level) * float(x.max() - x.min())
        raw = smoothgrad(fn, net.params, x, t.layer, t.channel, sigma=sigma, num_samples=num_samples,
                         batch_size=batch_size, seed=seed)
        opts.update(noise_level=float(noise_level), sigma=sigma, num_samples=num_samples, seed=seed,
                    batch_size=batch_size or DEFAULT_BATCH)
    elif method == "integrated_gradients":
        raw = integrated_gradients(fn, net.params, x, t.layer, t.channel, baseline=base, steps=steps,
                                   batch_size=batch_size)
        _, s0 = gradient(fn, net.params, np.broadcast_to(base, x.shape).astype(np.float32), t.layer, t.channel)
        opts.update(baseline="black (0)" if baseline is None else baseline, steps=steps, baseline_score=s0,
                    completeness_gap=float(raw.sum()) - (s - s0), batch_size=batch_size or DEFAULT_BATCH)
    elif method in RELU_OF:
        opts["relu"] = RELU_OF[method]
    return Attribution(reduce_channels(raw, method), x, method, t, s, opts, raw)


def _baseline(baseline, x: np.ndarray) -> np.ndarray:
    if baseline is None:
        return np.zeros(3, np.float32)
    b = np.asarray(baseline, np.float32)
    try:
        np.broadcast_to(b, x.shape)
    except ValueError:
        raise AttributionError(f"baseline of shape {b.shape} does not fit the {x.shape[0]}×{x.shape[1]}×3 "
                               "network input; pass a number, a colour (3,) or an image of that size") from None
    if not np.all(np.isfinite(b)):
        raise AttributionError("baseline contains NaN or infinite values")
    return b
