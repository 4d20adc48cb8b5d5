"""Reading an ONNX model into plain Python: nodes, initializers (numpy), the image input, the opset.

The parser is the `onnx` package (optional extra `jaxvis[onnx]`): it only decodes
protobuf messages, nothing in the file is executed. Everything after this module
works on :class:`Graph`, so the translator never touches protobuf objects. A file
written by `jaxvis convert onnx` (HDF5) is recognised here, the one place, and read
back to the same ModelProto; its metadata rides along as :attr:`Graph.meta`.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import OnnxError
from .converted import HDF5_SIGNATURE, group_name, read_converted


@dataclasses.dataclass(frozen=True)
class Node:
    """One ONNX node, attributes decoded (strings as str, tensors as numpy)."""

    name: str
    op: str
    domain: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, Any]


@dataclasses.dataclass
class Graph:
    """A decoded ONNX graph in topological order."""

    source: str  # file name (or "<ModelProto>") for messages
    name: str
    opset: int  # version of the default domain
    input_name: str
    input_shape: tuple  # ints or None for dynamic dimensions (ONNX NCHW)
    nodes: list[Node]
    initializers: dict[str, np.ndarray]
    outputs: tuple[str, ...]
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)  # a converted .h5's metadata; {} otherwise


def require_onnx():
    """The `onnx` module, or an OnnxError saying how to install it."""
    try:
        import onnx  # here, not at the top: the extra is optional until an ONNX model is read
    except ImportError as e:
        raise OnnxError("importing ONNX models needs the `onnx` package: pip install 'jaxvis[onnx]' "
                        f"(or pip install onnx) — {e}") from None
    return onnx


def load_model_proto(model):
    """ModelProto from a path (.onnx, or .h5 written by `jaxvis convert onnx`) or a ModelProto; external
    data files checked and read.

    Returns:
      (ModelProto, source label for messages, the .h5's metadata or {}).
    """
    onnx = require_onnx()
    if isinstance(model, onnx.ModelProto):
        return model, "<ModelProto>", {}
    if not isinstance(model, (str, os.PathLike)):
        raise OnnxError(f"from_onnx takes a path to a .onnx file or an onnx.ModelProto, not {type(model).__name__}")
    path = Path(model)
    if not path.is_file():
        raise OnnxError(f"{path}: no such file")
    data = path.read_bytes()
    if data[:len(HDF5_SIGNATURE)] == HDF5_SIGNATURE:  # written by `jaxvis convert onnx`
        proto, meta = _from_converted(onnx, path)
        return proto, str(path), meta
    from google.protobuf.message import DecodeError  # protobuf comes with the optional onnx
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise OnnxError(f"{path}: not a readable ONNX model (protobuf decoding failed: {e}); "
                        "the file is truncated, corrupt or not ONNX") from None
    if not proto.HasField("graph") or not proto.opset_import or proto.ir_version <= 0:
        raise OnnxError(f"{path}: not an ONNX model (no graph, opset or IR version after decoding "
                        f"{len(data)} bytes)")
    _load_external(proto, path)
    return proto, str(path), {}


def _from_converted(onnx, path: Path):
    """(ModelProto, metadata) of a file written by `jaxvis convert onnx`."""
    arrays, meta = read_converted(path)
    proto = onnx.ModelProto()
    proto.ParseFromString(base64.b64decode(meta["onnx_graph"]))
    names = json.loads(meta["onnx_initializers"])
    missing = [n for n in names if group_name(n) not in arrays]
    if missing:
        raise OnnxError(f"{path}: initializers missing from the file: {', '.join(missing[:5])}")
    proto.graph.initializer.extend(onnx.numpy_helper.from_array(np.asarray(arrays[group_name(n)]["value"]), n)
                                   for n in names)
    return proto, meta


def _load_external(proto, path: Path) -> None:
    """Check that every external-data file exists (naming the missing ones), then read them."""
    from onnx.external_data_helper import (  # the optional extra, present: require_onnx passed
        load_external_data_for_model,
        uses_external_data,
    )
    ext = [t for t in proto.graph.initializer if uses_external_data(t)]
    if not ext:
        return
    base, missing = path.parent, {}
    for t in ext:
        loc = next((e.value for e in t.external_data if e.key == "location"), "")
        f = (base / loc).resolve()
        if not loc or not f.is_file() or not f.is_relative_to(base.resolve()):
            missing.setdefault(loc or "<no location>", []).append(t.name)
    if missing:
        desc = "; ".join(f"{loc} (for {', '.join(v[:3])}{'…' if len(v) > 3 else ''})" for loc, v in missing.items())
        raise OnnxError(f"{path}: external data files missing next to the model (in {base}): {desc}")
    try:
        load_external_data_for_model(proto, str(base))
    except (OSError, ValueError) as e:
        raise OnnxError(f"{path}: reading external data failed: {e}") from None


def _attr(a, onnx) -> Any:
    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, onnx.TensorProto):
        return onnx.numpy_helper.to_array(v)
    if isinstance(v, list) and v and isinstance(v[0], bytes):
        return [s.decode("utf-8", "replace") for s in v]
    if isinstance(v, onnx.GraphProto):  # If/Loop branches: decoded like the main graph
        return SubGraph(_nodes(v.node, onnx, set()), {t.name: onnx.numpy_helper.to_array(t) for t in v.initializer},
                        tuple(o.name for o in v.output))
    return v


@dataclasses.dataclass(frozen=True)
class SubGraph:
    """A branch of an If node (inlined at import when the condition is known)."""

    nodes: list[Node]
    initializers: dict[str, np.ndarray]
    outputs: tuple[str, ...]


def _nodes(protos, onnx, names: set) -> list[Node]:
    nodes = []
    for i, n in enumerate(protos):
        name = n.name or f"{n.op_type}_{i}"
        while name in names:
            name += "_"
        names.add(name)
        nodes.append(Node(name, n.op_type, n.domain if n.domain not in ("", "ai.onnx") else "",
                          tuple(n.input), tuple(n.output), {a.name: _attr(a, onnx) for a in n.attribute}))
    return nodes


def _initializer(t, onnx, source: str, users: dict) -> np.ndarray:
    try:
        a = onnx.numpy_helper.to_array(t)
    except (ValueError, TypeError) as e:  # raised by numpy_helper on sizes that do not match dims
        who = ", ".join(users.get(t.name, [])) or "no node"
        raise OnnxError(f"{source}: initializer {t.name!r} (used by {who}) has impossible contents for its "
                        f"shape {list(t.dims)}: {e}") from None
    return a


def read_graph(model) -> Graph:
    """Decode a model (path to .onnx or converted .h5, or a ModelProto) into a :class:`Graph`, nodes
    topologically sorted."""
    onnx = require_onnx()
    proto, source, meta = load_model_proto(model)
    g = proto.graph
    opsets = {(o.domain or "ai.onnx"): o.version for o in proto.opset_import}
    opset = opsets.get("ai.onnx", 0)
    if not opset:
        raise OnnxError(f"{source}: the model imports no default-domain opset (has {opsets})")
    nodes = _nodes(g.node, onnx, set())
    users: dict[str, list[str]] = {}
    for n in nodes:
        for i in n.inputs:
            users.setdefault(i, []).append(n.name)
    inits = {t.name: _initializer(t, onnx, source, users) for t in g.initializer}
    for t in g.sparse_initializer:
        raise OnnxError(f"{source}: sparse initializer {t.values.name!r} is not supported")
    real = [v for v in g.input if v.name not in inits]
    if len(real) != 1:
        raise OnnxError(f"{source}: jaxvis networks take one image input; this graph has {len(real)} "
                        f"({', '.join(v.name for v in real) or 'none'})")
    inp = real[0]
    tt = inp.type.tensor_type
    if not inp.type.HasField("tensor_type") or tt.elem_type != onnx.TensorProto.FLOAT:
        raise OnnxError(f"{source}: input {inp.name!r} must be a float32 tensor "
                        f"(is {onnx.helper.printable_type(inp.type)})")
    shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim)
    return Graph(source, g.name, opset, inp.name, shape, _toposort(nodes, {inp.name, "", *inits}, source),
                 inits, tuple(o.name for o in g.output), meta)


def _toposort(nodes: list[Node], available: set[str], source: str) -> list[Node]:
    """Nodes in dependency order (Kahn); cycles and dangling inputs are named."""
    producer = {o: n for n in nodes for o in n.outputs}
    done, order, pending = set(available), [], list(nodes)
    while pending:  # a sorted graph (as the ONNX spec requires) takes one pass and keeps its order
        rest = []
        for n in pending:
            if all(i in done for i in n.inputs):
                order.append(n)
                done.update(n.outputs)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            break
        pending = rest
    if pending:
        dangling = [(n.name, i) for n in pending for i in n.inputs if i not in done and i not in producer]
        if dangling:
            n, i = dangling[0]
            raise OnnxError(f"{source}: node {n!r} reads tensor {i!r}, which no node, initializer or input produces")
        raise OnnxError(f"{source}: the graph has a cycle through nodes "
                        f"{', '.join(repr(n.name) for n in pending[:8])}{'…' if len(pending) > 8 else ''}")
    return order
