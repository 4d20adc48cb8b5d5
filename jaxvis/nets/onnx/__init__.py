"""Import ONNX graphs as jaxvis networks: :func:`from_onnx`.

The graph is decoded (optional extra `jaxvis[onnx]`), translated once into a pure
JAX function running NHWC, and wrapped as a network every jaxvis function accepts.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ...errors import OnnxError
from .network import OnnxNetwork
from .budget import Budget
from .proto import Graph, read_graph
from .translate import Builder, make_forward

__all__ = ["PREPROCESS", "OnnxError", "OnnxNetwork", "from_onnx"]

# Presets for `preprocess=`: RGB 0..255 images → the network's input.
PREPROCESS = {
    "torchvision": {"scale": 1 / 255, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)},
    "caffe": {"scale": 1.0, "mean": (123.0, 117.0, 104.0), "std": (1.0, 1.0, 1.0)},
    "unit": {"scale": 1 / 255, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)},
    "none": None,
}


def _preprocess_fn(preprocess) -> Callable | None:
    if preprocess is None or callable(preprocess):
        return preprocess
    spec = preprocess
    if isinstance(preprocess, str):
        if preprocess not in PREPROCESS:
            raise OnnxError(f"unknown preprocess preset {preprocess!r}; presets: {', '.join(PREPROCESS)}, "
                            "or give a callable or dict(scale=, mean=, std=)")
        spec = PREPROCESS[preprocess]
        if spec is None:
            return None
    if not isinstance(spec, dict) or set(spec) - {"scale", "mean", "std"}:
        raise OnnxError(f"preprocess must be a callable, a preset name or dict(scale=, mean=, std=), got {spec!r}")
    scale = float(spec.get("scale", 1.0))
    mean = jnp.asarray(spec.get("mean", (0.0, 0.0, 0.0)), jnp.float32)
    std = jnp.asarray(spec.get("std", (1.0, 1.0, 1.0)), jnp.float32)
    return lambda x: (x * scale - mean) / std


@dataclasses.dataclass(frozen=True)
class Translation:
    """An ONNX graph translated to JAX: what `jaxvis.from_function` needs, plus the ONNX bookkeeping.

    Attributes:
      apply_fn: `apply_fn(params, images, *, relu=jax.nn.relu, taps=None, layers=None) -> {layer: activation}`
        on preprocessed N×H×W×C images; 4-D activations NHWC, others in their ONNX shape (N×C).
      params: {initializer name: array in jaxvis layout}.
      layers: layer names in graph order (the input, then node names).
      aliases: {output tensor name: layer name}.
      input_size: (H, W) it was translated at.
      logits: the pre-softmax scores layer or None.
      plan: the translation's steps and tensor records.
    """

    apply_fn: Callable
    params: dict
    layers: tuple[str, ...]
    aliases: dict[str, str]
    input_size: tuple[int, int]
    logits: str | None
    name: str
    plan: Any


def translate(model: str | os.PathLike | Any, *, input_size: int | tuple[int, int] | None = None,
              name: str | None = None, memory_budget: int | None = None) -> Translation:
    """Translate an ONNX model once into a pure JAX function (see :class:`Translation`).

    `jaxvis.from_function(t.apply_fn, t.params, input_size=t.input_size, layers=t.layers,
    logits=t.logits, ...)` makes it a network; :func:`from_onnx` does the same with its own
    wrapper, which also resolves tensor names. Arguments (`memory_budget` too) and errors as for
    :func:`from_onnx`.
    """
    g = read_graph(model)
    plan, label = _plan(g, model, input_size, name, memory_budget)
    params = {k: jax.device_put(np.ascontiguousarray(v)) for k, v in plan.params.items()}
    plan.params = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in params.items()}  # drop the numpy copies
    return Translation(make_forward(plan, flat_2d=True), params, tuple(plan.layers), dict(plan.aliases),
                       plan.input_size, _logits_layer(plan, g), label, plan)


def from_onnx(model: str | os.PathLike | Any, *, input_size: int | tuple[int, int] | None = None,
              preprocess: Callable | str | dict | None = None, classes: Sequence[str] | None = None,
              name: str | None = None, logits: str | None = None,
              memory_budget: int | None = None) -> OnnxNetwork:
    """Import an ONNX image network (classifier, detector, segmenter, transformer) as a jaxvis network.

    Args:
      model: path to a `.onnx` file (external data files beside it) or an `onnx.ModelProto`.
      input_size: (H, W) or one int; required when the graph's spatial size is dynamic,
        otherwise defaults to the graph's own.
      preprocess: RGB 0..255 images → the graph's input: a callable, a preset name
        ('torchvision', 'caffe', 'unit', 'none'), or dict(scale=, mean=, std=) computing
        (x*scale - mean)/std. Default: none (the graph takes the images as they are).
      classes: class names, index = class id.
      name: label for messages (default: the file's stem).
      logits: the node or tensor holding pre-softmax class scores. Default: the graph's output
        (or the input of a final Softmax) when it is N×K scores; a detection or segmentation
        output is not, and then the network has no class-score layer unless named here.
      memory_budget: bytes any one tensor, and all constants and parameters together, may take
        (default 2 GiB + 4 × the model's size + 64 × the input's; see docs/onnx.md).

    Returns:
      An :class:`OnnxNetwork`: every node output is a layer; `params` holds the initializers.

    Raises:
      OnnxError: unreadable or non-ONNX file, external data missing or outside the model's folder,
        unsupported op or opset (names the op, node and opset, lists the supported ones), dynamic
        spatial size without `input_size`, several inputs, initializers whose data and shape disagree,
        a cyclic graph, or a tensor over the memory budget (names node, shape and budget).
    """
    g = read_graph(model)
    if g.meta:  # written by `jaxvis convert onnx`: its metadata gives the defaults
        preprocess = (g.meta["preprocessing"] or None) if preprocess is None else preprocess
        classes = (g.meta["classes"] or None) if classes is None else classes
    plan, label = _plan(g, model, input_size, name, memory_budget)
    return OnnxNetwork(plan, g.nodes, label, classes, _preprocess_fn(preprocess), _logits_layer(plan, g, logits))


def _plan(g: Graph, model, input_size, name, memory_budget=None):
    if g.meta:  # a converted .h5 (see proto.py): its stored size and name are the defaults
        input_size = tuple(g.meta["input_size"]) if input_size is None else input_size
        name = name or g.meta.get("model")
    shape = g.input_shape
    if len(shape) != 4:
        raise OnnxError(f"{g.source}: input {g.input_name!r} has shape {list(shape)}; jaxvis imports image "
                        "networks with one N×C×H×W (or N×H×W×C) input")
    nhwc = g.input_layout == "NHWC"
    channels, spatial = (shape[3], shape[1:3]) if nhwc else (shape[1], shape[2:])
    if channels is None:
        raise OnnxError(f"{g.source}: input {g.input_name!r} has a dynamic channel count; export it fixed")
    if input_size is not None:
        try:
            hw = (int(input_size),) * 2 if isinstance(input_size, int) else tuple(int(v) for v in input_size)
        except (TypeError, ValueError):
            hw = ()
        if len(hw) != 2 or min(hw) < 1:
            raise OnnxError(f"input_size must be an int or (H, W) of positive ints, got {input_size!r}")
    elif None in spatial:
        raise OnnxError(f"{g.source}: input {g.input_name!r} has dynamic spatial size {list(shape)}; "
                        "pass input_size=(H, W) for the size to translate the graph at")
    else:
        hw = (spatial[0], spatial[1])
        # The file's own input size may not buy itself a bigger budget: it must fit the budget without it.
        Budget.for_model(g.nbytes, (0,), memory_budget).check(
            "it", (1, channels, *hw), 4,
            lambda msg: OnnxError(f"{g.source}: input {g.input_name!r}: {msg}; pass a smaller input_size"))
    budget = Budget.for_model(g.nbytes, (1, channels, *hw), memory_budget)
    plan = Builder(g, hw, budget).build()
    label = name or (Path(model).stem if isinstance(model, (str, os.PathLike)) else g.name or "onnx")
    return plan, label


def _is_scores(rec) -> bool:
    """N×K or N×K×1×1 float scores (not a detection or segmentation output)."""
    return (not rec.is_const and rec.grid is None and
            (rec.rank == 2 or (rec.rank == 4 and not rec.cl and rec.shape[2:] == (1, 1))))


def _logits_layer(plan, g, logits: str | None = None) -> str | None:
    """The class-scores layer: `logits` if given, else the graph output's layer, or the input of a final
    Softmax (pre-softmax scores), when it holds N×K scores; None for other outputs (boxes, maps)."""
    if logits is not None:
        layer = logits if logits in plan.layers else plan.aliases.get(logits)
        if layer is None:
            raise OnnxError(f"{g.source}: logits={logits!r} is not a node or tensor of the graph")
        return layer
    out = g.outputs[0] if g.outputs else None
    if out not in plan.recs or not _is_scores(plan.recs[out]):
        return None
    layer = out if out in plan.layers else plan.aliases.get(out)
    if layer is None:
        return None
    if plan.layer_ops.get(layer) == "Softmax":
        node = next(n for n in g.nodes if out in n.outputs)
        src = node.inputs[0]
        return src if src in plan.layers else plan.aliases.get(src)
    return layer
