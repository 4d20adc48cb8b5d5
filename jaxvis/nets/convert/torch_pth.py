"""Read PyTorch ``.pth``/``.pt`` state dicts without importing torch.

``torch.save`` (torch >= 1.6) writes a zip archive::

    <prefix>/data.pkl      pickle of the object; tensors refer to storages by key
    <prefix>/data/<key>    raw bytes of each storage
    <prefix>/byteorder     "little" or "big" (absent in old files: little)

In ``data.pkl`` every tensor is ``torch._utils._rebuild_tensor_v2(storage,
offset, size, stride, ...)`` whose storage is a persistent id
``('storage', <torch.XStorage>, key, location, numel)``.  We unpickle with a
restricted unpickler that maps those few torch names to local functions
building numpy arrays, so torch is never imported and no code from the file
can run.
"""

from __future__ import annotations

import io
import math
import os
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from jaxvis.nets.convert.safe_pickle import EXPANSION, EXPANSION_SLACK, NUMPY_GLOBALS, restricted_load
from jaxvis.errors import WeightFileError
from jaxvis.imaging.fileio import regular_file_size

__all__ = ["read_pth"]


@dataclass(frozen=True)
class _StorageType:
    """Local stand-in for a ``torch.XStorage`` class: just its element type (made afresh per load)."""

    name: str
    dtype: str  # numpy dtype code, without byte order; "bf16" is special-cased


_STORAGES = {
    "FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2",
    "BFloat16Storage": "bf16", "LongStorage": "i8", "IntStorage": "i4",
    "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}
_MAX_DIMS = 16
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


def _describe(pid: Any) -> str:
    """A bounded description of a persistent id (repr of a deep one would recurse without end)."""
    if isinstance(pid, tuple):
        return f"a tuple of {len(pid)} ({', '.join(type(x).__name__ for x in pid[:5])})"
    return f"a {type(pid).__name__}"


def _ints(value: Any, what: str, source: str) -> tuple[int, ...]:
    if not (isinstance(value, (tuple, list)) and len(value) <= _MAX_DIMS
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise WeightFileError(f"{source}: tensor {what} must be a tuple of at most {_MAX_DIMS} ints")
    return tuple(value)


class _Load:
    """One ``.pth`` load: the archive's records and every stand-in the pickle may call.

    Built afresh per load, so nothing a file does can reach another load: the
    storage types, the storages decoded from records, and the tensors rebuilt
    here are known by identity, and each stand-in accepts only those.
    """

    def __init__(self, zf: zipfile.ZipFile, source: str, file_size: int) -> None:
        self.zf, self.source, self.file_size = zf, source, file_size
        self.budget = EXPANSION * file_size + EXPANSION_SLACK
        for info in zf.infolist():  # one pass: refuse what zipfile would trip over later
            if info.flag_bits & 0x1:
                raise WeightFileError(f"{source}: record {info.filename[:120]!r} is encrypted; torch.save "
                                      f"archives never are")
            if info.compress_type not in _METHODS:
                raise WeightFileError(f"{source}: record {info.filename[:120]!r} uses zip compression method "
                                      f"{info.compress_type}; torch.save archives are stored or deflated")
        # The prefix (``archive`` or, in older files, the file stem) is the
        # single top-level folder holding data.pkl.
        pkls = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(pkls) != 1:
            raise WeightFileError(f"{source}: not a torch.save archive (no single <prefix>/data.pkl record)")
        self.prefix = pkls[0][: -len("data.pkl")]
        order = "little"
        if self.prefix + "byteorder" in zf.NameToInfo:
            raw = self.read(self.prefix + "byteorder", 16, at_most=True)
            try:
                order = raw.decode("ascii").strip()
            except UnicodeDecodeError:
                order = repr(raw)
        if order not in ("little", "big"):
            raise WeightFileError(f"{source}: unknown byteorder record {order[:20]!r} (expected 'little' or 'big')")
        self.order = "<" if order == "little" else ">"
        self.types = {("torch", name): _StorageType(name, code) for name, code in _STORAGES.items()}
        self.storages: dict[str, np.ndarray] = {}  # shared between views of one storage
        self.storage_ids: set[int] = set()
        self.tensors: dict[int, np.ndarray] = {}  # rebuilt by this load, by id (kept alive)
        self.room: list = []  # the unpickler's check_room, set by restricted_load

    def allowed(self) -> dict[tuple[str, str], Any]:
        return {
            **NUMPY_GLOBALS,  # numpy arrays occasionally sit next to tensors in checkpoints
            ("collections", "OrderedDict"): OrderedDict,
            ("torch._utils", "_rebuild_tensor"): self.rebuild_tensor,
            ("torch._utils", "_rebuild_tensor_v2"): self.rebuild_tensor_v2,
            ("torch._utils", "_rebuild_parameter"): self.rebuild_parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): self.rebuild_parameter,
            **self.types,
        }

    def read(self, record: str, size: int | None = None, at_most: bool = False) -> bytes:
        """The first `size` bytes (all if None; up to `size` if `at_most`) of a record, its declared size checked first."""
        try:
            info = self.zf.getinfo(record)
        except KeyError:
            raise WeightFileError(f"{self.source}: record {record[:120]!r} is missing") from None
        declared = info.file_size
        if size is None or (at_most and declared < size):
            size = declared
        if declared < size:
            raise WeightFileError(f"{self.source}: record {record[:120]!r} is truncated ({declared} bytes, "
                                  f"{size} needed)")
        if size > self.budget or (info.compress_type == zipfile.ZIP_STORED and size > self.file_size):
            raise WeightFileError(f"{self.source}: record {record[:120]!r} declares {declared} bytes, more than "
                                  f"a {self.file_size}-byte file can hold; refused before reading")
        try:
            with self.zf.open(info) as fh:
                data = fh.read(size)
        except Exception as exc:  # zipfile/zlib errors on untrusted bytes
            raise WeightFileError(f"{self.source}: record {record[:120]!r} is corrupt "
                                  f"({type(exc).__name__}: {str(exc)[:200]})") from exc
        if len(data) < size:
            raise WeightFileError(f"{self.source}: record {record[:120]!r} is truncated "
                                  f"({len(data)} bytes, {size} needed)")
        return data

    def persistent_load(self, pid: Any) -> np.ndarray:
        """Resolve ``('storage', type, key, location, numel)`` to a read-only 1-D numpy array."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and any(pid[1] is t for t in self.types.values())
                and isinstance(pid[2], (str, int)) and isinstance(pid[4], int) and pid[4] >= 0):
            raise WeightFileError(f"{self.source}: unsupported persistent id ({_describe(pid)}); expected "
                                  f"('storage', <torch storage type>, key, location, numel)")
        _, stype, key, _location, numel = pid
        key = str(key)
        if key not in self.storages:
            code = "u2" if stype.dtype == "bf16" else stype.dtype
            dtype = np.dtype(code).newbyteorder(self.order)
            nbytes = numel * dtype.itemsize
            if self.room:
                self.room[0](nbytes)
            # Only the bytes the storage needs are read, however large the record says it is.
            raw = self.read(f"{self.prefix}data/{key}", nbytes)
            arr = np.frombuffer(raw, dtype=dtype, count=numel)  # read-only: views cannot write into it
            if stype.dtype == "bf16":
                # bfloat16 is the top half of a float32: widen exactly by shifting.
                arr = (arr.astype(np.uint32) << 16).view(np.float32)
                arr.flags.writeable = False
            self.storages[key] = arr
            self.storage_ids.add(id(arr))
        return self.storages[key]

    def rebuild_tensor(self, storage: Any, offset: Any, size: Any, stride: Any) -> np.ndarray:
        """Local ``torch._utils._rebuild_tensor``: a contiguous copy of a strided view."""
        # Only a storage this load decoded from a record may back a view.
        if not (isinstance(storage, np.ndarray) and id(storage) in self.storage_ids):
            raise WeightFileError(f"{self.source}: tensor storage is a {type(storage).__name__}, "
                                  "not a storage record of this file")
        if not isinstance(offset, int) or isinstance(offset, bool):
            raise WeightFileError(f"{self.source}: tensor offset must be an int")
        size, stride = _ints(size, "size", self.source), _ints(stride, "stride", self.source)
        if len(size) != len(stride) or offset < 0 or min(size + stride, default=0) < 0:
            raise WeightFileError(f"{self.source}: invalid tensor geometry offset={offset} size={size} "
                                  f"stride={stride}")
        numel = math.prod(size)
        if numel:
            # as_strided does no bounds checking, so prove the furthest element lies
            # inside the storage before creating the view (a crafted file could
            # otherwise read arbitrary process memory).
            last = offset + sum((n - 1) * s for n, s in zip(size, stride))
            if last >= storage.size:
                raise WeightFileError(
                    f"{self.source}: tensor (offset={offset}, size={size}, stride={stride}) reaches element "
                    f"{last} of a storage holding {storage.size}")
            # A view repeating elements (stride 0, overlaps) would turn a few stored
            # numbers into gigabytes: a tensor may not hold more elements than its storage.
            if numel > storage.size:
                raise WeightFileError(f"{self.source}: tensor of size {size} (stride {stride}) repeats the "
                                      f"{storage.size} elements of its storage {numel} times over; "
                                      "refused before allocating")
        if self.room:
            self.room[0](numel * storage.itemsize)
        view = np.lib.stride_tricks.as_strided(
            storage[offset:], shape=size, strides=[s * storage.itemsize for s in stride],
            writeable=False)
        # Copy to an owned, C-contiguous array in native byte order.
        out = np.array(view, dtype=storage.dtype.newbyteorder("="), order="C")
        self.tensors[id(out)] = out
        return out

    def rebuild_tensor_v2(self, storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                          backward_hooks: Any = None, metadata: Any = None) -> np.ndarray:
        """Local ``torch._utils._rebuild_tensor_v2``; autograd details are dropped."""
        return self.rebuild_tensor(storage, offset, size, stride)

    def rebuild_parameter(self, data: Any, requires_grad: Any = False, backward_hooks: Any = None,
                          state: Any = None) -> np.ndarray:
        """Local ``torch._utils._rebuild_parameter[_with_state]``: a Parameter is its tensor."""
        # Only a tensor rebuilt from this file's storages (never a bare numpy array).
        if not (isinstance(data, np.ndarray) and self.tensors.get(id(data)) is data):
            raise WeightFileError(f"{self.source}: a Parameter must wrap a tensor of this file, not a {type(data).__name__}")
        return data


def _tensor_dict(obj: Any) -> dict[str, np.ndarray] | None:
    """``obj`` as an ordered ``{name: array}`` if it is a dict of arrays only."""
    if isinstance(obj, Mapping) and all(
            isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()):
        return dict(obj)
    return None


def read_pth(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a PyTorch state dict saved with ``torch.save`` (zip format).

    Tensors are returned as contiguous numpy arrays with the dtype of the
    tensor (bfloat16 widened to float32), keys in file order.  A checkpoint
    dict whose ``'state_dict'`` or ``'model'`` entry is the state dict is
    accepted too.

    Args:
        path: Path of the ``.pth``/``.pt`` file.

    Returns:
        ``{parameter name: array}`` in the order stored in the file.

    Raises:
        UnsafePickleError: The pickle names a global other than the tensor
            rebuilders, storage types, ``OrderedDict`` or numpy array globals;
            nothing from the file was executed.
        WeightFileError: The file is missing, corrupt, truncated, in the legacy
            (pre-1.6) format, or holds no dict of tensors.
    """
    source = os.fspath(path)
    file_size = regular_file_size(path, what="weight file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise WeightFileError(f"{source}: cannot read weight file ({exc})") from exc
    if head[:1] == b"\x80" and not head.startswith(b"PK"):
        raise WeightFileError(
            f"{source}: legacy (pre-zip) torch serialization is not supported; re-save it "
            f"with torch>=1.6 (load it in torch, then torch.save it to a new file)")
    try:
        zf = zipfile.ZipFile(path)
    except Exception as exc:  # BadZipFile, OSError, UnicodeDecodeError, ... on untrusted bytes
        kind = "corrupt or truncated zip archive" if head == b"PK\x03\x04" else "not a torch.save zip archive"
        raise WeightFileError(f"{source}: {kind} ({type(exc).__name__}: {str(exc)[:200]})") from exc
    with zf:
        load = _Load(zf, source, file_size)
        pkl = load.prefix + "data.pkl"
        obj = restricted_load(io.BytesIO(load.read(pkl)), load.allowed(), f"{source} ({pkl})",
                              what="tensors, OrderedDicts and numpy arrays",
                              persistent_load=load.persistent_load, max_bytes=load.budget, room=load.room)
    found = _tensor_dict(obj)
    if found is None and isinstance(obj, Mapping):
        found = next((d for d in map(_tensor_dict, (obj.get("state_dict"), obj.get("model")))
                      if d is not None), None)
    if found is None:
        raise WeightFileError(
            f"{source}: expected a state dict (a dict of tensors, or a checkpoint with a "
            f"'state_dict' entry), found {type(obj).__name__}")
    return found
