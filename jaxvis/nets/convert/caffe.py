"""Read (and, for tests, write) Caffe ``.caffemodel`` weights without caffe/protobuf.

A ``.caffemodel`` is a binary protobuf ``NetParameter``.  We need only a sliver
of the schema, so a tiny wire-format decoder avoids depending on caffe, the
protobuf package or generated code::

    NetParameter       layer = 100 (LayerParameter), layers = 2 (V1LayerParameter)
    LayerParameter     name = 1, type = 2 (string), blobs = 7
    V1LayerParameter   name = 4, type = 5 (enum),   blobs = 6
    BlobProto          num/channels/height/width = 1..4 (legacy 4-D shape),
                       data = 5 (float), diff = 6, shape = 7, double_data = 8
    BlobShape          dim = 1 (int64)

Everything else is skipped by wire type.  Large packed float fields are read
with ``np.frombuffer`` straight from a memoryview, so a 233 MB AlexNet costs
one copy per blob.
"""

from __future__ import annotations

import math
import os
from typing import Iterator

import numpy as np

from jaxvis.errors import WeightFileError
from jaxvis.imaging.fileio import read_regular_file

__all__ = ["read_caffemodel", "encode_caffemodel", "V1_LAYER_TYPES"]

# V1LayerParameter.LayerType enum -> the type string caffe's upgrader gives it.
V1_LAYER_TYPES: dict[int, str] = {
    0: "", 1: "Accuracy", 2: "BNLL", 3: "Concat", 4: "Convolution", 5: "Data", 6: "Dropout",
    7: "EuclideanLoss", 8: "Flatten", 9: "HDF5Data", 10: "HDF5Output", 11: "Im2col",
    12: "ImageData", 13: "InfogainLoss", 14: "InnerProduct", 15: "LRN",
    16: "MultinomialLogisticLoss", 17: "Pooling", 18: "ReLU", 19: "Sigmoid", 20: "Softmax",
    21: "SoftmaxWithLoss", 22: "Split", 23: "TanH", 24: "WindowData", 25: "Eltwise",
    26: "Power", 27: "SigmoidCrossEntropyLoss", 28: "HingeLoss", 29: "MemoryData",
    30: "ArgMax", 31: "Threshold", 32: "DummyData", 33: "Slice", 34: "MVN", 35: "AbsVal",
    36: "Silence", 37: "ContrastiveLoss", 38: "Exp", 39: "Deconvolution",
}
_V1_CODES = {name: code for code, name in V1_LAYER_TYPES.items()}
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_MAX_DIMS = 8


class _Decoder:
    """Protobuf wire-format reader over one buffer; errors name file and offset."""

    def __init__(self, buf: memoryview, source: str) -> None:
        self.buf, self.source = buf, source

    def fail(self, offset: int, what: str) -> WeightFileError:
        return WeightFileError(f"{self.source}: {what} at byte offset {offset}")

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        """Decode the varint at ``pos``; return ``(value, next_pos)``."""
        value, shift, start = 0, 0, pos
        while pos < end and shift < 70:
            byte = self.buf[pos]
            value |= (byte & 0x7F) << shift
            pos, shift = pos + 1, shift + 7
            if byte < 0x80:
                return value, pos
        raise self.fail(start, "truncated or overlong varint")

    def fields(self, pos: int, end: int) -> Iterator[tuple[int, int, int, object]]:
        """Yield ``(field, wire_type, offset, value)`` for a message in ``[pos, end)``.

        ``value`` is the int for varints, the absolute ``(start, stop)`` span of
        the payload for length-delimited and fixed-width fields (no copies).
        """
        while pos < end:
            offset = pos
            key, pos = self.varint(pos, end)
            field, wire = key >> 3, key & 7
            if field == 0:
                raise self.fail(offset, "invalid field number 0")
            if wire == _VARINT:
                value, pos = self.varint(pos, end)
                yield field, wire, offset, value
                continue
            if wire == _LEN:
                size, pos = self.varint(pos, end)
            elif wire in (_I64, _I32):
                size = 8 if wire == _I64 else 4
            else:  # 3/4 are deprecated groups, 6/7 do not exist
                raise self.fail(offset, f"unsupported wire type {wire} for field {field}")
            if pos + size > end:
                raise self.fail(offset, f"field {field} of {size} bytes runs past the end "
                                        f"of its message at byte {end} (truncated file?)")
            yield field, wire, offset, (pos, pos + size)
            pos += size

    def expect(self, field: int, wire: int, offset: int, want: tuple[int, ...]) -> None:
        if wire not in want:
            raise self.fail(offset, f"wrong wire type {wire} for field {field} (expected {want})")

    def string(self, span: tuple[int, int], offset: int) -> str:
        try:
            return bytes(self.buf[span[0]:span[1]]).decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(offset, "invalid UTF-8 string") from None

    def numbers(self, field: int, wire: int, offset: int, value, dtype: str) -> memoryview:
        """One chunk of a repeated float/double field, packed or not, as raw little-endian bytes."""
        self.expect(field, wire, offset, (_LEN, _I64 if dtype == "<f8" else _I32))
        start, stop = value
        if (stop - start) % np.dtype(dtype).itemsize:
            raise self.fail(offset, f"packed field {field} length is not a multiple of its item size")
        return self.buf[start:stop]

    def ints(self, field: int, wire: int, offset: int, value) -> list[int]:
        """One chunk of a repeated int64 field, packed or not."""
        self.expect(field, wire, offset, (_VARINT, _LEN))
        if wire == _VARINT:
            return [value]
        out, pos = [], value[0]
        while pos < value[1]:
            v, pos = self.varint(pos, value[1])
            out.append(v)
        return out

    def blob(self, start: int, end: int, where: str) -> np.ndarray:
        """Decode a BlobProto into a float32 array of its declared shape."""
        legacy: dict[int, int] = {}
        dims: list[int] | None = None
        # Raw bytes, not one array per value: unpacked fields (5 bytes a float) must
        # not cost a Python object each.
        data, doubles = bytearray(), bytearray()
        for field, wire, offset, value in self.fields(start, end):
            if field in (1, 2, 3, 4):
                self.expect(field, wire, offset, (_VARINT,))
                legacy[field] = value  # int32: negative values come back as huge ints
            elif field == 5:
                data += self.numbers(field, wire, offset, value, "<f4")
            elif field == 8:
                doubles += self.numbers(field, wire, offset, value, "<f8")
            elif field == 7:
                self.expect(field, wire, offset, (_LEN,))
                dims = []
                for f, w, o, v in self.fields(*value):
                    if f == 1:
                        dims += self.ints(f, w, o, v)
                        if len(dims) > _MAX_DIMS:
                            raise self.fail(o, f"{where}: blob has more than {_MAX_DIMS} dimensions")
        if dims is None:  # caffe's legacy (num, channels, height, width), unset = 0
            dims = [legacy.get(i, 0) for i in (1, 2, 3, 4)] if legacy else None
        values = (np.frombuffer(data, "<f4") if data else np.frombuffer(doubles, "<f8") if doubles
                  else np.zeros(0, "<f4"))
        shape = tuple(dims) if dims is not None else (values.size,)
        if any(d < 0 or d >= 2**31 for d in shape) or values.size != math.prod(shape):
            raise self.fail(start, f"{where}: blob shape {shape} does not match its "
                                   f"{values.size} values")
        # astype copies: the result owns aligned, native float32 memory.
        return values.astype(np.float32).reshape(shape)


def read_caffemodel(
    path: str | os.PathLike[str], with_types: bool = False
) -> dict[str, list[np.ndarray]] | dict[str, tuple[str, list[np.ndarray]]]:
    """Read the weights of a binary ``.caffemodel``.

    Both new-style ``layer`` and old-style V1 ``layers`` entries are read; V1
    enum types are reported as the type strings caffe's upgrader uses (e.g.
    ``"Convolution"``, ``"InnerProduct"``).  Shapes are returned as stored
    (legacy blobs stay 4-D, e.g. ``(1, 1, out, in)`` for fully connected).

    Args:
        path: Path of the ``.caffemodel`` file.
        with_types: Also return each layer's type string.

    Returns:
        In file order, layer name -> list of float32 blobs (weights, then bias;
        empty for layers without parameters), or layer name -> ``(type, blobs)``
        when ``with_types`` is true.

    Raises:
        WeightFileError: The file is missing, truncated, malformed (message
            names the byte offset), or contains no layers.
    """
    source = os.fspath(path)
    dec = _Decoder(memoryview(read_regular_file(path, what="weight file")), source)
    # NetParameter field -> (name, type, blobs) field numbers of the layer message.
    layouts = {100: (1, 2, 7), 2: (4, 5, 6)}
    layers: dict[str, tuple[str, list[np.ndarray]]] = {}
    for field, wire, offset, value in dec.fields(0, len(dec.buf)):
        if field not in layouts:
            continue
        dec.expect(field, wire, offset, (_LEN,))
        f_name, f_type, f_blobs = layouts[field]
        name, ltype, blobs = "", "", []
        for f, w, o, v in dec.fields(*value):
            if f == f_name:
                dec.expect(f, w, o, (_LEN,))
                name = dec.string(v, o)
            elif f == f_type:
                dec.expect(f, w, o, (_VARINT,) if field == 2 else (_LEN,))
                ltype = V1_LAYER_TYPES.get(v, f"V1Type{v}") if field == 2 else dec.string(v, o)
            elif f == f_blobs:
                dec.expect(f, w, o, (_LEN,))
                blobs.append(dec.blob(*v, where=f"layer {name or '?'!r} blob {len(blobs)}"))
        # Nets may repeat a name for phase-specific layers (e.g. TRAIN/TEST
        # data layers); only a clash between two weighted layers is ambiguous.
        if name in layers and layers[name][1] and blobs:
            raise dec.fail(offset, f"duplicate weighted layer name {name!r}")
        if name not in layers or not layers[name][1]:
            layers[name] = (ltype, blobs)
    if not layers:
        raise WeightFileError(f"{source}: not a caffemodel (no layers found in "
                              f"{len(dec.buf)} bytes)")
    return layers if with_types else {k: blobs for k, (_, blobs) in layers.items()}


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _field(field: int, payload: bytes) -> bytes:
    """Length-delimited field."""
    return _varint(field << 3 | _LEN) + _varint(len(payload)) + payload


def encode_caffemodel(layers: list[tuple[str, str, list[np.ndarray]]], *, v1: bool = False) -> bytes:
    """Encode layers as a binary ``NetParameter`` (the inverse of :func:`read_caffemodel`).

    Args:
        layers: ``(name, type, blobs)`` per layer, e.g. ``("conv1",
            "Convolution", [w, b])``.
        v1: Write old-style V1 ``layers`` with enum types and legacy 4-D
            ``num/channels/height/width`` shapes (blobs of fewer than 4 dims are
            left-padded with 1s, as caffe did); otherwise new-style ``layer``
            with ``BlobShape`` dims.

    Returns:
        The serialized model; floats are written packed, as caffe does.

    Raises:
        WeightFileError: A V1 type string has no enum code, or a V1 blob has > 4 dims.
    """
    out = bytearray()
    for name, ltype, blobs in layers:
        body = bytearray()
        for blob in blobs:
            arr = np.asarray(blob, dtype="<f4")
            if v1:
                if arr.ndim > 4:
                    raise WeightFileError(f"V1 blobs are at most 4-D, layer {name!r} has {arr.shape}")
                shape = b"".join(_varint(i << 3 | _VARINT) + _varint(d)
                                 for i, d in enumerate((1,) * (4 - arr.ndim) + arr.shape, 1))
                payload = shape + _field(5, arr.tobytes())
            else:  # fields in number order, as protobuf writes them: data=5, shape=7
                payload = _field(5, arr.tobytes()) + _field(7, _field(1, b"".join(map(_varint, arr.shape))))
            body += _field(6 if v1 else 7, payload)
        if v1:
            if ltype not in _V1_CODES:
                raise WeightFileError(f"layer type {ltype!r} has no V1 enum code; V1 codes exist for "
                                      f"{', '.join(sorted(_V1_CODES))}")
            head = _field(4, name.encode()) + _varint(5 << 3 | _VARINT) + _varint(_V1_CODES[ltype])
        else:
            head = _field(1, name.encode()) + _field(2, ltype.encode())
        out += _field(2 if v1 else 100, head + bytes(body))
    return bytes(out)
