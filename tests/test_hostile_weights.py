"""Hostile weight files: no file may do more than deliver arrays (issue 12, "Security").

Every class of attack found by the fuzz campaign has one test here: BUILD
poisoning, uninitialised memory, expanding views, lying sizes, endless inputs,
zip-layer damage. Files are written byte by byte (tests/fuzz/builders.py), so no
torch is needed.
"""

from __future__ import annotations

import os
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from jaxvis.nets.convert.caffe import read_caffemodel
from jaxvis.nets.convert.safe_pickle import load_arrays_pickle
from jaxvis.nets.convert.torch_pth import read_pth
from jaxvis.errors import UnsafePickleError, WeightFileError
from tests.fuzz.builders import (
    BUILD,
    EMPTY_DICT,
    MARK,
    NEWFALSE,
    POP,
    PROTO2,
    REDUCE,
    SETITEM,
    STOP,
    glob,
    integer,
    pth_bytes,
    simple_pth,
    state_dict_pickle,
    tensor,
    text,
    tup,
)

W = np.arange(12, dtype=np.float32).reshape(3, 4)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _good_load_is_float32(tmp_path: Path) -> None:
    got = read_pth(_write(tmp_path, "good.pth", simple_pth({"w": W})))
    assert got["w"].dtype == np.float32
    np.testing.assert_array_equal(got["w"], W)


# ------------------------------------------------------------------ BUILD poisoning
def test_build_on_storage_stand_in_is_refused_and_does_not_poison_later_loads(tmp_path):
    # torch.FloatStorage.__dict__.update({'dtype': 'f2'}): made every later load read float32 as float16.
    poison = glob("torch", "FloatStorage") + EMPTY_DICT + text("dtype") + text("f2") + SETITEM + BUILD + POP
    bad = _write(tmp_path, "poison.pth", simple_pth({"w": W}, prelude=poison))
    with pytest.raises(UnsafePickleError, match=r"poison\.pth.*BUILD"):
        read_pth(bad)
    _good_load_is_float32(tmp_path)


def test_slot_state_build_cannot_rewrite_function_defaults(tmp_path):
    # BUILD (None, {'__defaults__': (...)}) on the tensor rebuilder = setattr(func, '__defaults__', ...).
    state = tup([b"N", EMPTY_DICT + text("__defaults__") + tup([integer(7)] * 3) + SETITEM])
    poison = glob("torch._utils", "_rebuild_tensor_v2") + state + BUILD + POP
    with pytest.raises(UnsafePickleError, match="BUILD"):
        read_pth(_write(tmp_path, "defaults.pth", simple_pth({"w": W}, prelude=poison)))
    _good_load_is_float32(tmp_path)
    # The same through the numpy-only pickle reader.
    poison = glob("numpy.core.multiarray", "_reconstruct") + state + BUILD + POP
    with pytest.raises(UnsafePickleError, match="BUILD"):
        load_arrays_pickle(_write(tmp_path, "d.pkl", PROTO2 + poison + EMPTY_DICT + STOP))


# ------------------------------------------------------------------ uninitialised memory
NDARRAY_CALL = glob("numpy", "ndarray") + tup([tup([integer(4096)])]) + REDUCE
RECONSTRUCT_BIG = (glob("numpy.core.multiarray", "_reconstruct") + tup([glob("numpy", "ndarray"),
                   tup([integer(4096)]), b"C\x01b"]) + REDUCE)
NEWOBJ_NDARRAY = glob("numpy", "ndarray") + tup([tup([integer(4096)])]) + b"\x81"


@pytest.mark.parametrize("obj", [NDARRAY_CALL, RECONSTRUCT_BIG, NEWOBJ_NDARRAY],
                         ids=["ndarray(shape)", "_reconstruct(shape)", "NEWOBJ"])
def test_arrays_never_come_from_uninitialised_memory(tmp_path, obj):
    # As a state-dict value, as a Parameter's data, and in a numpy-only pickle.
    param = glob("torch._utils", "_rebuild_parameter") + tup([obj, NEWFALSE, EMPTY_DICT]) + REDUCE
    for i, entry in enumerate([obj, param]):
        pkl = state_dict_pickle([("w", entry)])
        with pytest.raises(UnsafePickleError):
            read_pth(_write(tmp_path, f"u{i}.pth", pth_bytes({"data.pkl": pkl})))
    with pytest.raises(UnsafePickleError):
        load_arrays_pickle(_write(tmp_path, "u.pkl", PROTO2 + obj + STOP))


def test_parameter_must_wrap_a_tensor_of_the_file(tmp_path):
    # A plain numpy array (bytes from the file) is still not a Parameter's tensor.
    arr = glob("numpy", "dtype") + tup([text("f4"), NEWFALSE, b"\x88"]) + REDUCE
    param = glob("torch._utils", "_rebuild_parameter") + tup([arr, NEWFALSE, EMPTY_DICT]) + REDUCE
    with pytest.raises(WeightFileError, match="Parameter"):
        read_pth(_write(tmp_path, "p.pth", pth_bytes({"data.pkl": state_dict_pickle([("w", param)])})))


# ------------------------------------------------------------------ sizes checked before allocating
def _peak_mib(fn) -> float:
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 2**20


def test_stride_zero_view_cannot_expand_a_small_storage(tmp_path):
    data = simple_pth({"w": np.ones(64, np.float32)}, views={"big": ("w", 0, (40000, 40000), (0, 0))})
    path = _write(tmp_path, "expand.pth", data)

    def load():
        with pytest.raises(WeightFileError, match="repeats"):
            read_pth(path)
    assert _peak_mib(load) < 20


def _central(data: bytes, name: str) -> int:
    """Offset of `name`'s central-directory header."""
    i = data.index(b"PK\x01\x02")
    while True:
        n = struct.unpack_from("<H", data, i + 28)[0]
        if data[i + 46:i + 46 + n].decode("utf-8", "replace").endswith(name):
            return i
        i = data.index(b"PK\x01\x02", i + 4)


def _patch(data: bytes, name: str, *, flags: int | None = None, method: int | None = None,
           size: int | None = None, name_bytes: bytes | None = None) -> bytes:
    b = bytearray(data)
    c = _central(data, name)
    local = struct.unpack_from("<I", b, c + 42)[0]
    if flags is not None:
        struct.pack_into("<H", b, c + 8, flags)
        struct.pack_into("<H", b, local + 6, flags)
    if method is not None:
        struct.pack_into("<H", b, c + 10, method)
        struct.pack_into("<H", b, local + 8, method)
    if size is not None:
        struct.pack_into("<I", b, c + 24, size)
    if name_bytes is not None:
        n = struct.unpack_from("<H", b, c + 28)[0]
        assert len(name_bytes) == n
        b[c + 46:c + 46 + n] = name_bytes
        b[local + 30:local + 30 + n] = name_bytes
    return bytes(b)


def test_only_needed_bytes_of_a_record_are_read(tmp_path):
    # The storage record says 3 GB; the tensor needs 48 bytes: read those, never the declared size.
    data = _patch(simple_pth({"w": W}), "data/0", size=3_000_000_000)
    path = _write(tmp_path, "big_record.pth", data)
    got = {}
    assert _peak_mib(lambda: got.update(read_pth(path))) < 20
    np.testing.assert_array_equal(got["w"], W)


def test_declared_sizes_beyond_the_file_are_refused_before_reading(tmp_path):
    # A storage of 750M floats in a 1 KB file (the record claims 3 GB).
    pkl = state_dict_pickle([("w", tensor("0", "f4", 750_000_000, 0, (750_000_000,), (1,)))])
    data = _patch(pth_bytes({"data.pkl": pkl, "data/0": b"\0" * 64}), "data/0", size=3_000_000_000)
    path = _write(tmp_path, "liar.pth", data)

    def load():
        with pytest.raises(WeightFileError, match="liar.pth"):
            read_pth(path)
    assert _peak_mib(load) < 20


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero on this system")
@pytest.mark.parametrize("reader", [read_pth, read_caffemodel, load_arrays_pickle])
def test_endless_inputs_are_refused(reader):
    with pytest.raises(WeightFileError, match="/dev/zero.*not a regular file"):
        reader("/dev/zero")


def test_fifo_is_refused(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this system")
    fifo = tmp_path / "pipe.pth"
    os.mkfifo(fifo)
    with pytest.raises(WeightFileError, match="not a regular file"):
        read_pth(fifo)


# ------------------------------------------------------------------ zip and pickle damage → WeightFileError
def _damaged(kind: str) -> bytes:
    good = simple_pth({"w": W})
    if kind == "compression":
        return _patch(good, "data/0", method=99)
    if kind == "encrypted":
        return _patch(good, "data/0", flags=0x1)
    if kind == "name":  # the UTF-8 flag set on a name that is not UTF-8
        return _patch(good, "data/0", flags=0x800, name_bytes=b"\xff" * len("archive/data/0"))
    if kind == "byteorder":
        return simple_pth({"w": W}, extra_records={"byteorder": b"\xff\xfe"})
    if kind == "deep_pid":  # a 100000-deep persistent id: repr of it in a message would recurse
        deep = b"N" + b"\x85" * 100_000
        return pth_bytes({"data.pkl": PROTO2 + deep + b"Q" + STOP})
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["compression", "encrypted", "name", "byteorder", "deep_pid"])
def test_zip_layer_damage_is_a_weight_file_error(tmp_path, kind):
    path = _write(tmp_path, f"{kind}.pth", _damaged(kind))
    with pytest.raises(WeightFileError, match=f"{kind}.pth"):
        read_pth(path)


def test_mutating_opcodes_only_touch_containers(tmp_path):
    # SETITEM on a storage (an array shared by every view of it) and APPEND on a global.
    setitem = (glob("numpy", "dtype") + text("x") + integer(1) + SETITEM + POP)
    with pytest.raises(UnsafePickleError, match="SETITEM"):
        load_arrays_pickle(_write(tmp_path, "s.pkl", PROTO2 + setitem + EMPTY_DICT + STOP))
    append = glob("collections", "OrderedDict") + MARK + integer(1) + b"e" + POP
    with pytest.raises(UnsafePickleError, match="APPENDS"):
        load_arrays_pickle(_write(tmp_path, "a.pkl", PROTO2 + append + EMPTY_DICT + STOP))


def test_legitimate_pickles_still_load(tmp_path):
    import pickle
    from collections import OrderedDict
    obj = {"a": np.arange(6, dtype=">f4").reshape(2, 3), "b": [np.float32(2.5), np.bool_(True)],
           "c": np.zeros((2,), dtype=[("x", "<i4"), ("y", "<f8")]), "od": OrderedDict(z=np.ones(2))}
    for proto in (0, 2, 5):
        got = load_arrays_pickle(_write(tmp_path, f"ok{proto}.pkl", pickle.dumps(obj, protocol=proto)))
        np.testing.assert_array_equal(got["a"], obj["a"])
        assert got["c"].dtype == obj["c"].dtype and got["b"][0] == np.float32(2.5)


def test_zip_methods_stored_and_deflated_load(tmp_path):
    pkl = state_dict_pickle([("w", tensor("0", "f4", W.size, 0, W.shape, (4, 1)))])
    data = pth_bytes({"data.pkl": pkl, "data/0": W.tobytes(), "byteorder": b"little"}, method=zipfile.ZIP_DEFLATED)
    np.testing.assert_array_equal(read_pth(_write(tmp_path, "deflated.pth", data))["w"], W)


def test_pickle_with_object_dtype_refused(tmp_path):
    obj = glob("numpy", "dtype") + tup([text("O8"), NEWFALSE, b"\x88"]) + REDUCE
    with pytest.raises(UnsafePickleError, match="Python objects"):
        load_arrays_pickle(_write(tmp_path, "o.pkl", PROTO2 + obj + STOP))


def test_expansion_through_memo_is_bounded(tmp_path):
    # One 1 MB bytes object referenced by 200 arrays through the memo: 200 MB from a 1 MB file.
    raw = np.zeros(1 << 18, np.float32)
    payload = b"B" + struct.pack("<I", raw.nbytes) + raw.tobytes() + b"q\x00"  # BINBYTES, BINPUT 0
    one = (glob("numpy.core.multiarray", "_reconstruct") + tup([glob("numpy", "ndarray"), tup([integer(0)]), b"C\x01b"])
           + REDUCE + tup([integer(1), tup([integer(raw.size)]),
                           glob("numpy", "dtype") + tup([text("f4"), NEWFALSE, b"\x88"]) + REDUCE, NEWFALSE, b"h\x00"])
           + BUILD)
    pkl = PROTO2 + payload + POP + b"]" + MARK + one * 200 + b"e" + STOP
    path = _write(tmp_path, "memo.pkl", pkl)
    with pytest.raises(WeightFileError, match="expand"):
        load_arrays_pickle(path)
    assert len(load_arrays_pickle(_write(tmp_path, "few.pkl", PROTO2 + payload + POP + b"]" + MARK + one * 2
                                         + b"e" + STOP))) == 2


# ------------------------------------------------------------------ converters check tensor ranks
def _squeeze_caffe_layers(conv1_w: np.ndarray, conv1_b: np.ndarray) -> list:
    return [("conv1", "Convolution", [conv1_w, conv1_b])]


@pytest.mark.parametrize("shape", [(), (64,), (1, 64, 3, 3, 3)], ids=["0-d", "1-d", "5-d"])
def test_converters_check_weight_ranks(tmp_path, shape):
    from jaxvis.nets.convert import convert_caffe, convert_ndf, convert_pth
    from jaxvis.nets.convert.caffe import encode_caffemodel
    w = np.ones(shape, np.float32)
    out = tmp_path / "out.h5"
    pth = _write(tmp_path, "bad.pth", simple_pth({"features.0.weight": w, "features.0.bias": np.ones(64, np.float32)}))
    with pytest.raises(WeightFileError, match=r"bad\.pth.*features\.0\.weight.*expected 4-D"):
        convert_pth(pth, out, "squeezenet1_1")
    caffe = _write(tmp_path, "bad.caffemodel", encode_caffemodel(_squeeze_caffe_layers(w, np.ones(64, np.float32))))
    with pytest.raises(WeightFileError, match=r"bad\.caffemodel.*conv1.*expected 4-D"):
        convert_caffe(caffe, out, "squeezenet1_1")
    import pickle
    ndf = _write(tmp_path, "bad.pkl", pickle.dumps({"conv1": [w, np.ones(64, np.float32)]}))
    with pytest.raises(WeightFileError, match=r"bad\.pkl.*conv1.*expected 4-D"):
        convert_ndf(out, ndf)
    assert not out.exists()


def test_caffe_bias_must_match_outputs(tmp_path):
    from jaxvis.nets.convert import convert_caffe
    from jaxvis.nets.convert.caffe import encode_caffemodel
    caffe = _write(tmp_path, "b.caffemodel", encode_caffemodel(
        _squeeze_caffe_layers(np.ones((64, 3, 3, 3), np.float32), np.ones(7, np.float32))))
    with pytest.raises(WeightFileError, match="conv1.*bias.*7 values.*expected 64"):
        convert_caffe(caffe, tmp_path / "o.h5", "squeezenet1_1")


def test_npy_header_declaring_more_than_the_file_is_refused(tmp_path):
    from jaxvis.nets.convert import convert_npy_folder
    folder = tmp_path / "npy"
    folder.mkdir()
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.float32))
    header["shape"] = (2_000_000_000,)
    with open(folder / "squeezenet0_conv0_weight.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 64)
    with pytest.raises(WeightFileError, match="squeezenet0_conv0_weight"):
        convert_npy_folder(folder, tmp_path / "o.h5")


def test_unpacked_caffe_floats_cost_their_bytes_not_an_object_each(tmp_path):
    from jaxvis.nets.convert.caffe import _field
    n = 60_000  # an array object per value would cost > 6 MB here
    blob = (b"\x2d" + struct.pack("<f", 0.5)) * n  # field 5, wire type 5 (one float per field)
    path = _write(tmp_path, "unpacked.caffemodel", _field(100, _field(1, b"conv1") + _field(7, blob)))
    got = {}
    assert _peak_mib(lambda: got.update(read_caffemodel(path))) < 3
    assert got["conv1"][0].shape == (n,) and got["conv1"][0][0] == 0.5
