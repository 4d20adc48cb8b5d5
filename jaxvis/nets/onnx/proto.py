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
import heapq
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import OnnxError
from .budget import element_count
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
    input_shape: tuple  # ints or None for dynamic dimensions, in the graph's order (see input_layout)
    nodes: list[Node]
    initializers: dict[str, np.ndarray]
    outputs: tuple[str, ...]
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)  # a converted .h5's metadata; {} otherwise
    input_layout: str = "NCHW"  # "NHWC": a channels-last input that the graph transposes to NCHW
    nbytes: int = 0  # the model's size in bytes, external data included (for the memory budget)


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
      (ModelProto, source label for messages, the .h5's metadata or {}, the model's size in bytes with its
      external data).
    """
    onnx = require_onnx()
    if isinstance(model, onnx.ModelProto):
        return model, "<ModelProto>", {}, model.ByteSize()
    if not isinstance(model, (str, os.PathLike)):
        raise OnnxError(f"from_onnx takes a path to a .onnx file or an onnx.ModelProto, not {type(model).__name__}")
    path = Path(model)
    if not path.is_file():
        raise OnnxError(f"{path}: no such file")
    data = path.read_bytes()
    if data[:len(HDF5_SIGNATURE)] == HDF5_SIGNATURE:  # written by `jaxvis convert onnx`
        proto, meta = _from_converted(onnx, path)
        return proto, str(path), meta, len(data)
    proto = _parse(onnx, data, str(path))
    return proto, str(path), {}, len(data) + _load_external(proto, path)


def _parse(onnx, data: bytes, source: str):
    from google.protobuf.message import DecodeError  # protobuf comes with the optional onnx
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise OnnxError(f"{source}: not a readable ONNX model (protobuf decoding failed: {e}); "
                        "the file is truncated, corrupt or not ONNX") from None
    if not proto.HasField("graph") or not proto.opset_import or proto.ir_version <= 0:
        raise OnnxError(f"{source}: not an ONNX model (no graph, opset or IR version after decoding "
                        f"{len(data)} bytes)")
    return proto


def _from_converted(onnx, path: Path):
    """(ModelProto, metadata) of a file written by `jaxvis convert onnx`."""
    arrays, meta = read_converted(path)
    try:
        proto = _parse(onnx, base64.b64decode(meta["onnx_graph"], validate=True), f"{path} (its onnx_graph)")
        names = json.loads(meta["onnx_initializers"])
        names = [str(n) for n in names]
    except (ValueError, TypeError, KeyError) as e:
        raise OnnxError(f"{path}: the stored graph or initializer list is damaged ({type(e).__name__}: {e})") from None
    missing = [n for n in names if group_name(n) not in arrays or "value" not in arrays[group_name(n)]]
    if missing:
        raise OnnxError(f"{path}: initializers missing from the file: {', '.join(missing[:5])}")
    proto.graph.initializer.extend(onnx.numpy_helper.from_array(np.asarray(arrays[group_name(n)]["value"]), n)
                                   for n in names)
    return proto, meta


def _load_external(proto, path: Path) -> None:
    """Check that every external-data file is a file inside the model's folder (naming the others), then read
    them; returns the external files' total size."""
    from onnx.external_data_helper import (  # the optional extra, present: require_onnx passed
        load_external_data_for_model,
        uses_external_data,
    )
    ext = [t for t in proto.graph.initializer if uses_external_data(t)]
    if any(not isinstance(e.key, str) or not isinstance(e.value, str) for t in ext for e in t.external_data):
        raise OnnxError(f"{path}: an external-data record is not valid UTF-8 text")
    if not ext:
        return 0
    base = path.parent.resolve()
    missing: dict[str, list[str]] = {}
    outside: dict[str, list[str]] = {}
    sizes: dict[Path, int] = {}
    reads = 0
    for t in ext:
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        try:
            f = (base / loc).resolve()
        except (OSError, ValueError):
            missing.setdefault(loc[:100] or "<no location>", []).append(t.name)
            continue
        if loc and not f.is_relative_to(base):
            outside.setdefault(loc, []).append(t.name)
        elif not loc or not f.is_file():
            missing.setdefault(loc or "<no location>", []).append(t.name)
        else:
            size = sizes.setdefault(f, f.stat().st_size)
            try:
                offset = int(info.get("offset", 0))
                length = int(info["length"]) if "length" in info else size - offset
            except ValueError:
                raise OnnxError(f"{path}: initializer {t.name!r} has a non-integer external-data offset or "
                                "length") from None
            reads += max(min(length, size - offset), 0)
    if outside:
        raise OnnxError(f"{path}: external data outside the model's folder ({base}) is refused: {_listing(outside)}; "
                        "keep the data files next to the model")
    if missing:
        raise OnnxError(f"{path}: external data files missing next to the model (in {base}): {_listing(missing)}")
    total = sum(sizes.values())
    if reads > total:  # each byte of an external file belongs to one initializer
        raise OnnxError(f"{path}: its initializers would read {reads} bytes from external files of {total} bytes "
                        "(overlapping or repeated ranges); the external-data records are damaged")
    try:
        load_external_data_for_model(proto, str(base))
    except (OSError, ValueError) as e:
        raise OnnxError(f"{path}: reading external data failed: {e}") from None
    return total


def _listing(by_file: dict[str, list[str]]) -> str:
    return "; ".join(f"{loc} (for {', '.join(v[:3])}{'…' if len(v) > 3 else ''})" for loc, v in by_file.items())


def text(v) -> str:
    """A protobuf string field as str: fields that are not valid UTF-8 come back as bytes from the decoder."""
    return v if isinstance(v, str) else bytes(v).decode("utf-8", "surrogateescape")


def _attr(a, onnx, where: str) -> Any:
    try:
        v = onnx.helper.get_attribute_value(a)
    except (ValueError, TypeError) as e:
        raise OnnxError(f"{where}: attribute {text(a.name)!r} cannot be decoded ({e})") from None
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, onnx.TensorProto):
        return tensor_array(v, onnx, f"{where}: attribute {text(a.name)!r}")
    if isinstance(v, list) and v and isinstance(v[0], bytes):
        return [s.decode("utf-8", "replace") for s in v]
    if isinstance(v, onnx.GraphProto):  # If/Loop branches: decoded like the main graph
        return SubGraph(_nodes(v.node, onnx, set(), where),
                        {text(t.name): tensor_array(t, onnx, f"{where}: initializer {text(t.name)!r}")
                         for t in v.initializer},
                        tuple(text(o.name) for o in v.output))
    return v


_FIELDS = {"FLOAT": ("float_data", 1), "COMPLEX64": ("float_data", 2), "DOUBLE": ("double_data", 1),
           "COMPLEX128": ("double_data", 2), "INT64": ("int64_data", 1), "UINT32": ("uint64_data", 1),
           "UINT64": ("uint64_data", 1), "STRING": ("string_data", 1)}
_PACKED = ("INT4", "UINT4", "FLOAT4E2M1", "INT2", "UINT2")  # two or four values to a byte


def tensor_array(t, onnx, what: str) -> np.ndarray:
    """A TensorProto's values, after checking that its data holds exactly what its dims declare.

    The count is checked before numpy sees the data, so a tensor whose dims disagree with its data
    (hostile or damaged) is refused by name instead of allocating what the dims say.
    """
    def fail(msg: str) -> OnnxError:
        return OnnxError(f"{what}: {msg}")

    count = element_count(t.dims, fail)
    kind = onnx.TensorProto.DataType.Name(t.data_type) if t.data_type in onnx.TensorProto.DataType.values() else None
    if kind in (None, "UNDEFINED"):
        raise fail(f"has data type {t.data_type}, which is not an ONNX tensor type")
    if t.data_location == onnx.TensorProto.EXTERNAL:
        raise fail("keeps its data in an external file that was not read (load the model from its .onnx path)")
    if kind not in _PACKED:
        if t.HasField("raw_data"):
            itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
            have, need = len(t.raw_data), count * itemsize
            unit = "bytes"
        else:
            field, per = _FIELDS.get(kind, ("int32_data", 1))
            have, need, unit = len(getattr(t, field)), count * per, "values"
        if have != need:
            raise fail(f"declares shape {list(t.dims)} ({count} values: {need} {unit}) but holds {have} {unit}; "
                       "its data and shape disagree")
    try:
        return onnx.numpy_helper.to_array(t)
    except (ValueError, TypeError) as e:  # what the count check cannot see (e.g. packed 4-bit types)
        raise fail(f"has impossible contents for its shape {list(t.dims)}: {e}") from None


@dataclasses.dataclass(frozen=True)
class SubGraph:
    """A branch of an If node (inlined at import when the condition is known)."""

    nodes: list[Node]
    initializers: dict[str, np.ndarray]
    outputs: tuple[str, ...]


def _nodes(protos, onnx, names: set, where: str) -> list[Node]:
    nodes = []
    taken: dict[str, int] = {}
    for i, n in enumerate(protos):
        op = text(n.op_type)
        name = base = text(n.name) or f"{op}_{i}"
        while name in names:  # a repeated name gets the next free numbered suffix
            taken[base] = taken.get(base, 0) + 1
            name = f"{base}_{taken[base]}"
        names.add(name)
        domain = text(n.domain)
        nodes.append(Node(name, op, domain if domain not in ("", "ai.onnx") else "",
                          tuple(map(text, n.input)), tuple(map(text, n.output)),
                          {text(a.name): _attr(a, onnx, f"{where}: node {name!r} ({op})") for a in n.attribute}))
    return nodes


MIN_OPSET, MAX_OPSET = 1, 25  # ai.onnx opsets whose semantics the handlers follow (7–21 tested)
# Ops a channels-last input may pass through (with constant other operands) before its Transpose to NCHW.
_PASS_THROUGH = {"Add", "Sub", "Mul", "Div", "Cast", "Identity", "Clip", "Relu", "Neg", "Abs"}


def read_graph(model) -> Graph:
    """Decode a model (path to .onnx or converted .h5, or a ModelProto) into a :class:`Graph`, nodes
    topologically sorted."""
    onnx = require_onnx()
    proto, source, meta, nbytes = load_model_proto(model)
    g = proto.graph
    opsets = {(o.domain or "ai.onnx"): o.version for o in proto.opset_import}
    opset = opsets.get("ai.onnx", 0)
    if not opset:
        raise OnnxError(f"{source}: the model imports no default-domain opset (has {opsets})")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise OnnxError(f"{source}: the model uses ai.onnx opset {opset}, which jaxvis does not know: it translates "
                        f"opsets {MIN_OPSET}–{MAX_OPSET} (export with opset_version in that range)")
    nodes = _nodes(g.node, onnx, set(), source)
    users: dict[str, list[str]] = {}
    for n in nodes:
        for i in n.inputs:
            users.setdefault(i, []).append(n.name)
    inits = {text(t.name): tensor_array(t, onnx, f"{source}: initializer {text(t.name)!r} (used by "
                                                 f"{', '.join(users.get(text(t.name), [])[:3]) or 'no node'})")
             for t in g.initializer}
    for t in g.sparse_initializer:
        raise OnnxError(f"{source}: sparse initializer {t.values.name!r} is not supported")
    real = [v for v in g.input if text(v.name) not in inits]
    if len(real) != 1:
        raise OnnxError(f"{source}: jaxvis networks take one image input; this graph has {len(real)} "
                        f"({', '.join(text(v.name) for v in real) or 'none'})")
    inp = real[0]
    tt = inp.type.tensor_type
    if not inp.type.HasField("tensor_type") or tt.elem_type != onnx.TensorProto.FLOAT:
        raise OnnxError(f"{source}: input {text(inp.name)!r} must be a float32 tensor "
                        f"(is {onnx.helper.printable_type(inp.type)})")
    shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim)
    name = text(inp.name)
    nodes = _toposort(nodes, {name, "", *inits}, source)
    layout = "NHWC" if len(shape) == 4 and _channels_last(nodes, name, set(inits)) else "NCHW"
    return Graph(source, text(g.name), opset, name, shape, nodes, inits, tuple(text(o.name) for o in g.output), meta,
                 layout, nbytes)


def _channels_last(nodes: list[Node], name: str, consts: set[str]) -> bool:
    """Whether every path from the input reaches a Transpose to NCHW (perm 0,3,1,2), passing only elementwise
    ops with constant other operands on the way (tf2onnx's and Keras's NHWC inputs)."""
    users: dict[str, list[Node]] = {}
    for n in nodes:
        for i in n.inputs:
            users.setdefault(i, []).append(n)
    consts = consts | {o for n in nodes if n.op == "Constant" for o in n.outputs}
    todo, seen, found = [name], {name}, False
    while todo:
        t = todo.pop()
        for n in users.get(t, []):
            if n.op == "Transpose" and list(n.attrs.get("perm", [])) == [0, 3, 1, 2]:
                found = True
            elif n.op in _PASS_THROUGH and n.domain == "" and all(i == t or i in consts or not i for i in n.inputs):
                todo += [o for o in n.outputs if o not in seen]
                seen.update(n.outputs)
            else:
                return False
    return found


def _toposort(nodes: list[Node], available: set[str], source: str) -> list[Node]:
    """Nodes in dependency order (Kahn's algorithm, ties in file order); cycles, dangling inputs and tensors
    written twice are named."""
    producer: dict[str, Node] = {}
    for n in nodes:
        for o in n.outputs:
            if not o:
                continue
            if o in producer or o in available:
                first = f"node {producer[o].name!r}" if o in producer else "an input or initializer"
                raise OnnxError(f"{source}: node {n.name!r} writes tensor {o!r}, which {first} already writes "
                                "(each tensor must have one producer)")
            producer[o] = n
    waiting: dict[int, int] = {}
    readers: dict[str, list[int]] = {}
    for k, n in enumerate(nodes):
        need = {i for i in n.inputs if i not in available}
        for i in need:
            if i not in producer:
                raise OnnxError(f"{source}: node {n.name!r} reads tensor {i!r}, which no node, initializer or "
                                "input produces")
            readers.setdefault(i, []).append(k)
        waiting[k] = len(need)
    ready = [k for k, c in waiting.items() if c == 0]
    heapq.heapify(ready)
    order = []
    while ready:  # a sorted graph (as the ONNX spec requires) comes out in its own order
        k = heapq.heappop(ready)
        order.append(nodes[k])
        for o in nodes[k].outputs:
            for r in readers.get(o, ()):
                waiting[r] -= 1
                if waiting[r] == 0:
                    heapq.heappush(ready, r)
    if len(order) < len(nodes):
        stuck = [n for k, n in enumerate(nodes) if waiting[k] > 0]
        raise OnnxError(f"{source}: the graph has a cycle through nodes "
                        f"{', '.join(repr(n.name) for n in stuck[:8])}{'…' if len(stuck) > 8 else ''}")
    return order
