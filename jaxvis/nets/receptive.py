"""Receptive fields: which input pixels can change a unit of a layer.

Two methods with one answer. ``"graph"`` composes kernel, stride, padding and dilation along
the network's layer graph (``net.graph()``: a port's steps, an ONNX import's node attributes, a
function's primitives); ``"measured"`` reads the gradient support of one central output position
of the network's own function (any network; the fallback where the graph's geometry is
incomplete). Coordinates are input pixels with pixel centres at integers, boxes half-open.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import LayerError
from . import cpu
from .graph import LayerGraph


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
    """The receptive field of `layer` (memoised on the network, per layer and method).

    Args:
      net: any network of the protocol.
      layer: layer name or index.
      method: "graph" (composed along ``net.graph()``; LayerError where the geometry of a layer it depends
        on is unknown), "measured" (gradient support of one output position) or "auto" (graph where its
        geometry is complete, else measured).

    Returns:
      :class:`ReceptiveField` with ``size``, ``stride``, ``offset`` and ``box(y, x, image_size)``.
    """
    name = net.layer_name(layer)
    if method not in ("auto", "graph", "measured"):
        raise LayerError(f"method must be 'auto', 'graph' or 'measured', got {method!r}")

    def compute() -> ReceptiveField:
        field = graph_field(net.graph(), name) if method in ("auto", "graph") else None
        if field is None and method == "graph":
            raise LayerError(f"the layer graph of {net.name!r} does not give the geometry of every layer "
                             f"{name!r} depends on; use method='measured'")
        return field if field is not None else _measured(net, name)
    return net.cache.memo(("receptive", "field", name, method), compute)


# Node kinds by their effect on position: identity (elementwise or across channels only), windowed,
# merging branches, and global (no spatial grid after them: every unit sees the whole image).
_IDENTITY = {"relu", "elementwise", "norm", "dropout", "softmax", "output"}
_WINDOW = {"conv", "pool"}
_MERGE = {"concat", "add"}
_GLOBAL = {"global_pool", "fc", "flatten"}


@dataclasses.dataclass(frozen=True)
class _Axis:
    """One axis of a field while composing: size r, jump j, centre c of output 0."""

    r: int
    j: int
    c: float


def _window(a: _Axis, k: int, s: int, d: int, pad_begin: int) -> _Axis:
    # Output 0's window covers input positions -p0 … -p0 + (k-1)d of this layer's input, so its
    # centre is (k-1)d/2 - p0 input steps from input 0; one input step is a.j image pixels.
    ek = (k - 1) * d + 1
    return _Axis(a.r + (ek - 1) * a.j, a.j * s, a.c + a.j * ((ek - 1) / 2 - pad_begin))


def _merge(name: str, axes: list[_Axis]) -> _Axis:
    # The union of the branches' fields of output 0 (equal jumps: the branches share one grid).
    if len({a.j for a in axes}) > 1:
        raise LayerError(f"{name!r} merges branches with different strides {sorted({a.j for a in axes})}: "
                         "no common receptive-field grid")
    lo = min(a.c - (a.r - 1) / 2 for a in axes)
    hi = max(a.c + (a.r - 1) / 2 for a in axes)
    return _Axis(int(round(hi - lo)) + 1, axes[0].j, (lo + hi) / 2)


def graph_field(graph: LayerGraph, name: str) -> ReceptiveField | None:
    """Receptive field of `name` composed along `graph` (kernel, stride, padding, dilation; merges take the
    union), for the graph's input size; None where a node it depends on has unknown geometry.

    Args:
      graph: a network's :class:`~jaxvis.nets.graph.LayerGraph` (``net.graph(input_size)``).
      name: a node of it.

    Returns:
      The :class:`ReceptiveField` (method "graph"), or None.
    """
    need = graph.ancestors(name)
    state: dict[str, Any] = {}  # None: global (no spatial grid)
    for node in graph:
        if node.name not in need:
            continue
        ins: list[Any] = [state[i] for i in node.inputs]
        k = node.kind
        if k == "input":
            state[node.name] = (_Axis(1, 1, 0.0), _Axis(1, 1, 0.0))
        elif not ins or k not in _IDENTITY | _WINDOW | _MERGE | _GLOBAL:
            return None
        elif any(i is None for i in ins) or k in _GLOBAL:
            state[node.name] = None
        elif k in _WINDOW:
            kk, st, d, pad = node.kernel, node.stride, node.dilation, node.padding
            if kk is None or st is None or d is None or pad is None or len(ins) != 1:
                return None
            state[node.name] = tuple(_window(a, kk[ax], st[ax], d[ax], pad[ax][0]) for ax, a in enumerate(ins[0]))
        elif len(ins) == 1:
            state[node.name] = ins[0]
        else:
            state[node.name] = (_merge(node.name, [i[0] for i in ins]), _merge(node.name, [i[1] for i in ins]))
    h0, w0 = graph.input_size
    ax = state[name]
    if ax is None:
        return ReceptiveField(name, (h0, w0), (h0, w0), ((h0 - 1) / 2, (w0 - 1) / 2), spatial=False, method="graph")
    return ReceptiveField(name, (ax[0].r, ax[1].r), (ax[0].j, ax[1].j), (float(ax[0].c), float(ax[1].c)),
                          method="graph")


def _measured(net, name: str) -> ReceptiveField:
    """Stride from the output sizes at two input sizes; size and offset from the union of the
    gradient supports of one central output position over a few random inputs (a max pool passes
    gradient only to its argmax, so one input can under-report the edges)."""
    fn = net.function([name])
    h0, w0 = net.input_size
    n = 2 * max(h0, w0)

    c = net.input_channels

    def out_hw(m):
        return tuple(jax.eval_shape(fn, net.params, jax.ShapeDtypeStruct((1, m, m, c), jnp.float32))[name].shape[1:3])

    try:
        shape_a = jax.eval_shape(fn, net.params, jax.ShapeDtypeStruct((1, n, n, c), jnp.float32))[name].shape
    except (TypeError, ValueError):  # a network that takes only its own size (an ONNX export's fixed reshapes)
        return _measured_at_own_size(net, fn, name)
    try:
        b = out_hw(n + 64)
    except (TypeError, ValueError):  # fixed-size layers (fully connected) accept only one size
        b = None
    if len(shape_a) != 4 or b is None or b == tuple(shape_a[1:3]):
        return ReceptiveField(name, (h0, w0), (h0, w0), ((h0 - 1) / 2, (w0 - 1) / 2), spatial=False)
    a = shape_a[1:3]
    stride = tuple(64 // (bb - aa) for aa, bb in zip(a, b))
    ky, kx = a[0] // 2, a[1] // 2
    # numpy's generator and one jitted gradient: eager JAX would compile every op (and the RNG) on its own
    x = np.random.default_rng(0).uniform(0.0, 255.0, (8, n, n, net.input_channels)).astype(np.float32)
    g = cpu.jit(jax.grad(lambda p, x: fn(p, x)[name][:, ky, kx, :].sum(), argnums=1))(net.params, x)
    support = np.asarray(jnp.abs(g).sum(axis=(0, 3))) > 0
    rows, cols = np.nonzero(support.any(axis=1))[0], np.nonzero(support.any(axis=0))[0]
    size = (int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1))
    offset = ((rows.min() + rows.max()) / 2 - ky * stride[0], (cols.min() + cols.max()) / 2 - kx * stride[1])
    return ReceptiveField(name, size, stride, (float(offset[0]), float(offset[1])))


def _measured_at_own_size(net, fn, name: str) -> ReceptiveField:
    """Size and offset from the gradient support of one output position, stride from that of its diagonal
    neighbour, at the network's own input size; a field covering the whole image for both is global."""
    h0, w0 = net.input_size
    c = net.input_channels
    shape = jax.eval_shape(fn, net.params, jax.ShapeDtypeStruct((1, h0, w0, c), jnp.float32))[name].shape
    if len(shape) != 4 or shape[1] * shape[2] == 1:
        return ReceptiveField(name, (h0, w0), (h0, w0), ((h0 - 1) / 2, (w0 - 1) / 2), spatial=False)
    ky, kx = (shape[1] - 1) // 2, (shape[2] - 1) // 2
    x = np.random.default_rng(0).uniform(0.0, 255.0, (8, h0, w0, c)).astype(np.float32)
    grad = cpu.jit(jax.grad(lambda p, x, i, j: fn(p, x)[name][:, i, j, :].sum(), argnums=1))
    boxes = []
    for i, j in ((ky, kx), (min(ky + 1, shape[1] - 1), min(kx + 1, shape[2] - 1))):
        support = np.asarray(jnp.abs(grad(net.params, x, i, j)).sum(axis=(0, 3))) > 0
        rows, cols = np.nonzero(support.any(axis=1))[0], np.nonzero(support.any(axis=0))[0]
        boxes.append((rows.min(), rows.max(), cols.min(), cols.max()) if rows.size else (0, h0 - 1, 0, w0 - 1))
    (r0, r1, c0, c1), (s0, s1, d0, d1) = boxes
    if (r1 - r0 + 1, c1 - c0 + 1) == (h0, w0) and boxes[0] == boxes[1]:  # every position sees everything
        return ReceptiveField(name, (h0, w0), (h0, w0), ((h0 - 1) / 2, (w0 - 1) / 2), spatial=False)
    stride = (max(int(round((s0 + s1 - r0 - r1) / 2)), 1), max(int(round((d0 + d1 - c0 - c1) / 2)), 1))
    offset = ((r0 + r1) / 2 - ky * stride[0], (c0 + c1) / 2 - kx * stride[1])
    return ReceptiveField(name, (int(r1 - r0 + 1), int(c1 - c0 + 1)), stride, (float(offset[0]), float(offset[1])))
