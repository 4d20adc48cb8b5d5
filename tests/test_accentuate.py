"""Feature accentuation (`jaxvis.accentuate`): starts exactly at the photo, the pull towards it is the L2
distance of the spectra (Parseval), it trades objective against distance, batches over objectives, saves."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tiny_nets as T
from PIL import Image

import jaxvis
from jaxvis.engine import objectives as O
from jaxvis.engine import param as P
from jaxvis.errors import VisualizationError


@pytest.fixture(scope="module")
def tiny():
    return T.pure_net()


@pytest.fixture(scope="module")
def photo():
    rng = np.random.default_rng(0)
    a = np.cumsum(np.cumsum(rng.normal(size=(40, 40, 3)), 0), 1)
    return (255 * (a - a.min()) / np.ptp(a)).astype(np.uint8)


def test_anchor_weights_give_the_latent_images_distance():
    """Σ w (P − P0)² over the stored half spectrum = ‖z − z0‖² of the images before the sigmoid (Parseval)."""
    for size in ((12, 10), (9, 7)):
        prm = P.fft(size, batch=2, decay_power=1.5)
        k1, k2 = jax.random.split(jax.random.PRNGKey(0))
        p0 = prm.from_image(jax.random.uniform(k1, (2, *size, 3), minval=0.1, maxval=0.9))
        p = p0 + 0.3 * jax.random.normal(k2, p0.shape)
        p = prm.from_image(prm.image(p))  # a real image's (Hermitian) spectrum, as the optimisation keeps
        logit = lambda q: jnp.log(prm.image(q) / (1 - prm.image(q)))  # noqa: E731
        z = lambda q: logit(q) @ jnp.asarray(np.linalg.inv(P.COLOR.T))  # noqa: E731  decorrelated latent
        want = float(jnp.sum((z(p) - z(p0)) ** 2))
        got = float(jnp.sum(jnp.asarray(prm.anchor_weights()) * (p - p0) ** 2))
        np.testing.assert_allclose(got, want, rtol=2e-3)


def test_starts_at_the_photo_and_the_weight_trades_objective_for_distance(tiny, photo):
    obj = O.class_logit("cat")
    kw = dict(steps=12, transforms="none", progress=False)
    held = jaxvis.accentuate(tiny, photo, obj, weight=1e6, **kw)
    free = jaxvis.accentuate(tiny, photo, obj, weight=0.0, **kw)
    mid = jaxvis.accentuate(tiny, photo, obj, weight=1e-3, **kw)
    assert held.photo.shape == (32, 32, 3)
    # the first trace value is the objective on the photo itself
    logits = tiny.apply(tiny.params, jnp.asarray(held.photo[None], jnp.float32), ["logits"])["logits"]
    np.testing.assert_allclose(held.trace[0, 0], float(logits.reshape(-1)[2]), rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(free.trace[0], held.trace[0], rtol=1e-6)
    assert held.distance[0] < 0.01  # Adam still steps ~lr per coefficient around the photo
    assert free.trace[-1, 0] > mid.trace[-1, 0] > held.trace[-1, 0] + 0.01
    assert free.distance[0] > mid.distance[0] > held.distance[0]


def test_batched_over_objectives_and_saved(tiny, photo, tmp_path):
    objs = [O.class_logit(c) for c in ("ant", "dog", "eel")]
    both = jaxvis.accentuate(tiny, photo, objs, steps=5, progress=False)
    assert both.images.shape == (3, 32, 32, 3) and both.labels == ["ant", "dog", "eel"]
    one = jaxvis.accentuate(tiny, photo, objs[1], steps=5, progress=False)
    np.testing.assert_allclose(one.raw[0], both.raw[1], atol=1e-4)
    out = both.save(tmp_path / "acc.png")
    assert Image.open(out).size[0] > 3 * Image.open(out).size[1]  # one row: the photo, then three images
    with pytest.raises(VisualizationError, match="weight"):
        jaxvis.accentuate(tiny, photo, objs[0], weight=-1.0)
    with pytest.raises(VisualizationError, match="one photo"):
        jaxvis.accentuate(tiny, np.stack([photo, photo]), objs[0])
