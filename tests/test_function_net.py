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
