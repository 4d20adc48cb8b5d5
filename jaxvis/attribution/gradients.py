"""Gradient saliency maps: plain gradient, SmoothGrad, integrated gradients, guided backprop, deconvnet.

Core functions take a pure `fn(params, images) -> {layer: activation}` and a (layer,
channel) score; the samples of SmoothGrad (noisy copies) and integrated gradients (points
on the path) are generated inside one jitted call per chunk of `batch_size`, with
`jax.vmap`, and their gradients come from one batched backward pass — never a Python
loop per sample. Guided backprop and deconvnet are the plain gradient of a function whose
ReLUs have those backward rules (`relu="guided"|"deconvnet"` of the network's pure
function, :mod:`jaxvis.nets.ops`), not hooks and not a second model.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import AttributionError
from ..imaging.images import ImageLike
from .base import (
    Attribution,
    chunking,
    kernel,
    net_function,
    network_target,
    pad_rows,
    positive_int,
    prepare_image,
    unit_score,
)

METHODS = ("gradient", "smoothgrad", "integrated_gradients", "guided_backprop", "deconvnet")
RELU_OF = {"guided_backprop": "guided", "deconvnet": "deconvnet"}
DEFAULT_BATCH = 16  # backward passes at 227×227 per jitted call: bounds memory (~1 GB on SqueezeNet)


# ----------------------------------------------------------------------- kernels (pure)
def _grad_fn(fn, layer, softmax=False):
    def g(params, images, channel, weights):
        # Samples are independent, so the gradient of Σ w_i s_i holds w_i ∂s_i/∂x_i in row i.
        def total(x):
            s = unit_score(fn(params, x), layer, channel, softmax)
            return jnp.sum(weights * s), s
        return jax.grad(total, has_aux=True)(images)
    return g


def _chunked_sum(g, params, channel, make, xs, weights):
    """Σ over chunks of the weighted gradients of `make(x_chunk)`, chunks scanned in one call.

    xs: n_chunks × b × … per-sample inputs; weights: n_chunks × b. Each chunk is one batched
    forward + backward of b samples (bounded memory); `lax.scan` runs the chunks inside one
    jitted call, so there is one dispatch and one device→host copy per map.
    """
    def step(total, chunk):
        x, w = chunk
        grads, _ = g(params, make(x), channel, w)
        return total + grads.sum(0), None

    shape = jax.eval_shape(make, jax.tree.map(lambda a: a[0], xs)).shape[1:]
    total, _ = jax.lax.scan(step, jnp.zeros(shape, jnp.float32), (xs, weights))
    return total


def _build_smooth(fn, layer, softmax):
    g = _grad_fn(fn, layer, softmax)

    def k(params, image, keys, sigma, channel, weights):
        noisy = lambda ks: jax.vmap(lambda key: image + sigma * jax.random.normal(key, image.shape, image.dtype))(ks)
        return _chunked_sum(g, params, channel, noisy, keys, weights)
    return k


def _build_ig(fn, layer, softmax):
    g = _grad_fn(fn, layer, softmax)

    def k(params, image, baseline, alphas, channel, weights):
        path = lambda a: baseline[None] + a[:, None, None, None] * (image - baseline)[None]
        return _chunked_sum(g, params, channel, path, alphas, weights)
    return k


def _chunks(values: np.ndarray, total: int, batch_size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """values (total, …) → (n × b × …, weights n × b): balanced chunks, padded rows weighted 0."""
    b, n = chunking(total, batch_size, DEFAULT_BATCH)
    w = np.zeros(n * b, np.float32)
    w[:total] = 1.0 / total
    return pad_rows(values, n * b).reshape(n, b, *values.shape[1:]), w.reshape(n, b)


# ----------------------------------------------------------------------- core (framework-agnostic)
def gradient(fn, params, image, layer: str, channel: int, *, softmax: bool = False) -> tuple[np.ndarray, float]:
    """∂score/∂image for one H×W×C image; score = spatial mean of `fn(...)[layer][..., channel]`
    (of its softmax over channels with softmax=True).

    Returns:
      (H×W×C gradient, score).
    """
    k = kernel(fn, "gradient", (layer, softmax), _grad_fn)
    g, s = k(params, jnp.asarray(image)[None], jnp.int32(channel), jnp.ones(1, jnp.float32))
    return np.asarray(g[0]), float(s[0])


def smoothgrad(fn, params, image, layer: str, channel: int, *, sigma: float, num_samples: int = 50,
               batch_size: int | None = None, seed: int = 0, softmax: bool = False) -> np.ndarray:
    """SmoothGrad (Smilkov et al. 2017): mean gradient over `image + N(0, sigma²)` copies.

    Sample i is `image + sigma * jax.random.normal(keys[i], image.shape)` with
    `keys = jax.random.split(PRNGKey(seed), num_samples)`, so the result does not depend on
    `batch_size`. All samples are computed in one jitted call: chunks of at most
    `batch_size` (default 16) noisy copies, each one batched forward + backward pass.

    Returns:
      H×W×C mean gradient.
    """
    keys = np.asarray(jax.random.split(jax.random.PRNGKey(seed), num_samples))
    ks, w = _chunks(keys, num_samples, batch_size)
    k = kernel(fn, "smoothgrad", (layer, softmax), _build_smooth)
    return np.asarray(k(params, jnp.asarray(image), jnp.asarray(ks), jnp.float32(sigma), jnp.int32(channel),
                        jnp.asarray(w)))


def integrated_gradients(fn, params, image, layer: str, channel: int, *, baseline=0.0, steps: int = 50,
                         batch_size: int | None = None, softmax: bool = False) -> np.ndarray:
    """Integrated gradients (Sundararajan et al. 2017), midpoint Riemann rule with `steps` points.

    attribution = (image − baseline) × mean of ∂score/∂x at x = baseline + α(image − baseline),
    α = (k + ½)/steps, k = 0..steps−1 (captum's `method="riemann_middle"`). Completeness:
    the attributions sum to score(image) − score(baseline), up to the quadrature error.

    Returns:
      H×W×C attributions.
    """
    alphas = (np.arange(steps, dtype=np.float32) + 0.5) / steps
    al, w = _chunks(alphas, steps, batch_size)
    x = jnp.asarray(image)
    base = jnp.broadcast_to(jnp.asarray(baseline, x.dtype), x.shape)
    k = kernel(fn, "integrated_gradients", (layer, softmax), _build_ig)
    total = k(params, x, base, jnp.asarray(al), jnp.int32(channel), jnp.asarray(w))
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
      score: class targets: 'logit' (the pre-softmax class score, default; captum's usual
        target on a model returning logits) or 'softmax' (the class probability; MATLAB
        networks end in a softmax layer, so MATLAB scores that).
      batch_size: most samples per batched forward + backward pass (bounds memory); default
        16. All chunks of a map run inside one jitted call.
      seed: SmoothGrad noise seed.
      resize: 'crop', 'stretch' or 'none' (see :func:`jaxvis.classify`).

    Returns:
      :class:`Attribution`: `.map` H×W, `.raw` H×W×3 per-colour values (what captum's
      `attribute` returns, HWC), `.target`, `.score`, `.options`. Colour reduction of `.map`:
      max |·| over colours (Simonyan et al. 2014) for every method except integrated
      gradients, whose map is the signed sum over colours (so it keeps completeness: it sums
      to score(image) − score(baseline)). captum's `visualize_image_attr` sums over colours
      instead, so compare `.raw` with captum's attributions, not `.map`.
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
    soft = t.score == "softmax"
    raw, s = gradient(fn, net.params, x, t.layer, t.channel, softmax=soft)  # also the score, in the same pass
    opts: dict = {"method": method, "score": t.score, "layer": t.layer, "channel": t.channel, "resize": resize}
    if method == "smoothgrad":
        sigma = float(noise_level) * float(x.max() - x.min())
        raw = smoothgrad(fn, net.params, x, t.layer, t.channel, sigma=sigma, num_samples=num_samples,
                         batch_size=batch_size, seed=seed, softmax=soft)
        opts.update(noise_level=float(noise_level), sigma=sigma, num_samples=num_samples, seed=seed,
                    batch_size=batch_size or DEFAULT_BATCH)
    elif method == "integrated_gradients":
        raw = integrated_gradients(fn, net.params, x, t.layer, t.channel, baseline=base, steps=steps,
                                   batch_size=batch_size, softmax=soft)
        _, s0 = gradient(fn, net.params, np.broadcast_to(base, x.shape).astype(np.float32), t.layer, t.channel,
                         softmax=soft)
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
