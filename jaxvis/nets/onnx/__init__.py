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
              name: str | None = None) -> Translation:
    """Translate an ONNX model once into a pure JAX function (see :class:`Translation`).

    `jaxvis.from_function(t.apply_fn, t.params, input_size=t.input_size, layers=t.layers,
    logits=t.logits, ...)` makes it a network; :func:`from_onnx` does the same with its own
    wrapper, which also resolves tensor names. Arguments and errors as for :func:`from_onnx`.
    """
    g = read_graph(model)
    plan, label = _plan(g, model, input_size, name)
    params = {k: jax.device_put(np.ascontiguousarray(v)) for k, v in plan.params.items()}
    plan.params = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in params.items()}  # drop the numpy copies
    return Translation(make_forward(plan, flat_2d=True), params, tuple(plan.layers), dict(plan.aliases),
                       plan.input_size, _logits_layer(plan, g), label, plan)


def from_onnx(model: str | os.PathLike | Any, *, input_size: int | tuple[int, int] | None = None,
              preprocess: Callable | str | dict | None = None, classes: Sequence[str] | None = None,
              name: str | None = None) -> OnnxNetwork:
    """Import an ONNX image classifier (or any single-image-input CNN) as a jaxvis network.

    Args:
      model: path to a `.onnx` file (external data files beside it) or an `onnx.ModelProto`.
      input_size: (H, W) or one int; required when the graph's spatial size is dynamic,
        otherwise defaults to the graph's own.
      preprocess: RGB 0..255 images → the graph's input: a callable, a preset name
        ('torchvision', 'caffe', 'unit', 'none'), or dict(scale=, mean=, std=) computing
        (x*scale - mean)/std. Default: none (the graph takes the images as they are).
      classes: class names, index = class id.
      name: label for messages (default: the file's stem).

    Returns:
      An :class:`OnnxNetwork`: every node output is a layer; `params` holds the initializers.

    Raises:
      OnnxError: unreadable or non-ONNX file, missing external data, unsupported op
        (names the op, node and opset, lists the supported ones), dynamic spatial size
        without `input_size`, several inputs, inconsistent initializers or a cyclic graph.
    """
    g = read_graph(model)
    if g.meta:  # written by `jaxvis convert onnx`: its metadata gives the defaults
        preprocess = (g.meta["preprocessing"] or None) if preprocess is None else preprocess
        classes = (g.meta["classes"] or None) if classes is None else classes
    plan, label = _plan(g, model, input_size, name)
    return OnnxNetwork(plan, g.nodes, label, classes, _preprocess_fn(preprocess), _logits_layer(plan, g))


def _plan(g: Graph, model, input_size, name):
    if g.meta:  # a converted .h5 (see proto.py): its stored size and name are the defaults
        input_size = tuple(g.meta["input_size"]) if input_size is None else input_size
        name = name or g.meta.get("model")
    shape = g.input_shape
    if len(shape) != 4:
        raise OnnxError(f"{g.source}: input {g.input_name!r} has shape {list(shape)}; jaxvis imports image "
                        "networks with one N×C×H×W input")
    if shape[1] is None:
        raise OnnxError(f"{g.source}: input {g.input_name!r} has a dynamic channel count; export it fixed")
    if input_size is not None:
        hw = (int(input_size),) * 2 if isinstance(input_size, int) else tuple(int(v) for v in input_size)
        if len(hw) != 2 or min(hw) < 1:
            raise OnnxError(f"input_size must be an int or (H, W) of positive ints, got {input_size!r}")
    elif None in shape[2:]:
        raise OnnxError(f"{g.source}: input {g.input_name!r} has dynamic spatial size {list(shape)}; "
                        "pass input_size=(H, W) for the size to translate the graph at")
    else:
        hw = (shape[2], shape[3])
    plan = Builder(g, hw).build()
    label = name or (Path(model).stem if isinstance(model, (str, os.PathLike)) else g.name or "onnx")
    return plan, label


def _logits_layer(plan, g) -> str | None:
    """The graph output's layer, or the input of a final Softmax (pre-softmax scores)."""
    out = g.outputs[0] if g.outputs else None
    if out not in plan.recs or plan.recs[out].is_const:
        return None
    layer = out if out in plan.layers else plan.aliases.get(out)
    if layer is None:
        return None
    if plan.layer_ops.get(layer) == "Softmax":
        node = next(n for n in g.nodes if out in n.outputs)
        src = node.inputs[0]
        return src if src in plan.layers else plan.aliases.get(src)
    return layer
