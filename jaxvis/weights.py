"""jaxvis weight files: HDF5, one group per learnable layer (MATLAB name), metadata as attributes.

Layout::

    /<layer>/kernel   conv: (kh, kw, in/groups, out) HWIO; fc: (in, out), inputs in NHWC flatten order
    /<layer>/bias     (out,)
    attrs: format, model, architecture, source, source_version, source_file,
           source_sha256, licence, preprocessing (JSON), input_size (JSON),
           classes (JSON), absent_layers (JSON: layers this file deliberately lacks)

Files are written byte-reproducibly (no timestamps, fixed order) and atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

from .errors import WeightFileError
from .fileio import atomic_path

FORMAT = "jaxvis-weights/1"
JSON_ATTRS = ("preprocessing", "input_size", "classes", "absent_layers")
REQUIRED_ATTRS = ("format", "architecture", "preprocessing", "input_size", "classes")

Arrays = dict[str, dict[str, np.ndarray]]


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_weights(path: str | os.PathLike, arrays: Mapping[str, Mapping[str, np.ndarray]],
                  meta: Mapping[str, Any]) -> str:
    """Write a weight file atomically and reproducibly.

    Args:
      path: destination `.h5` file.
      arrays: layer name → {"kernel": ..., "bias": ...} float32 arrays in jaxvis layout.
      meta: metadata; keys in JSON_ATTRS are stored as JSON strings, the rest as strings.

    Returns:
      The sha256 of the written file.
    """
    meta = {"format": FORMAT, **meta}
    missing = [k for k in REQUIRED_ATTRS if k not in meta]
    if missing:
        raise ValueError(f"weight metadata lacks {missing}")
    with atomic_path(path) as tmp:
        # libver 'earliest' and track_times=False keep the bytes a function of the content.
        with h5py.File(tmp, "w", libver=("earliest", "v110"), track_order=False) as f:
            for k in sorted(meta):
                v = meta[k]
                f.attrs[k] = json.dumps(v) if k in JSON_ATTRS else str(v)
            for layer in sorted(arrays):
                g = f.create_group(layer, track_order=False)
                for pname in sorted(arrays[layer]):
                    a = np.ascontiguousarray(arrays[layer][pname], dtype=np.float32)
                    g.create_dataset(pname, data=a, track_times=False)
    return sha256_file(path)


def read_weights(path: str | os.PathLike) -> tuple[Arrays, dict[str, Any]]:
    """Read a weight file written by :func:`write_weights`.

    Returns:
      (arrays, meta): layer → {param → float32 array}, and the decoded metadata.

    Raises:
      WeightFileError: the file is missing, not HDF5, truncated, or lacks jaxvis metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightFileError(f"weight file {str(path)!r} does not exist")
    try:
        with h5py.File(path, "r") as f:
            meta = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in f.attrs.items()}
            arrays: Arrays = {}
            for layer, g in f.items():
                if not isinstance(g, h5py.Group):
                    raise WeightFileError(f"weight file {str(path)!r}: top-level {layer!r} is not a layer group")
                arrays[layer] = {p: np.asarray(d[()], dtype=np.float32) for p, d in g.items()}
    except WeightFileError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as e:
        raise WeightFileError(
            f"weight file {str(path)!r} cannot be read as HDF5 ({type(e).__name__}: {e}); "
            f"it may be truncated or corrupt — convert it again (jaxvis convert --help)") from e
    if meta.get("format") != FORMAT:
        raise WeightFileError(f"weight file {str(path)!r} is not a jaxvis weight file "
                              f"(format attribute {meta.get('format')!r}, expected {FORMAT!r})")
    lacking = [k for k in REQUIRED_ATTRS if k not in meta]
    if lacking:
        raise WeightFileError(f"weight file {str(path)!r} lacks metadata {lacking}")
    for k in JSON_ATTRS:
        if k in meta:
            try:
                meta[k] = json.loads(meta[k])
            except json.JSONDecodeError as e:
                raise WeightFileError(f"weight file {str(path)!r}: attribute {k!r} is not valid JSON: {e}") from e
    meta.setdefault("absent_layers", [])
    return arrays, meta


def check_arrays(path: str | os.PathLike, arrays: Arrays, expected: Mapping[str, Mapping[str, tuple]],
                 absent: list[str]) -> None:
    """Strict merge check: every expected tensor present with its shape, nothing unexpected.

    Layers listed in `absent` may be missing (the file declares it lacks them).
    All problems are reported together in one :class:`WeightFileError`.
    """
    missing, unexpected, misshaped = [], [], []
    for layer, params in expected.items():
        for p, shape in params.items():
            got = arrays.get(layer, {}).get(p)
            if got is None:
                if layer not in absent:
                    missing.append(f"{layer}/{p} {tuple(shape)}")
            elif tuple(got.shape) != tuple(shape):
                misshaped.append(f"{layer}/{p}: file {tuple(got.shape)}, model {tuple(shape)}")
    for layer, params in arrays.items():
        for p in params:
            if p not in expected.get(layer, {}):
                unexpected.append(f"{layer}/{p}")
    if missing or unexpected or misshaped:
        lines = [f"weight file {str(path)!r} does not fit the network:"]
        for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshaped)):
            if items:
                lines.append(f"  {title} ({len(items)}): " + ", ".join(items))
        raise WeightFileError("\n".join(lines))
