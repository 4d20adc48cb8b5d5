"""Parity of every layer with torch references, external reference outputs, shipped weights."""

from __future__ import annotations

import numpy as np
import pytest

import jaxvis
from jaxvis.nets import convert

torch = pytest.importorskip("torch", reason="torch (test-only reference) is not installed")
from torch_reference import AlexNet, BVLCAlexNet, SqueezeNet  # noqa: E402

TV_MEAN, TV_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def _compare_all(net, ref_out, images):
    names = [l.name for l in net.layers]
    ours = jaxvis.activations(net, images, layers=names)
    for name in names:
        if name == "data":
            continue
        a, b = ours[name], ref_out[name].detach().numpy()
        assert a.shape == b.shape, f"{name}: shape {a.shape} vs torch {b.shape}"
        scale = max(1.0, float(np.abs(b).max()))
        err = float(np.abs(a - b).max())
        assert err <= 2e-4 * scale, f"{name}: max |diff| {err:.3g} (scale {scale:.3g})"


@pytest.mark.parametrize("arch,version,sizes", [
    ("squeezenet1_1", "1_1", (224, 225)),   # at 225 ceil and floor pooling differ (pool1: 56 vs 55)
    ("squeezenet1_0", "1_0", (224, 225)),   # pool1: 55 vs 54 at 225
])
def test_torchvision_squeezenet_every_layer(tmp_path, arch, version, sizes):
    torch.manual_seed(0)
    ref = SqueezeNet(version).eval()
    torch.save(ref.state_dict(), tmp_path / "sq.pth")
    convert.convert_pth(tmp_path / "sq.pth", tmp_path / "sq.h5", arch)
    net = jaxvis.load_model(arch, weights=tmp_path / "sq.h5")
    rng = np.random.default_rng(0)
    for s in sizes:
        img = rng.uniform(0, 255, (2, s, s, 3)).astype(np.float32)
        x = torch.from_numpy(((img / 255 - TV_MEAN) / TV_STD).astype(np.float32)).permute(0, 3, 1, 2)
        with torch.no_grad():
            _compare_all(net, ref.forward_all(x), img)


def test_pool_rounding_differs_at_225():
    from jaxvis.nets.ops import pool_out_size
    assert pool_out_size(112, 3, 2, 0, True) == 56 and pool_out_size(112, 3, 2, 0, False) == 55


def test_torchvision_alexnet_every_layer(tmp_path):
    torch.manual_seed(1)
    ref = AlexNet().eval()
    torch.save(ref.state_dict(), tmp_path / "alex.pth")
    convert.convert_pth(tmp_path / "alex.pth", tmp_path / "alex.h5", "alexnet")
    net = jaxvis.load_model("alexnet", weights=tmp_path / "alex.h5")
    rng = np.random.default_rng(1)
    for s in (224, 256):  # 256: pool5 is 7×7 and the adaptive 6×6 average has overlapping bins
        img = rng.uniform(0, 255, (1, s, s, 3)).astype(np.float32)
        x = torch.from_numpy(((img / 255 - TV_MEAN) / TV_STD).astype(np.float32)).permute(0, 3, 1, 2)
        with torch.no_grad():
            _compare_all(net, ref.forward_all(x), img)


@pytest.mark.parametrize("v1", [False, True])
def test_bvlc_alexnet_from_encoded_caffemodel(tmp_path, v1):
    torch.manual_seed(2)
    ref = BVLCAlexNet().eval()
    (tmp_path / "bvlc.caffemodel").write_bytes(convert.caffe.encode_caffemodel(ref.caffe_layers(), v1=v1))
    convert.convert_caffe(tmp_path / "bvlc.caffemodel", tmp_path / "bvlc.h5", "bvlc_alexnet")
    net = jaxvis.load_model("bvlc_alexnet", weights=tmp_path / "bvlc.h5")
    assert [l.name for l in net.layers] == ("data conv1 relu1 norm1 pool1 conv2 relu2 norm2 pool2 conv3 relu3 "
                                           "conv4 relu4 conv5 relu5 pool5 fc6 relu6 drop6 fc7 relu7 drop7 fc8 "
                                           "prob output").split()
    img = np.random.default_rng(2).uniform(0, 255, (1, 227, 227, 3)).astype(np.float32)
    # Caffe's convention: BGR pixels minus the BGR mean; jaxvis takes RGB and flips conv1 at conversion.
    bgr = img[..., ::-1] - np.array([104.0, 117.0, 123.0], np.float32)
    with torch.no_grad():
        _compare_all(net, ref.forward_all(torch.from_numpy(bgr.copy()).permute(0, 3, 1, 2)), img)


def test_squeezenet_from_deepscale_style_caffemodel(tmp_path):
    """DeepScale's caffemodel names layers 'fire2/squeeze1x1'; the converter maps them to MATLAB's names."""
    torch.manual_seed(3)
    ref = SqueezeNet("1_1").eval()
    rows = [("conv1", "Convolution", [ref.features[0].weight.detach().numpy(), ref.features[0].bias.detach().numpy()])]
    fires = [m for m in ref.features if hasattr(m, "squeeze")]
    for n, f in enumerate(fires, start=2):
        for part in ("squeeze1x1", "expand1x1", "expand3x3"):
            c = getattr(f, part.replace("1x1", "") if part == "squeeze1x1" else part)
            rows.append((f"fire{n}/{part}", "Convolution", [c.weight.detach().numpy(), c.bias.detach().numpy()]))
        rows.append((f"fire{n}/relu_{part}", "ReLU", []))
    c10 = ref.classifier[1]
    rows.append(("conv10", "Convolution", [c10.weight.detach().numpy(), c10.bias.detach().numpy()]))
    (tmp_path / "sq.caffemodel").write_bytes(convert.caffe.encode_caffemodel(rows))
    convert.convert_caffe(tmp_path / "sq.caffemodel", tmp_path / "sq.h5", "squeezenet1_1")
    net = jaxvis.load_model("squeezenet", weights=tmp_path / "sq.h5")
    img = np.random.default_rng(3).uniform(0, 255, (1, 227, 227, 3)).astype(np.float32)
    bgr = img[..., ::-1] - np.array([104.0, 117.0, 123.0], np.float32)
    with torch.no_grad():
        _compare_all(net, ref.forward_all(torch.from_numpy(bgr.copy()).permute(0, 3, 1, 2)), img)


def test_external_onnx_zoo_reference_outputs(tmp_path, shared_dir):
    d = shared_dir / "testdata" / "squeezenet1_1_onnxzoo"
    convert.convert_npy_folder(d / "weights", tmp_path / "sq11.h5")
    net = jaxvis.load_model("squeezenet1_1", weights=tmp_path / "sq11.h5")
    assert sum(a.size for ps in net.params.values() for a in ps.values()) == 1_235_496
    fn = net.jitted(["pool10"], normalize=False)  # the reference inputs are already normalised
    for k in range(3):
        x = np.load(d / f"test_data_set_{k}" / "input_0.npy").transpose(0, 2, 3, 1)
        want = np.load(d / f"test_data_set_{k}" / "output_0.npy")
        got = np.asarray(fn(net.params, x)["pool10"]).reshape(want.shape)
        # 1e-4 absolute, plus float32 rounding for logits up to ~200 (1e-6 relative ≈ 10 ulp).
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-6)


def test_shipped_alexnet_conv1_matches_torch(alexnet):
    from conftest import EXAMPLES
    img = np.asarray(jaxvis.imaging.images.read_image(EXAMPLES / "chelsea.png"), np.float32)[:224, :224]
    k = np.transpose(np.asarray(alexnet.params["conv1"]["kernel"]), (3, 2, 0, 1))
    b = np.asarray(alexnet.params["conv1"]["bias"])
    x = torch.from_numpy(((img / 255 - TV_MEAN) / TV_STD).astype(np.float32)).permute(2, 0, 1)[None]
    want = torch.nn.functional.conv2d(x, torch.from_numpy(k.copy()), torch.from_numpy(b.copy()), stride=4, padding=2)
    got = jaxvis.activations(alexnet, img, "conv1")
    np.testing.assert_allclose(got, want[0].permute(1, 2, 0).numpy(), atol=2e-4, rtol=1e-4)
    assert got.shape == (55, 55, 64)
