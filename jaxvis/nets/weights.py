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

import contextlib
import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping

import h5py
import numpy as np

from ..errors import OutputError, WeightFileError
from ..imaging.fileio import atomic_path, regular_file_size
from .models.registry import ARCHITECTURES

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


@contextlib.contextmanager
def _as_output_error(path: str | os.PathLike) -> Iterator[None]:
    # h5py reports a full disk or failed write as RuntimeError as well as OSError.
    try:
        yield
    except (OSError, RuntimeError) as e:
        raise OutputError(f"cannot write {str(path)!r}: {e}; nothing was written") from e


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
        raise WeightFileError(f"weight metadata lacks {missing}; a jaxvis weight file records {', '.join(REQUIRED_ATTRS)}")
    with atomic_path(path) as tmp, _as_output_error(path):
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


# Metadata schema, checked once on open: field → (what it must be, check).
_Number = (int, float)


def _is_num(v: Any) -> bool:
    return isinstance(v, _Number) and not isinstance(v, bool) and math.isfinite(v)


def _triple(v: Any, positive: bool = False) -> bool:
    return isinstance(v, list) and len(v) == 3 and all(_is_num(x) and (x > 0 or not positive) for x in v)


PREPROCESSING_FIELDS: dict[str, tuple[str, Any]] = {
    "scale": ("a positive number", lambda v: _is_num(v) and v > 0),
    "mean": ("a list of 3 numbers (R, G, B)", _triple),
    "std": ("a list of 3 positive numbers (R, G, B)", lambda v: _triple(v, positive=True)),
}
MAX_INPUT_SIZE = 8192
META_FIELDS: dict[str, tuple[str, Any]] = {
    "architecture": ("a non-empty string", lambda v: isinstance(v, str) and v != ""),
    "input_size": (f"[height, width], two integers in 1..{MAX_INPUT_SIZE}",
                   lambda v: isinstance(v, list) and len(v) == 2 and all(
                       isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= MAX_INPUT_SIZE for x in v)),
    "classes": ("a list of class-name strings", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)),
    "absent_layers": ("a list of layer-name strings",
                      lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)),
    "preprocessing": (f"an object with fields {', '.join(PREPROCESSING_FIELDS)}", lambda v: isinstance(v, dict)),
}


def _bad(path: Path, msg: str) -> WeightFileError:
    return WeightFileError(f"weight file {str(path)!r}: {msg}")


def _check_meta(path: Path, meta: dict[str, Any]) -> None:
    """Validate decoded metadata against META_FIELDS / PREPROCESSING_FIELDS, naming the field."""
    for field, (want, ok) in META_FIELDS.items():
        if field in meta and not ok(meta[field]):
            raise _bad(path, f"metadata field {field!r} is {json.dumps(meta[field])[:80]}; expected {want}")
    if meta["architecture"] not in ARCHITECTURES:
        raise _bad(path, f"metadata field 'architecture' is {meta['architecture'][:60]!r}; known: {sorted(ARCHITECTURES)}")
    pre = meta["preprocessing"]
    for field, (want, ok) in PREPROCESSING_FIELDS.items():
        if field not in pre:
            raise _bad(path, f"metadata field 'preprocessing' lacks {field!r} ({want})")
        if not ok(pre[field]):
            raise _bad(path, f"metadata field 'preprocessing.{field}' is {json.dumps(pre[field])[:80]}; expected {want}")
    unknown = sorted(set(pre) - set(PREPROCESSING_FIELDS))
    if unknown:
        raise _bad(path, f"metadata field 'preprocessing' has unknown fields {unknown}; known: {list(PREPROCESSING_FIELDS)}")


def hard_member(path: Path, group: h5py.Group, name: str, where: str) -> Any:
    """`group[name]`, refusing soft and external links (which could read another file).

    Args:
      path: the file, for messages.
      group: an open h5py group (or file).
      name: the member's name in `group`.
      where: how messages call the member, e.g. ``"conv1/kernel"``.

    Returns:
      The h5py object (group or dataset).

    Raises:
      WeightFileError: the member is a soft or external link.
    """
    link = group.get(name, getlink=True)
    if not isinstance(link, h5py.HardLink):
        raise _bad(path, f"{where} is a {type(link).__name__}; weight files hold only their own data")
    return group[name]


def read_number_dataset(path: Path, d: Any, where: str, file_size: int) -> np.ndarray:
    """A float32 copy of dataset `d` after checking it holds plain numbers stored in this file.

    Args:
      path: the file, for messages.
      d: what :func:`hard_member` returned.
      where: how messages call the dataset.
      file_size: the file's size in bytes; a dataset declaring more is refused before it is read.

    Returns:
      The data as a float32 numpy array.

    Raises:
      WeightFileError: not a dataset, stored outside the file, not plain numbers, over 4-D or larger than the file.
    """
    if not isinstance(d, h5py.Dataset):
        raise _bad(path, f"{where} is a {type(d).__name__}, expected a dataset (array)")
    if d.is_virtual or d.external:
        raise _bad(path, f"{where} is stored outside the file ({'virtual' if d.is_virtual else 'external'} "
                         f"dataset); refused")
    if d.dtype.kind not in "fiu" or d.dtype.names is not None or d.dtype.subdtype is not None:
        raise _bad(path, f"{where} has dtype {d.dtype}; expected plain numbers (float32)")
    if d.shape is None or len(d.shape) > 4:
        raise _bad(path, f"{where} has shape {d.shape}; weights are 1- to 4-D")
    nbytes = math.prod(d.shape) * d.dtype.itemsize
    if nbytes > file_size:  # jaxvis writes uncompressed data: it cannot exceed the file
        raise _bad(path, f"{where} declares shape {d.shape} ({nbytes} bytes) in a {file_size}-byte file; refused "
                         f"before reading")
    return np.asarray(d[()], dtype=np.float32)


# Parse each weight file in a child process first (see probe_hdf5). Costs ~0.3 s once per file and
# process; set False only for files you trust (e.g. ones this process wrote itself).
ISOLATE_HDF5 = True
# Seconds libhdf5 may take to parse a weight file in the probe child (AlexNet's 233 MB: < 2 s).
HDF5_PROBE_TIMEOUT_S = 60.0
_probed: set[tuple] = set()  # (device, inode, size, mtime) of files parsed to the end in a child


def probe_hdf5(path: Path) -> None:
    """Have a child process parse the whole file first (see jaxvis/nets/h5probe.py): a libhdf5 hang or
    crash on a damaged file becomes a WeightFileError instead of hanging or killing this process.

    Args:
      path: the HDF5 file; each file (device, inode, size, mtime) is probed once per process.

    Raises:
      WeightFileError: libhdf5 did not finish within HDF5_PROBE_TIMEOUT_S or crashed.
    """
    if not ISOLATE_HDF5:
        return
    st = path.stat()
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _probed:
        return
    script = Path(__file__).with_name("h5probe.py")
    try:
        proc = subprocess.run([sys.executable, "-I", str(script), str(path)], capture_output=True,
                              timeout=HDF5_PROBE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise _bad(path, f"the HDF5 library did not finish parsing it within {HDF5_PROBE_TIMEOUT_S:g} s "
                         f"(jaxvis.nets.weights.HDF5_PROBE_TIMEOUT_S); the file is damaged — convert it again") from None
    if proc.returncode < 0 or proc.returncode > 1:
        raise _bad(path, f"the HDF5 library crashed parsing it (exit status {proc.returncode}); the file is "
                         f"damaged — convert it again")
    if proc.returncode == 0:
        _probed.add(key)


def read_weights(path: str | os.PathLike) -> tuple[Arrays, dict[str, Any]]:
    """Read a weight file written by :func:`write_weights`, validating its whole schema on open.

    Returns:
      (arrays, meta): layer → {param → float32 array}, and the decoded metadata.

    Raises:
      WeightFileError: the file is missing, not a regular file, not HDF5, truncated,
        lacks jaxvis metadata, has a metadata field of the wrong type, a member
        that is not a group of datasets, a link or a dataset stored outside the
        file, or a dataset larger than the file (message names file and field).
    """
    path = Path(path)
    if not path.exists():
        raise WeightFileError(f"weight file {str(path)!r} does not exist")
    file_size = regular_file_size(path, what="weight file")
    probe_hdf5(path)
    try:
        with h5py.File(path, "r") as f:
            meta: dict[str, Any] = {}
            for k, v in f.attrs.items():
                if isinstance(v, bytes):
                    v = v.decode("utf-8")
                elif not isinstance(v, str):
                    raise _bad(path, f"metadata attribute {k!r} is a {type(v).__name__}, expected a string")
                meta[k] = v
            if meta.get("format") != FORMAT:
                raise _bad(path, f"not a jaxvis weight file (format attribute {meta.get('format')!r:.80}, "
                                 f"expected {FORMAT!r})")
            lacking = [k for k in REQUIRED_ATTRS if k not in meta]
            if lacking:
                raise WeightFileError(f"weight file {str(path)!r} lacks metadata {lacking}")
            for k in JSON_ATTRS:
                if k in meta:
                    try:
                        meta[k] = json.loads(meta[k])
                    except (json.JSONDecodeError, RecursionError) as e:
                        raise _bad(path, f"attribute {k!r} is not valid JSON: {str(e)[:100]}") from e
            meta.setdefault("absent_layers", [])
            _check_meta(path, meta)
            arrays: Arrays = {}
            for layer in f:
                g = hard_member(path, f, layer, f"top-level {layer!r}")
                if not isinstance(g, h5py.Group):
                    raise _bad(path, f"top-level {layer!r} is not a layer group")
                arrays[layer] = {p: read_number_dataset(path, hard_member(path, g, p, f"{layer}/{p}"), f"{layer}/{p}", file_size)
                                 for p in g}
    except WeightFileError:
        raise
    except Exception as e:  # h5py raises OSError, KeyError, ValueError, RuntimeError, TypeError on damaged files
        raise WeightFileError(
            f"weight file {str(path)!r} cannot be read as HDF5 ({type(e).__name__}: {str(e)[:200]}); "
            f"it may be truncated or corrupt — convert it again (jaxvis convert --help)") from e
    return arrays, meta


def check_arrays(path: str | os.PathLike, arrays: Arrays, expected: Mapping[str, Mapping[str, tuple]],
                 absent: list[str]) -> None:
    """Strict merge check: every expected tensor present with its shape, nothing unexpected.

    Layers listed in `absent` may be missing (the file declares it lacks them).
    All problems are reported together in one :class:`WeightFileError`.
    """
    missing, unexpected, misshaped = [], [], []
    for layer, shapes in expected.items():
        for p, shape in shapes.items():
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
