"""MACO (magnitude-constrained phase optimisation) and natural spectra against closed forms and numpy:
the magnitude stays exactly the spectrum, phase gradients match finite differences of a float64 numpy
reference, the transparency map is the sum of the input-gradient magnitudes, and it batches like every
preset."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import tiny_nets as T

import jaxvis
from jaxvis.engine import objectives as O
from jaxvis.engine import optimize as core
from jaxvis.engine import param as P
from jaxvis.engine import transforms as TF
from jaxvis.engine.spectrum import SHIPPED, Spectrum, default_spectrum, periodic_component
from jaxvis.errors import VisualizationError

COLOR_T = np.asarray(P.COLOR.T, np.float64)


@pytest.fixture(scope="module")
def tiny():
    return T.pure_net()


@pytest.fixture(scope="module")
def photos_spectrum():
    rng = np.random.default_rng(0)  # smooth random "photos": blurred noise, any spectrum will do here
    ims = [np.cumsum(np.cumsum(rng.normal(size=(48, 56, 3)), 0), 1) for _ in range(3)]
    ims = [255 * (a - a.min()) / (a.max() - a.min()) for a in ims]
    return jaxvis.natural_spectrum(ims, (20, 26), crops=4)


def latent_magnitude(images01: np.ndarray) -> np.ndarray:
    """|rfft2| (orthonormal) of the decorrelated pre-sigmoid image, N×C×H×(W//2+1): what MACO fixes."""
    x = np.asarray(images01, np.float64)
    z = np.log(x / (1 - x)) @ np.linalg.inv(COLOR_T)
    return np.abs(np.fft.rfft2(np.moveaxis(z, -1, 1), norm="ortho"))


def test_magnitude_is_the_spectrum_at_the_start_and_after_optimisation(tiny, photos_spectrum):
    spec = photos_spectrum.resized((32, 32))
    prm = P.Param((32, 32), 2, "maco", True, "sigmoid", jaxvis.engine.presets.MACO_SD, spectrum=spec)
    fixed = prm.magnitude
    # the fixed magnitude is the spectrum up to one factor (the image's standardisation), DC removed
    k = fixed[:, 1:, 1:] / spec.magnitude[:, 1:, 1:]
    np.testing.assert_allclose(k, k.flat[0], rtol=1e-5)
    assert fixed[:, 0, 0].max() == 0
    start = np.asarray(prm.image(prm.init(jax.random.PRNGKey(3))))
    np.testing.assert_allclose(latent_magnitude(start), np.broadcast_to(fixed, (2, *fixed.shape)), atol=2e-5 * fixed.max())
    v = jaxvis.visualize(tiny, [O.class_logit("cat"), O.class_logit("eel")], preset="maco", steps=6, batch=2,
                         spectrum=spec, progress=False)
    assert v.raw.shape == (4, 32, 32, 3) and np.ptp(v.trace[0, :, 0]) > 0  # it did move
    got = latent_magnitude(v.raw)
    np.testing.assert_allclose(got, np.broadcast_to(fixed, got.shape), atol=2e-5 * fixed.max())


def numpy_image(phase: np.ndarray, mag: np.ndarray, w: int) -> np.ndarray:
    """float64 reference of the maco image: odd phase on the real columns, irfft2, recorrelate, sigmoid."""
    ph = phase.copy()
    h = ph.shape[-2]
    neg = (-np.arange(h)) % h
    for c in [0] + ([w // 2] if w % 2 == 0 else []):
        ph[..., c] = 0.5 * (phase[..., c] - phase[..., neg, c])
    z = np.fft.irfft2(mag * np.exp(1j * ph), s=(h, w), norm="ortho")
    return 1 / (1 + np.exp(-(np.moveaxis(z, -3, -1) @ COLOR_T)))


def test_phase_gradients_match_finite_differences(photos_spectrum):
    for size in ((12, 10), (11, 9)):  # even width: two real columns; odd: one
        prm = P.Param(size, 1, "maco", True, "sigmoid", 1.0, spectrum=photos_spectrum.resized(size))
        phase = np.asarray(prm.init(jax.random.PRNGKey(1)), np.float64)
        wts = np.random.default_rng(2).normal(size=(1, *size, 3))
        np.testing.assert_allclose(np.asarray(prm.image(jnp.asarray(phase, jnp.float32))),
                                   numpy_image(phase, prm.magnitude.astype(np.float64), size[1]), atol=1e-5)
        g = np.asarray(jax.grad(lambda p: jnp.sum(prm.image(p) * wts))(jnp.asarray(phase, jnp.float32)))
        rng = np.random.default_rng(5)
        picks = [(0, c, 0, 0) for c in range(3)] + [(0, 1, 3, 0), (0, 2, size[0] - 3, 0), (0, 0, 2, size[1] // 2)]
        picks += [tuple(rng.integers(0, n) for n in phase.shape) for _ in range(8)]
        for idx in picks:
            e = np.zeros_like(phase)
            e[idx] = 1e-6
            fd = (np.sum(numpy_image(phase + e, prm.magnitude, size[1]) * wts)
                  - np.sum(numpy_image(phase - e, prm.magnitude, size[1]) * wts)) / 2e-6
            assert abs(g[idx] - fd) <= 1e-3 * np.abs(g).max() + 1e-4 * abs(fd), (size, idx, g[idx], fd)
        assert np.all(g[0, :, 0, 0] == 0)  # the DC has no magnitude: its phase does nothing


def test_transparency_is_the_sum_of_input_gradient_magnitudes(tiny, photos_spectrum):
    """Replayed step by step with plain JAX: SGD on the phase, no transforms, Σ_t |∂(−objective)/∂x_t|."""
    spec = photos_spectrum.resized((32, 32))
    prm = P.Param((32, 32), 1, "maco", True, "sigmoid", 1.0, spectrum=spec)
    config = core.StepConfig(prm, TF.get("none"), optax.sgd(1.0), ("conv2",), transparency=True)
    obj = O.channel("conv2", 5)
    lr, steps = 0.3, 4
    res = core.optimize(tiny, [obj], config, levels=[((32, 32), steps)], learning_rate=lr, seed=7, unit_ids=[11],
                        progress=False)
    # the unit's start: init key = first half of fold_in(PRNGKey(seed), unit id) (optimize's documented streams)
    p = prm.init(jax.random.split(jax.random.fold_in(jax.random.PRNGKey(7), 11))[0])
    fn = tiny.function(["conv2"])
    neg_obj = lambda x: -jnp.sum(obj({"conv2": fn(tiny.params, 255.0 * x)["conv2"]}))  # noqa: E731
    acc = np.zeros((1, 32, 32, 3))
    for _ in range(steps):
        x, pull = jax.vjp(prm.image, p)
        gx = jax.grad(neg_obj)(x)
        acc += np.abs(np.asarray(gx))
        p = p - lr * pull(gx)[0]
    np.testing.assert_allclose(res.transparency[0], acc, rtol=1e-3, atol=1e-4 * acc.max())
    np.testing.assert_allclose(res.images[0], np.asarray(prm.image(p)), atol=1e-4)


def test_maco_batches_like_every_preset(tiny, photos_spectrum):
    objs = [O.channel("conv2", c) for c in (1, 4, 9)]
    kw = dict(preset="maco", steps=4, spectrum=photos_spectrum, progress=False)
    both = jaxvis.visualize(tiny, objs, **kw)
    assert both.transparency is not None and both.transparency.shape == both.raw.shape
    assert both.settings["param"] == "maco" and "Spectrum" in both.settings["spectrum"]
    for i in (0, 2):
        one = jaxvis.visualize(tiny, objs[i], **kw)
        np.testing.assert_allclose(one.raw[0], both.raw[i], atol=1e-4)
        np.testing.assert_allclose(one.transparency[0], both.transparency[i], rtol=1e-3, atol=1e-5)
    counts = dict(tiny.trace_counts)
    jaxvis.visualize(tiny, [O.channel("conv2", c) for c in (2, 3, 5)], seed=4, **kw)
    assert dict(tiny.trace_counts) == counts, "other units or seeds must not retrace"


def test_random_crops_cover_the_image_and_follow_the_schedule():
    x = jnp.broadcast_to(jnp.arange(40.0)[None, :, None, None], (2, 40, 40, 3))  # the row index
    t = TF.RandomCrops(n=5, box=(1.0, 0.25), box_sd=0.0, centre_sd=0.0, noise=0.0, out=(20, 20))
    assert t.out_size((40, 40)) == (20, 20)
    start = np.asarray(t(jax.random.PRNGKey(0), x, 0.0))
    end = np.asarray(t(jax.random.PRNGKey(0), x, 1.0))
    assert start.shape == (10, 20, 20, 3)
    # whole image at the start (rows 0.5 … 38.5 sampled), the middle quarter at the end
    np.testing.assert_allclose(start[0, [0, -1], 0, 0], [0.5, 38.5], atol=1e-4)
    np.testing.assert_allclose(end[0, [0, -1], 0, 0], [14.75, 24.25], atol=1e-4)
    noisy = TF.RandomCrops(n=2, noise=0.1)(jax.random.PRNGKey(1), jnp.zeros((1, 16, 16, 3)), 0.5)
    assert 0.08 < float(jnp.std(noisy)) < 0.12


def test_natural_spectrum_closed_forms_and_any_channel_count():
    rng = np.random.default_rng(3)
    u = np.cumsum(rng.normal(size=(16, 20, 2)), axis=1) * 20 + 128  # strong left–right jump across the border
    p = periodic_component(u)
    free = sum(np.diff(np.pad(u, [(1, 1) if a == ax else (0, 0) for a in range(3)], mode="edge"), 2, axis=ax)
               for ax in (0, 1))  # Laplacian over the neighbours inside the image only
    periodic = sum(np.roll(p, 1, ax) + np.roll(p, -1, ax) - 2 * p for ax in (0, 1))
    np.testing.assert_allclose(periodic, free, atol=1e-8)  # Moisan: Δ_periodic p = Δ_free u, same mean
    np.testing.assert_allclose(p.mean((0, 1)), u.mean((0, 1)), atol=1e-9)
    # one crop of the whole image, no decorrelation: exactly |rfft2| (orthonormal) of its periodic component
    s = jaxvis.natural_spectrum([u], (16, 20), crops=1, decorrelate_colors=False)
    want = np.abs(np.fft.rfft2(periodic_component(u / 255.0 - 0.5), axes=(0, 1), norm="ortho"))
    np.testing.assert_allclose(s.magnitude, np.moveaxis(want, -1, 0), rtol=1e-4, atol=1e-6)
    flat = jaxvis.natural_spectrum([np.full((30, 40, 2), [51.0, 204.0])], (10, 12), crops=3, decorrelate_colors=False)
    want = np.zeros((2, 10, 7))
    want[:, 0, 0] = np.abs(np.array([0.2, 0.8]) - 0.5) * np.sqrt(120)
    np.testing.assert_allclose(flat.magnitude, want, atol=1e-5)
    four = jaxvis.natural_spectrum(np.random.default_rng(0).uniform(0, 255, (2, 30, 30, 4)), 12, crops=3)
    assert four.magnitude.shape == (4, 12, 7)
    prm = P.Param((12, 12), 1, "maco", False, "sigmoid", 1.0, spectrum=four)
    assert prm.image(prm.init(jax.random.PRNGKey(0))).shape == (1, 12, 12, 4)
    with pytest.raises(VisualizationError, match="3 channels"):
        P.Param((12, 12), 1, "maco", True, "sigmoid", 1.0, spectrum=four)
    with pytest.raises(VisualizationError, match="magnitude spectrum of an image"):
        P.Param((13, 12), 1, "maco", False, "sigmoid", 1.0, spectrum=four)
    with pytest.raises(VisualizationError, match="channel counts"):
        jaxvis.natural_spectrum([np.zeros((20, 20, 3)), np.zeros((20, 20, 1))], 8)


def test_shipped_spectrum_is_small_natural_and_resamples():
    assert SHIPPED.stat().st_size < 300_000
    s = default_spectrum((256, 256))
    m = s.magnitude
    assert m.shape == (3, 256, 129)
    np.testing.assert_allclose(m[:, 1:, 0], m[:, :0:-1, 0], rtol=1e-3)  # a real image's spectrum: even on column 0
    f = P.rfft2d_freqs(256, 256)
    ring = lambda a, lo, hi: a[:, (f >= lo) & (f < hi)].mean()  # noqa: E731
    slope = np.log(ring(m, 0.2, 0.25) / ring(m, 0.02, 0.025)) / np.log(10)
    assert -1.6 < slope < -0.8, slope  # natural images fall off roughly as 1/f
    r = s.resized((100, 73))
    assert r.magnitude.shape == (3, 100, 37) and isinstance(r, Spectrum)
    g = P.rfft2d_freqs(100, 73)
    np.testing.assert_allclose(r.magnitude[:, (g > 0.1) & (g < 0.2)].mean(), ring(m, 0.1, 0.2), rtol=0.1)
    assert hash(s) == hash(default_spectrum((256, 256))) and s == default_spectrum((256, 256))
