"""Receptive fields: which input pixels can change a unit of a layer.

Two methods with one answer. ``"graph"`` composes kernel, stride, padding and dilation along
the layer graph (networks that have one); ``"measured"`` reads the gradient support of one
central output position of the network's own function (any network, ``from_function``
included). Coordinates are input pixels with pixel centres at integers, boxes half-open.
"""

from __future__ import annotations

import dataclasses
import weakref

import jax
import jax.numpy as jnp
import numpy as np

from .errors import LayerError

_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclasses.dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one layer, per axis (rows, columns).

    Attributes:
      layer: the layer's name.
      size: (h, w) input pixels that can change one unit; the whole image for global layers.
      stride: (sy, sx) input pixels between neighbouring output positions (the "jump").
      offset: (cy, cx) input position of the centre of output (0, 0)'s field (may be negative or
        fractional: padding puts the first field partly outside the image).
      spatial: False for layers without a spatial grid (global pooling, fully connected): every
        position's box is the whole image.
      method: "graph" or "measured" (how it was computed).
    """

    layer: str
    size: tuple[int, int]
    stride: tuple[int, int]
    offset: tuple[float, float]
    spatial: bool = True
    method: str = "measured"

    def box(self, y: int, x: int, image_size: tuple[int, int] | None = None) -> tuple[int, int, int, int]:
        """Input box ``(y0, x0, y1, x1)`` (half-open) of output position (y, x), clipped to `image_size` (H, W)."""
        if not self.spatial:
            y0, x0, y1, x1 = 0, 0, self.size[0], self.size[1]
        else:
            y0 = int(round(self.offset[0] + y * self.stride[0] - (self.size[0] - 1) / 2))
            x0 = int(round(self.offset[1] + x * self.stride[1] - (self.size[1] - 1) / 2))
            y1, x1 = y0 + self.size[0], x0 + self.size[1]
        if image_size is not None:
            h, w = image_size
            y0, x0, y1, x1 = max(y0, 0), max(x0, 0), min(y1, h), min(x1, w)
        return y0, x0, y1, x1


def receptive_field(net, layer: str | int, *, method: str = "auto") -> ReceptiveField:
    """The receptive field of `layer` (cached per network and layer).

    Args:
      net: any network of the protocol.
      layer: layer name or index.
      method: "graph" (needs a layer graph), "measured" (gradient support of one output
        position; any network) or "auto" (graph where there is one).

    Returns:
      :class:`ReceptiveField` with ``size``, ``stride``, ``offset`` and ``box(y, x, image_size)``.
    """
    name = net.layer_name(layer)
    if method not in ("auto", "graph", "measured"):
        raise LayerError(f"method must be 'auto', 'graph' or 'measured', got {method!r}")
    key = (name, method)
    per = _cache.setdefault(net, {})
    if key not in per:
        graph = _from_graph(net, name) if method in ("auto", "graph") else None
        if graph is None and method == "graph":
            raise LayerError(f"{net.name!r} has no layer graph to read receptive fields from; use method='measured'")
        per[key] = graph if graph is not None else _measured(net, name)
    return per[key]


def _from_graph(net, name: str) -> ReceptiveField | None:
    """Receptive field composed along the layer graph; None where the network has no graph."""
    return None


def _measured(net, name: str) -> ReceptiveField:
    """Stride from the output sizes at two input sizes; size and offset from the union of the
    gradient supports of one central output position over a few random inputs (a max pool passes
    gradient only to its argmax, so one input can under-report the edges)."""
    fn = net.function([name])
    h0, w0 = net.input_size
    n = 2 * max(h0, w0)

    def out_hw(m):
        return tuple(jax.eval_shape(fn, net.params, jax.ShapeDtypeStruct((1, m, m, 3), jnp.float32))[name].shape[1:3])

    shape_a = jax.eval_shape(fn, net.params, jax.ShapeDtypeStruct((1, n, n, 3), jnp.float32))[name].shape
    try:
        b = out_hw(n + 64)
    except (TypeError, ValueError):  # fixed-size layers (fully connected) accept only one size
        b = None
    if len(shape_a) != 4 or b is None or b == tuple(shape_a[1:3]):
        return ReceptiveField(name, (h0, w0), (h0, w0), ((h0 - 1) / 2, (w0 - 1) / 2), spatial=False)
    a = shape_a[1:3]
    stride = tuple(64 // (bb - aa) for aa, bb in zip(a, b))
    ky, kx = a[0] // 2, a[1] // 2
    x = jax.random.uniform(jax.random.PRNGKey(0), (8, n, n, 3), minval=0.0, maxval=255.0)
    g = jax.grad(lambda x: fn(net.params, x)[name][:, ky, kx, :].sum())(x)
    support = np.asarray(jnp.abs(g).sum(axis=(0, 3))) > 0
    rows, cols = np.nonzero(support.any(axis=1))[0], np.nonzero(support.any(axis=0))[0]
    size = (int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1))
    offset = ((rows.min() + rows.max()) / 2 - ky * stride[0], (cols.min() + cols.max()) / 2 - kx * stride[1])
    return ReceptiveField(name, size, stride, (float(offset[0]), float(offset[1])))
