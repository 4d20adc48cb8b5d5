"""Embedding atlas: codes against the function itself, PCA against an eigendecomposition, grid
assignment without repeats, t-SNE when openTSNE is installed, and the missing-extra error."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import tiny_nets

from jaxvis.maps.embedding import EmbeddingError, assign_grid, atlas_image, codes, default_layer, embedding, pca_2d


@pytest.fixture(scope="module")
def photos():
    r = np.random.default_rng(0)
    return r.uniform(0, 255, (12, 32, 32, 3)).astype(np.float32)


def test_codes_are_position_means(photos):
    net = tiny_nets.pure_net()
    c = codes(net, photos, "relu2", batch_size=5)  # 5, 5, 2 (+3 padding): one compiled shape
    ref = np.asarray(tiny_nets.apply(tiny_nets.params(), tiny_nets.preprocess(photos))["relu2"]).mean(axis=(1, 2))
    np.testing.assert_allclose(c, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_pca_against_covariance_eigenvectors():
    r = np.random.default_rng(1)
    x = r.normal(size=(40, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
    xy, ev = pca_2d(x)
    xc = x - x.mean(0)
    w, v = np.linalg.eigh(np.cov(xc, rowvar=False))
    ref = xc @ v[:, ::-1][:, :2]
    for k in range(2):  # components are defined up to sign
        s = np.sign(xy[:, k] @ ref[:, k])
        np.testing.assert_allclose(xy[:, k], s * ref[:, k], atol=1e-9 * np.abs(ref).max())
    np.testing.assert_allclose(ev, w[::-1][:2] / w.sum(), rtol=1e-9)


def test_embedding_pca_of_codes(photos):
    net = tiny_nets.pure_net()
    e = embedding(net, list(photos), "relu2", method="pca", batch_size=12)
    assert e.coords.shape == (12, 2) and e.layer == "relu2" and e.method == "pca"
    np.testing.assert_allclose(e.coords, pca_2d(e.codes)[0])


@pytest.mark.parametrize("assign", ["linear", "greedy"])
def test_grid_has_no_repeats(assign):
    r = np.random.default_rng(2)
    xy = r.normal(size=(50, 2))
    t = assign_grid(xy, (5, 5), assign=assign)
    assert t.shape == (5, 5) and (t >= 0).all() and len(set(t.ravel())) == 25
    few = assign_grid(xy[:7], (4, 4), assign=assign)
    used = few[few >= 0]
    assert len(used) == 7 and sorted(used) == list(range(7))


def test_linear_assignment_beats_greedy_and_corners_are_exact():
    r = np.random.default_rng(3)
    xy = r.uniform(size=(30, 2))
    xy[:4] = [[0, 1], [1, 1], [0, 0], [1, 0]]  # the extremes land in the corner cells
    cost = lambda t: sum(((np.array([(c + .5) / 6, 1 - (rr + .5) / 6]) - (xy[i] - xy.min(0)) / np.ptp(xy, 0)) ** 2
                          ).sum() for (rr, c), i in np.ndenumerate(t) if i >= 0)  # noqa: E731
    lin, gr = assign_grid(xy, (6, 6)), assign_grid(xy, (6, 6), assign="greedy")
    assert cost(lin) <= cost(gr) + 1e-12
    assert (lin[0, 0], lin[0, -1], lin[-1, 0], lin[-1, -1]) == (0, 1, 2, 3)


def test_atlas_image_places_thumbnails():
    ims = [np.full((20, 30, 3), 10 * i, np.uint8) for i in range(4)]
    img = atlas_image([[0, 1], [1, 1], [0, 0], [1, 0]], ims, (2, 2), cell=8)
    assert img.shape == (16, 16, 3) and img.dtype == np.uint8
    assert img[0, 0, 0] == 0 and img[0, 8, 0] == 10 and img[8, 0, 0] == 20 and img[15, 15, 0] == 30


def test_missing_extra_is_named(monkeypatch, photos):
    monkeypatch.setitem(sys.modules, "openTSNE", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "umap", None)
    for method, pkg in (("tsne", "openTSNE"), ("umap", "umap-learn")):
        with pytest.raises(EmbeddingError, match=rf"{pkg}.*jaxvis\[atlas\]"):
            embedding(tiny_nets.pure_net(), photos, "relu2", method=method)
    with pytest.raises(EmbeddingError, match="pca, tsne, umap"):
        embedding(tiny_nets.pure_net(), photos, "relu2", method="mds")


def test_tsne_when_installed(photos):
    pytest.importorskip("openTSNE", reason="openTSNE (jaxvis[atlas]) not installed")
    x = np.concatenate([np.random.default_rng(4).normal(size=(15, 8)) + 10 * np.eye(8)[0],
                        np.random.default_rng(5).normal(size=(15, 8)) - 10 * np.eye(8)[0]])
    from jaxvis.maps.embedding import _tsne
    xy = _tsne(x, 0, perplexity=5)
    assert xy.shape == (30, 2) and np.isfinite(xy).all()
    # two well-separated clusters stay separated: every point is nearer its own cluster's mean
    a, b = xy[:15].mean(0), xy[15:].mean(0)
    assert (np.linalg.norm(xy[:15] - a, axis=1) < np.linalg.norm(xy[:15] - b, axis=1)).all()


def test_default_layer(squeezenet, alexnet):
    assert default_layer(squeezenet) == "fire9-concat"
    assert default_layer(alexnet) == "pool5"  # fc7's weights are not shipped
