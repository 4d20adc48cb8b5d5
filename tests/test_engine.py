"""The feature-visualization engine against closed forms: linear growth, the FFT parameterisation,
transform gradients, batch = one at a time, seeds, RedirectedReLU, presets, compile reuse."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import tiny_nets as T

import jaxvis
from jaxvis.engine import objectives as O
from jaxvis.engine import param as P
from jaxvis.engine import presets as Pr
from jaxvis.engine import transforms as TF
from jaxvis.errors import ChannelError, TargetError, VisualizationError


@pytest.fixture(scope="module")
def tiny():
    return T.pure_net()


def test_linear_network_objective_grows_linearly():
    """f(x) = <w, 255·x> with SGD on the 0..1 image: each step adds lr·255²·|w|² exactly."""
    w = jnp.asarray(np.random.default_rng(0).normal(size=(8, 8, 3)), jnp.float32)
    net = jaxvis.from_function(lambda p, x: {"lin": jnp.sum(x * p, axis=(1, 2, 3))[:, None]}, w, input_size=8)
    lr = 1e-7
    v = jaxvis.visualize(net, O.channel("lin", 0), param="pixel", decorrelate=False, transforms="none",
                         optimizer=optax.sgd(1.0), learning_rate=lr, steps=6, redirected_relu_steps=0,
                         preset="matlab", levels=1, progress=False)
    d = np.diff(v.trace[0, :, 0])
    np.testing.assert_allclose(d, lr * 255 ** 2 * float(jnp.sum(w * w)), rtol=1e-3)


def test_fft_parameterisation_matches_numpy_and_decorrelation_round_trips():
    prm = P.Param((12, 10), 2, "fft", False, "none", 0.3)
    p = prm.init(jax.random.PRNGKey(0))
    f = P.rfft2d_freqs(12, 10)
    scale = 1 / np.maximum(f, 1 / 12)
    spec = (np.asarray(p[0]) + 1j * np.asarray(p[1])) * scale
    want = np.fft.irfft2(spec, s=(12, 10), norm="ortho").transpose(0, 2, 3, 1) / 4
    np.testing.assert_allclose(np.asarray(prm.image(p)), want, atol=1e-5)
    # 1/f: the image's spectrum is the parameters' times 1/f (round trip through numpy's rfft2)
    back = np.fft.rfft2(4 * np.asarray(prm.image(p)).transpose(0, 3, 1, 2), norm="ortho") / scale
    np.testing.assert_allclose(back[..., 1:-1].real, np.asarray(p[0])[..., 1:-1], atol=1e-4)
    pix = P.pixel(6, batch=2, decorrelate=True, output="sigmoid")
    img = np.random.default_rng(1).uniform(0.1, 0.9, (2, 6, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(pix.image(pix.from_image(img))), img, atol=1e-4)
    f6 = P.fft(6, batch=2, decay_power=1.5)  # a photo's own spectrum as the start (feature accentuation)
    np.testing.assert_allclose(np.asarray(f6.image(f6.from_image(img))), img, atol=1e-4)
    with pytest.raises(VisualizationError, match="pixel"):
        P.fft(6, margin=4).from_image(img)


def test_transform_gradients_match_finite_differences():
    x = jnp.asarray(np.random.default_rng(2).uniform(0, 1, (1, 20, 20, 3)), jnp.float32)
    wt = jnp.asarray(np.random.default_rng(3).normal(size=(1, 20, 20, 3)), jnp.float32)
    d = jnp.asarray(np.random.default_rng(4).normal(size=x.shape), jnp.float32)
    for t in (TF.STANDARD, TF.get("keras_vis"), TF.get("roll16")):
        key = jax.random.PRNGKey(5)
        # jitted: run eagerly, each primitive of the transform compiles on its own (seconds per transform)
        f = jax.jit(lambda x: jnp.sum(jax.image.resize(t(key, x), (1, 20, 20, 3), "bilinear") * wt))
        g = jax.jit(jax.grad(f))(x)
        eps = 1e-2  # the transforms are linear in the image: central differences are exact up to rounding
        fd = (f(x + eps * d) - f(x - eps * d)) / (2 * eps)
        np.testing.assert_allclose(float(jnp.sum(g * d)), float(fd), rtol=2e-3)
    # affine: zoom 1, angle 0 is the identity; a 90° turn is a rotation of the array
    np.testing.assert_allclose(np.asarray(TF.affine(x, 1.0, 0.0)), np.asarray(x), atol=1e-5)
    np.testing.assert_allclose(np.asarray(TF.affine(x, 1.0, 90.0)), np.rot90(np.asarray(x), -1, axes=(1, 2)),
                               atol=1e-4)


@pytest.mark.parametrize("scale,angle,out", [(1.1, 10.0, (26, 24)), (0.9, -10.0, (20, 20)), (2.0, 33.0, (23, 27)),
                                             (0.5, -80.0, (18, 18)), (1.0, 0.0, (20, 20))])
def test_affine_is_scipy_bilinear_and_its_gather_gradient_the_exact_transpose(scale, angle, out):
    """The row-gather resampling equals map_coordinates(order=1, constant) per channel, and its gather-form
    image gradient (a static `reach`, as RandomAffine passes; traced draws) equals autodiff's scatter-add."""
    from jax.scipy.ndimage import map_coordinates
    r = np.random.default_rng(6)
    x = jnp.asarray(r.uniform(0, 1, (2, 20, 20, 3)), jnp.float32)
    ct = jnp.asarray(r.normal(size=(2, *out, 3)), jnp.float32)
    t = np.deg2rad(angle)
    yy, xx = np.meshgrid(np.arange(out[0]) - (out[0] - 1) / 2, np.arange(out[1]) - (out[1] - 1) / 2, indexing="ij")
    sy, sx = (np.cos(t) * yy - np.sin(t) * xx) / scale + 9.5, (np.sin(t) * yy + np.cos(t) * xx) / scale + 9.5

    def ref(v):
        planes = jnp.moveaxis(v, -1, 1).reshape(-1, 20, 20)
        res = jax.vmap(lambda p: map_coordinates(p, [sy, sx], order=1, mode="constant", cval=0.3))(planes)
        return jnp.moveaxis(res.reshape(2, 3, *out), 1, -1)

    reach = TF.RandomAffine((scale,), (angle,)).reach
    f = jax.jit(lambda v, s, a: TF.affine(v, s, a, 0.3, out, reach))  # s, a traced: the engine's case
    # float32 sampling positions (~20 px) differ by an ulp or two between formulations: ~2e-6 of the 0..1 image
    np.testing.assert_allclose(f(x, scale, angle), ref(x), atol=1e-5)
    got, want = jax.vjp(lambda v: f(v, scale, angle), x)[1](ct)[0], jax.vjp(ref, x)[1](ct)[0]
    tol = 3e-5 * float(jnp.abs(want).max())  # relative to the gradient's scale (measured ≤ 3e-6 of it)
    np.testing.assert_allclose(got, want, atol=tol)
    traced = jax.jit(jax.grad(lambda v, s, a: jnp.sum(TF.affine(v, s, a, 0.3, out) * ct)))(x, scale, angle)
    np.testing.assert_allclose(traced, got, atol=tol)  # no reach, traced: autodiff's gradient, the same


def test_batch_equals_one_at_a_time_and_seed_is_bytes(tiny):
    kw = dict(steps=4, image_size=24, progress=False)  # the loop test_no_retrace… reuses (same plan, 3 units)
    objs = O.units("relu2", [0, 5, 9])
    all3 = jaxvis.visualize(tiny, objs, **kw)
    chunked = jaxvis.visualize(tiny, objs, batch_size=1, **kw)
    np.testing.assert_array_equal(all3.images, chunked.images)
    for i, o in enumerate(objs):
        one = jaxvis.visualize(tiny, [o], **kw)
        np.testing.assert_allclose(one.raw[0], all3.raw[i], atol=1e-5)
    again = jaxvis.visualize(tiny, objs, **kw)
    assert again.images.tobytes() == all3.images.tobytes()
    other = jaxvis.visualize(tiny, objs, seed=1, **kw)
    assert np.abs(other.raw - all3.raw).max() > 1e-3


def test_no_retrace_for_other_units_seeds_or_step_sizes(tiny):
    kw = dict(steps=4, image_size=24, progress=False, preset="lucid")
    jaxvis.visualize(tiny, O.units("relu2", [0, 1, 2]), **kw)
    before = sum(tiny.trace_counts.values())
    jaxvis.visualize(tiny, O.units("relu2", [7, 3, 4]), seed=3, learning_rate=0.1, **kw)
    assert sum(tiny.trace_counts.values()) == before


def test_redirected_relu_moves_a_dead_unit():
    """A unit that is dead everywhere (bias −1e5) gets no gradient through a ReLU; RedirectedReLU lets
    the gradient that would raise its input through, so its pre-activation rises."""
    w = jnp.asarray(np.random.default_rng(6).normal(size=(3, 3, 3, 1)), jnp.float32)

    def fn(p, x, relu=jax.nn.relu):
        pre = jax.lax.conv_general_dilated(x, p, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) - 1e5
        return {"pre": pre, "relu": relu(pre)}

    net = jaxvis.from_function(fn, w, input_size=16)
    kw = dict(param="pixel", decorrelate=False, transforms="none", steps=8, progress=False, preset="lucid")
    dead = jaxvis.visualize(net, O.channel("relu", 0), redirected_relu_steps=0, **kw)
    moved = jaxvis.visualize(net, O.channel("relu", 0), redirected_relu_steps=8, **kw)
    pre = lambda v: float(jnp.mean(fn(w, 255 * jnp.asarray(v.raw))["pre"]))  # noqa: E731
    start = jaxvis.visualize(net, O.channel("relu", 0), redirected_relu_steps=0, **{**kw, "steps": 1})
    assert pre(dead) == pytest.approx(pre(start), abs=1e-3)
    assert pre(moved) > pre(start) + 1.0


def test_diversity_is_lucids_gram_cosine():
    a = np.random.default_rng(7).normal(size=(3, 4, 4, 5)).astype(np.float32)
    g = np.einsum("bpc,bpd->bcd", a.reshape(3, 16, 5), a.reshape(3, 16, 5)).reshape(3, -1)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    total = -sum(g[i] @ g[j] for i in range(3) for j in range(3) if i != j) / 3
    v = np.asarray(O.diversity("x", 2.0)({"x": jnp.asarray(a)}))
    np.testing.assert_allclose(v.sum(), 2 * total, rtol=1e-5)


def test_objective_algebra_and_regularisers():
    x = jnp.asarray(np.random.default_rng(8).uniform(0, 1, (2, 5, 6, 3)), jnp.float32)
    acts = {"input": x, "l": jnp.arange(2 * 2 * 2 * 4, dtype=jnp.float32).reshape(2, 2, 2, 4)}
    o = 2 * O.channel("l", 1) - O.l1(0.5) - 0.1 * O.total_variation()
    xn = np.asarray(x)
    tv = np.abs(np.diff(xn, axis=1)).sum((1, 2, 3)) + np.abs(np.diff(xn, axis=2)).sum((1, 2, 3))
    want = 2 * np.asarray(acts["l"])[..., 1].mean((1, 2)) - np.abs(xn - 0.5).sum((1, 2, 3)) - 0.1 * tv
    np.testing.assert_allclose(np.asarray(o(acts)), want, rtol=1e-5)
    assert o.layers == ("l",)
    with pytest.raises(VisualizationError, match="same form"):
        O.stack([O.channel("l", 0), O.neuron("l", 0)])


# lucid's loop is the default preset's (run by the other tests here), matlab's is deep_dream's (tests/test_dream.py):
# their own runs here (the two largest compiles) are slow-only.
@pytest.mark.parametrize("name", [pytest.param("lucid", marks=pytest.mark.slow),
                                  pytest.param("matlab", marks=pytest.mark.slow), "keras_vis", "cs231n"])
def test_presets_run(tiny, name):
    v = jaxvis.visualize(tiny, [O.class_logit("cat")], preset=name, steps=3, image_size=24, progress=False,
                         levels=1)
    assert v.images.shape == (1, 24, 24, 3) and np.isfinite(v.raw).all(), name
    assert v.settings["preset"] == name


def test_visualize_errors_and_whole_layers(tiny):
    with pytest.raises(ChannelError, match=r"0\.\.15"):
        jaxvis.visualize(tiny, O.channel("relu2", 16), steps=1, progress=False)
    with pytest.raises(TargetError, match="did you mean 'cat'"):
        jaxvis.visualize(tiny, O.class_logit("caat"), steps=1, progress=False)
    with pytest.raises(VisualizationError, match="unknown preset"):
        jaxvis.visualize(tiny, O.channel("relu2", 0), preset="matlib", steps=1, progress=False)
    # a layer = all its channels (cs231n: the cheapest loop to compile; it adds its L2 term to each label)
    v = jaxvis.visualize(tiny, "relu1", steps=2, image_size=24, preset="cs231n", progress=False)
    assert v.labels == [f"relu1:{c} + Lp" for c in range(8)] and v.images.shape == (8, 24, 24, 3)


def test_cli_visualize(tmp_path, capsys):
    from PIL import Image

    from jaxvis.cli import main
    out = tmp_path / "v.png"
    # cs231n: the CLI's plumbing on the cheapest loop to compile (lucid's runs in the API tests above)
    assert main(["visualize", "--layer", "conv1", "--channels", "0:4", "--steps", "2", "--image-size", "32",
                 "--preset", "cs231n", "--out", str(out), "--quiet"]) == 0
    assert Image.open(out).size == (64, 64)
    assert f"wrote {out}" in capsys.readouterr().out
    assert main(["visualize", "--classes", "espresso,hen", "--steps", "1", "--image-size", "32", "--quiet",
                 "--out", str(tmp_path)]) == 2  # a folder is no output file: nothing runs


def test_linear_first_layer_is_visualised_by_its_centre_neuron(squeezenet):
    """SqueezeNet conv1 is linear in the image (3-px field): its channel mean is linear in the pixels, so the
    mean's optimum is one flat saturated colour (the blobs and washed-out squares the gallery showed first).
    `visualize(net, "conv1")` now optimises each channel's centre neuron: a pattern in the middle, grey around
    it; deeper, nonlinear layers keep the channel mean."""
    v = jaxvis.visualize(squeezenet, "conv1", steps=32, image_size=64, progress=False)
    assert v.settings["objective"] == "neuron" and v.labels[:2] == ["conv1:0", "conv1:1"] and len(v.labels) == 64
    dev = np.abs(v.raw - 0.5)
    border = np.concatenate([dev[:, :8].reshape(64, -1), dev[:, -8:].reshape(64, -1)], 1).mean(1)
    centre = dev[:, 24:40, 24:40].reshape(64, -1).mean(1)
    assert np.all(centre > border) and centre.mean() > 3 * border.mean()
    assert O.fits_neuron(squeezenet, "conv1") and not O.fits_neuron(squeezenet, "relu_conv1")
    assert not O.fits_neuron(squeezenet, "fire2-expand3x3")


@pytest.mark.parametrize("channels", [1, 3, 5])
def test_keras_vis_l1_is_the_mean_absolute_value_for_any_channel_count(channels):
    """tf-keras-vis Norm(p=1): 0.3 · mean |x| over every value on the 0..255 scale, whatever the channel count
    (dividing by 3·pixels over-weighted it 5/3× on 5 channels and under-weighted it 3× on one)."""
    hw = (6, 4)
    x = np.random.default_rng(channels).uniform(0, 1, (2, *hw, channels)).astype(np.float32)
    pre = dataclasses.replace(Pr.get("keras_vis"), regularizers=(("l1_per_value_255", 0.3),))
    got = np.asarray(pre.penalty(hw, channels)({O.INPUT: jnp.asarray(x)}))
    np.testing.assert_allclose(got, 0.3 * 255 * np.abs(x).mean(axis=(1, 2, 3)), rtol=1e-5)
