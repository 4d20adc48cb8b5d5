"""An ONNX graph stored as a jaxvis .h5 (written by `jaxvis convert onnx`): its names and the hardened reader.

Each float initializer is the group named after it ('/' written as '|') holding dataset
'value' in the graph's own (ONNX) layout; attribute `onnx_graph` is the base64 ModelProto
with only its non-float (shape) initializers, `onnx_initializers` the JSON list of names.
:func:`jaxvis.nets.onnx.proto.load_model_proto` turns it back into the same ModelProto.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from ...errors import OnnxError, WeightFileError
from ...imaging.fileio import regular_file_size
from ..weights import FORMAT, JSON_ATTRS, hard_member, probe_hdf5, read_number_dataset

ARCHITECTURE = "onnx"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"  # the first 8 bytes of every HDF5 file


def group_name(initializer: str) -> str:
    """The HDF5 group an initializer is stored under ('/' would nest groups)."""
    return initializer.replace("/", "|") or "|"


def read_converted(path: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Arrays and metadata of a converted graph, with the weight reader's hardened HDF5 checks.

    `read_weights` validates the metadata against the registry's architectures; an ONNX
    graph is not one of them, so the checks specific to this format are done here.

    Args:
      path: the .h5 file.

    Returns:
      ({group: {"value": array}}, metadata with the JSON attributes decoded).

    Raises:
      OnnxError: not a converted ONNX graph, or unreadable as one.
      WeightFileError: a member the weight reader refuses (a link, a dataset stored outside the file, …).
    """
    size = regular_file_size(path, what="converted ONNX file", error=OnnxError)
    probe_hdf5(path)
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
                g = hard_member(path, f, layer, f"top-level {layer!r}")
                if not isinstance(g, h5py.Group):
                    raise OnnxError(f"{path}: top-level {layer!r} is not an initializer group")
                arrays[layer] = {p: read_number_dataset(path, hard_member(path, g, p, f"{layer}/{p}"), f"{layer}/{p}",
                                                        size)
                                 for p in g}
    except (OnnxError, WeightFileError):
        raise
    except Exception as e:  # h5py raises OSError, KeyError, ValueError, RuntimeError, TypeError on damaged files
        raise OnnxError(f"{path}: cannot be read as a converted ONNX graph ({type(e).__name__}: {str(e)[:200]})") from e
    return arrays, meta
