"""Seamless dreams: no border frames or edge bands, images that tile the plane.

A network's border makes its gradient at the image border unlike anywhere else (a strided
convolution leaves the last row uncovered, zero padding dims the first). Laplacian
normalisation then boosts that border-only component into a bright frame or band. Two cures,
chosen per layer by `deep_dream(seamless=True)` (:func:`choose`) so that the work stays within
:data:`MAX_CANVAS` of MATLAB's plain run:

* **'pad'** (:func:`seamless`): the network sees the image wrap-padded by half the layer's
  receptive field, and the objective reads only the positions whose receptive-field centres lie on
  the original image: for convolutional layers that is exactly the activation of the periodically
  tiled image, so the gradient has no border at all, the dream is shift-equivariant and a linear
  layer stays linear (MATLAB's conv1 strengths rise by the same amount every step). The tiling is
  exact only when the period is a multiple of the layer's stride (otherwise its grid slips at the
  seam and the edges get up to 3× the interior's gradient: bands), so the image is first resampled
  periodically (trigonometric interpolation, exact for a periodic image) to the next multiple of
  the stride. Its cost is the grown canvas: small for shallow layers (SqueezeNet conv1 227 → 230 px,
  1.03× the pixels), large for deep ones (AlexNet conv5 224 → 320 px with the 48-px cap, 2×).
* **'shift'** (:class:`WrapShift`): each step the image is shifted circularly by a random offset
  drawn over its whole size before the network sees it, and the gradient is shifted back (autodiff
  of the shift), with wrap-padded Laplacian normalisation. The network's border lands somewhere else
  every step and the image's own edges are always interior (its opposite edges meet): no frame, and
  tiles repeat. A small wrap margin (:data:`SHIFT_CANVAS`: 4–5 px at 224) keeps the network's own
  border (zero padding, uncovered last rows) off the image's pixels; without it the moving border
  left faint lines (docs/dream.md: line scores). On layers whose gradient is nearly uniform (conv1,
  pool1: the ideal image is almost flat) any moving residue is amplified by the Laplacian
  normalisation like the frame; those layers take 'pad', which is cheap there.

The stride-multiple resampling (:func:`periodic_resize_matrix`) is the quality work's fix of the
edge bands (docs/dream.md, "Edge bands").
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from ..engine.transforms import Transform
from ..nets.function import FunctionNetwork, from_function
from ..nets.receptive import receptive_field

MAX_PAD = 48  # wrap padding is capped: deep layers' receptive fields are large, their borders matter less
MAX_CANVAS = 1.15  # the default takes 'pad' while its canvas has at most this many times the image's pixels
SHIFT_CANVAS = 1.09  # else 'shift', with a wrap margin of at most this many times the image's pixels


@dataclasses.dataclass(frozen=True)
class WrapShift(Transform):
    """Circular shift by offsets drawn uniformly from the multiples of `step` below H and W; size kept.

    The gradient through it is the network's gradient shifted back, so where the network's border
    falls changes every step (a new draw per step and unit). `step` is the layer's stride: a layer
    sampled every s pixels has a gradient pattern of period s (a stride-2 conv1 weighs odd and even
    rows differently), and shifts by other amounts would flip its phase from step to step, so ascent
    along it would cancel instead of accumulate (SqueezeNet conv1's strength stalled).
    """

    step: int = 1

    def __call__(self, key, x):
        h, w = x.shape[1:3]
        ky, kx = jax.random.split(key)
        s = max(int(self.step), 1)
        dy = s * jax.random.randint(ky, (), 0, -(-h // s))
        dx = s * jax.random.randint(kx, (), 0, -(-w // s))
        return jnp.roll(x, (dy, dx), axis=(1, 2))


def layer_geometry(net, layer: str) -> tuple[int, float, int] | None:
    """(stride, offset, receptive field size) of `layer` along the rows; None if it has no spatial grid.

    From :func:`jaxvis.receptive_field` (the network's layer graph, measured where its geometry is
    incomplete): offset is the input position of output 0's receptive-field centre.
    """
    rf = receptive_field(net, layer)
    if not rf.spatial:
        return None
    return rf.stride[0], rf.offset[0], rf.size[0]


def pad_width(rf: int) -> int:
    """Wrap padding that gives every kept position (centre on the image) its whole receptive field."""
    return min(MAX_PAD, int(math.ceil((rf - 1) / 2)))


def canvas(net, layer: str, hw: tuple[int, int]) -> tuple[int, int] | None:
    """The size the 'pad' network shows the network for an hw image (None: no spatial grid)."""
    geo = layer_geometry(net, layer)
    if geo is None:
        return None
    stride, _, rf = geo
    pad = pad_width(rf)
    return tuple(-(-int(n) // stride) * stride + 2 * pad for n in hw)  # type: ignore[return-value]


def choose(net, layer: str, hw: tuple[int, int]) -> str | bool:
    """The default seamless method for `layer` at image size hw: 'pad' while its canvas has at most
    :data:`MAX_CANVAS` times the image's pixels (shallow layers), else 'shift'; False for layers without a
    spatial grid.

    Shallow strided layers need 'pad': their gradient carries the stride's grid pattern (a stride-2 conv1
    weighs odd and even rows differently), and at a size that is no multiple of the stride any circular
    shift moves the rows that wrap onto the other phase, so ascent along it cancels instead of accumulating
    (SqueezeNet conv1 at 31 px: strengths no longer rose). 'pad' resamples the period to a stride multiple
    (band-limited, which removes that pattern's aliased half); for a network as small as conv1 the
    resampling costs more than the network (1.6× MATLAB's time at 227 px, docs/dream.md). Deep layers have
    large fields, content-dominated gradients, and 'shift' at MATLAB's cost.
    """
    c = canvas(net, layer, hw)
    if c is None:
        return False
    return "pad" if c[0] * c[1] <= MAX_CANVAS * hw[0] * hw[1] else "shift"


def shift_margin(hw: tuple[int, int], rf: int | None = None) -> int:
    """The 'shift' method's wrap margin: as much of the layer's half field `rf` as keeps the canvas within
    :data:`SHIFT_CANVAS` (at least 1 px: small images have no room, and a field's edge needs one)."""
    side = math.sqrt(SHIFT_CANVAS * hw[0] * hw[1])  # (h + 2m)(w + 2m) ≈ side² for near-square images
    budget = max(1, int((side - (hw[0] + hw[1]) / 2) / 2))
    return budget if rf is None else min(budget, pad_width(rf))


def seamless(net, layer: str, margin: int | None = None) -> FunctionNetwork | None:
    """A network whose `layer` is the activation of the image tiled periodically (memoised on `net`).

    margin None: exact ('pad'): wrap padding of half the receptive field (at most :data:`MAX_PAD`), the
    period resampled to a multiple of the stride. An int: only that much wrap padding and no resampling
    (the 'shift' default's margin: the network's own border kept off the image's pixels).
    """
    return net.cache.memo(("dream", "seamless", layer, margin), lambda: _wrapped(net, layer, margin))


def _wrapped(net, layer: str, margin: int | None) -> FunctionNetwork | None:
    geo = layer_geometry(net, layer)
    if geo is None:
        return None
    stride, offset, rf = geo
    pad = pad_width(rf) if margin is None else int(margin)

    def apply(params, x):
        h, w = x.shape[1:3]
        hs, ws = (h, w) if margin is not None else (-(-n // stride) * stride for n in (h, w))
        if (hs, ws) != (h, w):  # periods that are multiples of the stride: the tiling is exact
            x = jnp.einsum("yh,bhwc,xw->byxc", jnp.asarray(periodic_resize_matrix(h, hs)), x,
                           jnp.asarray(periodic_resize_matrix(w, ws)))
        xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="wrap")
        act = net.apply(params, xp, [layer])[layer]
        i0 = int(math.ceil((pad - offset) / stride))  # the first position whose centre is on the image
        ny, nx = (int(math.ceil((pad + n - offset) / stride)) - i0 for n in (hs, ws))
        return {layer: act[:, i0:i0 + ny, i0:i0 + nx]}

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
