"""`from_function`: a pure-JAX CNN, a Flax NNX module and a Flax Linen module through every public function.

The three wrap the same weights, so every result must agree across them, and each is checked against a
value computed directly from the plain function (closed forms: the gradient, Grad-CAM's formula)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tiny_nets as T

import jaxvis
from jaxvis.errors import LayerError, NetworkError

IMAGE = np.asarray(np.random.default_rng(0).uniform(0, 255, (T.SIZE, T.SIZE, 3)), np.float32)
NETS = {"jax": T.pure_net, "nnx": T.nnx_net, "linen": T.linen_net}


@pytest.fixture(scope="module", params=list(NETS))
def net(request):
    return NETS[request.param]()


def _direct(layer):
    return np.asarray(T.apply(T.params(), T.preprocess(jnp.asarray(IMAGE)[None]))[layer])


def test_protocol_and_layers(net):
    assert isinstance(net, jaxvis.Net)
    assert net.layer_names == ("conv1", "relu1", "conv2", "relu2", "pool", "logits")  # graph order, not sorted
    assert net.logits_layer == "logits" and net.classes == T.CLASSES
    assert "16×16×8" in repr(net.layers)
    with pytest.raises(LayerError, match="did you mean 'relu2'"):
        net.layer_name("rellu2")


def test_activations_and_classify(net):
    a = jaxvis.activations(net, IMAGE, "relu1")
    np.testing.assert_allclose(a, _direct("relu1")[0], rtol=1e-5, atol=1e-5)
    both = jaxvis.activations(net, IMAGE, layers=["conv2", "logits"])
    assert both["logits"].shape == (1, 1, 5)
    top = jaxvis.classify(net, IMAGE, top=2)
    p = np.asarray(jax.nn.softmax(_direct("logits")[0]))
    assert top[0][0] == T.CLASSES[int(p.argmax())] and top[0][1] == pytest.approx(float(p.max()), rel=1e-5)


def test_saliency_is_the_input_gradient(net):
    r = jaxvis.saliency(net, IMAGE, "cat", method="gradient")
    g = jax.grad(lambda x: T.apply(T.params(), T.preprocess(x))["logits"][0, 2])(jnp.asarray(IMAGE)[None])[0]
    np.testing.assert_allclose(r.raw, np.asarray(g), atol=1e-4 * np.abs(g).max())
    guided = jaxvis.saliency(net, IMAGE, "cat", method="guided_backprop")  # through the relu hook
    assert np.abs(guided.raw - r.raw).max() > 1e-3 * np.abs(g).max()


def test_grad_cam_matches_its_formula(net):
    m = jaxvis.grad_cam(net, IMAGE, "dog")  # default feature layer: the last spatial layer (relu2)
    x = T.preprocess(jnp.asarray(IMAGE)[None])
    p = T.params()
    a = T.apply(p, x)["relu2"]
    g = jax.grad(lambda a: (a.mean(axis=(1, 2)) @ p["w3"] + p["b3"])[0, 3])(a)
    cam = np.maximum(np.asarray((g.mean(axis=(1, 2), keepdims=True) * a).sum(-1))[0], 0)
    raw = getattr(m, "raw", None)
    got = raw if raw is not None and np.shape(raw) == cam.shape else None
    if got is None:  # the upsampled map: compare its downsampled shape's ordering instead
        got = np.asarray(jax.image.resize(jnp.asarray(m.map), cam.shape, "linear"))
        assert np.corrcoef(got.ravel(), cam.ravel())[0, 1] > 0.9
    else:
        np.testing.assert_allclose(got, cam, atol=1e-4 * max(cam.max(), 1e-6))


def test_occlusion_and_analyze(net):
    m = jaxvis.occlusion_sensitivity(net, IMAGE, "cat", mask_size=8, stride=8)
    assert np.isfinite(m.map).all() and m.map.shape == (T.SIZE, T.SIZE)
    a = jaxvis.analyze_network(net)
    assert [r.name for r in a.rows] == list(net.layer_names)
    assert a.rows[2].activation_size == (16, 16, 16) and a.total_learnables == 3 * 3 * 3 * 8 + 8 + 9 * 8 * 16 + 16 + 85


# The engine sees only `net.apply`, which the tests above check per kind: the NNX and Linen runs (compiles of
# the whole optimisation loop, ~13 s each) are slow-only.
@pytest.mark.parametrize("kind", ["jax", pytest.param("nnx", marks=pytest.mark.slow),
                                  pytest.param("linen", marks=pytest.mark.slow)])
def test_dream_and_visualize(kind):
    net = NETS[kind]()
    d = jaxvis.deep_dream(net, "relu2", [0, 3], pyramid_levels=1, num_iterations=3, verbose=False)
    assert d.images.shape == (2, T.SIZE, T.SIZE, 3) and d.strengths[0, -1] > d.strengths[0, 0]
    v = jaxvis.visualize(net, [jaxvis.objectives.class_logit("cat")], steps=4, progress=False, transforms="none",
                         redirected_relu_steps=2)  # the relu hook, one short redirected segment
    assert v.images.shape == (1, T.SIZE, T.SIZE, 3) and v.images.dtype == np.uint8


def test_all_three_nets_agree():
    acts = [jaxvis.activations(f(), IMAGE, "logits") for f in NETS.values()]
    for a in acts[1:]:
        np.testing.assert_allclose(a, acts[0], rtol=1e-5, atol=1e-5)


def test_taps_give_intermediate_gradients_inside_jit():
    net = jaxvis.from_function(jax.jit(T.apply), T.params(), input_size=T.SIZE, classes=T.CLASSES)
    x = jnp.asarray(IMAGE)[None]
    t0 = jnp.zeros((1, 16, 16, 8))
    g = jax.grad(lambda t: net.apply(net.params, x, ["logits"], taps={"relu1": t})["logits"][0, 0, 0, 1])(t0)
    p = T.params()
    r1 = T.apply(p, x)["relu1"]
    want = jax.grad(lambda r: (jax.nn.relu(T._conv(r, p["w2"], p["b2"], 1)).mean((1, 2)) @ p["w3"])[0, 1])(r1)
    np.testing.assert_allclose(np.asarray(g), np.asarray(want), atol=1e-6 * float(jnp.abs(want).max()) + 1e-9)


def test_bad_functions():
    with pytest.raises(NetworkError, match="must return a dict"):
        jaxvis.from_function(lambda p, x: x.mean(), None, input_size=8)
    with pytest.raises(NetworkError, match="fails on a 1×8×8×3"):
        jaxvis.from_function(lambda p, x: {"fc": x.reshape(1, -1) @ jnp.ones((10, 2))}, None, input_size=8)
    with pytest.raises(LayerError, match="did you mean 'relu1'"):
        jaxvis.from_function(T.apply, T.params(), input_size=T.SIZE, layers=["relu_1"])
    with pytest.raises(NetworkError, match="5 outputs but 3 classes"):
        jaxvis.from_function(T.apply, T.params(), input_size=T.SIZE, classes=["a", "b", "c"])
    leaky = jaxvis.from_function(lambda p, x: T.apply(p, x, relu=jax.nn.leaky_relu), T.params(), input_size=T.SIZE,
                                 classes=T.CLASSES, preprocess=T.preprocess)
    assert leaky.relu_rules == {"standard"}
    with pytest.raises(NetworkError, match="leaky_relu.*recognised ReLUs"):  # never a silently plain gradient
        jaxvis.saliency(leaky, IMAGE, "cat", method="guided_backprop")
    assert np.isfinite(jaxvis.saliency(leaky, IMAGE, "cat", method="gradient").map).all()


@pytest.mark.parametrize("method", ["guided_backprop", "deconvnet"])
def test_relu_rules_without_a_hook_equal_the_hook(method):
    """A function without a `relu` keyword gets the rule by re-interpretation: the same map as through the hook."""
    no_hook = jaxvis.from_function(lambda p, x: T.apply(p, x), T.params(), input_size=T.SIZE, classes=T.CLASSES,
                                   preprocess=T.preprocess)
    assert no_hook.relu_rules == {"standard", "guided", "deconvnet", "redirected"}
    want = jaxvis.saliency(T.pure_net(), IMAGE, "cat", method=method).raw
    got = jaxvis.saliency(no_hook, IMAGE, "cat", method=method).raw
    np.testing.assert_allclose(got, want, atol=1e-6 * np.abs(want).max())


# ----------------------------------------------------------------------- ReLU rules without a hook (issue 21)
def _tiny(relu):
    """torch_reference.TinyCNN written in JAX with `relu` for its three ReLUs (no `relu` keyword)."""
    def conv(x, w, b, pad):
        return jax.lax.conv_general_dilated(x, w, (1, 1), [(pad, pad)] * 2, dimension_numbers=("NHWC", "HWIO", "NHWC")) + b

    def fn(p, x):
        h = relu(conv(x, p["w1"], p["b1"], 1))
        h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        feat = relu(conv(h, p["w2"], p["b2"], 1))
        z = relu(conv(feat, p["w3"], p["b3"], 0))
        return {"feat": feat, "logits": z.mean(axis=(1, 2))}
    return fn


def _tiny_params(seed=3):
    r = np.random.default_rng(seed)
    f = lambda *s: jnp.asarray(r.normal(size=s).astype(np.float32))  # noqa: E731
    return {"w1": f(3, 3, 3, 6) * 0.5, "b1": f(6) * 0.1, "w2": f(3, 3, 6, 6) * 0.3, "b2": f(6) * 0.1,
            "w3": f(1, 1, 6, 4) * 0.5, "b3": f(4) * 0.1}


def _flax_relus():
    import flax.linen as linen
    from flax import nnx
    return {"linen.relu": linen.relu, "nnx.relu": nnx.relu}


RELU_PATTERNS = {
    "jax.nn.relu": jax.nn.relu,
    "jnp.maximum(x, 0)": lambda v: jnp.maximum(v, 0),
    "jnp.maximum(0., x)": lambda v: jnp.maximum(0.0, v),
    "maximum(x, zeros_like)": lambda v: jnp.maximum(v, jnp.zeros_like(v)),
    "jnp.where(x > 0, x, 0)": lambda v: jnp.where(v > 0, v, 0),
    "jnp.where(x <= 0, 0., x)": lambda v: jnp.where(v <= 0, 0.0, v),
    "x * (x > 0)": lambda v: v * (v > 0),
    "jnp.clip(x, 0)": lambda v: jnp.clip(v, 0),
    "jit(relu)": jax.jit(jax.nn.relu),
    **_flax_relus(),
}


@pytest.mark.parametrize("pattern", list(RELU_PATTERNS))
def test_relu_patterns_get_captum_guided_backprop_and_deconvolution(pattern):
    """Every recognised ReLU spelling: guided backprop and deconvnet equal captum's (GuidedBackprop, Deconvolution:
    hooks on torch nn.ReLU modules) on the same weights, with no `relu` keyword in the function."""
    pytest.importorskip("torch")
    ca = pytest.importorskip("captum.attr")
    import torch
    from torch_reference import tiny_cnn_from_params
    p = _tiny_params()
    model = tiny_cnn_from_params(p).double()  # float64: the rules switch on signs; no fp32 flips in the reference
    x = np.random.default_rng(4).uniform(-1, 2, (12, 10, 3)).astype(np.float32)
    net = jaxvis.from_function(_tiny(RELU_PATTERNS[pattern]), p, input_size=(12, 10))
    assert net.relu_rules == {"standard", "guided", "deconvnet", "redirected"}
    xt = torch.from_numpy(x.transpose(2, 0, 1)[None].astype(np.float64))
    for method, cls in (("guided_backprop", ca.GuidedBackprop), ("deconvnet", ca.Deconvolution)):
        ref = cls(model).attribute(xt, target=2).detach().numpy()[0].transpose(1, 2, 0)
        got = jaxvis.saliency(net, x, ("logits", 2), method=method, resize="none").raw
        assert np.abs(ref).max() > 0
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.abs(ref).max(), err_msg=f"{pattern} {method}")
    plain = jaxvis.saliency(net, x, ("logits", 2), method="gradient", resize="none").raw
    assert np.abs(got - plain).max() > 1e-3 * np.abs(plain).max()  # the rule did change the gradient


@pytest.mark.parametrize("pattern, named", [
    (jax.nn.leaky_relu, "leaky_relu"), (jax.nn.relu6, "relu6"), (jax.nn.elu, "elu"),
    (lambda v: jnp.clip(v, 0, 6), "clipped ReLU min\\(max\\(x, 0\\), 6\\)"),
    (lambda v: jnp.where(v > 0, v, 0.1 * v), "select_n on the sign of x \\(x > 0\\)"),
    (lambda v: v * (v < 0), "x \\* \\(x < 0\\)"),
])
def test_unrecognised_relu_like_patterns_refuse_a_rule(pattern, named):
    net = jaxvis.from_function(_tiny(pattern), _tiny_params(), input_size=(12, 10))
    assert net.relu_rules == {"standard"}
    x = np.ones((12, 10, 3), np.float32)
    for method in ("guided_backprop", "deconvnet"):
        with pytest.raises(NetworkError, match=named):
            jaxvis.saliency(net, x, ("logits", 2), method=method, resize="none")
    with pytest.raises(NetworkError, match=named):
        net.apply(net.params, jnp.asarray(x)[None], ["logits"], relu="redirected")


def test_smooth_activations_keep_their_own_gradient():
    """GELU, SiLU and softplus are no ReLUs (captum leaves them alone too): guided backprop of a function with only
    those is its plain gradient, and no rule is refused."""
    net = jaxvis.from_function(_tiny(lambda v: jax.nn.gelu(jax.nn.silu(jax.nn.softplus(v) - 0.5))), _tiny_params(),
                               input_size=(12, 10))
    assert net.relu_rules == {"standard", "guided", "deconvnet", "redirected"}
    x = np.random.default_rng(2).uniform(-1, 2, (12, 10, 3)).astype(np.float32)
    a, b = (jaxvis.saliency(net, x, ("logits", 1), method=m, resize="none").raw for m in ("gradient", "guided_backprop"))
    np.testing.assert_array_equal(a, b)


def test_relu_rules_inside_scan_cond_checkpoint_and_nested_jit():
    """ReLUs inside control flow and calls are swapped too: the same values as the function unrolled through a hook."""
    p = T.params()

    def body(relu, r1):
        return relu(jax.lax.conv_general_dilated(r1, p["w2"][:, :, :, :8] * 0.5, (1, 1), "SAME",
                                                 dimension_numbers=("NHWC", "HWIO", "NHWC")))

    def rolled(params, x):
        c1 = T._conv(x, params["w1"], params["b1"], 2)
        r1 = jax.jit(jax.checkpoint(jax.nn.relu))(c1)
        h, _ = jax.lax.scan(lambda h, _: (body(jax.nn.relu, h), None), r1, None, length=2)
        h = jax.lax.cond(h.sum() > -1e9, jax.nn.relu, lambda v: v, h - 0.1)
        return {"h": h, "logits": h.mean(axis=(1, 2)) @ params["w3"][:8]}

    def unrolled(params, x, relu=jax.nn.relu):
        r1 = relu(T._conv(x, params["w1"], params["b1"], 2))
        h = relu(body(relu, body(relu, r1)) - 0.1)
        return {"h": h, "logits": h.mean(axis=(1, 2)) @ params["w3"][:8]}

    a = jaxvis.from_function(rolled, p, input_size=T.SIZE, preprocess=T.preprocess)
    b = jaxvis.from_function(unrolled, p, input_size=T.SIZE, preprocess=T.preprocess)
    for method in ("guided_backprop", "deconvnet"):
        want = jaxvis.saliency(b, IMAGE, ("logits", 3), method=method).raw
        got = jaxvis.saliency(a, IMAGE, ("logits", 3), method=method).raw
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max(), err_msg=method)


def test_redirected_relu_equals_the_ports_own_rule(squeezenet):
    """The shipped SqueezeNet's forward wrapped as a plain function: its 26 ReLUs are recognised, and RedirectedReLU
    by re-interpretation gives the gradient of the port's own `relu='redirected'` (jaxvis.nets.ops), on an input
    where the unit is dead, so the redirected and the standard gradients differ."""
    net, layer = squeezenet, "relu_conv1"
    wrapped = jaxvis.from_function(lambda p, x: net.apply(p, x, [layer], normalize=False), net.params, input_size=32)
    x = jnp.zeros((1, 32, 32, 3))  # a constant image: conv1's channels are constant, a negative-bias one dead
    pre = np.asarray(net.apply(net.params, x, ["conv1"], normalize=False)["conv1"])[0]
    c = int(np.argmin(pre.max(axis=(0, 1))))
    assert pre[..., c].max() < 0

    def grad(fn):
        return np.asarray(jax.grad(lambda y: -fn(net.params, y)[layer][..., c].mean())(x))

    want = grad(net.function([layer], normalize=False, relu="redirected"))
    got = grad(wrapped.function([layer], relu="redirected"))
    assert np.abs(want).max() > 0 and np.abs(grad(net.function([layer], normalize=False))).max() == 0
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(want).max())


# ----------------------------------------------------------------------- Flax modules as they are (issue 21)
def _nnx_models():
    from flax import nnx

    class Block(nnx.Module):
        def __init__(self, c, rngs):
            self.conv1 = nnx.Conv(c, c, (3, 3), rngs=rngs)
            self.bn = nnx.BatchNorm(c, rngs=rngs)
            self.conv2 = nnx.Conv(c, c, (3, 3), rngs=rngs)

        def __call__(self, x):
            return nnx.relu(self.conv2(nnx.relu(self.bn(self.conv1(x)))) + x)

    class ResNet(nnx.Module):
        def __init__(self, rngs):
            self.stem = nnx.Conv(3, 8, (3, 3), strides=2, rngs=rngs)
            self.blocks = nnx.List([Block(8, rngs), Block(8, rngs)])
            self.fc = nnx.Linear(8, 5, rngs=rngs)

        def __call__(self, x):
            x = nnx.relu(self.stem(x))
            for b in self.blocks:
                x = b(x)
            return self.fc(x.mean(axis=(1, 2)))

    class VGG(nnx.Module):
        def __init__(self, rngs):
            self.features = nnx.Sequential(nnx.Conv(3, 6, (3, 3), rngs=rngs), nnx.relu,
                                           lambda x: nnx.max_pool(x, (2, 2), (2, 2)),
                                           nnx.Conv(6, 8, (3, 3), rngs=rngs), nnx.relu)
            self.classifier = nnx.Linear(8 * 8 * 8, 5, rngs=rngs)

        def __call__(self, x):
            return self.classifier(self.features(x).reshape(x.shape[0], -1))

    res, vgg = ResNet(nnx.Rngs(0)), VGG(nnx.Rngs(1))
    res.blocks[0].bn.mean.value = jnp.linspace(-0.2, 0.2, 8)  # running statistics that differ from the batch's
    res.blocks[0].bn.var.value = jnp.linspace(0.5, 2.0, 8)
    return res, vgg


def _linen_models():
    import flax.linen as nn

    class Block(nn.Module):
        @nn.compact
        def __call__(self, x):
            y = nn.relu(nn.BatchNorm(use_running_average=True)(nn.Conv(8, (3, 3))(x)))
            return nn.relu(nn.Conv(8, (3, 3))(y) + x)

    class ResNet(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Conv(8, (3, 3), strides=2, name="stem")(x))
            x = Block()(x)
            x = Block()(x)
            return nn.Dense(5)(x.mean(axis=(1, 2)))

    class VGG(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool = True):
            x = nn.relu(nn.Conv(6, (3, 3))(x))
            x = nn.max_pool(x, (2, 2), (2, 2))
            x = nn.relu(nn.Conv(8, (3, 3))(x))
            x = nn.Dropout(0.5, deterministic=not train)(x)
            return nn.Dense(5)(x.reshape(x.shape[0], -1))

    x = jnp.zeros((1, 16, 16, 3))
    res, vgg = ResNet(), VGG()
    return (res, res.init(jax.random.PRNGKey(0), x)), (vgg, vgg.init(jax.random.PRNGKey(1), x, train=False))


FLAX_IMAGE = np.random.default_rng(5).uniform(0, 1, (16, 16, 3)).astype(np.float32)


def test_nnx_modules_as_they_are():
    """Every submodule's output is a layer, equal to calling that submodule directly; BatchNorm runs on its running
    statistics (eval mode, on a copy: the user's module keeps its mode); no wrapper, no hook."""
    from flax import nnx
    res, vgg = _nnx_models()
    x = jnp.asarray(FLAX_IMAGE)[None]
    net = jaxvis.from_flax(res, input_size=16, classes=list("abcde"), preprocess=lambda v: v / 255)
    assert net.layer_names == ("stem", "blocks.0.conv1", "blocks.0.bn", "blocks.0.conv2", "blocks.0",
                               "blocks.1.conv1", "blocks.1.bn", "blocks.1.conv2", "blocks.1", "fc", "output")
    assert net.logits_layer == "output" and net.name == "ResNet" and net.input_channels == 3
    assert res.blocks[0].bn.use_running_average is False  # the user's module is untouched
    acts = jaxvis.activations(net, FLAX_IMAGE * 255, layers=list(net.layer_names))
    stem = res.stem(x)
    np.testing.assert_allclose(acts["stem"], stem[0], rtol=1e-5, atol=1e-5)
    b0 = res.blocks[0]
    bn = nnx.BatchNorm(8, use_running_average=True, rngs=nnx.Rngs(0))
    bn.mean.value, bn.var.value, bn.scale.value, bn.bias.value = b0.bn.mean.value, b0.bn.var.value, b0.bn.scale.value, \
        b0.bn.bias.value
    np.testing.assert_allclose(acts["blocks.0.bn"], bn(b0.conv1(nnx.relu(stem)))[0], rtol=1e-5, atol=1e-5)
    res.eval()
    np.testing.assert_allclose(acts["blocks.1"], res.blocks[1](res.blocks[0](nnx.relu(stem)))[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(acts["output"][0, 0], res(x)[0], rtol=1e-5, atol=1e-5)
    assert net.relu_rules == {"standard", "guided", "deconvnet", "redirected"}
    vnet = jaxvis.from_function(vgg, input_size=16, preprocess=lambda v: v / 255)  # through from_function too
    assert vnet.layer_names == ("features.layers.0", "features.layers.3", "features", "classifier", "output")
    np.testing.assert_allclose(jaxvis.activations(vnet, FLAX_IMAGE * 255, "output")[0, 0], vgg(x)[0], rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(jaxvis.activations(vnet, FLAX_IMAGE * 255, "features.layers.3"),
                               vgg.features.layers[3](nnx.max_pool(nnx.relu(vgg.features.layers[0](x)), (2, 2), (2, 2)))[0],
                               rtol=1e-5, atol=1e-5)
    g = jaxvis.saliency(vnet, FLAX_IMAGE * 255, ("output", 1), method="guided_backprop")
    want = jaxvis.saliency(vnet, FLAX_IMAGE * 255, ("output", 1), method="gradient")
    assert g.raw.shape == (16, 16, 3) and np.abs(g.raw - want.raw).max() > 0


def test_linen_modules_as_they_are():
    import flax.linen as nn
    (res, rv), (vgg, vv) = _linen_models()
    x = jnp.asarray(FLAX_IMAGE)[None]
    net = jaxvis.from_flax(res, rv, input_size=16, classes=list("abcde"), preprocess=lambda v: v / 255)
    assert net.layer_names == ("stem", "Block_0/Conv_0", "Block_0/BatchNorm_0", "Block_0/Conv_1", "Block_0",
                               "Block_1/Conv_0", "Block_1/BatchNorm_0", "Block_1/Conv_1", "Block_1", "Dense_0", "output")
    acts = jaxvis.activations(net, FLAX_IMAGE * 255, layers=list(net.layer_names))
    stem = nn.Conv(8, (3, 3), strides=2).apply({"params": rv["params"]["stem"]}, x)
    np.testing.assert_allclose(acts["stem"], stem[0], rtol=1e-5, atol=1e-5)
    conv = nn.Conv(8, (3, 3)).apply({"params": rv["params"]["Block_1"]["Conv_0"]}, jnp.asarray(acts["Block_0"])[None])
    np.testing.assert_allclose(acts["Block_1/Conv_0"], conv[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(acts["output"][0, 0], res.apply(rv, x)[0], rtol=1e-5, atol=1e-5)
    # The bound `apply` and keyword arguments (Dropout off) through from_function.
    vnet = jaxvis.from_flax(vgg.apply, vv, input_size=16, apply_kwargs={"train": False}, preprocess=lambda v: v / 255)
    assert vnet.layer_names == ("Conv_0", "Conv_1", "Dropout_0", "Dense_0", "output")
    np.testing.assert_allclose(jaxvis.activations(vnet, FLAX_IMAGE * 255, "output")[0, 0],
                               vgg.apply(vv, x, train=False)[0], rtol=1e-5, atol=1e-5)
    a = jaxvis.saliency(vnet, FLAX_IMAGE * 255, ("output", 1), method="deconvnet").raw
    assert a.shape == (16, 16, 3) and np.isfinite(a).all()
    with pytest.raises(NetworkError, match="needs its variables"):
        jaxvis.from_flax(res, input_size=16)
    with pytest.raises(NetworkError, match="Flax NNX module, a Linen module"):
        jaxvis.from_flax(lambda p, x: x, input_size=16)


def test_input_channels_from_the_function():
    """`input_channels` is read from the function (3 if it takes 3, else the first count it takes) or given."""
    def f(c):
        w = jnp.ones((3, 3, c, 2))
        return lambda p, x: {"conv": jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))}
    for c in (1, 3, 4, 5, 13):
        assert jaxvis.from_function(f(c), None, input_size=8).input_channels == c
    agnostic = jaxvis.from_function(lambda p, x: {"mean": x.mean(-1, keepdims=True)}, None, input_size=8)
    assert agnostic.input_channels == 3
    assert jaxvis.from_function(lambda p, x: {"mean": x.mean(-1, keepdims=True)}, None, input_size=8,
                                input_channels=6).input_channels == 6
    with pytest.raises(NetworkError, match="fails on a 1×8×8×3.*every channel count from 1 to 32.*input_channels="):
        jaxvis.from_function(f(40), None, input_size=8)
    with pytest.raises(NetworkError, match="fails on a 1×8×8×2 "):
        jaxvis.from_function(f(3), None, input_size=8, input_channels=2)
    with pytest.raises(NetworkError, match="input_channels must be a positive int"):
        jaxvis.from_function(f(3), None, input_size=8, input_channels=0)


def test_sown_values_are_layers():
    """What a module `sow`s (NNX `nnx.Intermediate`, Linen 'intermediates') is a layer too, equal to the value sown."""
    import warnings

    import flax.linen as nn
    from flax import nnx

    class N(nnx.Module):
        def __init__(self):
            self.conv = nnx.Conv(3, 2, (3, 3), rngs=nnx.Rngs(0))

        def __call__(self, x):
            y = self.conv(x)
            self.sow(nnx.Intermediate, "doubled", 2 * y)
            return y.mean(axis=(1, 2))

    class L(nn.Module):
        @nn.compact
        def __call__(self, x):
            y = nn.Conv(2, (3, 3))(x)
            self.sow("intermediates", "doubled", 2 * y)
            return y.mean(axis=(1, 2))

    x = FLAX_IMAGE * 255
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # NNX: sow outside nnx.capture
        a = jaxvis.from_flax(N(), input_size=16)
        assert a.layer_names == ("conv", "doubled", "output")
        acts = jaxvis.activations(a, x, layers=["conv", "doubled"])
    np.testing.assert_allclose(acts["doubled"], 2 * acts["conv"], rtol=1e-6)
    v = L().init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)))
    b = jaxvis.from_flax(L(), v, input_size=16)
    assert b.layer_names == ("Conv_0", "doubled", "output")
    acts = jaxvis.activations(b, x, layers=["Conv_0", "doubled"])
    np.testing.assert_allclose(acts["doubled"], 2 * acts["Conv_0"], rtol=1e-6)
