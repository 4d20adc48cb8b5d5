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
import os
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from jaxvis.convert.safe_pickle import NUMPY_GLOBALS, restricted_load
from jaxvis.errors import WeightFileError

__all__ = ["read_pth"]


@dataclass(frozen=True)
class _StorageType:
    """Local stand-in for a ``torch.XStorage`` class: just its element type."""

    name: str
    dtype: str  # numpy dtype code, without byte order; "bf16" is special-cased


_STORAGES = {
    "FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2",
    "BFloat16Storage": "bf16", "LongStorage": "i8", "IntStorage": "i4",
    "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple) -> np.ndarray:
    """Local ``torch._utils._rebuild_tensor``: a contiguous copy of a strided view."""
    # Only a storage from persistent_load (1-D, contiguous, numeric) may back a view.
    if not (isinstance(storage, np.ndarray) and storage.ndim == 1
            and storage.flags.c_contiguous and storage.dtype != object):
        raise ValueError(f"tensor storage is a {type(storage).__name__}, not a storage record")
    offset, size, stride = int(offset), tuple(map(int, size)), tuple(map(int, stride))
    if len(size) != len(stride) or offset < 0 or min(size + stride, default=0) < 0:
        raise ValueError(f"invalid tensor geometry offset={offset} size={size} stride={stride}")
    # as_strided does no bounds checking, so prove the furthest element lies
    # inside the storage before creating the view (a crafted file could
    # otherwise read arbitrary process memory).
    if 0 not in size:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= storage.size:
            raise ValueError(
                f"tensor (offset={offset}, size={size}, stride={stride}) reaches element "
                f"{last} of a storage holding {storage.size}")
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=size, strides=[s * storage.itemsize for s in stride],
        writeable=False)
    # Copy to an owned, C-contiguous array in native byte order.
    return np.array(view, dtype=storage.dtype.newbyteorder("="), order="C")


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None) -> np.ndarray:
    """Local ``torch._utils._rebuild_tensor_v2``; autograd details are dropped."""
    return _rebuild_tensor(storage, offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None) -> np.ndarray:
    """Local ``torch._utils._rebuild_parameter[_with_state]``: a Parameter is its data."""
    return data


_ALLOWED: dict[tuple[str, str], Any] = {
    **NUMPY_GLOBALS,  # numpy arrays occasionally sit next to tensors in checkpoints
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    **{("torch", name): _StorageType(name, code) for name, code in _STORAGES.items()},
}


class _Archive:
    """The records of a torch zip archive, with storages decoded on demand."""

    def __init__(self, zf: zipfile.ZipFile, source: str) -> None:
        self.zf, self.source = zf, source
        # The prefix (``archive`` or, in older files, the file stem) is the
        # single top-level folder holding data.pkl.
        pkls = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(pkls) != 1:
            raise WeightFileError(f"{source}: not a torch.save archive (no <prefix>/data.pkl record)")
        self.prefix = pkls[0][: -len("data.pkl")]
        order = self.read(self.prefix + "byteorder").decode() if self._has("byteorder") else "little"
        if order not in ("little", "big"):
            raise WeightFileError(f"{source}: unknown byteorder record {order!r}")
        self.order = "<" if order == "little" else ">"
        self.storages: dict[str, np.ndarray] = {}  # shared between views of one storage

    def _has(self, name: str) -> bool:
        return self.prefix + name in self.zf.NameToInfo

    def read(self, record: str) -> bytes:
        """Bytes of one record; missing or damaged records become WeightFileError."""
        try:
            return self.zf.read(record)
        except KeyError:
            raise WeightFileError(f"{self.source}: record {record!r} is missing") from None
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise WeightFileError(f"{self.source}: record {record!r} is corrupt ({exc})") from exc

    def persistent_load(self, pid: Any) -> np.ndarray:
        """Resolve ``('storage', type, key, location, numel)`` to a 1-D numpy array."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise WeightFileError(f"{self.source}: unsupported persistent id {pid!r:.80}")
        _, stype, key, _location, numel = pid
        key = str(key)
        if key not in self.storages:
            record = f"{self.prefix}data/{key}"
            raw = self.read(record)
            code = "u2" if stype.dtype == "bf16" else stype.dtype
            dtype = np.dtype(code).newbyteorder(self.order)
            if len(raw) < int(numel) * dtype.itemsize:
                raise WeightFileError(
                    f"{self.source}: storage record {record!r} is truncated "
                    f"({len(raw)} bytes, {stype.name} of {numel} elements needs "
                    f"{int(numel) * dtype.itemsize})")
            arr = np.frombuffer(raw, dtype=dtype, count=int(numel))
            if stype.dtype == "bf16":
                # bfloat16 is the top half of a float32: widen exactly by shifting.
                arr = (arr.astype(np.uint32) << 16).view(np.float32)
            self.storages[key] = arr
        return self.storages[key]


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
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        kind = "corrupt or truncated zip archive" if head == b"PK\x03\x04" else "not a torch.save zip archive"
        raise WeightFileError(f"{source}: {kind} ({exc})") from exc
    with zf:
        archive = _Archive(zf, source)
        pkl = archive.prefix + "data.pkl"
        obj = restricted_load(io.BytesIO(archive.read(pkl)), _ALLOWED, f"{source} ({pkl})",
                              what="tensors, OrderedDicts and numpy arrays",
                              persistent_load=archive.persistent_load)
    found = _tensor_dict(obj)
    if found is None and isinstance(obj, Mapping):
        found = next((d for d in map(_tensor_dict, (obj.get("state_dict"), obj.get("model")))
                      if d is not None), None)
    if found is None:
        raise WeightFileError(
            f"{source}: expected a state dict (a dict of tensors, or a checkpoint with a "
            f"'state_dict' entry), found {type(obj).__name__}")
    return found
