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

from test_onnx_archs import seeded

from jaxvis.onnx import from_onnx

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
DEFAULT = [("alexnet", 224, 11), ("squeezenet1_1", 64, 13), ("resnet18", 64, 17)]
SLOW = [("mobilenet_v2", 96, 13), ("mobilenet_v3_small", 96, 18), ("googlenet", 96, 14),
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
