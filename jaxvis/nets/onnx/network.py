"""`OnnxNetwork`: a translated ONNX graph as a jaxvis network (a `FunctionNetwork` of the translation).

Layers are the graph input and every node output, addressable by node name (the
first output), by output tensor name, or by 0-based index in graph order. `apply`
runs the translation directly: taps are added in each tensor's own run-time layout
(so a tap on a flatten's output reaches the Gemm after it), and nothing past the
last requested layer is traced.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ...errors import LayerError
from ..function import FunctionNetwork
from ..graph import LayerGraph, nhwc
from ..ops import RELU_MODES, relu_fn
from ..protocol import LayerRef, shape_errors
from .graph import onnx_graph, onnx_layer_params
from .layout import shown_shape
from .proto import Node
from .translate import Program, make_forward


class OnnxNetwork(FunctionNetwork):
    """An imported ONNX graph: a :class:`jaxvis.FunctionNetwork` of the translated function. Built by
    :func:`jaxvis.from_onnx`.

    Attributes:
      name: the file's stem (or the graph's name).
      input_size: (H, W) the graph was translated for.
      input_channels: channels of the graph's input (N×H×W×C images or arrays).
      classes: class names or None.
      params: {initializer name: array in jaxvis layout (HWIO kernels, …)}.
      layer_names: input and node outputs in graph order.
      logits_layer: the N×K class scores (the output, or the input of a final Softmax, or `logits=`), or None
        for outputs that are not class scores.
      forward: the translated function `forward(params, images, *, relu=None, taps=None, layers=None)`
        on preprocessed NHWC images, every activation N×H×W×C (token grids N×h×w×C, others N×1×1×C).
      plan: the translation (steps, tensor records, layer table).
      nodes: the decoded ONNX nodes (op types and attributes: the graph view's geometry).
    """

    classes_hint = "jaxvis.from_onnx(..., logits=layer, classes=[...])"

    def __init__(self, plan: Program, nodes: Sequence[Node], name: str, classes: Sequence[str] | None,
                 preprocess: Callable[[jax.Array], jax.Array] | None, logits: str | None):
        # device_put, not jnp.asarray: the latter compiles a copy per distinct shape (seconds for big graphs).
        params = {k: jax.device_put(np.ascontiguousarray(v)) for k, v in plan.params.items()}
        # The numpy copies are no longer needed (the network's weights are `params`): keep only shapes.
        plan.params = {k: jax.ShapeDtypeStruct(v.shape, v.dtype)  # type: ignore[misc]  # shapes only from here on
                       for k, v in params.items()}
        shapes = {n: shown_shape(plan.recs[t]) for n, t in plan.layers.items()}
        super().__init__(make_forward(plan, flat_2d=True), params, input_size=plan.input_size,
                         layers=list(plan.layers), shapes=shapes,
                         classes=None if classes is None else [str(c) for c in classes],
                         preprocess=preprocess, name=name, logits=logits)
        self.plan, self.nodes = plan, tuple(nodes)
        self.input_channels = int(shapes[plan.input_name][3])  # from the graph's input
        self.relu_rules: frozenset[str] = frozenset(RELU_MODES)  # `forward` takes the ReLU of every Relu node
        self.forward = make_forward(plan)
        self._names = tuple(plan.layers)

    def __repr__(self) -> str:
        return (f"OnnxNetwork({self.name!r}, source={self.plan.source!r}, opset={self.plan.opset}, "
                f"input_size={self.input_size}, layers={len(self._names)}, params={len(self.params)})")

    def layer_type(self, layer: LayerRef) -> str:
        """ONNX op type of a layer ('Input' for the graph input)."""
        return self.plan.layer_ops[self.layer_name(layer)]

    def layer_name(self, layer: LayerRef) -> str:
        """Layer name from a node name, output tensor name or 0-based index (LayerError with close matches)."""
        if isinstance(layer, str) and layer in self.plan.aliases:
            return self.plan.aliases[layer]
        try:
            return self.layers[layer].name
        except LayerError:
            if not isinstance(layer, str):
                raise
        pool = list(self._names) + list(self.plan.aliases)
        close = difflib.get_close_matches(layer, pool, n=5, cutoff=0.5)
        close += [n for n in self._names if layer.lower() in n.lower() and n not in close][:5]
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise LayerError(f"no node or tensor named {layer!r} in {self.name!r}{hint} "
                         f"(all {len(self._names)} layers: net.layer_names)") from None

    def param_counts(self) -> dict[str, int]:
        """Parameters (float initializers) each layer uses, by layer name; layers without any are absent."""
        per_node: dict[str, int] = {}
        for s in self.plan.steps:
            per_node[s.node] = per_node.get(s.node, 0) + sum(
                int(np.prod(self.plan.params[n].shape)) for k, n in s.inputs if k == "param")
        return {n: c for n, c in per_node.items() if c}

    def table(self) -> str:
        """The layer table: index, name, ONNX op, activation size (H×W×C as returned) and parameter count."""
        per_node = self.param_counts()
        rows = [(f"  {self.name}: {len(self._names)} layers, {self.param_count():,} parameters, "
                 f"input {self.input_size[0]}×{self.input_size[1]}, opset {self.plan.opset}"), ""]
        w = min(max(len(n) for n in self._names) + 2, 60)
        tw = max(len(t) for t in self.plan.layer_ops.values())
        for i, n in enumerate(self._names):
            shape = shown_shape(self.plan.recs[self.plan.layers[n]])
            size = shape[1:] if len(shape) == 4 else (1, 1, int(np.prod(shape[1:])))
            count = per_node.get(n, 0)
            rows.append(f"  {i:4d}   {n!r:<{w}}   {self.plan.layer_ops[n]:<{tw}}   {'×'.join(map(str, size)):>14}"
                        f"   {count:>10,}" if count else
                        f"  {i:4d}   {n!r:<{w}}   {self.plan.layer_ops[n]:<{tw}}   {'×'.join(map(str, size)):>14}")
        return "\n".join(rows)

    def _build_graph(self, hw: tuple[int, int]) -> LayerGraph:
        spec = jax.ShapeDtypeStruct((1, *hw, self.input_channels), jnp.float32)
        with shape_errors(self, hw):
            out = jax.eval_shape(lambda p, x: self.apply(p, x, self._names, normalize=False), self.params, spec)
        return onnx_graph(self.plan, self.nodes, {n: nhwc(out[n].shape) for n in self._names})

    def layer_params(self, layer: LayerRef) -> dict[str, jax.Array]:
        """The initializers of a Conv (HWIO kernel, bias), Gemm or MatMul (in×out kernel, bias) layer; {} otherwise."""
        roles = onnx_layer_params(self.plan, self.nodes, self.layer_name(layer))
        return {role: self.params[n].T if trans else self.params[n] for role, (n, trans) in roles.items()}

    def param_count(self) -> int:
        """Number of parameters (float initializers used as weights)."""
        return int(sum(np.prod(v.shape) for v in self.plan.params.values()))

    def require_weights(self, layers: Sequence[str]) -> None:
        """An imported graph holds all its weights; only checks the names."""
        for l in layers:
            self.layer_name(l)

    def apply(self, params: Any, images: jax.Array, layers: Sequence[str], *, normalize: bool = True,
              relu: str = "standard", taps: dict[str, jax.Array] | None = None) -> dict[str, jax.Array]:
        """Pure function: images → {layer: activation}. Traceable by jit/vmap/grad.

        Args:
          params: weights, normally `net.params`.
          images: N×H×W×3 float RGB pixels in 0..255 (the network's own input range when
            `normalize=False`).
          layers: layer names to return; nothing past the last of them is computed.
          normalize: apply `preprocess` first.
          relu: backward rule of every Relu node: 'standard', 'guided' or 'deconvnet'.
          taps: optional {layer: array} added to those layers' outputs.

        Returns:
          dict layer → N×H×W×C activation (2-D outputs as N×1×1×C, features in ONNX order).
        """
        x = self._preprocess(images) if normalize and self._preprocess is not None else images
        names = [self.layer_name(l) for l in layers]
        tp = {self.layer_name(k): v for k, v in (taps or {}).items()}
        # The translation is specialised to its input size: at another size, shapes folded at import (a
        # Reshape's target, …) may not fit, which is an ImageError naming both sizes.
        with shape_errors(self, (int(x.shape[1]), int(x.shape[2]))):
            out = self.forward(params, x, relu=relu_fn(relu), taps=tp, layers=names)
        return {l: out[n] for l, n in zip(layers, names)}
