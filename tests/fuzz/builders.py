"""Byte-level writers of the weight formats jaxvis reads, for regression tests and fuzzers.

They need neither torch nor caffe, and can write what those never would: the
hostile files (BUILD on a stand-in, stride-0 views, lying record sizes) the
readers must refuse.
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Iterable

import numpy as np

# ---------------------------------------------------------------- pickle opcodes (protocol 2)
PROTO2, STOP, MARK, TUPLE, EMPTY_TUPLE, REDUCE, BUILD, POP = b"\x80\x02", b".", b"(", b"t", b")", b"R", b"b", b"0"
SETITEM, EMPTY_DICT, BINPERSID, NEWFALSE, EMPTY_LIST, APPEND = b"s", b"}", b"Q", b"\x89", b"]", b"a"

STORAGE = {"f4": "FloatStorage", "f8": "DoubleStorage", "f2": "HalfStorage", "i8": "LongStorage",
           "i4": "IntStorage", "u1": "ByteStorage"}


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def text(s: str) -> bytes:
    b = s.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(b)) + b


def integer(v: int) -> bytes:
    n = (v.bit_length() + 8) // 8 or 1
    return b"\x8a" + bytes([n]) + v.to_bytes(n, "little", signed=True)


def tup(items: Iterable[bytes]) -> bytes:
    return MARK + b"".join(items) + TUPLE


def tensor(key: str, dtype: str, numel: int, offset: int, size: tuple, stride: tuple) -> bytes:
    """``_rebuild_tensor_v2(storage key, offset, size, stride, False, OrderedDict())``."""
    pid = tup([text("storage"), glob("torch", STORAGE[dtype]), text(key), text("cpu"), integer(numel)])
    return (glob("torch._utils", "_rebuild_tensor_v2") + MARK + pid + BINPERSID + integer(offset)
            + tup(map(integer, size)) + tup(map(integer, stride)) + NEWFALSE
            + glob("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE + TUPLE + REDUCE)


def state_dict_pickle(entries: list[tuple[str, bytes]], prelude: bytes = b"") -> bytes:
    """An OrderedDict pickle of ``name -> object opcodes``, after `prelude` opcodes (which must leave the stack empty)."""
    body = glob("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE
    for name, obj in entries:
        body += text(name) + obj + SETITEM
    return PROTO2 + prelude + body + STOP


def pth_bytes(records: dict[str, bytes], prefix: str = "archive", method: int = zipfile.ZIP_STORED) -> bytes:
    """A torch.save-style zip of ``record name -> bytes`` (names relative to the prefix folder)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in records.items():
            z.writestr(f"{prefix}/{name}", data)
    return buf.getvalue()


def simple_pth(arrays: dict[str, np.ndarray], prelude: bytes = b"", extra_records: dict | None = None,
               views: dict[str, tuple] | None = None) -> bytes:
    """A .pth of contiguous tensors (one storage each); `views` adds tensors viewing a named
    array's storage as ``(offset, size, stride)``."""
    records: dict[str, bytes] = {"byteorder": b"little"}
    entries, keys = [], {}
    for i, (name, a) in enumerate(arrays.items()):
        a = np.ascontiguousarray(a)
        code = a.dtype.str[1:]
        stride = tuple(s // a.itemsize for s in a.strides)
        entries.append((name, tensor(str(i), code, a.size, 0, a.shape, stride)))
        records[f"data/{i}"] = a.astype(a.dtype.newbyteorder("<")).tobytes()
        keys[name] = (str(i), code, a.size)
    for name, (src, offset, size, stride) in (views or {}).items():
        key, code, numel = keys[src]
        entries.append((name, tensor(key, code, numel, offset, size, stride)))
    records["data.pkl"] = state_dict_pickle(entries, prelude)
    records.update(extra_records or {})
    return pth_bytes(records)


# ---------------------------------------------------------------- a tiny valid jaxvis .h5
def tiny_h5_meta() -> dict:
    from jaxvis.nets.models.registry import CAFFE
    return dict(model="squeezenet", architecture="squeezenet1_1", preprocessing=CAFFE,
                input_size=[227, 227], classes=[f"c{i}" for i in range(1000)], source="test",
                source_version="0", source_file="x", source_sha256="0", licence="test", absent_layers=[])


# ---------------------------------------------------------------- ONNX graphs (onnx.helper; the test extra)
def onnx_model(nodes, inits: dict | None = None, shape=(1, 3, 8, 8), opset: int = 13, out: str | None = None):
    """A ModelProto with input 'x' (float, `shape`), the given nodes and initializers, one output."""
    import onnx
    h = onnx.helper
    inits = [v if isinstance(v, onnx.TensorProto) else onnx.numpy_helper.from_array(np.asarray(v), k)
             for k, v in (inits or {}).items()]
    g = h.make_graph(nodes, "fuzz", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(shape))],
                     [h.make_empty_tensor_value_info(out or nodes[-1].output[0])], inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def onnx_seed():
    """A small valid CNN graph: Conv → Relu → MaxPool → Reshape (shape arithmetic) → Gemm → Softmax."""
    import onnx
    h = onnx.helper
    rng = np.random.default_rng(0)
    nodes = [h.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c"], ["r"], name="relu"),
             h.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             h.make_node("Shape", ["p"], ["s"], name="shape"),
             h.make_node("Gather", ["s", "zero"], ["n"], name="batch", axis=0),
             h.make_node("Unsqueeze", ["n", "zero1"], ["n1"], name="unsq"),
             h.make_node("Concat", ["n1", "minus1"], ["t"], name="target", axis=0),
             h.make_node("Reshape", ["p", "t"], ["f"], name="flatten"),
             h.make_node("Gemm", ["f", "fc", "fb"], ["z"], name="fc", transB=1),
             h.make_node("Softmax", ["z"], ["y"], name="prob", axis=1)]
    inits = {"w": rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "b": np.zeros(4, np.float32),
             "zero": np.array(0, np.int64), "zero1": np.array([0], np.int64), "minus1": np.array([-1], np.int64),
             "fc": rng.normal(size=(5, 64)).astype(np.float32), "fb": np.zeros(5, np.float32)}
    return onnx_model(nodes, inits)
