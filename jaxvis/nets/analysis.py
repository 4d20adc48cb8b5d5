"""`analyze_network`: MATLAB's analyzeNetwork as a table (text, data rows, HTML page).

Every row comes from the network's layer graph (``net.graph(input_size)``): activation sizes
from an abstract evaluation (nothing is computed, and layers whose weights are not shipped,
torchvision AlexNet's fc6–fc8, still get sizes and learnable shapes from the architecture),
parameter counts, multiply-adds and receptive fields from the graph's nodes.
"""

from __future__ import annotations

import dataclasses
import html
import math
import os
from typing import Any

from ..errors import MissingWeightsError
from ..imaging.fileio import atomic_path
from .graph import LayerGraph, LayerNode
from .protocol import Net, check_size
from .receptive import graph_field


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
      macs: multiply-adds of this layer for one image (convolutions, dense layers); None for others.
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
    macs: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _dims(shape) -> str:
    return "×".join(str(int(d)) for d in shape)


def _matlab_learnables(kind: str, o: dict) -> dict[str, tuple[int, ...]]:
    if kind == "conv":
        k, g, cin, cout = o["kernel"], o.get("groups", 1), o["cin"], o["cout"]
        kh, kw = (k, k) if isinstance(k, int) else k
        if g > 1:  # MATLAB's grouped convolution layer stores one slice per group
            return {"Weights": (kh, kw, cin // g, cout // g, g), "Bias": (1, 1, cout // g, g)}
        return {"Weights": (kh, kw, cin, cout), "Bias": (1, 1, cout)}
    if kind == "fc":
        return {"Weights": (o["cout"], o["cin"]), "Bias": (o["cout"], 1)}
    return {}


@dataclasses.dataclass
class NetworkAnalysis:
    """MATLAB's analyzeNetwork report: print it, read ``.rows``, ``.save(path)`` it as an HTML page; a notebook
    shows the table."""

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
        head = ["#", "Name", "Type", "Activations", "Learnables", "Count", "MACs", "Weights", "RF size", "RF stride",
                "RF offset"]
        rf_known = any(r.rf_size is not None for r in self.rows)  # no geometry known: no RF columns
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
                         f"{r.learnable_count:,}" if r.learnables else "", "" if r.macs is None else f"{r.macs:,}",
                         state, *(rf if rf_known else [])])
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
        right = {0, 5, 6}  # numbers line up on the right
        fmt = lambda row: "  ".join(c.rjust(w[i]) if i in right else c.ljust(w[i])  # noqa: E731
                                    for i, c in enumerate(row)).rstrip()
        return "\n".join([*self._summary(), "", fmt(head), fmt(["-" * n for n in w]), *map(fmt, body)])

    def _rows_html(self) -> tuple[str, str]:
        """(the summary paragraphs, the table) as escaped HTML."""
        e = html.escape
        head, body = self._table()
        trs = []
        for r, cells in zip(self.rows, body):
            cls = ' class="missing"' if r.loaded is False else ""
            tds = [f"<td>{e(c)}</td>" for c in cells]
            tds[1] = f"<td>{e(r.name)}<br><small>{e(r.description)}</small></td>"  # MATLAB shows it under the name
            trs.append(f"<tr{cls}>" + "".join(tds) + "</tr>")
        summary = "".join(f"<p>{e(s)}</p>" for s in self._summary())
        table = ("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead><tbody>\n"
                 + "\n".join(trs) + "\n</tbody></table>")
        return summary, table

    def _repr_pretty_(self, p, cycle: bool) -> None:
        p.text("\n".join(self._summary()) + "\n(print() it for the table)")

    def _repr_html_(self) -> str:
        """The notebook's view: the summary and the table (no page styles, which would leak into the notebook)."""
        summary, table = self._rows_html()
        return summary + table

    def to_html(self) -> str:
        """A self-contained HTML page (inline CSS, no scripts); every text is escaped."""
        e = html.escape
        summary, table = self._rows_html()
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{e(self.model)} — network analysis</title><style>"
            "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
            "table{border-collapse:collapse;font-size:14px}"
            "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;white-space:nowrap}"
            "th{background:#eee;position:sticky;top:0}td:nth-child(1),td:nth-child(6),td:nth-child(7){text-align:right}"
            "tr:nth-child(even){background:#fafafa}tr.missing td{color:#a33}small{color:#777}"
            "</style></head><body>"
            f"<h1>{e(self.model)}</h1>{summary}{table}</body></html>\n")

    def save_html(self, path: str | os.PathLike) -> str:
        """Write :meth:`to_html` to `path` atomically (UTF-8); returns the path."""
        with atomic_path(path) as tmp:
            tmp.write_text(self.to_html(), encoding="utf-8")
        return str(path)

    def save(self, path: str | os.PathLike) -> str:
        """The report as a file: the HTML page (:meth:`to_html`), or the printed table for a ``.txt`` path."""
        if os.fspath(path).lower().endswith(".txt"):
            with atomic_path(path) as tmp:
                tmp.write_text(str(self) + "\n", encoding="utf-8")
            return str(path)
        return self.save_html(path)


def _learnables(g: LayerGraph, node: LayerNode) -> dict[str, tuple[int, ...]]:
    """MATLAB's learnable shapes where the node's parameters are a conv/dense kernel (and bias), else the count."""
    if not node.params:
        return {}
    src = g[node.inputs[0]] if len(node.inputs) == 1 else None
    if node.kind == "conv" and node.kernel is not None and src is not None:
        shapes = _matlab_learnables("conv", dict(kernel=node.kernel, groups=node.groups or 1, cin=src.channels,
                                                 cout=node.channels))
    elif node.kind == "fc" and src is not None:
        shapes = _matlab_learnables("fc", dict(cin=math.prod(src.shape[1:]), cout=node.channels))
    else:
        shapes = {}
    sizes = {k: math.prod(v) for k, v in shapes.items()}
    if shapes and sum(sizes.values()) == node.params:
        return shapes
    if shapes and sizes["Weights"] == node.params:  # no bias
        return {"Weights": shapes["Weights"]}
    return {"Parameters": (node.params,)}


def _loaded(net: Net, name: str) -> bool:
    try:
        net.layer_params(name)
        return True
    except MissingWeightsError:
        return False


def analyze_network(net: Net, input_size: tuple[int, int] | None = None) -> NetworkAnalysis:
    """MATLAB's ``analyzeNetwork(net)``: every layer's output size, learnables, MACs and receptive field.

    Args:
      net: the network.
      input_size: (H, W) of the image to analyse for; default ``net.input_size``.

    Returns:
      :class:`NetworkAnalysis` — ``.rows`` (list of :class:`LayerInfo`),
      ``.total_learnables`` (parameters of the loaded weights), ``str()`` a text table,
      ``.to_html()`` / ``.save_html(path)`` a self-contained page.

    Raises:
      ImageError: `input_size` is not two positive integers, or the network cannot take it (too small,
        or a dense layer fixed to another size).
    """
    hw = check_size(net.input_size if input_size is None else input_size)
    g = net.graph(hw)
    rows = []
    for i, name in enumerate(g.layers):
        node = g[name]
        rf = graph_field(g, name)  # from the graph alone: no weights needed
        h, w, c = node.shape[1:]
        rows.append(LayerInfo(i, name, node.type, node.description, (h, w, c), _learnables(g, node), node.params,
                              _loaded(net, name) if node.params else None,
                              rf_size=None if rf is None else rf.size, rf_stride=None if rf is None else rf.stride,
                              rf_offset=rf.offset if rf is not None and rf.spatial else None, macs=node.macs))
    return NetworkAnalysis(net.name, hw, rows)
