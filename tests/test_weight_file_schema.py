"""Damaged or hostile jaxvis .h5 weight files: one WeightFileError naming file and field (issue 12)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from jaxvis.nets import weights
from jaxvis.errors import WeightFileError
from jaxvis.nets.weights import read_weights, write_weights
from tests.fuzz.builders import tiny_h5_meta


@pytest.fixture(autouse=True)
def _in_process(monkeypatch):
    # These files are made here with h5py's own API: libhdf5 parses them fine, so skip the child probe.
    monkeypatch.setattr(weights, "ISOLATE_HDF5", False)


ARRAYS = {"conv1": {"kernel": np.ones((3, 3, 3, 4), np.float32), "bias": np.zeros(4, np.float32)}}


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.h5"
    write_weights(path, ARRAYS, tiny_h5_meta())
    return path


def test_good_file_reads(good):
    arrays, meta = read_weights(good)
    np.testing.assert_array_equal(arrays["conv1"]["kernel"], ARRAYS["conv1"]["kernel"])
    assert meta["input_size"] == [227, 227]


@pytest.mark.parametrize("field,value", [
    ("classes", 5), ("classes", [1, 2]), ("input_size", 5), ("input_size", [0, 227]), ("input_size", [227, True]),
    ("preprocessing", []), ("preprocessing", {}), ("preprocessing", {"scale": 1, "mean": [1, 2], "std": [1, 1, 1]}),
    ("preprocessing", {"scale": 1, "mean": [1, 2, 3], "std": [1, 0, 1]}), ("absent_layers", 5),
    ("architecture", "vgg99"),
])
def test_metadata_types_are_checked_on_open(good, field, value):
    with h5py.File(good, "r+") as f:
        f.attrs[field] = value if field == "architecture" else json.dumps(value)
    with pytest.raises(WeightFileError, match=rf"good\.h5.*'{field}"):
        read_weights(good)


def test_non_string_attribute(good):
    with h5py.File(good, "r+") as f:
        f.attrs["classes"] = np.arange(3)
    with pytest.raises(WeightFileError, match=r"good\.h5.*'classes'"):
        read_weights(good)


@pytest.mark.parametrize("damage", ["top_dataset", "sub_group", "string_data", "soft_link", "external_link",
                                    "external_dataset", "huge_declared"])
def test_structure_is_checked_on_open(tmp_path, good, damage):
    other = tmp_path / "secret.bin"
    other.write_bytes(np.arange(36 * 4, dtype=np.float32).tobytes())
    with h5py.File(good, "r+") as f:
        if damage == "top_dataset":
            f["stray"] = np.ones(3, np.float32)
        elif damage == "sub_group":
            f["conv1"].create_group("nested")
        elif damage == "string_data":
            del f["conv1/bias"]
            f["conv1/bias"] = np.array([b"abc"] * 4)
        elif damage == "soft_link":
            f["conv1/alias"] = h5py.SoftLink("/conv1/kernel")
        elif damage == "external_link":
            f["conv2"] = h5py.ExternalLink(str(other), "/x")
        elif damage == "external_dataset":
            del f["conv1/kernel"]
            f.create_dataset("conv1/kernel", shape=(3, 3, 3, 4), dtype="<f4",
                             external=[(str(other), 0, 36 * 4 * 4)])
        elif damage == "huge_declared":
            f.create_dataset("conv1/huge", shape=(2_000_000_000,), dtype="<f4")
    with pytest.raises(WeightFileError, match=r"good\.h5") as info:
        read_weights(good)
    if damage in ("external_dataset", "external_link", "huge_declared"):
        assert "refused" in str(info.value) or "Link" in str(info.value)


def test_not_a_regular_file(tmp_path):
    with pytest.raises(WeightFileError, match="folder"):
        read_weights(tmp_path)


def test_libhdf5_hang_on_a_damaged_heap_is_a_weight_file_error(good, monkeypatch):
    # One byte inserted into the global heap (found by scripts/fuzz.py): every attribute read
    # then spins inside libhdf5, where Python cannot interrupt it; the child probe is killed.
    import time
    data = good.read_bytes()
    at = data.index(b'"c767"') + 2
    good.write_bytes(data[:at] + b"b" + data[at:])
    monkeypatch.setattr(weights, "ISOLATE_HDF5", True)
    monkeypatch.setattr(weights, "HDF5_PROBE_TIMEOUT_S", 3.0)
    t = time.monotonic()
    with pytest.raises(WeightFileError, match=r"good\.h5.*did not finish parsing.*HDF5_PROBE_TIMEOUT_S"):
        read_weights(good)
    assert time.monotonic() - t < 20
