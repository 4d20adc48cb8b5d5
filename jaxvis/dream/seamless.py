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

import jax.numpy as jnp

from ..nets.function import FunctionNetwork, from_function
from ..nets.receptive import receptive_field

MAX_PAD = 48  # wrap padding is capped: deep layers' receptive fields are large, their borders matter less


def layer_geometry(net, layer: str) -> tuple[int, float, int] | None:
    """(stride, offset, receptive field size) of `layer` along the rows; None if it has no spatial grid.

    From :func:`jaxvis.receptive_field` (the network's layer graph, measured where its geometry is
    incomplete): offset is the input position of output 0's receptive-field centre.
    """
    rf = receptive_field(net, layer)
    if not rf.spatial:
        return None
    return rf.stride[0], rf.offset[0], rf.size[0]


def seamless(net, layer: str) -> FunctionNetwork | None:
    """A network whose `layer` is the cropped activation of the wrap-padded image (memoised on `net`)."""
    return net.cache.memo(("dream", "seamless", layer), lambda: _wrapped(net, layer))


def _wrapped(net, layer: str) -> FunctionNetwork | None:
    geo = layer_geometry(net, layer)
    if geo is None:
        return None
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

    wrapped = from_function(apply, net.params, input_size=net.input_size, name=f"{net.name}:{layer} (seamless)",
                            input_channels=net.input_channels)
    wrapped.require_weights = net.require_weights  # type: ignore[method-assign]  # the seamless view needs the net's weights
    return wrapped
