"""CS231n recipes: class_model, fool, dream_photo — against closed forms, torch, and their own batching."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxvis
from jaxvis.engine import objectives as O
from jaxvis.errors import ImageError, TargetError, VisualizationError
from jaxvis.recipes import class_model, dream_photo, fool
from jaxvis.recipes.dream_photo import _tiles_1d, layer_l2, objective_gradient

NAMES = ["ant", "bee", "cat", "dog"]


# ----------------------------------------------------------------------- small networks
def linear_params(seed=0, hw=(4, 4), k=5):
    r = np.random.default_rng(seed)
    return {"W": jnp.asarray(r.normal(size=(hw[0] * hw[1] * 3, k)), jnp.float32),
            "b": jnp.asarray(r.normal(size=k) * 0.3, jnp.float32)}


def linear_apply(p, x):
    return {"logits": x.reshape(x.shape[0], -1) @ p["W"] + p["b"]}


@pytest.fixture(scope="module")
def linear():
    return jaxvis.from_function(linear_apply, linear_params(), input_size=4, classes=list("vwxyz"),
                                preprocess=lambda x: x / 255 - 0.5, name="linear")


def logits(net, x):
    return np.asarray(net.apply(net.params, jnp.asarray(x), [net.logits_layer])[net.logits_layer]).reshape(len(x), -1)


def tiny_params(seed=5):
    r = np.random.default_rng(seed)
    f = lambda *s: jnp.asarray(r.normal(size=s).astype(np.float32))  # noqa: E731
    return {"w1": f(3, 3, 3, 6) * 0.5, "b1": f(6) * 0.1, "w2": f(3, 3, 6, 6) * 0.3, "b2": f(6) * 0.1,
            "w3": f(1, 1, 6, 4) * 0.5, "b3": f(4) * 0.1}


def tiny_apply(p, x):
    """torch_reference.TinyCNN in JAX: conv3×3 → ReLU → maxpool 2 → conv3×3 → ReLU → conv1×1 → ReLU → mean."""
    conv = lambda x, w, b, pad: jax.lax.conv_general_dilated(  # noqa: E731
        x, w, (1, 1), [(pad, pad)] * 2, dimension_numbers=("NHWC", "HWIO", "NHWC")) + b
    h = jax.nn.relu(conv(x, p["w1"], p["b1"], 1))
    h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    feat = jax.nn.relu(conv(h, p["w2"], p["b2"], 1))
    z = jax.nn.relu(conv(feat, p["w3"], p["b3"], 0))
    return {"feat": feat, "logits": z.mean(axis=(1, 2))}


@pytest.fixture(scope="module")
def tiny():
    return jaxvis.from_function(tiny_apply, tiny_params(), input_size=12, classes=NAMES, preprocess=lambda x: x / 255,
                                name="tiny")


@pytest.fixture(scope="module")
def photos():
    return np.random.default_rng(1).uniform(20, 235, (3, 12, 12, 3)).astype(np.float32)


# ----------------------------------------------------------------------- fool: closed form and torch
def test_cs231n_fooling_steps_equal_the_closed_form_on_a_linear_model(linear):
    p = linear_params()
    W, b = np.asarray(p["W"], np.float64), np.asarray(p["b"], np.float64)
    x0 = np.random.default_rng(2).uniform(110, 145, (4, 4, 3))
    z0 = (x0.reshape(-1) / 255 - 0.5) @ W + b
    t = int(np.argsort(z0)[1])  # second-lowest class: several others to overtake
    u = W[:, t] / np.linalg.norm(W[:, t])  # the normalised step's direction never changes on a linear model
    gap0 = z0[t] - np.delete(z0, t)  # target minus other logits
    rate = (W[:, t] - np.delete(W, t, axis=1).T) @ u / 255  # their growth per pixel of L2 step
    assert np.all(rate > 0) and np.sum(gap0 < 0) >= 3
    step = float(np.max(-gap0 / rate)) / 7.3  # target reached during the 8th step, not near a boundary
    want = int(np.max(np.where(gap0 < 0, np.floor(-gap0 / (rate * step)) + 1, 0)))
    assert np.all(np.abs(x0.reshape(-1) - 127.5) + want * step * np.abs(u) < 127.5)  # no clipping on the way
    r = fool(linear, x0, t, step_size=step)
    assert want == 8 and r.steps[0] == want and r.success[0]
    # The image moved exactly `want` steps along u.
    np.testing.assert_allclose(r.perturbation[0].reshape(-1), want * step * u, rtol=0, atol=1e-4 * want * step)
    assert r.top5[0][0][0] == "vwxyz"[t]
    # Not enough steps: reported, not raised.
    short = fool(linear, x0, t, step_size=step, max_steps=want - 1)
    assert not short.success[0] and short.steps[0] == want - 1


def test_fgsm_is_eps_times_sign_of_the_torch_gradient(tiny, photos):
    torch = pytest.importorskip("torch")
    from torch_reference import tiny_cnn_from_params
    model = tiny_cnn_from_params(tiny_params()).double()
    x = photos[0]
    t = (int(np.argmax(logits(tiny, x[None])[0])) + 1) % 4
    xt = torch.from_numpy(x.transpose(2, 0, 1)[None].astype(np.float64)).requires_grad_(True)
    torch.log_softmax(model(xt / 255.0), 1)[0, t].backward()
    g = xt.grad[0].numpy().transpose(1, 2, 0)
    r = fool(tiny, x, t, method="fgsm", eps=2.0)
    assert r.steps[0] == 1 and r.settings["method"] == "fgsm"
    clear = np.abs(g) > 1e-4 * np.abs(g).max()  # fp32 may flip the sign of a gradient that is ~0
    assert clear.mean() > 0.5
    # (x + 2) − x in float32: exact to the rounding of pixels near 255, ≤ 2⁻¹⁶ × 255.
    np.testing.assert_allclose(r.perturbation[0][clear], 2.0 * np.sign(g[clear]), rtol=0, atol=1e-4)
    assert np.all(np.abs(r.perturbation[0]) <= 2.0 + 1e-4)


def test_pgd_stays_in_the_eps_ball_and_stops_when_reached(tiny, photos):
    r = fool(tiny, photos, [0, 1, 2], method="pgd", eps=6.0, max_steps=40)
    assert np.all(r.linf <= 6.0 + 1e-4)
    assert np.all((r.images >= 0) & (r.images <= 255))
    np.testing.assert_array_equal(np.argmax(logits(tiny, r.images), 1) == r.targets, r.success)
    assert r.success.any()


def test_fooling_batched_equals_one_at_a_time(tiny, photos):
    targets = [3, 0, 2]
    both = fool(tiny, photos, targets, step_size=40.0)
    for i, t in enumerate(targets):
        one = fool(tiny, photos[i], t, step_size=40.0)
        assert one.steps[0] == both.steps[i] and one.success[0] == both.success[i]
        np.testing.assert_allclose(one.images[0], both.images[i], rtol=0, atol=1e-3)
    # Finished pairs stopped changing: none moved further than its own steps × the step size (L2).
    assert np.all(both.l2 <= both.steps * 40.0 * (1 + 1e-4)) and both.steps.max() > 0


def test_target_already_predicted_returns_at_step_zero(tiny, photos):
    pred = int(np.argmax(logits(tiny, photos[:1])[0]))
    for method, eps in (("cs231n", None), ("fgsm", 2.0)):  # (pgd shares fgsm's loop)
        r = fool(tiny, photos[0], NAMES[pred], method=method, eps=eps)
        assert r.steps[0] == 0 and r.success[0] and np.all(r.perturbation == 0), method
    assert r.magnified().shape == (1, 12, 12, 3) and np.all(r.magnified() == 128)


def test_fool_bad_inputs(tiny, photos):
    with pytest.raises(TargetError, match="did you mean 'bee'"):
        fool(tiny, photos[0], "bea")
    with pytest.raises(VisualizationError, match="eps"):
        fool(tiny, photos[0], 1, method="pgd", eps=0)
    with pytest.raises(VisualizationError, match="eps"):
        fool(tiny, photos[0], 1, method="fgsm", eps=-1.0)
    with pytest.raises(VisualizationError, match="needs eps"):
        fool(tiny, photos[0], 1, method="fgsm")
    with pytest.raises(VisualizationError, match="unknown fooling method"):
        fool(tiny, photos[0], 1, method="deepfool")
    with pytest.raises(ImageError, match="shape"):
        fool(tiny, photos[None], 1)  # 5-D
    with pytest.raises(ImageError, match="shape"):
        fool(tiny, photos[0, 0, 0], 1)  # 1-D
    with pytest.raises(VisualizationError, match="3 images and 2 targets"):
        fool(tiny, photos, [1, 2])
    with pytest.raises(TargetError, match="out of range"):
        fool(tiny, photos[0], 7)


# ----------------------------------------------------------------------- class_model
def test_class_model_resolves_names_and_is_deterministic(tiny):
    a = class_model(tiny, ["bee", 3], steps=4, seed=3)
    b = class_model(tiny, ["bee", 3], steps=4, seed=3)
    assert a.images.tobytes() == b.images.tobytes() and a.labels == ["bee", "dog"]
    assert a.settings["classes"] == [1, 3] and a.settings["preset"] == "cs231n"
    assert class_model(tiny, ["bee", 3], steps=4, seed=4).images.tobytes() != a.images.tobytes()
    # The class score rises.
    assert a.trace[0, -1, 0] > a.trace[0, 0, 0]
    with pytest.raises(TargetError, match="did you mean 'cat'"):
        class_model(tiny, ["cta"])
    with pytest.raises(VisualizationError, match="empty"):
        class_model(tiny, [])


# ----------------------------------------------------------------------- dream_photo
def test_tiled_gradient_equals_untiled_gradient(tiny):
    x = np.random.default_rng(0).uniform(0, 255, (45, 37, 3)).astype(np.float32)
    rf = jaxvis.receptive_field(tiny, "feat")
    assert len(_tiles_1d(45, 22, rf.stride[0], 8, 8)) > 2  # several tiles per axis really are used
    for obj in (2.0 * O.channel("feat", 1) + layer_l2("feat"),):  # one form: one compile per crop shape
        ref = objective_gradient(tiny, x, obj, tile=None)
        got = objective_gradient(tiny, x, obj, tile=8)
        assert np.abs(ref).max() > 0
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_dream_photo_keeps_the_size_and_is_deterministic(tiny):
    x = np.random.default_rng(0).uniform(0, 255, (45, 37, 3)).astype(np.float32)
    a = dream_photo(tiny, x, "feat", octaves=3, steps_per_octave=2, jitter=4, tile=None, seed=1)
    b = dream_photo(tiny, x, "feat", octaves=3, steps_per_octave=2, jitter=4, tile=None, seed=1)
    assert a.image.shape == x.shape and a.image.dtype == np.uint8
    assert a.image.tobytes() == b.image.tobytes()
    assert np.abs(a.raw - x).mean() > 0.5  # it dreamed
    assert a.settings["sizes"][-1] == (23, 19)
    with pytest.raises(VisualizationError, match="means over positions"):
        dream_photo(tiny, x, O.class_logit("bee"))
    with pytest.raises(VisualizationError, match="octave_scale"):
        dream_photo(tiny, x, "feat", octave_scale=1.0)
    with pytest.raises(ImageError, match="one photo"):
        dream_photo(tiny, np.stack([x, x]), "feat")


@pytest.mark.slow
def test_tiled_gradient_equals_untiled_on_squeezenet(squeezenet):
    # SqueezeNet's ceil-mode pools and padded convs: halo and stride alignment must be exact.
    x = np.random.default_rng(0).uniform(0, 255, (301, 260, 3)).astype(np.float32)
    ref = objective_gradient(squeezenet, x, layer_l2("fire3-concat"), tile=None)
    got = objective_gradient(squeezenet, x, layer_l2("fire3-concat"), tile=64)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_cli_dream_photo_rejects_bad_options(capsys):
    from jaxvis.cli import main
    with pytest.raises(SystemExit):
        main(["dream-photo", "--layer", "fire5-concat", "--image", "x.png", "--octaves", "0"])
    assert "octaves must be in 1..12" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_dream_photo_writes_the_photo_size(tmp_path):
    from PIL import Image

    from jaxvis.cli import main
    src = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 70, 3), dtype=np.uint8)).save(src)
    out = tmp_path / "out.png"
    assert main(["dream-photo", "--layer", "fire3-concat", "--image", str(src), "--octaves", "2", "--steps", "2",
                 "--out", str(out), "--quiet"]) == 0
    assert Image.open(out).size == (70, 90)


def test_magnified_difference_is_scaled_robustly():
    """A few outlier pixels must not set the scale of the magnified difference (the cs231n fooling figure was
    nearly flat grey): the 99.5th percentile of |change| maps to full range."""
    from jaxvis.recipes.fool import FoolResult
    rng = np.random.default_rng(0)
    d = rng.normal(0, 1.0, (1, 40, 40, 3)).astype(np.float32)
    d[0, :2, :2] = 200.0  # 12 of 4800 values: 0.25 %
    orig = np.full_like(d, 128.0)
    r = FoolResult(orig + d, orig, np.array([0]), np.array([True]), np.array([1]), [[]], {})
    m = r.magnified()[0].astype(float) - 127.5
    s = np.percentile(np.abs(d), 99.5)
    np.testing.assert_allclose(m[2:, 2:], np.clip(127.5 * d[0, 2:, 2:] / s, -127.5, 127.5), atol=0.51)
    assert np.abs(m[2:, 2:]).mean() > 30  # the bulk is visible (with the maximum as scale: ≈ 0.5 grey levels)
    assert np.all(r.magnified(factor=2.0)[0, 2:, 2:].astype(float) == np.round(np.clip(127.5 + 2 * d[0, 2:, 2:], 0, 255)))
