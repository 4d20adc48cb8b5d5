"""Receptive fields: which input pixels can change a unit of a layer.

Two methods with one answer. ``"graph"`` composes kernel, stride, padding and dilation along
the layer graph (``jaxvis.Network`` steps, or an imported ONNX graph's node attributes);
``"measured"`` reads the gradient support of one central output position of the network's own
function (any network, ``from_function`` included). Coordinates are input pixels with pixel
centres at integers, boxes half-open.
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import LayerError

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


# Step kinds by their effect on position: identity (elementwise or across channels only), windowed,
# merging branches, and global (no spatial grid after them: every unit sees the whole image).
_IDENTITY = {"relu", "lrn", "dropout", "softmax", "output", "bn", "batchnorm", "sigmoid", "tanh", "scale"}
_WINDOW = {"conv", "maxpool", "avgpool"}
_MERGE = {"concat", "add", "sum"}
# adaptive pooling is global here: its bins depend on the input size, so its grid does not move with
# the image (the measured method sees the same: its output size is the same at any input size).
_GLOBAL = {"gap", "gmp", "fc", "flatten", "adaptive_avgpool"}


@dataclasses.dataclass(frozen=True)
class _Axis:
    """One axis of a field while composing: size r, jump j, centre c of output 0, length n of the map."""

    r: int
    j: int
    c: float
    n: int


def window_pads(pad, n: int, k: int, s: int, d: int, axis: int) -> tuple[int, int]:
    """(begin, end) padding of one axis of a window layer.

    Args:
      pad: an int (all sides), a pair (begin, end) for both axes, MATLAB's [top bottom left right], or
        'same' (MATLAB/TensorFlow: output ceil(n/s), the odd pixel of padding at the end).
      n, k, s, d: input length, kernel, stride and dilation along the axis.
      axis: 0 rows, 1 columns.

    Returns:
      (begin, end) padding in pixels.
    """
    if isinstance(pad, str):
        if pad.lower() != "same":
            raise LayerError(f"padding must be an int, (begin, end), (top, bottom, left, right) or 'same', not {pad!r}")
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        return total // 2, total - total // 2
    if isinstance(pad, (int, np.integer)):
        return int(pad), int(pad)
    pad = tuple(int(v) for v in pad)
    if len(pad) == 2:
        return pad
    if len(pad) == 4:
        return pad[2 * axis], pad[2 * axis + 1]
    raise LayerError(f"padding must be an int, (begin, end), (top, bottom, left, right) or 'same', not {pad!r}")


def _window(a: _Axis, k: int, s: int, d: int, pads: tuple[int, int], ceil: bool) -> _Axis:
    # Output 0's window covers input positions -p0 … -p0 + (k-1)d of this layer's input, so its
    # centre is (k-1)d/2 - p0 input steps from input 0; one input step is a.j image pixels.
    ek = (k - 1) * d + 1
    num = a.n + pads[0] + pads[1] - ek
    out = (-(-num // s) if ceil else num // s) + 1
    if ceil and (out - 1) * s >= a.n + pads[0]:  # Caffe/PyTorch drop a window starting in the end padding
        out -= 1
    return _Axis(a.r + (ek - 1) * a.j, a.j * s, a.c + a.j * ((ek - 1) / 2 - pads[0]), out)


def _merge(name: str, axes: list[_Axis]) -> _Axis:
    # The union of the branches' fields of output 0 (equal jumps: the branches share one grid).
    if len({a.j for a in axes}) > 1:
        raise LayerError(f"{name!r} merges branches with different strides {sorted({a.j for a in axes})}: "
                         "no common receptive-field grid")
    lo = min(a.c - (a.r - 1) / 2 for a in axes)
    hi = max(a.c + (a.r - 1) / 2 for a in axes)
    return _Axis(int(round(hi - lo)) + 1, axes[0].j, (lo + hi) / 2, axes[0].n)


def _from_graph(net, name: str, input_size: tuple[int, int] | None = None) -> ReceptiveField | None:
    """Receptive field composed along the layer graph for an `input_size` image (default the
    network's; it matters for 'same' padding and global layers); None where the network has no
    graph (or a step kind whose geometry this module does not know)."""
    steps = getattr(net, "steps", None)
    h0, w0 = net.input_size if input_size is None else input_size
    if not steps:
        return _from_onnx_graph(net, name, (h0, w0)) if getattr(net, "onnx_nodes", None) else None
    state: dict[str, Any] = {}  # None: global (no spatial grid)
    for s in steps:
        k, o = s.kind, s.o
        ins: list[Any] = [state[i] for i in s.inputs]
        if k == "input":
            state[s.name] = (_Axis(1, 1, 0.0, h0), _Axis(1, 1, 0.0, w0))
        elif any(i is None for i in ins) or k in _GLOBAL:
            state[s.name] = None
        elif k in _IDENTITY:
            state[s.name] = ins[0]
        elif k in _WINDOW:
            kk, st, d = o["kernel"], o.get("stride", 1), o.get("dilation", 1)
            kk, st, d = ((v, v) if isinstance(v, (int, np.integer)) else tuple(v) for v in (kk, st, d))
            state[s.name] = tuple(
                _window(a, kk[ax], st[ax], d[ax], window_pads(o.get("pad", 0), a.n, kk[ax], st[ax], d[ax], ax),
                        bool(o.get("ceil", False)))
                for ax, a in enumerate(ins[0]))
        elif k in _MERGE:
            state[s.name] = (_merge(s.name, [i[0] for i in ins]), _merge(s.name, [i[1] for i in ins]))
        else:
            return None
        if s.name == name:
            break
    return _field(name, state[name], h0, w0)


def _field(name: str, ax, h0: int, w0: int) -> ReceptiveField:
    if ax is None:
        return ReceptiveField(name, (h0, w0), (h0, w0), ((h0 - 1) / 2, (w0 - 1) / 2), spatial=False, method="graph")
    return ReceptiveField(name, (ax[0].r, ax[1].r), (ax[0].j, ax[1].j), (float(ax[0].c), float(ax[1].c)),
                          method="graph")


_ONNX_IDENTITY = {"Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Clip", "Sigmoid", "Tanh", "HardSigmoid",
                  "HardSwish", "BatchNormalization", "LRN", "Dropout", "Identity", "Cast", "Mul", "Div", "Sub",
                  "Add", "Sum", "Max", "Min"}
_ONNX_WINDOW = {"Conv", "MaxPool", "AveragePool", "LpPool"}
_ONNX_GLOBAL = {"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "Flatten", "Gemm", "MatMul", "Reshape"}


def _onnx_pads(node, axis: int, n: int, k: int, s: int, d: int) -> tuple[int, int]:
    auto = node.attrs.get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        b, e = window_pads("same", n, k, s, d, axis)  # the odd pixel at the end
        return (e, b) if auto == "SAME_LOWER" else (b, e)
    if auto == "VALID":
        return 0, 0
    p = node.attrs.get("pads", [0, 0, 0, 0])
    return int(p[axis]), int(p[axis + 2])  # ONNX: [y_begin, x_begin, y_end, x_end]


def _from_onnx_graph(net, name: str, hw: tuple[int, int]) -> ReceptiveField | None:
    """The graph method on an imported ONNX graph's nodes (None at an op it does not know)."""
    plan = net.plan
    state: dict[str, Any] = {plan.input_name: (_Axis(1, 1, 0.0, hw[0]), _Axis(1, 1, 0.0, hw[1]))}
    want = plan.layers[name]
    for node in net.onnx_nodes:
        if want in state:
            break
        ins: list[Any] = [state[t] for t in node.inputs if t in state]
        if not ins:
            continue  # constant arithmetic (shape computations): no position
        op = node.op
        if any(i is None for i in ins) or op in _ONNX_GLOBAL:
            out: Any = None
        elif op == "Concat" and node.attrs.get("axis") in (1, -3) or op in _ONNX_IDENTITY and len(ins) > 1:
            out = (_merge(node.name, [i[0] for i in ins]), _merge(node.name, [i[1] for i in ins]))
        elif op in _ONNX_IDENTITY or op == "Softmax" and node.attrs.get("axis", 1) in (1, -3):
            out = ins[0]
        elif op in _ONNX_WINDOW:
            kk = node.attrs.get("kernel_shape")
            if kk is None:  # Conv may leave it to the weight (jaxvis layout: HWIO)
                kk = plan.params[node.inputs[1]].shape[:2]
            st, d = node.attrs.get("strides", [1, 1]), node.attrs.get("dilations", [1, 1])
            out = tuple(_window(a, int(kk[ax]), int(st[ax]), int(d[ax]),
                                _onnx_pads(node, ax, a.n, int(kk[ax]), int(st[ax]), int(d[ax])),
                                bool(node.attrs.get("ceil_mode", 0)))
                        for ax, a in enumerate(ins[0]))
        else:
            return None
        for t in node.outputs:
            state[t] = out
    if want not in state:
        return None
    return _field(name, state[want], *hw)


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
    # numpy's generator and one jitted gradient: eager JAX would compile every op (and the RNG) on its own
    x = np.random.default_rng(0).uniform(0.0, 255.0, (8, n, n, 3)).astype(np.float32)
    g = jax.jit(jax.grad(lambda p, x: fn(p, x)[name][:, ky, kx, :].sum(), argnums=1))(net.params, x)
    support = np.asarray(jnp.abs(g).sum(axis=(0, 3))) > 0
    rows, cols = np.nonzero(support.any(axis=1))[0], np.nonzero(support.any(axis=0))[0]
    size = (int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1))
    offset = ((rows.min() + rows.max()) / 2 - ky * stride[0], (cols.min() + cols.max()) / 2 - kx * stride[1])
    return ReceptiveField(name, size, stride, (float(offset[0]), float(offset[1])))
