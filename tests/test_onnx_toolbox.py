"""The whole toolbox on an imported ONNX ResNet-18 (torchvision's architecture, seeded random weights,
exported by torch.onnx at 96×96), each tool against an independent reference: torch autograd and
captum on the same torch module, onnxruntime on the same `.onnx` file, numpy brute force.

Tolerances: 1e-4 of the reference's largest magnitude for forward values (fp32 sums in another
order); 1e-3 for gradients, which chain ~20 fp32 layers forward and back (observed ~1e-6).
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="test needs onnx (pip install 'jaxvis[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="test needs onnxruntime (test extra)")
torch = pytest.importorskip("torch", reason="test needs torch (test extra)")

from test_onnx_archs import seeded  # noqa: E402

import jaxvis  # noqa: E402

SIZE, CLASSES, TARGET = 96, 10, 3
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
LAST = "/layer4/layer4.1/relu_1/Relu"  # output of the last residual block: torchvision's `model.layer4`
MID = "/layer3/layer3.1/relu_1/Relu"  # output of layer3 (6×6×256 at 96)


def to_input(images_nhwc: np.ndarray) -> np.ndarray:
    """0..255 RGB NHWC → the graph's normalized NCHW input (torchvision preprocessing), in numpy."""
    return ((images_nhwc / 255.0 - MEAN) / STD).astype(np.float32).transpose(0, 3, 1, 2)


class Resnet:
    """One export shared by the module: torch module, .onnx path, imported network, onnxruntime session
    exposing the inner tensors the tests read."""

    def __init__(self, folder):
        self.torch = seeded("resnet18", num_classes=CLASSES)
        self.path = folder / "resnet18.onnx"
        torch.onnx.export(self.torch, torch.zeros(1, 3, SIZE, SIZE), str(self.path), dynamo=False, opset_version=17,
                          input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
        self.net = jaxvis.from_onnx(self.path, preprocess="torchvision")
        m = onnx.load(str(self.path))
        for layer in (LAST, MID):
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(self.net.plan.layers[layer]))
        self.sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])

    def ort(self, images_nhwc: np.ndarray) -> dict[str, np.ndarray]:
        """onnxruntime on 0..255 NHWC images: {'logits': N×classes, LAST: NCHW, MID: NCHW}."""
        out = self.sess.run(None, {"image": to_input(np.asarray(images_nhwc, np.float32))})
        return dict(zip(["logits", LAST, MID], out))


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    return Resnet(tmp_path_factory.mktemp("onnx_resnet"))


@pytest.fixture(scope="module")
def photo():
    """A smooth random 96×96 RGB image (0..255): bilinear upsampling of 12×12 noise."""
    small = np.random.default_rng(0).uniform(0, 255, (12, 12, 3)).astype(np.float32)
    return np.asarray(jaxvis.imresize(small, (SIZE, SIZE), method="bilinear"), np.float32).clip(0, 255)


def test_saliency_is_torchs_input_gradient(resnet, photo):
    """saliency.raw = ∂logit/∂pixel (0..255 units, HWC) from torch autograd through the same preprocessing."""
    a = jaxvis.saliency(resnet.net, photo, TARGET)
    x = torch.tensor(photo.transpose(2, 0, 1)[None].copy(), requires_grad=True)
    logits = resnet.torch((x / 255 - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None])
    logits[0, TARGET].backward()
    ref = x.grad[0].numpy().transpose(1, 2, 0)
    assert a.raw.shape == (SIZE, SIZE, 3) and a.target.channel == TARGET
    np.testing.assert_allclose(a.score, float(logits[0, TARGET]), atol=1e-4 * float(logits.abs().max()))
    np.testing.assert_allclose(a.raw, ref, atol=1e-3 * np.abs(ref).max())
    np.testing.assert_allclose(a.map, np.abs(ref).max(-1), atol=1e-3 * np.abs(ref).max())


def test_grad_cam_default_layer_and_map_match_captum(resnet, photo):
    """Default feature layer = the last conv stage's output (every path to the logits goes through it; the last
    Conv node alone would miss the skip connection); map = captum's LayerGradCam on `model.layer4`."""
    from captum.attr import LayerAttribution, LayerGradCam
    g = jaxvis.grad_cam(resnet.net, photo)  # no target: the predicted class, read from the graph's output
    predicted = int(np.argmax(resnet.ort(photo[None])["logits"][0]))
    assert g.target.class_index == predicted and g.target.class_name is None
    assert g.options["feature_layer"] == LAST and g.options["reduction_layer"] == "/fc/Gemm"
    x = torch.tensor(to_input(photo[None]))
    ref = LayerGradCam(resnet.torch, resnet.torch.layer4).attribute(x, target=predicted, relu_attributions=True)
    assert g.raw.shape == (3, 3) and float(ref.max()) > 0  # 96 / 32 = 3
    np.testing.assert_allclose(g.raw, ref[0, 0].detach().numpy(), atol=1e-3 * float(ref.abs().max()))
    big = LayerAttribution.interpolate(ref, (SIZE, SIZE), "bilinear")[0, 0].detach().numpy()
    np.testing.assert_allclose(g.map, big, atol=1e-3 * float(ref.abs().max()))


def test_class_targets_without_class_names(resnet, photo):
    """An imported graph has class scores but no names: class indices work, names and bad indices are clear errors."""
    with pytest.raises(jaxvis.TargetError, match=r"no class names.*index.*classes="):
        jaxvis.saliency(resnet.net, photo, "tench")
    with pytest.raises(jaxvis.TargetError, match=r"class 10 is out of range.*'/fc/Gemm' has 10 class scores, 0\.\.9"):
        jaxvis.occlusion_sensitivity(resnet.net, photo, 10)


def test_occlusion_grid_matches_onnxruntime(resnet, photo):
    """Every score drop of a 3×3 grid of 32×32 grey windows, recomputed by onnxruntime on the occluded images."""
    o = jaxvis.occlusion_sensitivity(resnet.net, photo, TARGET, mask_size=32, stride=32, mask_value=128,
                                     placement="captum")
    assert o.raw.shape == (3, 3) and o.map.shape == (SIZE, SIZE)
    occluded = []
    for r in range(3):
        for c in range(3):
            im = photo.copy()
            im[32 * r:32 * r + 32, 32 * c:32 * c + 32] = 128
            occluded.append(im)
    logits = resnet.ort(np.stack([photo] + occluded))["logits"][:, TARGET]
    ref = (logits[0] - logits[1:]).reshape(3, 3)
    np.testing.assert_allclose(o.raw, ref, atol=1e-4 * np.abs(logits).max())
    np.testing.assert_allclose(o.map, np.kron(ref, np.ones((32, 32))), atol=1e-4 * np.abs(logits).max())  # no overlap


def _channel_mean(resnet, layer: str, images: np.ndarray, c: int) -> np.ndarray:
    return resnet.ort(images)[layer][:, c].mean(axis=(1, 2))


def grey_starts(n: int, seed: int) -> np.ndarray:
    """Mid-grey images with σ=10 noise: the optimisers' kind of start image (deep_dream_image's own)."""
    return (127.5 + 10 * np.random.default_rng(seed).normal(size=(n, SIZE, SIZE, 3))).astype(np.float32)


@pytest.mark.slow  # two ResNet optimisation-loop compilations (~1 min on 2 shared cores)
def test_deep_dream_image_raises_the_channel(resnet):
    """deep_dream_image's images raise their channel's mean activation (onnxruntime on the produced pixels)."""
    start = grey_starts(1, 1)[0]
    chans = [5, 40]
    out = jaxvis.deep_dream_image(resnet.net, MID, chans, pyramid_levels=1, num_iterations=8, output_scaling="none",
                                  initial_image=start, verbose=False)
    assert out.shape == (2, SIZE, SIZE, 3) and out.dtype == np.float32 and np.isfinite(out).all()
    for i, c in enumerate(chans):
        before, after = _channel_mean(resnet, MID, start[None], c)[0], _channel_mean(resnet, MID, out[i:i + 1], c)[0]
        assert after > before + 1.0 and after > 2 * abs(before), (c, before, after)


@pytest.mark.slow  # one ResNet optimisation-loop compilation (~1 min on 2 shared cores)
def test_visualize_raises_the_channel(resnet):
    """visualize (lucid preset) raises its channel far above what grey start images give (onnxruntime on the
    result). Not above uniform noise: this random-weight net's filters respond most to noise, which the lucid
    preset's decorrelated, low-contrast images do not reach in a few steps."""
    chans = (5, 40)
    v = jaxvis.visualize(resnet.net, [jaxvis.objectives.channel(MID, c) for c in chans], steps=64, image_size=SIZE,
                         progress=False)
    assert v.images.shape == (2, SIZE, SIZE, 3) and v.images.dtype == np.uint8 and np.isfinite(v.raw).all()
    assert v.trace.shape[-1] == 2 and (v.trace[-1, -1] > v.trace[0, 0] + 1).all()
    base = grey_starts(4, 2)
    for i, c in enumerate(chans):
        got, before = _channel_mean(resnet, MID, v.raw[i:i + 1] * 255, c)[0], _channel_mean(resnet, MID, base, c)
        assert got > 2 * before.max() + 1, (c, got, before)


@pytest.mark.slow  # another ResNet forward compilation (~10 s): the default suite keeps three tools
def test_top_patches_equal_brute_force(resnet, photo):
    """top_patches over 6 images: per unit, the k largest per-image maxima over positions, their image ids and
    positions (brute force: every activation from onnxruntime, np.argsort)."""
    if not hasattr(jaxvis, "top_patches"):
        pytest.skip("jaxvis.top_patches is not in this build (issue 13)")
    rng = np.random.default_rng(3)
    images = [np.clip(photo + rng.normal(0, 40, photo.shape), 0, 255).round().astype(np.uint8) for _ in range(6)]
    k = 3
    tp = jaxvis.top_patches(resnet.net, images, [MID], k=k, progress=False)
    acts = resnet.ort(np.stack(images).astype(np.float32))[MID]  # N×C×h×w
    per_image = acts.reshape(*acts.shape[:2], -1).max(-1)  # N×C
    tol = 1e-4 * np.abs(acts).max()
    assert tp.value[MID].shape == (acts.shape[1], k)
    for unit in (0, 5, 40, 255):
        order = np.argsort(-per_image[:, unit], kind="stable")[:k]
        assert tp.image[MID][unit].tolist() == order.tolist()
        np.testing.assert_allclose(tp.value[MID][unit], per_image[order, unit], atol=tol)
        for i, (y, x) in zip(order, tp.position[MID][unit]):  # the position holds the image's maximum
            np.testing.assert_allclose(acts[i, unit, y, x], per_image[i, unit], atol=tol)
