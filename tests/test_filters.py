"""Filter pictures: values against the raw weights in closed form, layout, symmetric scaling, errors, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import tiny_nets
from PIL import Image

import jaxvis
from jaxvis.errors import LayerError
from jaxvis.maps.filters import filter_image, filter_tiles


def _tile(img, i, cols, th, tw, gap):
    r, c = divmod(i, cols)
    y, x = gap + r * (th + gap), gap + c * (tw + gap)
    return img[y:y + th, x:x + tw]


def test_rgb_first_layer_closed_form(alexnet):
    f = filter_image(alexnet, "conv1", upsample=3, gap=2)
    w = np.asarray(alexnet.params["conv1"]["kernel"], np.float64)  # 11×11×3×64
    want = np.round(np.clip(0.5 + w / (2 * np.abs(w).max()), 0, 1) * 255)
    cols = 8  # 64 square tiles: MATLAB montage's ceil(sqrt(64))
    th = 11 * 3
    assert f.image.dtype == np.uint8 and f.image.shape == (8 * (th + 2) + 2, 8 * (th + 2) + 2, 3)
    assert f.mode == "rgb" and f.kernel_shape == (11, 11, 3, 64) and f.layer == "conv1"
    for i in (0, 17, 63):
        tile = _tile(f.image, i, cols, th, th, 2)
        np.testing.assert_array_equal(tile[::3, ::3], want[..., i])  # nearest upsampling: every 3rd pixel
        np.testing.assert_array_equal(tile[2::3, 2::3], want[..., i])
    assert (f.image[:2] == 255).all() and (f.image[:, th + 2:th + 4] == 255).all()  # white gaps


def test_symmetric_scaling_zero_is_128():
    k = np.zeros((2, 2, 3, 2))
    k[0, 0, 0, 0], k[1, 1, 2, 1] = 4.0, -2.0
    img, mode, scale = filter_tiles(k, upsample=1, gap=0, columns=2)
    assert mode == "rgb" and scale == 4.0 and img.shape == (2, 4, 3)
    assert img[0, 0, 0] == 255 and img[1, 3, 2] == 64 and img[0, 1, 1] == 128  # 0.5 ± w/8 → 255, 63.75→64, 128


def test_norm_maps_deeper_layer(squeezenet):
    f = filter_image(squeezenet, "fire2-relu_expand3x3", upsample=1, gap=1)  # a ReLU: its convolution's filters
    assert f.layer == "fire2-expand3x3" and f.mode == "norm"
    w = np.asarray(squeezenet.params["fire2-expand3x3"]["kernel"], np.float64)
    n = np.sqrt((w ** 2).sum(axis=2))
    want = np.round(n / n.max() * 255)
    for i in (0, 40):
        np.testing.assert_array_equal(_tile(f.image, i, 8, 3, 3, 1)[..., 0], want[..., i])


def test_function_network_kernel_from_its_graph():
    """A `from_function` network: the convolution and its kernel come from the function's jaxpr (the weight
    leaf the conv reads), so a ReLU leads to the conv before it and the tiles are the raw weights'."""
    f = filter_image(tiny_nets.pure_net(), "relu2", upsample=1, gap=0)
    w = np.asarray(tiny_nets.params()["w2"], np.float64)  # 3×3×8×16
    assert f.layer == "conv2" and f.kernel_shape == (3, 3, 8, 16) and f.mode == "norm"
    n = np.sqrt((w ** 2).sum(axis=2))
    np.testing.assert_array_equal(_tile(f.image, 5, 4, 3, 3, 0)[..., 0], np.round(n[..., 5] / n.max() * 255))


def test_errors(squeezenet):
    with pytest.raises(LayerError, match="layers with filters: conv1"):
        filter_image(squeezenet, "pool1")
    # A kernel computed from the weights is no parameter of the network: the error points to filter_tiles.
    p = tiny_nets.params()
    scaled = jaxvis.from_function(lambda p, x: {"c": tiny_nets._conv(x, 2.0 * p["w1"], p["b1"], 1)}, p, input_size=8)
    with pytest.raises(LayerError, match="filter_tiles"):
        filter_image(scaled, "c")
    with pytest.raises(LayerError, match="mode='norm'"):
        filter_tiles(np.ones((3, 3, 4, 2)), mode="rgb")


def test_cli(tmp_path, capsys):
    from jaxvis.cli import main
    out = tmp_path / "f.png"
    assert main(["filters", "--layer", "conv1", "--upsample", "2", "--out", str(out)]) == 0
    im = np.asarray(Image.open(out))
    assert im.shape == (8 * 7 + 1, 8 * 7 + 1, 3) and str(out) in capsys.readouterr().out
