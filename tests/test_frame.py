"""The lucid preset's border frame (docs/quality.md): every image pixel is seen as often as the interior
(transform coverage), the Fourier image's hidden margin (numpy reference), and, slow, no frame on conv1 units."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tiny_nets as T

import jaxvis
from jaxvis.engine import objectives as O
from jaxvis.engine import param as P
from jaxvis.engine import presets as PR
from jaxvis.engine import transforms as TF


def _band(hw: int, b: int) -> np.ndarray:
    m = np.zeros((hw, hw), bool)
    m[:b] = m[-b:] = True
    m[:, :b] = m[:, -b:] = True
    return m


def test_standard_transforms_see_the_border_as_often_as_the_interior():
    """Coverage = d Σ transform(key, x) / dx averaged over 128 draws: how much each image pixel reaches the network.
    lucid's zoom is a resize (zooming in cuts nothing); a same-size canvas cut up to 11 px off every side at 227 px
    (border band 0.75 of the interior, corners 0.49); the canvas for zoom 1.045 cuts at most 6 (0.92 at 227 px,
    docs/quality.md). ±10° turns also cut the very corners."""
    hw = 64
    x = jnp.full((1, hw, hw, 3), 0.5)
    keys = jnp.asarray(np.random.default_rng(0).integers(0, 2 ** 32, (128, 2), dtype=np.uint32))  # raw keys
    cov = jax.jit(jax.vmap(lambda k: jax.grad(lambda x: TF.STANDARD(k, x).sum())(x)))(keys)
    c = np.asarray(cov).mean(0)[0, ..., 0]
    inner = c[16:-16, 16:-16].mean()
    # bilinear zoom weights average 1/s² over the draws (s = 0.9..1.1): about 1, the same everywhere
    assert abs(inner - np.mean([1 / (1 + (i - 5) / 50) ** 2 for i in range(11)])) < 0.03
    assert c[_band(hw, 4)].mean() > 0.97 * inner
    assert c[:4, :4].mean() > 0.85 * inner
    # 227 + 24 − 8 = 243, grown to hold ×1.045 (253.9) by an even 12 → 255, − 4 → 251: the canvas keeps its parity,
    # so the zoom-1, angle-0 draw samples the pixel grid exactly (no half-pixel blur). lucid's resize averages
    # 239 px (0.9–1.1 × 243, − 4): 251² is 1.10× its pixels
    assert TF.STANDARD.out_size((227, 227)) == (251, 251)
    lucid = np.mean([(np.ceil(243 * (1 + (i - 5) / 50)) - 4) ** 2 for i in range(11)])
    assert 251 ** 2 <= 1.1 * lucid
    one = TF.affine(x[..., :1] * jnp.arange(hw)[:, None, None], 1.0, 0.0, out_hw=(hw + 4, hw + 4))
    np.testing.assert_allclose(np.asarray(one)[0, 2:-2, 2:-2, 0], np.asarray(x[0, ..., 0] * jnp.arange(hw)[:, None]),
                               atol=1e-4)


def test_fft_margin_is_the_centre_of_a_larger_fourier_image():
    """numpy reference: irfft2 over (H + 2m)×(W + 2m), 1/f spectrum × √(HW / canvas area), centre crop."""
    h, w, m = 10, 12, 3
    prm = P.fft((h, w), batch=2, decorrelate=False, output="none", sd=1.0, margin=m)
    shape = (2, 2, 3, h + 2 * m, (w + 2 * m) // 2 + 1)
    assert jax.eval_shape(prm.init, jax.random.PRNGKey(1)).shape == shape
    p = jnp.asarray(np.random.default_rng(1).normal(size=shape), jnp.float32)
    f = P.rfft2d_freqs(h + 2 * m, w + 2 * m)
    scale = np.sqrt(h * w / ((h + 2 * m) * (w + 2 * m))) / np.maximum(f, 1 / (w + 2 * m))
    spec = (np.asarray(p[0]) + 1j * np.asarray(p[1])) * scale
    full = np.fft.irfft2(spec, s=(h + 2 * m, w + 2 * m), norm="ortho").transpose(0, 2, 3, 1) / 4
    np.testing.assert_allclose(np.asarray(jax.jit(prm.image)(p)), full[:, m:m + h, m:m + w], atol=1e-5)
    assert PR.get("lucid").margin == 16 and PR.get("lucid").border == 12


@pytest.mark.slow
def test_lucid_conv1_units_have_no_frame():
    """The frame itself: 8 conv1 units of the tiny net (linear in the image), lucid preset, 128 steps at 64 px.
    Colour distance between each image's 3-px border band and its centre (RGB 0..1, mean over units): before the
    fix 0.28 (the band saturated white/black), after 0.045 — the texture's own variation."""
    net = T.pure_net()
    v = jaxvis.visualize(net, [O.channel("conv1", c) for c in range(8)], steps=128, image_size=64, progress=False)
    r = v.raw.astype(np.float64)
    band = _band(64, 3)
    centre = np.zeros_like(band)
    centre[9:-9, 9:-9] = True
    dist = np.linalg.norm(r[:, band].mean(1) - r[:, centre].mean(1), axis=1).mean()
    assert dist < 0.12, dist
