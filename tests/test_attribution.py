"""Attribution maps: closed forms on tiny functions, torch references, MATLAB semantics, the shipped SqueezeNet."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxvis
from jaxvis import ops
from jaxvis.attribution import (class_index, grad_cam_core, gradient, integrated_gradients, mask_starts,
                                occlusion_scores, reduce_channels, smoothgrad, trace_counts)
from jaxvis.errors import AttributionError, LayerError, TargetError

COFFEE = Path(__file__).resolve().parent.parent / "examples" / "images" / "coffee.png"
ESPRESSO = 967
# The cup (rim, coffee and body, handle excluded) in the 227×227 centre crop of coffee.png:
# rows 8:162, cols 38:180, 42 % of the image. Picked by eye on the cropped photo.
CUP = (slice(8, 162), slice(38, 180))
CORNER = 45  # four 45×45 corner squares: 15.7 % of the image, table and saucer rim only


# ----------------------------------------------------------------------- tiny pure functions
def conv(x, w, b, stride=1, pad=0):
    y = jax.lax.conv_general_dilated(x, w, (stride, stride), [(pad, pad)] * 2,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + b


def tiny_params(seed=0, cin=3, mid=6, out=4):
    r = np.random.default_rng(seed)
    f = lambda *s: jnp.asarray(r.normal(size=s).astype(np.float32))
    return {"w1": f(3, 3, cin, mid) * 0.5, "b1": f(mid) * 0.1, "w2": f(3, 3, mid, mid) * 0.3, "b2": f(mid) * 0.1,
            "w3": f(1, 1, mid, out) * 0.5, "b3": f(out) * 0.1}


def tiny_net(relu="standard"):
    """conv3×3 → ReLU → maxpool 2 → conv3×3 → ReLU ('feat') → conv1×1 → ReLU → mean ('logits')."""
    r = ops.relu_fn(relu)

    def fn(p, x, taps=None):
        taps = taps or {}
        h = r(conv(x, p["w1"], p["b1"], pad=1))
        h = ops.max_pool(h, 2, 2)
        feat = r(conv(h, p["w2"], p["b2"], pad=1))
        feat = feat + taps.get("feat", 0.0)
        z = r(conv(feat, p["w3"], p["b3"]))
        return {"feat": feat, "logits": z.mean(axis=(1, 2), keepdims=True)}
    return fn


def linear_net(p, x):
    return {"logits": (jnp.einsum("nhwc,hwck->nk", x, p["w"]) + p["b"])[:, None, None, :]}


@pytest.fixture(scope="module")
def img12():
    return np.random.default_rng(1).uniform(0, 1, (12, 10, 3)).astype(np.float32)


# ----------------------------------------------------------------------- closed forms
def test_gradient_of_linear_model_is_its_weights(img12):
    r = np.random.default_rng(2)
    p = {"w": jnp.asarray(r.normal(size=(12, 10, 3, 5)).astype(np.float32)), "b": jnp.zeros(5)}
    g, s = gradient(linear_net, p, img12, "logits", 3)
    np.testing.assert_allclose(g, p["w"][..., 3], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(s, float(np.sum(img12 * p["w"][..., 3])), rtol=1e-5)
    np.testing.assert_allclose(reduce_channels(g, "gradient"), np.abs(p["w"][..., 3]).max(-1), rtol=1e-6)
    # SmoothGrad of a linear model: the gradient is the same at every noisy copy.
    sg = smoothgrad(linear_net, p, img12, "logits", 3, sigma=0.5, num_samples=5)
    np.testing.assert_allclose(sg, p["w"][..., 3], rtol=1e-5, atol=1e-6)
    # Integrated gradients of a linear model: exactly (x − baseline) · w.
    ig = integrated_gradients(linear_net, p, img12, "logits", 3, baseline=0.2, steps=4)
    np.testing.assert_allclose(ig, (img12 - 0.2) * p["w"][..., 3], rtol=1e-5, atol=1e-6)


def test_integrated_gradients_completeness_on_a_relu_network(img12):
    fn, p = tiny_net(), tiny_params()
    x, base = img12 * 4, np.full((12, 10, 3), 0.5, np.float32)
    s_x = float(fn(p, jnp.asarray(x)[None])["logits"][0, 0, 0, 2])
    s_b = float(fn(p, jnp.asarray(base)[None])["logits"][0, 0, 0, 2])
    ig = integrated_gradients(fn, p, x, "logits", 2, baseline=base, steps=128, batch_size=48)
    assert abs(s_x - s_b) > 1  # a real difference to explain
    assert abs(ig.sum() - (s_x - s_b)) < 0.01 * abs(s_x - s_b), (ig.sum(), s_x - s_b)


def test_smoothgrad_equals_explicit_loop_and_traces_once(img12):
    fn, p = tiny_net(), tiny_params()
    n, sigma = 11, 0.3
    # Reference: one gradient per noisy copy, drawn with the documented keys, in a Python loop.
    keys = jax.random.split(jax.random.PRNGKey(3), n)
    ref = np.mean([gradient(fn, p, img12 + sigma * np.asarray(jax.random.normal(k, img12.shape)), "logits", 2)[0]
                   for k in keys], axis=0)
    got = smoothgrad(fn, p, img12, "logits", 2, sigma=sigma, num_samples=n, batch_size=4, seed=3)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6 * np.abs(ref).max())
    g0, _ = gradient(fn, p, img12, "logits", 2)
    assert not np.allclose(got, g0, rtol=1e-3)  # the noise does change it
    # 3 chunks of 4 (the last padded) and another target: still one trace of the chunk kernel.
    smoothgrad(fn, p, img12, "logits", 3, sigma=sigma, num_samples=n, batch_size=4, seed=4)
    assert trace_counts(fn)[("smoothgrad", "logits")] == 1
    assert trace_counts(fn)[("gradient", "logits")] == 1


# ----------------------------------------------------------------------- ReLU rules
def test_relu_backward_rules_on_hand_made_inputs():
    x = jnp.array([-2.0, -1.0, 0.5, 3.0, 1.0])
    g = jnp.array([1.0, -1.0, -2.0, 4.0, 0.0])
    want = {"standard": [0, 0, -2, 4, 0], "guided": [0, 0, 0, 4, 0], "deconvnet": [1, 0, 0, 4, 0]}
    for mode, w in want.items():
        y, vjp = jax.vjp(ops.relu_fn(mode), x)
        np.testing.assert_array_equal(y, [0, 0, 0.5, 3, 1])  # forward is always the ReLU
        np.testing.assert_array_equal(vjp(g)[0], w, err_msg=mode)


def test_guided_and_deconvnet_match_torch_hooks_on_a_small_net(img12):
    torch = pytest.importorskip("torch")
    p = tiny_params(5)
    t = lambda a: torch.from_numpy(np.transpose(np.asarray(a), (3, 2, 0, 1)).copy())
    c1, c2, c3 = (torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.Conv2d(6, 6, 3, padding=1), torch.nn.Conv2d(6, 4, 1))
    for c, w, b in ((c1, "w1", "b1"), (c2, "w2", "b2"), (c3, "w3", "b3")):
        c.weight.data, c.bias.data = t(p[w]), torch.from_numpy(np.asarray(p[b]).copy())
    relus = [torch.nn.ReLU() for _ in range(3)]
    model = torch.nn.Sequential(c1, relus[0], torch.nn.MaxPool2d(2), c2, relus[1], c3, relus[2])
    hooks = {"guided": lambda m, gi, go: (gi[0].clamp(min=0),), "deconvnet": lambda m, gi, go: (go[0].clamp(min=0),)}
    x = img12 * 3 - 1
    for mode in ("standard", "guided", "deconvnet"):
        hs = [r.register_full_backward_hook(hooks[mode]) for r in relus] if mode in hooks else []
        xt = torch.from_numpy(x.transpose(2, 0, 1)[None].copy()).requires_grad_(True)
        model(xt).mean(dim=(2, 3))[0, 2].backward()
        for h in hs:
            h.remove()
        ref = xt.grad[0].numpy().transpose(1, 2, 0)
        g, _ = gradient(tiny_net(mode), p, x, "logits", 2)
        assert np.abs(ref).max() > 0
        np.testing.assert_allclose(g, ref, rtol=1e-4, atol=1e-6 * np.abs(ref).max(), err_msg=mode)


# ----------------------------------------------------------------------- occlusion and Grad-CAM on tiny nets
@pytest.mark.parametrize("clipping", [True, False])
def test_occlusion_vmapped_equals_python_loop(img12, clipping):
    fn, p = tiny_net(), tiny_params(7)
    x = img12 * 2
    m, st = (5, 4), (3, 2)
    rows, cols = mask_starts(12, m[0], st[0], clipping), mask_starts(10, m[1], st[1], clipping)
    corners = np.stack(np.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)
    fill = np.array([0.1, 0.2, 0.3], np.float32)
    scores, base = occlusion_scores(fn, p, x, "logits", 1, corners=corners, mask_size=m, fill=fill, batch_size=7)
    one = jax.jit(lambda im: fn(p, im[None])["logits"][0, 0, 0, 1])
    loop = []
    for r, c in corners:
        o = x.copy()
        o[max(r, 0):r + m[0], max(c, 0):c + m[1]] = fill
        loop.append(float(one(o)))
    np.testing.assert_allclose(scores, loop, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(base, float(one(x)), rtol=1e-6)


def test_mask_positions_follow_matlab_clipping_rules():
    # 'on': centres 0, 23, …, 207 (10 of them), first mask hangs 22 pixels over the edge.
    np.testing.assert_array_equal(mask_starts(227, 45, 23, True), np.arange(0, 227, 23) - 22)
    # 'off': masks wholly inside: starts 0, 23, …, 182.
    np.testing.assert_array_equal(mask_starts(227, 45, 23, False), np.arange(0, 183, 23))
    assert len(mask_starts(227, 45, 16)) == 15  # the benchmark's 15×15 grid


def test_grad_cam_equals_hand_computation(img12):
    fn, p = tiny_net(), tiny_params(9)
    x = img12 * 2
    cam, alpha, a, s = grad_cam_core(fn, p, x, "feat", "logits", 3)
    A = np.asarray(fn(p, jnp.asarray(x)[None])["feat"][0])
    head = lambda A_: jax.nn.relu(conv(A_[None], p["w3"], p["b3"])).mean(axis=(1, 2))[0, 3]
    dA = np.asarray(jax.grad(head)(jnp.asarray(A)))
    alpha_ref = dA.mean(axis=(0, 1))
    np.testing.assert_allclose(a, A, rtol=1e-6)
    np.testing.assert_allclose(alpha, alpha_ref, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(cam, np.maximum((A * alpha_ref).sum(-1), 0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(s, float(head(jnp.asarray(A))), rtol=1e-6)
    assert cam.max() > 0


# ----------------------------------------------------------------------- shipped SqueezeNet
@pytest.fixture(scope="module")
def net():
    return jaxvis.load_model("squeezenet")


def _mass(m, region):
    pos = np.maximum(m, 0)
    return float(pos[region].sum() / pos.sum())


def _corners(m, k=CORNER):
    pos = np.maximum(m, 0)
    return float((pos[:k, :k].sum() + pos[:k, -k:].sum() + pos[-k:, :k].sum() + pos[-k:, -k:].sum()) / pos.sum())


def test_grad_cam_on_squeezenet_is_the_class_map_and_on_the_cup(net):
    r = jaxvis.grad_cam(net, COFFEE, "espresso")
    assert r.options["layer"] == "relu_conv10" and r.map.shape == (227, 227) and r.image.shape == (227, 227, 3)
    assert r.target.class_index == ESPRESSO and r.target.layer == "pool10"
    # pool10 = mean of relu_conv10, so Grad-CAM there is relu_conv10[..., c] / (h·w) (CAM).
    act = jaxvis.activations(net, r.image, "relu_conv10")
    np.testing.assert_allclose(r.raw, act[..., ESPRESSO] / act[..., 0].size, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(r.score, act[..., ESPRESSO].mean(), rtol=1e-5)
    area = (CUP[0].stop - CUP[0].start) * (CUP[1].stop - CUP[1].start) / 227 ** 2
    corner_area = 4 * CORNER ** 2 / 227 ** 2
    # Measured 0.66 of the mass on 0.42 of the area; corners 0.08 on 0.16.
    assert _mass(r.map, CUP) > 1.4 * area
    assert _corners(r.map) < 0.6 * corner_area
    # Another class and another image reuse the compiled kernel.
    jaxvis.grad_cam(net, r.image[::-1], "cup")
    assert trace_counts(net)[("grad_cam", "standard", "relu_conv10", "pool10")] == 1


def test_default_grad_cam_layers(net):
    from jaxvis.attribution import default_feature_layer
    assert default_feature_layer(net, "pool10", (227, 227)) == "relu_conv10"
    # MATLAB's literal rule would stop at pool5/avgpool (6×6 copies of relu5): jaxvis skips pooling layers.
    assert default_feature_layer(jaxvis.load_model("alexnet"), "fc8", (224, 224)) == "relu5"


def test_occlusion_on_squeezenet_matlab_defaults_and_on_the_cup(net):
    r = jaxvis.occlusion_sensitivity(net, COFFEE, "espresso")
    o = r.options
    assert o["mask_size"] == (45, 45) and o["stride"] == (23, 23) and o["grid"] == (10, 10)
    np.testing.assert_allclose(o["mask_value"], r.image.reshape(-1, 3).mean(0), rtol=1e-5)
    assert r.map.shape == (227, 227) and r.raw.shape == (10, 10)
    area = (CUP[0].stop - CUP[0].start) * (CUP[1].stop - CUP[1].start) / 227 ** 2
    corner_area = 4 * CORNER ** 2 / 227 ** 2
    # Measured 0.71 of the positive mass on 0.42 of the area; corners 0.07 on 0.16.
    assert _mass(r.map, CUP) > 1.4 * area
    assert _corners(r.map) < 0.6 * corner_area
    assert r.raw.max() > 0.1 * r.score  # hiding the coffee costs a real part of the score


def test_guided_backprop_and_deconvnet_on_squeezenet_match_torch(net):
    pytest.importorskip("torch")
    from torch_squeezenet import from_jaxvis, input_gradient, relu_hooks
    # float64 reference: these ReLU rules switch on the gradient's sign, so float32 rounding in
    # either framework flips a few units; against float64 jaxvis agrees to ~1e-7 relative.
    model = from_jaxvis(net.params).double()
    for method, rule in (("guided_backprop", "guided"), ("deconvnet", "deconvnet")):
        r = jaxvis.saliency(net, COFFEE, "espresso", method=method)
        hs = relu_hooks(model, rule)
        ref = input_gradient(model, r.image, ESPRESSO)
        for h in hs:
            h.remove()
        # Guided/deconvnet ReLUs switch on the sign of the incoming gradient: where it is within fp32
        # rounding of 0 (the accumulation order differs between CPUs and thread counts) a unit flips and
        # its whole contribution moves. Seen on another x86 CPU: 0.35 % of values off by up to 1.3e-3 of
        # max |ref|. So: 99 % of the map within 1e-4 of the scale, no value beyond 1e-2 of it.
        err, scale = np.abs(r.raw - ref), np.abs(ref).max()
        assert np.quantile(err, 0.99) < 1e-4 * scale, method
        assert err.max() < 1e-2 * scale, method
        np.testing.assert_allclose(r.map, np.abs(r.raw).max(-1))


def test_saliency_png_and_cli(net, tmp_path):
    from jaxvis.cli import main
    out = tmp_path / "gc.png"
    assert main(["gradcam", "--image", str(COFFEE), "--class", "espresso", "--out", str(out)]) == 0
    from PIL import Image
    assert Image.open(out).size == (227, 227)
    assert main(["occlusion", "--image", str(COFFEE), "--mask-size", "300", "--out", str(out)]) == 2


# ----------------------------------------------------------------------- bad input
def test_bad_targets(net):
    with pytest.raises(TargetError, match="did you mean 'espresso'"):
        class_index("expresso", net.classes)
    with pytest.raises(TargetError, match=r"ambiguous.*134, 517"):
        class_index("crane", net.classes)
    with pytest.raises(TargetError, match=r"ambiguous.*638, 639"):
        class_index("maillot", net.classes)
    with pytest.raises(TargetError, match=r"out of range.*0\.\.999"):
        jaxvis.grad_cam(net, COFFEE, 1000)
    with pytest.raises(TargetError, match=r"out of range.*0\.\.999"):
        class_index(-1, net.classes)
    with pytest.raises(TargetError, match=r"channel 512 .* 'fire9-concat'.*0\.\.511"):
        jaxvis.saliency(net, COFFEE, ("fire9-concat", 512))
    with pytest.raises(LayerError, match="fire9-concat"):
        jaxvis.saliency(net, COFFEE, ("fire99-concat", 0))
    with pytest.raises(TargetError, match="class targets"):
        jaxvis.saliency(net, COFFEE, ("fire9-concat", 0), score="probability")
    assert class_index("Espresso", net.classes) == ESPRESSO
    assert class_index(np.int64(5), net.classes) == 5
    with pytest.raises(TargetError):
        class_index(True, net.classes)


def test_bad_options(net):
    with pytest.raises(AttributionError, match=r"mask_size 300×300 is larger than the 227×227"):
        jaxvis.occlusion_sensitivity(net, COFFEE, "espresso", mask_size=300)
    with pytest.raises(AttributionError, match="method must be one of"):
        jaxvis.saliency(net, COFFEE, "espresso", method="lrp")
    with pytest.raises(AttributionError, match="num_samples"):
        jaxvis.saliency(net, COFFEE, "espresso", method="smoothgrad", num_samples=0)
    with pytest.raises(AttributionError, match="baseline"):
        jaxvis.saliency(net, COFFEE, "espresso", method="integrated_gradients", baseline=np.zeros((5, 5, 3)))
    with pytest.raises(AttributionError, match="does not depend on layer"):
        jaxvis.grad_cam(net, COFFEE, ("fire3-concat", 0), layer="fire5-concat")
