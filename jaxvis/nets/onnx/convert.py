"""ONNX graph ⇄ jaxvis .h5: the float initializers as datasets, the graph (without them) as an attribute.

The file is written by :func:`jaxvis.nets.weights.write_weights` (atomic, byte-reproducible,
metadata attributes) with architecture 'onnx'. Each float initializer is the group
named after it ('/' written as '|') holding dataset 'value' in the graph's own
(ONNX) layout; `onnx_graph` is the base64 ModelProto with only its non-float
(shape) initializers, `onnx_initializers` the JSON list of names. Reading it back
gives the same ModelProto, so :func:`jaxvis.from_onnx` accepts either file.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import numpy as np

from ...errors import WeightFileError
from ...imaging.fileio import regular_file_size
from ..weights import sha256_file, write_weights
from .errors import OnnxError
from .proto import load_model_proto, require_onnx

ARCHITECTURE = "onnx"


def _group(name: str) -> str:
    return name.replace("/", "|") or "|"


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
    from . import PREPROCESS, from_onnx
    onnx = require_onnx()
    proto, source = load_model_proto(src)
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
    if len({_group(n) for n in floats}) != len(floats):
        raise OnnxError(f"{source}: initializer names collide once '/' is written as '|'")
    meta = {"model": net.name, "architecture": ARCHITECTURE, "input_size": list(net.input_size),
            "preprocessing": pre or {}, "classes": list(classes or []), "source_file": Path(source).name,
            "source_sha256": sha256_file(source) if Path(source).is_file() else "",
            "onnx_opset": str(net.plan.opset), "onnx_initializers": json.dumps(list(floats)),
            "onnx_graph": base64.b64encode(graph.SerializeToString()).decode("ascii")}
    return write_weights(out, {_group(n): {"value": a} for n, a in floats.items()}, meta)


def _read_h5(path: Path):
    """Arrays and metadata of a converted graph, with the weight reader's hardened HDF5 checks.

    `read_weights` validates the metadata against the registry's architectures; an ONNX
    graph is not one of them, so the checks specific to this format are done here.
    """
    from ..weights import FORMAT, JSON_ATTRS, _member, _probe_hdf5, _read_dataset
    import h5py
    size = regular_file_size(path, what="converted ONNX file", error=OnnxError)
    _probe_hdf5(path)
    try:
        with h5py.File(path, "r") as f:
            meta = {k: v.decode("utf-8") if isinstance(v, bytes) else v for k, v in f.attrs.items()}
            if meta.get("format") != FORMAT or meta.get("architecture") != ARCHITECTURE or "onnx_graph" not in meta:
                raise OnnxError(f"{path}: not a converted ONNX graph (format {meta.get('format')!r:.40}, "
                                f"architecture {meta.get('architecture')!r:.40}); registry models load with "
                                "jaxvis.load_model")
            for k in JSON_ATTRS:
                if k in meta:
                    meta[k] = json.loads(meta[k])
            arrays = {}
            for layer in f:
                g = _member(path, f, layer, f"top-level {layer!r}")
                if not isinstance(g, h5py.Group):
                    raise OnnxError(f"{path}: top-level {layer!r} is not an initializer group")
                arrays[layer] = {p: _read_dataset(path, _member(path, g, p, f"{layer}/{p}"), f"{layer}/{p}", size)
                                 for p in g}
    except (OnnxError, WeightFileError):
        raise
    except Exception as e:  # h5py raises OSError, KeyError, ValueError, RuntimeError, TypeError on damaged files
        raise OnnxError(f"{path}: cannot be read as a converted ONNX graph ({type(e).__name__}: {str(e)[:200]})") from e
    return arrays, meta


def read_converted(path: str | os.PathLike):
    """(ModelProto, meta) of a file written by :func:`convert_onnx`."""
    onnx = require_onnx()
    arrays, meta = _read_h5(Path(path))
    proto = onnx.ModelProto()
    proto.ParseFromString(base64.b64decode(meta["onnx_graph"]))
    names = json.loads(meta["onnx_initializers"])
    missing = [n for n in names if _group(n) not in arrays]
    if missing:
        raise OnnxError(f"{path}: initializers missing from the file: {', '.join(missing[:5])}")
    proto.graph.initializer.extend(onnx.numpy_helper.from_array(np.asarray(arrays[_group(n)]["value"]), n)
                                   for n in names)
    return proto, meta
