"""Laplacian Pyramid Gradient Normalization as an optax transformation.

This is `lap_normalize` of the "DeepDreaming with TensorFlow" tutorial (the
algorithm MATLAB's `deepDreamImage` cites): the gradient is split into a
Laplacian pyramid with the 5-tap binomial kernel [1, 4, 6, 4, 1]/16 in each
direction ('SAME' zero padding, stride 2), every band is divided by its RMS
(`sqrt(mean(band**2))`, at least `eps`), and the bands are merged back. Low
frequencies, which the raw gradient of a CNN almost lacks, get as much weight
as high ones, so smooth, large-scale patterns appear within a few steps.

Every image of an N×H×W×C batch is normalised on its own (the RMS is taken over
its H, W and C), so images in one batch never influence each other.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

_TAPS = np.array([1.0, 4.0, 6.0, 4.0, 1.0], np.float32) / 16.0
_DN = ("NHWC", "HWIO", "NHWC")


def _down(x: jax.Array) -> jax.Array:
    """Blur with the separable 5×5 binomial kernel and keep every 2nd pixel (TF conv2d 'SAME', stride 2)."""
    c = x.shape[-1]
    kh = jnp.asarray(np.tile(_TAPS.reshape(5, 1, 1, 1), (1, 1, 1, c)), x.dtype)
    kw = kh.reshape(1, 5, 1, c)
    # Depthwise (one kernel per channel), as the tutorial's k5x5 * eye(3).
    x = lax.conv_general_dilated(x, kh, (2, 1), "SAME", dimension_numbers=_DN, feature_group_count=c)
    return lax.conv_general_dilated(x, kw, (1, 2), "SAME", dimension_numbers=_DN, feature_group_count=c)


def _up(lo: jax.Array, like: jax.Array) -> jax.Array:
    """TF's conv2d_transpose(lo, 4*k5x5, shape(like), stride 2): the transpose of `_down`, times 4."""
    (hi,) = jax.linear_transpose(_down, like)(lo)
    return 4.0 * hi


def lap_split(x: jax.Array, levels: int) -> list[jax.Array]:
    """Laplacian pyramid of an N×H×W×C batch: [coarsest low-pass, …, finest band]."""
    bands = []
    for _ in range(levels):
        lo = _down(x)
        bands.append(x - _up(lo, x))
        x = lo
    bands.append(x)
    return bands[::-1]


def lap_merge(bands: list[jax.Array]) -> jax.Array:
    """Inverse of :func:`lap_split`."""
    x = bands[0]
    for hi in bands[1:]:
        x = _up(x, hi) + hi
    return x


def _normalize_std(x: jax.Array, eps: float) -> jax.Array:
    rms = jnp.sqrt(jnp.mean(jnp.square(x), axis=(1, 2, 3), keepdims=True))  # per image
    return x / jnp.maximum(rms, eps)


def laplacian_normalize(g: jax.Array, levels: int = 4, eps: float = 1e-10) -> jax.Array:
    """Normalise each image's gradient band by band.

    Args:
      g: N×H×W×C batch of gradients (an H×W×C array is treated as one image).
      levels: number of band-pass splits (the tutorial's `scale_n`, 4); 0 = plain RMS normalisation.
      eps: floor of each band's RMS, so an all-zero band stays zero instead of NaN.

    Returns:
      Array of `g`'s shape and dtype.
    """
    if g.ndim == 3:
        return laplacian_normalize(g[None], levels, eps)[0]
    if g.ndim != 4:
        raise ValueError(f"laplacian_normalize expects N×H×W×C or H×W×C gradients, got shape {g.shape}")
    if levels < 0:
        raise ValueError(f"levels must be >= 0, got {levels}")
    return _lap_normalize(g, levels, eps)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _lap_normalize(g: jax.Array, levels: int, eps: float) -> jax.Array:
    return lap_merge([_normalize_std(b, eps) for b in lap_split(g, levels)])


def lap_normalize(levels: int = 4, eps: float = 1e-10) -> optax.GradientTransformation:
    """optax transformation applying :func:`laplacian_normalize` to every leaf (N×H×W×C or H×W×C).

    Stateless; chain it before the step, e.g. ``optax.chain(lap_normalize(4), optax.scale(step))``
    for gradient *ascent* (updates are added to the image).
    """
    if levels < 0:
        raise ValueError(f"levels must be >= 0, got {levels}")

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        return jax.tree.map(lambda g: laplacian_normalize(g, levels, eps), updates), state

    return optax.GradientTransformation(init_fn, update_fn)
