"""ONNX graph → jaxvis .h5 (`jaxvis convert onnx`): the float initializers as datasets, the graph as an attribute.

The file is written by :func:`jaxvis.nets.weights.write_weights` (atomic, byte-reproducible,
metadata attributes) with architecture 'onnx', in the layout :mod:`.converted` describes
and reads. Reading it back gives the same ModelProto, so :func:`jaxvis.from_onnx` accepts
either file.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from ...errors import OnnxError
from ..weights import sha256_file, write_weights
from . import PREPROCESS, from_onnx
from .converted import ARCHITECTURE, group_name
from .proto import load_model_proto, require_onnx


def convert_onnx(src: str | os.PathLike, out: str | os.PathLike, *, input_size=None, preprocess=None,
                 classes=None) -> str:
    """Validate an ONNX model by translating it, then write it as a jaxvis .h5.

    Args:
      src: the .onnx file.
      out: destination .h5 (written atomically).
      input_size, preprocess, classes: as for :func:`jaxvis.from_onnx`; stored in the metadata
        (preprocess only as a preset name or dict).

    Returns:
      The sha256 of the written file.
    """
    onnx = require_onnx()
    proto, source, _, _ = load_model_proto(src)
    try:
        net = from_onnx(proto, input_size=input_size, preprocess=preprocess, classes=classes,
                        name=Path(source).stem if Path(source).is_file() else None)
    except OnnxError as e:  # translated from the decoded proto: put the file's name back into the message
        msg = str(e)
        raise OnnxError(source + msg[len("<ModelProto>"):] if msg.startswith("<ModelProto>") else msg) from None
    pre = PREPROCESS.get(preprocess) if isinstance(preprocess, str) else preprocess
    if pre is not None and not isinstance(pre, dict):
        raise OnnxError("convert stores preprocessing as a preset name or dict(scale=, mean=, std=), not a callable")
    graph = onnx.ModelProto()
    graph.CopyFrom(proto)
    floats, keep = {}, []
    for t in graph.graph.initializer:
        if t.data_type == onnx.TensorProto.FLOAT:
            floats[t.name] = onnx.numpy_helper.to_array(t)
        else:
            keep.append(t)
    del graph.graph.initializer[:]
    graph.graph.initializer.extend(keep)
    if len({group_name(n) for n in floats}) != len(floats):
        raise OnnxError(f"{source}: initializer names collide once '/' is written as '|'")
    meta = {"model": net.name, "architecture": ARCHITECTURE, "input_size": list(net.input_size),
            "preprocessing": pre or {}, "classes": list(classes or []), "source_file": Path(source).name,
            "source_sha256": sha256_file(source) if Path(source).is_file() else "",
            "onnx_opset": str(net.plan.opset), "onnx_initializers": json.dumps(list(floats)),
            "onnx_graph": base64.b64encode(graph.SerializeToString()).decode("ascii")}
    return write_weights(out, {group_name(n): {"value": a} for n, a in floats.items()}, meta)
