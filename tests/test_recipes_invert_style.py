"""Feature inversion and neural style transfer (jaxvis.recipes.invert / style) and SSIM.

References: a torch port of the tiny test network (CS231n's `gram_matrix`/`style_loss`/`content_loss`
written in torch, float64) for the losses and their image gradients; scikit-image's
`structural_similarity` for SSIM.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvis.engine import objectives as O
from jaxvis.errors import ImageError, LayerError, VisualizationError
from jaxvis.recipes.invert import invert
from jaxvis.recipes.similarity import ssim
from jaxvis.recipes.style import _terms, style_transfer
from tests import tiny_nets

REPO = Path(__file__).resolve().parent.parent
PHOTOS = Path(os.environ.get("JAXVIS_SHARED", REPO.parent / "shared")) / "images"
STYLE_LAYERS = ["relu1", "relu2"]


@pytest.fixture(scope="module")
def tiny():
    return tiny_nets.pure_net()


def _photo(name: str) -> Path:
    p = PHOTOS / name
    if not p.is_file():
        pytest.skip(f"shared photo {p} is absent (set JAXVIS_SHARED to the shared folder)")
    return p


def _rand_image(seed: int, hw=(32, 32)) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (*hw, 3)).astype(np.float32)


# ------------------------------------------------------------------------------ torch reference
def _torch_tiny(p):
    """The tiny network's relu1/relu2 in torch float64 (TF 'SAME' padding written out), 0..255 NCHW input."""
    import torch
    import torch.nn.functional as F
    t = lambda a: torch.tensor(np.asarray(a, np.float64))  # noqa: E731
    w1, w2 = t(p["w1"]).permute(3, 2, 0, 1), t(p["w2"]).permute(3, 2, 0, 1)
    b1, b2 = t(p["b1"]), t(p["b2"])

    def f(x):
        x = x / 255.0 - 0.5
        r1 = F.relu(F.conv2d(F.pad(x, (0, 1, 0, 1)), w1, b1, stride=2))  # SAME, stride 2, even size: pad after
        r2 = F.relu(F.conv2d(r1, w2, b2, padding=1))
        return {"relu1": r1, "relu2": r2}

    return f


def _gram_matrix(features):
    """CS231n's gram_matrix(features, normalize=True) for N×C×H×W torch features."""
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (h * w * c)


def test_gram_and_losses_match_torch(tiny):
    """Style (Gram), content and TV losses and their image gradients equal CS231n's torch formulas."""
    import torch
    x, sty, con = _rand_image(0), _rand_image(1), _rand_image(2)
    tf = _torch_tiny(tiny_nets.params())
    to_t = lambda a: torch.tensor(np.asarray(a, np.float64)).permute(2, 0, 1)[None]  # noqa: E731
    with torch.no_grad():
        s_ref, c_ref = tf(to_t(sty)), tf(to_t(con))
    w = [3.0, 0.5]
    xt = to_t(x).requires_grad_(True)
    acts_t = tf(xt)
    style_t = sum(wl * torch.sum((_gram_matrix(acts_t[l]) - _gram_matrix(s_ref[l])) ** 2)
                  for wl, l in zip(w, STYLE_LAYERS))
    content_t = 0.7 * torch.sum((acts_t["relu2"] - c_ref["relu2"]) ** 2)
    x01 = xt / 255.0
    tv_t = 2.0 * (torch.sum((x01[:, :, 1:] - x01[:, :, :-1]) ** 2) + torch.sum((x01[:, :, :, 1:] - x01[:, :, :, :-1]) ** 2))
    total_t = style_t + content_t + tv_t
    g_ref = torch.autograd.grad(total_t, xt)[0][0].permute(1, 2, 0).numpy()

    # jaxvis: the objectives style_transfer builds (normalize=False = CS231n's losses), on the engine's acts.
    fn = tiny.function(STYLE_LAYERS)
    a_sty = fn(tiny.params, jnp.asarray(sty[None]))
    a_con = fn(tiny.params, jnp.asarray(con[None]))
    grams = {l: O.gram(a_sty[l])[0] for l in STYLE_LAYERS}
    content, styles, tv = _terms("relu2", a_con["relu2"][0], STYLE_LAYERS, grams, w, 0.7, 2.0, (32, 32), False)
    style = sum(styles)

    def terms(img255):
        acts = dict(fn(tiny.params, img255[None]))
        acts[O.INPUT] = img255[None] / 255.0
        return style(acts)[0], content(acts)[0], tv(acts)[0]

    terms = jax.jit(terms)
    s, c, t = terms(jnp.asarray(x))
    for got, ref in ((s, style_t), (c, content_t), (t, tv_t)):
        # fp32 sums of ~1e4 products: relative 1e-4 of the reference's scale.
        np.testing.assert_allclose(float(got), float(ref.detach()), rtol=1e-4)
    g = np.asarray(jax.jit(jax.grad(lambda im: sum(terms(im))))(jnp.asarray(x)))
    np.testing.assert_allclose(g, g_ref, atol=1e-4 * np.abs(g_ref).max())
    # gram itself, against torch on the style image's activations
    np.testing.assert_allclose(np.asarray(O.gram(a_sty["relu2"]))[0], _gram_matrix(s_ref["relu2"])[0].numpy(),
                               atol=1e-5 * float(_gram_matrix(s_ref["relu2"]).abs().max()))


# ------------------------------------------------------------------------------ style transfer
def test_style_transfer_lowers_losses_and_batched_equals_alone(tiny):
    """Two sets of style weights in one call: both lower style and content loss below the noise start;
    the second set run alone gives the same image."""
    con, sty = _rand_image(3), _rand_image(4)
    kw = dict(content_layer="relu2", style_layers=STYLE_LAYERS, content_weight=1.0, tv_weight=0.1, steps=32,
              learning_rate=0.02, init="noise", seed=5)
    r = style_transfer(tiny, con, sty, weights=[[1.0, 1.0], [10.0, 10.0]], **kw)
    assert r.images.shape == (2, 32, 32, 3) and r.style_weights.shape == (2, 2)
    assert np.all(r.losses["style"] < 0.5 * r.start_losses["style"])
    assert np.all(r.losses["content"] < 0.5 * r.start_losses["content"])
    # more style weight → relatively less style loss
    assert r.losses["style"][1] / 10 < r.losses["style"][0]
    alone = style_transfer(tiny, con, sty, weights=[10.0, 10.0], **kw)
    np.testing.assert_allclose(alone.raw[0], r.raw[1], atol=2e-3)  # vmapped vs single fp32 convs, 32 Adam steps
    assert alone.settings["content_layer"] == "relu2" and alone.settings["init"] == "noise"


# ------------------------------------------------------------------------------ inversion
def test_invert_batched_over_layers_equals_one_at_a_time(tiny):
    """One optimisation for both layers equals each layer run alone (per_layer: one call per layer, each
    objective reading only its layer); the same seed gives the same bytes."""
    img = _rand_image(6)
    both = invert(tiny, img, ["relu1", "relu2"], steps=30, tv_weight=[0.01, 0.1])
    alone = invert(tiny, img, ["relu1", "relu2"], steps=30, tv_weight=[0.01, 0.1], per_layer=True)
    assert both.images.shape == (1, 2, 32, 32, 3) and both.feature_error.shape == (1, 2)
    assert alone.settings["per_layer"] and not both.settings["per_layer"]
    np.testing.assert_allclose(both.raw, alone.raw, atol=2e-3)  # fp32 rounding of different graphs, 30 Adam steps
    assert np.all(both.feature_error < 0.5)  # from ≈1 at the grey start
    again = invert(tiny, img, ["relu1", "relu2"], steps=30, tv_weight=[0.01, 0.1])
    assert again.images.tobytes() == both.images.tobytes()


def test_invert_conv1_of_a_photo_is_close(squeezenet):
    """SqueezeNet's relu_conv1 code of a photo (96×96 centre crop) inverts to SSIM > 0.8."""
    r = invert(squeezenet, str(_photo("chelsea.png")), "relu_conv1", steps=96, tv_weight=0.05,
               learning_rate=0.03, image_size=96)
    assert r.ssim[0, 0] > 0.8, r.ssim
    assert r.feature_error[0, 0] < 0.1, r.feature_error


def test_bad_input(tiny):
    img = _rand_image(7)
    with pytest.raises(LayerError, match="did you mean 'relu1'"):
        invert(tiny, img, "relu_1", steps=2)
    with pytest.raises(ImageError, match="expected H×W, H×W×C or N×H×W×C"):
        invert(tiny, np.zeros((1, 2, 32, 32, 3)), "relu1", steps=2)
    with pytest.raises(VisualizationError, match="tv_weight must be a non-negative"):
        invert(tiny, img, "relu1", steps=2, tv_weight=-1.0)
    with pytest.raises(VisualizationError, match="one number per layer"):
        invert(tiny, img, ["relu1", "relu2"], steps=2, tv_weight=[1.0])
    with pytest.raises(VisualizationError, match="steps must be"):
        invert(tiny, img, "relu1", steps=0)
    with pytest.raises(VisualizationError, match="non-negative"):
        style_transfer(tiny, img, img, content_layer="relu2", style_layers=STYLE_LAYERS, weights=[1.0, -2.0])
    with pytest.raises(VisualizationError, match="one style weight per style layer"):
        style_transfer(tiny, img, img, content_layer="relu2", style_layers=STYLE_LAYERS, weights=[1.0, 2.0, 3.0])
    with pytest.raises(LayerError, match="did you mean"):
        style_transfer(tiny, img, img, content_layer="relu2", style_layers=["relu1", "rleu2"])
    with pytest.raises(ImageError):
        style_transfer(tiny, np.zeros((32,)), img, content_layer="relu2", style_layers=STYLE_LAYERS)
    with pytest.raises(VisualizationError, match="init must be"):
        style_transfer(tiny, img, img, content_layer="relu2", style_layers=STYLE_LAYERS, init="photo")


# ------------------------------------------------------------------------------ SSIM
def test_ssim_matches_skimage():
    skm = pytest.importorskip("skimage.metrics", reason="scikit-image (test extra) is the SSIM reference")
    r = np.random.default_rng(0)
    a = r.uniform(0, 255, (40, 48, 3))
    b = np.clip(a + r.normal(0, 30, a.shape), 0, 255)
    np.testing.assert_allclose(ssim(a, b), skm.structural_similarity(a, b, channel_axis=-1, data_range=255), atol=1e-9)
    ref = skm.structural_similarity(a, b, channel_axis=-1, data_range=255, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False)
    np.testing.assert_allclose(ssim(a, b, gaussian=True), ref, atol=1e-9)
    np.testing.assert_allclose(ssim(a[..., 0] / 255, b[..., 0] / 255, data_range=1.0),
                               skm.structural_similarity(a[..., 0] / 255, b[..., 0] / 255, data_range=1.0), atol=1e-9)
    assert ssim(a, a) == pytest.approx(1.0)
    with pytest.raises(ImageError):
        ssim(a, b[:, :40])
