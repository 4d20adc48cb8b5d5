"""jaxvis.from_onnx against onnxruntime: torchvision architectures exported by torch.onnx, the ONNX-zoo
SqueezeNet 1.1 arrays, operator coverage, and bad input.

Tolerance: 1e-4 of the reference's largest magnitude (fp32 sums over up to ~25k terms
in a different order than onnxruntime's; observed errors are ~1e-6 relative).
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="test needs onnx (pip install 'jaxvis[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="test needs onnxruntime (test extra)")
torch = pytest.importorskip("torch", reason="test needs torch (test extra)")

from test_onnx_archs import seeded  # noqa: E402

import jaxvis  # noqa: E402
from jaxvis.onnx import OnnxError, from_onnx  # noqa: E402

ZOO = Path(__file__).resolve().parents[1] / ".." / "shared" / "testdata" / "squeezenet1_1_onnxzoo"
if not ZOO.is_dir():
    ZOO = Path("/work/shared/testdata/squeezenet1_1_onnxzoo")


def export(model, path: Path, size: int, opset: int, **kw) -> Path:
    x = torch.randn(1, 3, size, size)
    torch.onnx.export(model, x, str(path), dynamo=False, opset_version=opset, input_names=["image"],
                      output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, **kw)
    return path


def ort_run(path_or_proto, x_nchw: np.ndarray, tensors: list[str]) -> dict[str, np.ndarray]:
    """onnxruntime outputs for the graph's output and the given inner tensors."""
    m = onnx.load(str(path_or_proto)) if not isinstance(path_or_proto, onnx.ModelProto) else path_or_proto
    have = {o.name for o in m.graph.output}
    for t in tensors:
        if t not in have:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(t))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: x_nchw})))


def as_nhwc(a: np.ndarray) -> np.ndarray:
    return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a.reshape(a.shape[0], 1, 1, -1)


def check_against_ort(path, net, x_nchw, n_inner=6, batch_check=True):
    """Logits and n_inner evenly spread node outputs match onnxruntime; returns the max relative error."""
    names = [n for n in net.layer_names[1:]]
    pick = [names[int(i)] for i in np.linspace(0, len(names) - 2, n_inner).round()] + [net.layer_names[-1]]
    tensors = [net.plan.layers[n] for n in pick]
    ref = ort_run(path, x_nchw, tensors)
    out = net.apply(net.params, jnp.asarray(x_nchw.transpose(0, 2, 3, 1)), pick)
    worst = 0.0
    for n, t in zip(pick, tensors):
        r, o = as_nhwc(ref[t]), np.asarray(out[n])
        assert o.shape == r.shape, (n, o.shape, r.shape)
        scale = float(np.abs(r).max()) or 1.0
        err = float(np.abs(o - r).max()) / scale
        assert err <= 1e-4, f"{n}: max error {err:.2e} of scale {scale:.3g}"
        worst = max(worst, err)
    return worst


# Default suite: three small-input models across opsets (alexnet and vgg need 224 for their 6×6 and 7×7 adaptive pools to export).
DEFAULT = [("squeezenet1_1", 64, 13), ("resnet18", 64, 17), ("mobilenet_v3_small", 64, 18)]
SLOW = [("alexnet", 224, 11), ("mobilenet_v2", 96, 13), ("googlenet", 96, 14),
        ("densenet121", 64, 15), ("efficientnet_b0", 96, 20), ("vgg11_bn", 224, 12)]


def _check_arch(tmp_path, arch, size, opset):
    path = export(seeded(arch, num_classes=100), tmp_path / f"{arch}.onnx", size, opset)
    net = from_onnx(path)
    assert net.input_size == (size, size)
    x = np.random.default_rng(0).normal(size=(2, 3, size, size)).astype(np.float32)
    check_against_ort(path, net, x)


@pytest.mark.parametrize("arch,size,opset", DEFAULT)
def test_torchvision_arch_matches_onnxruntime(tmp_path, arch, size, opset):
    _check_arch(tmp_path, arch, size, opset)


@pytest.mark.slow
@pytest.mark.parametrize("arch,size,opset", SLOW)
def test_torchvision_arch_matches_onnxruntime_slow(tmp_path, arch, size, opset):
    _check_arch(tmp_path, arch, size, opset)


# -- the ONNX-zoo SqueezeNet 1.1, rebuilt from its arrays -------------------------------------------------------
def zoo_squeezenet(folder: Path, opset: int = 12):
    """The zoo's squeezenet1.1 graph (torchvision squeezenet1_1) from the per-layer .npy files."""
    h = onnx.helper
    w = {f.stem: np.load(f) for f in (folder / "weights").glob("*.npy")}
    inits = [onnx.numpy_helper.from_array(a, k) for k, a in sorted(w.items())]
    nodes, prev, k = [], "data", 0

    def conv(x, n, kernel, stride=1, pad=0):
        name = f"squeezenet0_conv{n}"
        nodes.append(h.make_node("Conv", [x, name + "_weight", name + "_bias"], [name + "_fwd"], name=name,
                                 kernel_shape=[kernel] * 2, strides=[stride] * 2, pads=[pad] * 4))
        nodes.append(h.make_node("Relu", [name + "_fwd"], [name + "_relu"], name=name + "_relu"))
        return name + "_relu"

    def pool(x, i):
        nodes.append(h.make_node("MaxPool", [x], [f"pool{i}"], name=f"pool{i}", kernel_shape=[3, 3],
                                 strides=[2, 2], ceil_mode=1))
        return f"pool{i}"

    prev = pool(conv(prev, 0, 3, 2), 0)
    k = 1
    for fire in range(2, 10):
        sq = conv(prev, k, 1)
        a, b = conv(sq, k + 1, 1), conv(sq, k + 2, 3, pad=1)
        nodes.append(h.make_node("Concat", [a, b], [f"fire{fire}_concat"], name=f"fire{fire}_concat", axis=1))
        prev, k = f"fire{fire}_concat", k + 3
        if fire in (3, 5):
            prev = pool(prev, fire)
    nodes.append(h.make_node("Dropout", [prev], ["drop"], name="drop"))
    last = conv("drop", 25, 1)
    nodes.append(h.make_node("GlobalAveragePool", [last], ["gap"], name="gap"))
    nodes.append(h.make_node("Flatten", ["gap"], ["logits"], name="flatten"))
    graph = h.make_graph(nodes, "squeezenet1.1", [h.make_tensor_value_info("data", onnx.TensorProto.FLOAT,
                                                                           [1, 3, 224, 224])],
                         [h.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, [1, 1000])], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])


@pytest.mark.skipif(not ZOO.is_dir(), reason="../shared/testdata/squeezenet1_1_onnxzoo is absent")
def test_zoo_squeezenet_reproduces_stored_outputs():
    model = zoo_squeezenet(ZOO)
    onnx.checker.check_model(model)
    net = from_onnx(model)
    x = np.concatenate([np.load(ZOO / f"test_data_set_{i}" / "input_0.npy") for i in range(3)])
    ref = np.concatenate([np.load(ZOO / f"test_data_set_{i}" / "output_0.npy") for i in range(3)])
    out = np.asarray(net.jitted(["flatten"], normalize=False)(net.params, jnp.asarray(x.transpose(0, 2, 3, 1)))
                     ["flatten"]).reshape(3, 1000)
    np.testing.assert_allclose(out, ref, atol=1e-4 * np.abs(ref).max(), rtol=0)
    assert (out.argmax(1) == ref.argmax(1)).all()
    assert net.logits_layer == "flatten"
    # node outputs by node name, by tensor name and by index are the same layer
    assert net.layer_name("squeezenet0_conv0_fwd") == "squeezenet0_conv0" == net.layer_name(1)


@pytest.mark.skipif(not ZOO.is_dir(), reason="../shared/testdata/squeezenet1_1_onnxzoo is absent")
def test_zoo_squeezenet_equals_hand_port_with_gradients(tmp_path):
    """Imported graph vs jaxvis's Flax squeezenet1_1 with the same weights: activations, guided-ReLU
    gradients and gradients at a tapped inner layer (the relu= hook and taps of the protocol)."""
    import jax
    from jaxvis.convert import convert_npy_folder
    convert_npy_folder(ZOO / "weights", tmp_path / "sq.h5")
    hand = jaxvis.load_model("squeezenet1_1", weights=tmp_path / "sq.h5")
    net = from_onnx(zoo_squeezenet(ZOO), preprocess="torchvision")
    img = jnp.asarray(np.random.default_rng(1).uniform(0, 255, (1, 96, 96, 3)).astype(np.float32))
    pairs = {"fire9-concat": "fire9_concat", "pool10": "gap", "fire3-relu_expand3x3": "squeezenet0_conv6_relu"}
    a = hand.apply(hand.params, img, list(pairs))
    b = net.apply(net.params, img, list(pairs.values()))
    for h_, o_ in pairs.items():
        np.testing.assert_allclose(np.asarray(b[o_]), np.asarray(a[h_]), atol=1e-4 * float(np.abs(a[h_]).max()))

    def grads(n, score, tap_layer, relu):
        def f(x, tap):
            out = n.apply(n.params, x, [score], relu=relu, taps={tap_layer: tap})[score]
            return out[..., 7].sum()
        zero = jnp.zeros(n.apply(n.params, img, [tap_layer])[tap_layer].shape)
        return jax.grad(f, argnums=(0, 1))(img, zero)

    gx_h, gt_h = grads(hand, "pool10", "fire5-concat", "guided")
    gx_o, gt_o = grads(net, "gap", "fire5_concat", "guided")
    for u, v in ((gx_o, gx_h), (gt_o, gt_h)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), atol=1e-4 * float(np.abs(v).max()))
