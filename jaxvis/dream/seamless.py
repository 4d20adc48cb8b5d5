"""Seamless dreams: the objective of a layer on the image as if it tiled the plane.

A network's border makes its gradient at the image border unlike anywhere else (a strided
convolution leaves the last row uncovered, zero padding dims the first). Laplacian
normalisation then boosts that border-only component into a bright frame. Here the
network sees the image wrap-padded by about half the layer's receptive field, and the
objective reads only the positions whose receptive-field centres lie on the original
image: for convolutional layers that is the activation of the periodically tiled image,
so the gradient has no border at all (and dreams tile seamlessly). Linear layers stay
linear, so MATLAB's conv1 strengths still rise by the same amount every step.

The tiling is exact only when the image's period is a multiple of the layer's stride: otherwise
the layer's grid slips by (size mod stride) pixels at the wrap seam. The gradients of neighbouring
positions, whose receptive fields overlap, cancel each other where they are evenly spaced and do
not where the spacing slips, so the seam — the image's edges — got up to 3× the interior's gradient
(SqueezeNet fire6, stride 16, 227 and 318 px: the bright top/bottom bands of README command 1's
dream). The network therefore sees the image resampled, periodically (trigonometric interpolation:
linear, exact for the periodic image), to the next multiple of the stride, 227 → 240 px.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

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
        hs, ws = (-(-n // stride) * stride for n in (h, w))  # periods that are multiples of the stride
        if (hs, ws) != (h, w):
            x = jnp.einsum("yh,bhwc,xw->byxc", jnp.asarray(periodic_resize_matrix(h, hs)), x,
                           jnp.asarray(periodic_resize_matrix(w, ws)))
        xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="wrap")
        act = net.apply(params, xp, [layer])[layer]
        i0 = int(math.ceil((pad - offset) / stride))  # the first position whose centre is on the image
        return {layer: act[:, i0:i0 + hs // stride, i0:i0 + ws // stride]}

    wrapped = from_function(apply, net.params, input_size=net.input_size, name=f"{net.name}:{layer} (seamless)",
                            input_channels=net.input_channels)
    wrapped.require_weights = net.require_weights  # type: ignore[method-assign]  # the seamless view needs the net's weights
    return wrapped


def periodic_resize_matrix(n: int, m: int) -> np.ndarray:
    """m×n float32 matrix resampling a period-n signal to m samples over the same period: trigonometric
    (band-limited) interpolation, sample i at source position i·n/m. Upsampling (m ≥ n) is exact: the
    signal's every frequency is kept and n samples of the result give back the source."""
    u = np.arange(m)[:, None] * (n / m) - np.arange(n)[None, :]
    s = np.sin(np.pi * u / n)
    near = np.abs(s) < 1e-9
    safe = np.where(near, 1.0, s)
    if n % 2:  # Dirichlet kernel of the n frequencies −(n−1)/2 … (n−1)/2
        k = np.sin(np.pi * u) / (n * safe)
    else:  # even n: the Nyquist frequency enters as a cosine (its real part)
        k = np.sin(np.pi * u) * np.cos(np.pi * u / n) / (n * safe)
    k = np.where(near, 1.0, k)  # u = 0: the sample itself
    return k.astype(np.float32)
