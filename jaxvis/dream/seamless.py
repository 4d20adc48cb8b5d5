"""Seamless dreams: the objective of a layer on the image as if it tiled the plane.

A network's border makes its gradient at the image border unlike anywhere else (a strided
convolution leaves the last row uncovered, zero padding dims the first). Laplacian
normalisation then boosts that border-only component into a bright frame. Here the
network sees the image wrap-padded by about half the layer's receptive field, and the
objective reads only the positions whose receptive-field centres lie on the original
image: for convolutional layers that is the activation of the periodically tiled image,
so the gradient has no border at all (and dreams tile seamlessly). Linear layers stay
linear, so MATLAB's conv1 strengths still rise by the same amount every step.
"""

from __future__ import annotations

import math
import weakref

import jax
import jax.numpy as jnp
import numpy as np

from ..nets.function import FunctionNetwork, from_function

MAX_PAD = 48  # wrap padding is capped: deep layers' receptive fields are large, their borders matter less
_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def layer_geometry(net, layer: str) -> tuple[int, float, int] | None:
    """(stride, offset, receptive field) of `layer` along one axis, measured; None if it has no spatial grid.

    Stride from the output sizes at two input sizes; offset (input position of output 0's receptive
    field centre) and size from the gradient support of a central output position.
    """
    fn = net.function([layer])
    n = 2 * max(net.input_size)

    def size(m):
        try:
            return jax.eval_shape(fn, net.params, jax.ShapeDtypeStruct((1, m, m, 3), jnp.float32))[layer].shape[1]
        except (TypeError, ValueError):
            return None

    a, b = size(n), size(n + 64)
    if a is None or b is None or b == a or a < 3:
        return None
    stride = 64 / (b - a)
    if stride != int(stride):
        return None
    k = a // 2
    x = 127.5 + 20 * jax.random.normal(jax.random.PRNGKey(0), (1, n, n, 3))
    g = jax.jit(jax.grad(lambda x: fn(net.params, x)[layer][0, k, k, :].sum()))(x)  # eager grad compiles op by op
    rows = np.nonzero(np.abs(np.asarray(g[0])).sum(axis=(1, 2)))[0]
    if rows.size == 0:
        return None
    centre = (rows.min() + rows.max()) / 2
    return int(stride), centre - k * stride, int(rows.max() - rows.min() + 1)


def seamless(net, layer: str) -> FunctionNetwork | None:
    """A network whose `layer` is the cropped activation of the wrap-padded image (cached per net and layer)."""
    per = _cache.setdefault(net, {})
    if layer in per:
        return per[layer]
    geo = layer_geometry(net, layer)
    wrapped = None
    if geo is not None:
        stride, offset, rf = geo
        pad = min(MAX_PAD, int(math.ceil(rf / 2)))

        def apply(params, x):
            h, w = x.shape[1:3]
            xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="wrap")
            act = net.apply(params, xp, [layer])[layer]
            i0 = int(math.ceil((pad - offset) / stride))
            ny = int(math.ceil((pad + h - offset) / stride)) - i0
            nx = int(math.ceil((pad + w - offset) / stride)) - i0
            return {layer: act[:, i0:i0 + ny, i0:i0 + nx]}

        wrapped = from_function(apply, net.params, input_size=net.input_size, name=f"{net.name}:{layer} (seamless)")
        wrapped.require_weights = net.require_weights  # type: ignore[method-assign]  # the seamless view needs the net's weights
    per[layer] = wrapped
    return wrapped
