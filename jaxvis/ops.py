"""Layer operations shared by the networks: ceil-mode pooling, LRN, ReLU variants.

All functions take NHWC arrays. They are plain JAX functions so the networks stay
differentiable, `vmap`-able and `jit`-able.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

RELU_MODES = ("standard", "guided", "deconvnet")


def pool_out_size(n: int, k: int, s: int, p: int, ceil_mode: bool) -> int:
    """Output length of a pooling window (Caffe/PyTorch rounding rules)."""
    num = n + 2 * p - k
    out = (-(-num // s) if ceil_mode else num // s) + 1
    # Caffe and PyTorch drop a last window that would start inside the right padding.
    if ceil_mode and p > 0 and (out - 1) * s >= n + p:
        out -= 1
    return out


def max_pool(x: jax.Array, k: int, s: int, p: int = 0, ceil_mode: bool = False) -> jax.Array:
    """k×k max pooling, stride s, symmetric padding p; ceil_mode as in Caffe/PyTorch."""
    h, w = x.shape[1], x.shape[2]
    oh, ow = pool_out_size(h, k, s, p, ceil_mode), pool_out_size(w, k, s, p, ceil_mode)
    # Ceil mode is floor mode plus extra -inf padding on the bottom/right edge.
    ph = max((oh - 1) * s + k - h - p, 0)
    pw = max((ow - 1) * s + k - w - p, 0)
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, k, k, 1), (1, s, s, 1),
                             ((0, 0), (p, ph), (p, pw), (0, 0)))


def global_avg_pool(x: jax.Array) -> jax.Array:
    """Mean over the spatial axes, keeping them as 1×1."""
    return jnp.mean(x, axis=(1, 2), keepdims=True)


def adaptive_avg_pool(x: jax.Array, out_hw: tuple[int, int]) -> jax.Array:
    """PyTorch's AdaptiveAvgPool2d: bin i spans [floor(i*H/o), ceil((i+1)*H/o))."""
    h, w = x.shape[1], x.shape[2]
    oh, ow = out_hw
    if (h, w) == (oh, ow):
        return x
    if h % oh == 0 and w % ow == 0:
        return x.reshape(x.shape[0], oh, h // oh, ow, w // ow, x.shape[3]).mean(axis=(2, 4))

    def bins(n, o):
        m = np.zeros((o, n), np.float32)
        for i in range(o):
            a, b = (i * n) // o, -(-((i + 1) * n) // o)
            m[i, a:b] = 1.0 / (b - a)
        return jnp.asarray(m)

    # Separable averaging matrices: exact, and a plain matmul for XLA.
    return jnp.einsum("nhwc,ih,jw->nijc", x, bins(h, oh), bins(w, ow))


def lrn(x: jax.Array, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> jax.Array:
    """Cross-channel local response normalisation, Caffe/PyTorch definition.

    b_c = a_c / (k + alpha/size * sum_{c' in window(c)} a_{c'}^2) ** beta
    """
    sq = lax.reduce_window(x * x, 0.0, lax.add, (1, 1, 1, size), (1, 1, 1, 1),
                           ((0, 0), (0, 0), (0, 0), ((size - 1) // 2, size // 2)))
    return x * (k + (alpha / size) * sq) ** (-beta)


@jax.custom_vjp
def _guided_relu(x):
    return jnp.maximum(x, 0)


def _guided_fwd(x):
    return jnp.maximum(x, 0), x


def _guided_bwd(x, g):
    # Springenberg et al.: pass gradient only where both the input and the gradient are positive.
    return (jnp.where((x > 0) & (g > 0), g, 0.0),)


_guided_relu.defvjp(_guided_fwd, _guided_bwd)


@jax.custom_vjp
def _deconv_relu(x):
    return jnp.maximum(x, 0)


def _deconv_fwd(x):
    return jnp.maximum(x, 0), None


def _deconv_bwd(_, g):
    # Zeiler & Fergus: the backward pass is a ReLU of the gradient, ignoring the forward mask.
    return (jnp.maximum(g, 0),)


_deconv_relu.defvjp(_deconv_fwd, _deconv_bwd)


@functools.cache
def relu_fn(mode: str):
    """ReLU whose backward rule is `mode`: 'standard', 'guided' (guided backprop) or 'deconvnet'."""
    if mode == "standard":
        return jax.nn.relu
    if mode == "guided":
        return _guided_relu
    if mode == "deconvnet":
        return _deconv_relu
    raise ValueError(f"relu mode {mode!r} is not one of {RELU_MODES}")
