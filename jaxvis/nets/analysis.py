"""`analyze_network`: MATLAB's analyzeNetwork as a table (text, data rows, HTML page).

Activation sizes come from ``jax.eval_shape`` over the network's pure function with
abstract weights, so nothing is computed and layers whose weights are not shipped
(torchvision AlexNet's fc6–fc8) still get sizes and learnable shapes from the
architecture.
"""

from __future__ import annotations

import dataclasses
import html
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ..errors import ImageError
from ..imaging.fileio import atomic_path
from .steps import LEARNABLE, GraphNet, param_key
from .network import Network
from .protocol import Net
from .receptive import _from_graph


@dataclasses.dataclass(frozen=True)
class LayerInfo:
    """One row of :class:`NetworkAnalysis`.

    Attributes:
      index: 0-based position in ``net.layers``.
      name, type, description: as in ``net.layers``.
      activation_size: (H, W, C) of this layer's output for one image of the analysed size.
      learnables: {'Weights': shape, 'Bias': shape} in MATLAB's layout (e.g. conv
        3×3×3×64 and 1×1×64; grouped conv k×k×Cin/g×Cout/g×g; fc Cout×Cin and Cout×1);
        empty for layers without parameters.
      learnable_count: number of parameters of this layer (from the architecture).
      loaded: True/False whether its weights are loaded; None for layers without parameters.
      rf_size: receptive field (h, w) in input pixels (the whole image for global layers); None where
        the network has no layer graph.
      rf_stride: input pixels between neighbouring output positions (the "jump"); None likewise.
      rf_offset: input position (y, x) of the centre of output (0, 0)'s field; None for global layers.
    """

    index: int
    name: str
    type: str
    description: str
    activation_size: tuple[int, int, int]
    learnables: dict[str, tuple[int, ...]]
    learnable_count: int
    loaded: bool | None
    rf_size: tuple[int, int] | None = None
    rf_stride: tuple[int, int] | None = None
    rf_offset: tuple[float, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _dims(shape) -> str:
    return "×".join(str(int(d)) for d in shape)


def _matlab_learnables(kind: str, o: dict) -> dict[str, tuple[int, ...]]:
    if kind == "conv":
        k, g, cin, cout = o["kernel"], o.get("groups", 1), o["cin"], o["cout"]
        if g > 1:  # MATLAB's grouped convolution layer stores one slice per group
            return {"Weights": (k, k, cin // g, cout // g, g), "Bias": (1, 1, cout // g, g)}
        return {"Weights": (k, k, cin, cout), "Bias": (1, 1, cout)}
    if kind == "fc":
        return {"Weights": (o["cout"], o["cin"]), "Bias": (o["cout"], 1)}
    return {}


@dataclasses.dataclass
class NetworkAnalysis:
    """MATLAB's analyzeNetwork report: print it, read ``.rows``, or save ``.to_html()``."""

    model: str
    input_size: tuple[int, int]
    rows: list[LayerInfo]

    @property
    def total_learnables(self) -> int:
        """Parameters of the loaded weights (what the network actually holds)."""
        return sum(r.learnable_count for r in self.rows if r.loaded)

    @property
    def architecture_learnables(self) -> int:
        """Parameters of the full architecture, loaded or not."""
        return sum(r.learnable_count for r in self.rows)

    @property
    def not_loaded(self) -> list[str]:
        """Learnable layers whose weights are missing."""
        return [r.name for r in self.rows if r.loaded is False]

    def _table(self) -> tuple[list[str], list[list[str]]]:
        head = ["#", "Name", "Type", "Activations", "Learnables", "Count", "Weights", "RF size", "RF stride",
                "RF offset"]
        rf_known = any(r.rf_size is not None for r in self.rows)  # no graph (from_function): no RF columns
        if not rf_known:
            head = head[:-3]
        body = []
        for r in self.rows:
            learn = ", ".join(f"{k} {_dims(v)}" for k, v in r.learnables.items())
            state = "" if r.loaded is None else ("loaded" if r.loaded else "not loaded")
            rf = ["", "", ""] if r.rf_size is None else [
                _dims(r.rf_size), _dims(r.rf_stride),
                "global" if r.rf_offset is None else "(" + ", ".join(f"{v:g}" for v in r.rf_offset) + ")"]
            body.append([str(r.index), r.name, r.type, _dims(r.activation_size), learn,
                         f"{r.learnable_count:,}" if r.learnables else "", state, *(rf if rf_known else [])])
        return head, body

    def _summary(self) -> list[str]:
        lines = [f"{self.model}: {len(self.rows)} layers, input {self.input_size[0]}×{self.input_size[1]}×3",
                 f"Total learnables (loaded): {self.total_learnables:,}"]
        if self.not_loaded:
            lines.append(f"Architecture learnables: {self.architecture_learnables:,} — not loaded: "
                         + ", ".join(self.not_loaded))
        return lines

    def __str__(self) -> str:
        head, body = self._table()
        w = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
        right = {0, 5}  # numbers line up on the right
        fmt = lambda row: "  ".join(c.rjust(w[i]) if i in right else c.ljust(w[i])  # noqa: E731
                                    for i, c in enumerate(row)).rstrip()
        return "\n".join([*self._summary(), "", fmt(head), fmt(["-" * n for n in w]), *map(fmt, body)])

    def to_html(self) -> str:
        """A self-contained HTML page (inline CSS, no scripts); every text is escaped."""
        e = html.escape
        head, body = self._table()
        trs = []
        for r, cells in zip(self.rows, body):
            cls = ' class="missing"' if r.loaded is False else ""
            tds = [f"<td>{e(c)}</td>" for c in cells]
            tds[1] = f"<td>{e(r.name)}<br><small>{e(r.description)}</small></td>"  # MATLAB shows it under the name
            trs.append(f"<tr{cls}>" + "".join(tds) + "</tr>")
        summary = "".join(f"<p>{e(s)}</p>" for s in self._summary())
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{e(self.model)} — network analysis</title><style>"
            "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
            "table{border-collapse:collapse;font-size:14px}"
            "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;white-space:nowrap}"
            "th{background:#eee;position:sticky;top:0}td:nth-child(1),td:nth-child(6){text-align:right}"
            "tr:nth-child(even){background:#fafafa}tr.missing td{color:#a33}small{color:#777}"
            "</style></head><body>"
            f"<h1>{e(self.model)}</h1>{summary}<table><thead><tr>"
            + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead><tbody>\n"
            + "\n".join(trs) + "\n</tbody></table></body></html>\n")

    def save_html(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_html` to `path` atomically (UTF-8)."""
        with atomic_path(path) as tmp:
            tmp.write_text(self.to_html(), encoding="utf-8")


def analyze_network(net: Net, input_size: tuple[int, int] | None = None) -> NetworkAnalysis:
    """MATLAB's ``analyzeNetwork(net)``: every layer's output size and learnables.

    Args:
      net: the network.
      input_size: (H, W) of the image to analyse for; default ``net.input_size``.

    Returns:
      :class:`NetworkAnalysis` — ``.rows`` (list of :class:`LayerInfo`),
      ``.total_learnables`` (parameters of the loaded weights), ``str()`` a text table,
      ``.to_html()`` / ``.save_html(path)`` a self-contained page.
    """
    h, w = net.input_size if input_size is None else (int(input_size[0]), int(input_size[1]))
    if not isinstance(net, Network):  # no layer graph of ours: from_function, ONNX imports
        return _analyze_protocol(net, h, w)
    # Abstract parameters of the whole architecture (missing weights included): shapes only.
    model = nnx.eval_shape(lambda: GraphNet(net.steps, rngs=nnx.Rngs(0)))
    abstract = nnx.to_pure_dict(nnx.split(model)[1])
    names = tuple(s.name for s in net.steps)
    if h < 1 or w < 1:
        raise ImageError(f"input_size must be two positive integers (H, W), got {input_size!r}")
    try:
        shapes = jax.eval_shape(lambda p, x: net.apply(p, x, names), abstract,
                                jax.ShapeDtypeStruct((1, h, w, 3), jnp.float32))
    except (TypeError, ValueError) as e:  # e.g. a fully connected layer fixed to the training size
        raise ImageError(f"{net.name!r} cannot take a {h}×{w} input ({e}); "
                         f"its input size is {net.input_size[0]}×{net.input_size[1]}") from e
    empty = [n for n in names if 0 in shapes[n].shape]
    if empty:
        raise ImageError(f"a {h}×{w} input is too small for {net.name!r}: {empty[0]!r} would have an empty "
                         f"{_dims(shapes[empty[0]].shape[1:])} output; its input size is "
                         f"{net.input_size[0]}×{net.input_size[1]}")
    rows = []
    for i, s in enumerate(net.steps):
        layer = net.layers[i]
        learn = _matlab_learnables(s.kind, s.o) if s.kind in LEARNABLE else {}
        count = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(abstract.get(param_key(s.name), {})))
        rf = _from_graph(net, s.name, (h, w))  # from the graph alone: no weights needed
        rf_cols = (None, None, None) if rf is None else (
            rf.size, rf.stride, rf.offset if rf.spatial else None)
        rows.append(LayerInfo(i, s.name, layer.type, layer.description, tuple(shapes[s.name].shape[1:]),
                              learn, count if learn else 0, (s.name in net.loaded) if learn else None, *rf_cols))
    return NetworkAnalysis(net.name, (h, w), rows)


def _analyze_protocol(net, h: int, w: int) -> NetworkAnalysis:
    """analyze_network for networks without a layer graph (from_function, imported): sizes from
    `jax.eval_shape`; the learnables are the parameter pytree, reported once, in total."""
    if h < 1 or w < 1:
        raise ImageError(f"input_size must be two positive integers (H, W), got {(h, w)!r}")
    names = net.layer_names
    try:
        shapes = jax.eval_shape(lambda p, x: net.apply(p, x, names), net.params,
                                jax.ShapeDtypeStruct((1, h, w, 3), jnp.float32))
    except (TypeError, ValueError) as e:
        raise ImageError(f"{net.name!r} cannot take a {h}×{w} input ({e}); "
                         f"its input size is {net.input_size[0]}×{net.input_size[1]}") from e
    total = sum(int(np.prod(np.shape(a))) for a in jax.tree.leaves(net.params))
    # Per-layer counts where the network knows which layer uses which weights (ONNX imports); otherwise
    # the whole parameter pytree, reported once on the first row.
    per_layer = net.param_counts() if hasattr(net, "param_counts") else {names[0]: total} if total else {}
    rows = []
    for i, n in enumerate(names):
        layer = net.layers[i]
        rf = _from_graph(net, n, (h, w))  # ONNX imports have a graph; from_function networks do not
        rf_cols = (None, None, None) if rf is None else (rf.size, rf.stride, rf.offset if rf.spatial else None)
        count = per_layer.get(n, 0)
        kind = net.layer_type(n) if hasattr(net, "layer_type") else layer.type  # ONNX: the node's op
        rows.append(LayerInfo(i, n, kind, layer.description, tuple(shapes[n].shape[1:]),
                              {"Parameters": (count,)} if count else {}, count,
                              True if count else None, *rf_cols))
    return NetworkAnalysis(net.name, (h, w), rows)
