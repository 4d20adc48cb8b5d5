"""Tiled activations (jaxvis.maps.tiling + activations(tile=...)) against the whole image in one pass.

Reference: the same network on the whole image at once (tile=0), an independent computation of
every output position; tolerances are fp32 rounding (different crop shapes may pick different
XLA convolution algorithms), atol = 1e-5 · max|ref|.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tiny_nets

import jaxvis
from jaxvis.maps import activations as api
from jaxvis.errors import ImageError
from jaxvis.maps.tiling import field_halo, layer_tiles, tiles_1d

PHOTO = Path(__file__).resolve().parent.parent / "examples" / "images" / "grace_hopper.jpg"


def close(got, ref):
    assert got.shape == ref.shape and np.abs(ref).max() > 0
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def traces(net, names):
    return net.trace_counts[("net", "forward", tuple(names), True, "standard")]


def test_layer_tiles_partition_every_output_once():
    # strides 2, 4, 8 (SqueezeNet's conv1, fire3, pool3) on an odd length: each layer's outputs are
    # owned exactly once, crops are grid-aligned, of one length, and reach a halo past what they own.
    strides, halos, outputs = [2, 4, 8], [8, 32, 40], [151, 75, 38]
    tiles = layer_tiles(301, strides, halos, outputs, 64)
    assert len(tiles) > 3 and len({b - a for a, b, _ in tiles}) == 1
    for k, (s, m) in enumerate(zip(strides, outputs)):
        owned = np.zeros(m, int)
        for a, b, own in tiles:
            assert a % 8 == 0
            j0, j1 = own[k]
            owned[j0 + a // s:j1 + a // s] += 1
            if j1 > j0:  # interior edges keep a full halo of context
                assert a == 0 or (j0 + a // s) * s - a >= halos[k]
                assert b == 301 or b - (j1 + a // s) * s >= halos[k] - s
        assert (owned == 1).all()
    assert tiles_1d(301, 151, 2, 8, 1000) == [(0, 301, 0, 151)]
    assert field_halo(31, 7.0, 8) == 40


def test_tiled_equals_whole_on_the_tiny_function_net():
    net = tiny_nets.pure_net()  # from_function: receptive fields measured from gradients
    x = np.random.default_rng(0).uniform(0, 255, (2, 75, 61, 3)).astype(np.float32)
    names = ["conv1", "relu2", "pool", "logits"]
    ref = jaxvis.activations(net, x, layers=names, tile=0)
    before = traces(net, names[:2])
    got = jaxvis.activations(net, x, layers=names, tile=16)
    assert traces(net, names[:2]) == before + 1  # every crop has one shape: one compile for all tiles
    assert len(layer_tiles(75, [2], [8], [38], 16)) > 2  # several tiles, edge tiles included
    for k in names:  # pool/logits (global) are computed on the whole image alongside
        close(got[k], ref[k])
    jaxvis.activations(net, x[:, ::-1], layers=names, tile=16)
    assert traces(net, names[:2]) == before + 1  # same sizes: the compiled crop is reused
    close(jaxvis.activations(net, x[0], "relu2", tile=16), ref["relu2"][0])


def test_tiled_equals_whole_on_squeezenet(squeezenet):
    # Odd sizes: 'same'-free padded convs and ceil-mode pools end differently per length modulo the stride.
    x = np.random.default_rng(1).uniform(0, 255, (301, 403, 3)).astype(np.float32)
    names = ["conv1", "fire3-concat", "pool3"]
    ref = jaxvis.activations(squeezenet, x, layers=names, tile=0)
    before = traces(squeezenet, names)
    got = jaxvis.activations(squeezenet, x, layers=names, tile=64)
    assert traces(squeezenet, names) == before + 1
    for k in names:
        close(got[k], ref[k])
    close(jaxvis.activations(squeezenet, x, "fire3-concat", tile=48), ref["fire3-concat"])


def test_automatic_tiling_follows_the_memory_estimate(monkeypatch):
    net = tiny_nets.pure_net()
    x = np.random.default_rng(2).uniform(0, 255, (301, 283, 3)).astype(np.float32)
    ref = jaxvis.activations(net, x, "conv2", tile=0)
    monkeypatch.setattr(api, "TILE_MIN_PIXELS", 0)
    before = traces(net, ["conv2"])
    close(jaxvis.activations(net, x, "conv2"), ref)  # estimate far below 1 GiB: the whole image
    assert traces(net, ["conv2"]) == before
    monkeypatch.setattr(api, "TILE_ABOVE_BYTES", 1000)
    monkeypatch.setattr(api, "TILE_BYTES", 1)  # the smallest automatic tile: 256 px, 2×2 tiles here
    close(jaxvis.activations(net, x, "conv2"), ref)
    assert traces(net, ["conv2"]) == before + 1  # tiled: one new (crop) shape
    with pytest.raises(ImageError, match="tile must be"):
        jaxvis.activations(net, x, "conv2", tile=8)


@pytest.mark.slow
def test_tiled_equals_whole_on_a_6000x4000_photo(squeezenet):
    from PIL import Image
    x = np.asarray(Image.open(PHOTO).convert("RGB").resize((6000, 4000), Image.Resampling.BILINEAR))
    ref = jaxvis.activations(squeezenet, x, "conv1", tile=0)
    before = traces(squeezenet, ["conv1"])
    got = jaxvis.activations(squeezenet, x, "conv1")  # automatic: 1.4 GiB of output is over the estimate
    assert traces(squeezenet, ["conv1"]) == before + 1
    close(got, ref)


def test_cli_activations_tile_option(tmp_path, capsys, monkeypatch):
    from PIL import Image

    from jaxvis.cli import main
    with pytest.raises(SystemExit):
        main(["activations", "--image", str(PHOTO), "--tile", "7"])
    assert "--tile must be 0 (off) or in 16..16384" in capsys.readouterr().err
    seen = []

    def spy(net, image, layer, *, tile=None):
        seen.append(tile)
        return real(net, image, layer, tile=tile)
    real = api.activations
    monkeypatch.setattr(api, "activations", spy)
    out = tmp_path / "t.png"
    assert main(["activations", "--image", str(PHOTO), "--layer", "fire2-concat", "--resize", "stretch",
                 "--tile", "48", "--grid", "8x16", "--out", str(out)]) == 0
    assert seen == [48] and Image.open(out).size == (16 * 56, 8 * 56)
