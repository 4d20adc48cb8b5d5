"""Laplacian Pyramid Gradient Normalization as an optax transformation.

This is `lap_normalize` of the "DeepDreaming with TensorFlow" tutorial (the
algorithm MATLAB's `deepDreamImage` cites): the gradient is split into a
Laplacian pyramid with the 5-tap binomial kernel [1, 4, 6, 4, 1]/16 in each
direction (stride 2), every band is divided by its RMS
(`sqrt(mean(band**2))`, at least `eps`), and the bands are merged back. Low
frequencies, which the raw gradient of a CNN almost lacks, get as much weight
as high ones, so smooth, large-scale patterns appear within a few steps.

Every image of an N×H×W×C batch is normalised on its own (the RMS is taken over
its H, W and C), so images in one batch never influence each other.

Borders: the tutorial pads with zeros ('SAME'), so the low-pass bands fade towards the
edges. `padding="reflect"` (the default) mirrors the image at the border when
downsampling and divides the upsampled band by the upsampled ones, so a constant stays
constant up to the edge. `padding="wrap"` treats the gradient as periodic: with
deepDreamImage's seamless objective (jaxvis.dream.seamless) the gradient has no border at
all, and neither has its normalisation — no bright frames. `padding="zero"` is the tutorial's.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from ..errors import VisualizationError
from ..nets import cpu

_TAPS = np.array([1.0, 4.0, 6.0, 4.0, 1.0], np.float32) / 16.0


def _same(n: int) -> tuple[int, int, int]:
    """(output length, padding before, padding after) of TF's 'SAME' 5-tap stride-2 filter on length n."""
    out = -(-n // 2)
    total = max((out - 1) * 2 + 5 - n, 0)
    return out, total // 2, total - total // 2


def _down_axis(x: jax.Array, axis: int, mode: str) -> jax.Array:
    out, lo, hi = _same(x.shape[axis])
    if mode != "zero" and x.shape[axis] > max(lo, hi):
        widths = [(0, 0)] * x.ndim
        widths[axis] = (lo, hi)
        xp = jnp.pad(x, widths, mode=mode)
    else:
        pad = [(0, 0, 0)] * x.ndim
        pad[axis] = (lo, hi, 0)
        xp = lax.pad(x, jnp.zeros((), x.dtype), pad)
    s = [lax.slice_in_dim(xp, t, t + 2 * (out - 1) + 1, 2, axis) for t in range(5)]
    t0, t1, t2 = (float(t) for t in _TAPS[:3])  # Python floats: keep x.dtype
    return t0 * (s[0] + s[4]) + t1 * (s[1] + s[3]) + t2 * s[2]


def _up_axis(lo: jax.Array, n: int, axis: int, wrap: bool = False) -> jax.Array:
    """2 × the transpose of _down_axis back to length n, as its even and odd output phases:
    even 2m gets taps 0, 2, 4 of lo[m], lo[m-1], lo[m-2]; odd 2m+1 taps 1, 3 of lo[m], lo[m-1]."""
    m = lo.shape[axis] + 2
    _, before, _ = _same(n)
    if wrap:
        widths = [(0, 0)] * lo.ndim
        widths[axis] = (2, 2)
        lp = jnp.pad(lo, widths, mode="wrap")
    else:
        pad = [(0, 0, 0)] * lo.ndim
        pad[axis] = (2, 2, 0)
        lp = lax.pad(lo, jnp.zeros((), lo.dtype), pad)
    s0, s1, s2 = (lax.slice_in_dim(lp, 2 - d, 2 - d + m, 1, axis) for d in range(3))  # lo[m - d]
    t0, t1, t2 = (float(t) for t in _TAPS[:3])
    even = 2 * (t0 * s0 + t2 * s1 + t0 * s2)
    odd = 2 * (t1 * s0 + t1 * s1)
    shape = list(lo.shape)
    shape[axis] = 2 * m
    both = jnp.stack([even, odd], axis=axis + 1).reshape(shape)  # interleave the phases
    return lax.slice_in_dim(both, before, before + n, 1, axis)


def _down(x: jax.Array, mode: str = "zero") -> jax.Array:
    """Blur with the separable 5×5 binomial kernel and keep every 2nd pixel (TF conv2d 'SAME', stride 2).

    Written as strided slices and adds, per axis: XLA fuses them into a few loops. (The
    tutorial's depthwise convolution, and its transpose, an input-dilated depthwise
    convolution, were 55× slower on XLA:CPU: docs/benchmarks.md.)
    """
    return _down_axis(_down_axis(x, 1, mode), 2, mode)


def _up(lo: jax.Array, like: jax.Array, mode: str = "zero") -> jax.Array:
    """TF's conv2d_transpose(lo, 4*k5x5, shape(like), stride 2): the transpose of `_down`, times 4.

    'reflect': divided by the same upsampling of ones (a constant, folded by XLA), so the border
    pixels, which receive fewer taps, are not darkened. 'wrap': periodic (no border at all).
    """
    wrap = mode == "wrap"
    up = _up_axis(_up_axis(lo, like.shape[1], 1, wrap), like.shape[2], 2, wrap)
    if mode == "reflect":
        ones = jnp.ones((1, *lo.shape[1:3], 1), lo.dtype)
        up = up / _up_axis(_up_axis(ones, like.shape[1], 1), like.shape[2], 2)
    return up


def lap_split(x: jax.Array, levels: int, mode: str = "zero") -> list[jax.Array]:
    """Laplacian pyramid of an N×H×W×C batch: [coarsest low-pass, …, finest band]."""
    bands = []
    for _ in range(levels):
        lo = _down(x, mode)
        bands.append(x - _up(lo, x, mode))
        x = lo
    bands.append(x)
    return bands[::-1]


def lap_merge(bands: list[jax.Array], mode: str = "zero") -> jax.Array:
    """Inverse of :func:`lap_split` (with the same padding `mode`: 'zero', 'reflect' or 'wrap')."""
    x = bands[0]
    for hi in bands[1:]:
        x = _up(x, hi, mode) + hi
    return x


def _rms(x: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.mean(jnp.square(x), axis=(1, 2, 3), keepdims=True))  # per image


def _normalize_std(x: jax.Array, floor: jax.Array) -> jax.Array:
    return x / jnp.maximum(_rms(x), floor)


def laplacian_normalize(g: jax.Array, levels: int = 4, eps: float = 1e-10, padding: str = "reflect",
                        rel_eps: float = 1e-3) -> jax.Array:
    """Normalise each image's gradient band by band.

    Args:
      g: N×H×W×C batch of gradients (an H×W×C array is treated as one image).
      levels: number of band-pass splits (the tutorial's `scale_n`, 4); 0 = plain RMS normalisation.
      eps: floor of each band's RMS, so an all-zero band stays zero instead of NaN.
      rel_eps: a second floor, relative to the whole gradient's RMS: a band holding less than this
        fraction of it (in the limit, float round-off of an empty band) is not blown up to unit RMS.
        0 is the tutorial's normalisation.
      padding: 'reflect' (default), 'wrap' (for periodic gradients: seamless dreams) or 'zero' (the TF
        tutorial's).

    Returns:
      Array of `g`'s shape and dtype.
    """
    if g.ndim == 3:
        return laplacian_normalize(g[None], levels, eps, padding, rel_eps)[0]
    if g.ndim != 4:
        raise VisualizationError(f"laplacian_normalize expects N×H×W×C or H×W×C gradients, got shape {g.shape}")
    if levels < 0:
        raise VisualizationError(f"levels must be >= 0, got {levels}")
    if padding not in ("reflect", "zero", "wrap"):
        raise VisualizationError(f"padding must be 'reflect', 'wrap' or 'zero', got {padding!r}")
    return _lap_normalize(g, levels, eps, padding, rel_eps)


@functools.partial(cpu.jit, static_argnums=(1, 2, 3, 4))
def _lap_normalize(g: jax.Array, levels: int, eps: float, mode: str, rel_eps: float) -> jax.Array:
    floor = jnp.maximum(eps, rel_eps * _rms(g))
    return lap_merge([_normalize_std(b, floor) for b in lap_split(g, levels, mode)], mode)


@functools.cache
def scale_by_laplacian_norm(levels: int = 4, eps: float = 1e-10, padding: str = "reflect",
                            rel_eps: float = 1e-3) -> optax.GradientTransformation:
    """optax transformation applying :func:`laplacian_normalize` to every leaf (N×H×W×C or H×W×C).

    Stateless; chain it before the step, e.g. ``optax.chain(scale_by_laplacian_norm(4), optax.scale(-step))``
    to minimise a loss. Cached per arguments, so compiled steps that use it are found again.
    """
    if levels < 0:
        raise VisualizationError(f"levels must be >= 0, got {levels}")

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        return jax.tree.map(lambda g: laplacian_normalize(g, levels, eps, padding, rel_eps), updates), state

    return optax.GradientTransformation(init_fn, update_fn)
