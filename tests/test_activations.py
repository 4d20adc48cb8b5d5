"""Activations, the activation-reading tools, analyze_network and their CLI.

References: closed forms (ReLU, Caffe ceil-mode pooling arithmetic, parameter counts of
the published architectures: SqueezeNet v1.1 1,235,496; torchvision AlexNet 61,100,840),
MATLAB's documented semantics (max(max(max(act))), mat2gray over the whole array,
imtile row-major filling) and hand-made arrays. mat2gray/imresize/imtile themselves are
covered by tests/test_display.py.
"""

from __future__ import annotations

import math
import os

import jax
import numpy as np
import pytest

import jaxvis
from jaxvis.maps.channel_views import (activation_grid, channel_image, heatmap_overlay, side_by_side,
                                     strongest_channel)
from jaxvis.nets.analysis import LayerInfo, NetworkAnalysis, analyze_network
from jaxvis.cli import main
from jaxvis.imaging.display import DisplayError, imresize, mat2gray, overlay
from jaxvis.errors import ImageError, LayerError
from jaxvis.imaging.images import fit_to_size, read_image

from pathlib import Path

PHOTO = Path(__file__).resolve().parent.parent / "examples" / "images" / "grace_hopper.jpg"


@pytest.fixture(scope="module")
def photo227(squeezenet) -> np.ndarray:
    # MATLAB's example: imresize(im, inputSize(1:2)).
    return fit_to_size(read_image(PHOTO)[None].astype(np.float32), squeezenet.input_size, "stretch")[0]


@pytest.fixture(scope="module")
def all_acts(squeezenet, photo227) -> dict:
    """Every layer of SqueezeNet for the photo, in one jitted call."""
    return jaxvis.activations(squeezenet, photo227, layers=squeezenet.layers.names)


# ------------------------------------------------------------------ activations
def test_relu_layer_is_relu_of_its_convolution(all_acts):
    sq, relu = all_acts["fire6-squeeze1x1"], all_acts["fire6-relu_squeeze1x1"]
    assert sq.shape == (14, 14, 48) and sq.min() < 0 < sq.max()  # the ReLU has something to clip
    np.testing.assert_array_equal(relu, np.maximum(sq, 0))


def test_multi_layer_call_equals_single_layer_calls(squeezenet, photo227, all_acts):
    for name in ("conv1", "fire6-squeeze1x1", "prob"):
        one = jaxvis.activations(squeezenet, photo227, name)
        np.testing.assert_allclose(all_acts[name], one, rtol=1e-5, atol=1e-5 * np.abs(one).max())
    pair = jaxvis.activations(squeezenet, photo227, layers=["fire6-squeeze1x1", "conv1"])
    assert list(pair) == ["fire6-squeeze1x1", "conv1"]
    np.testing.assert_allclose(pair["conv1"], all_acts["conv1"], rtol=1e-5, atol=1e-3)


def _caffe_sizes(n: int) -> dict[str, int]:
    """SqueezeNet v1.1 map sizes from the layer arithmetic: conv1 3×3/2 (floor), pools 3×3/2 rounding up."""
    conv = lambda n: (n - 3) // 2 + 1  # noqa: E731
    pool = lambda n: math.ceil((n - 3) / 2) + 1  # noqa: E731
    c1 = conv(n)
    p1 = pool(c1)
    p3 = pool(p1)
    p5 = pool(p3)
    return {"conv1": c1, "pool1": p1, "fire2-concat": p1, "pool3": p3, "fire6-squeeze1x1": p5, "conv10": p5}


@pytest.mark.parametrize("hw", [(454, 340), (229, 231)])
def test_larger_input_gives_proportionally_larger_maps(squeezenet, hw):
    # 229 and 231 give conv1 114/115 where ceil and floor pooling differ (pool1: 57 vs 56).
    names = ["conv1", "pool1", "fire2-concat", "pool3", "fire6-squeeze1x1", "conv10"]
    img = np.random.default_rng(0).uniform(0, 255, (*hw, 3)).astype(np.float32)
    acts = jaxvis.activations(squeezenet, img, layers=names)
    eh, ew = _caffe_sizes(hw[0]), _caffe_sizes(hw[1])
    channels = {"conv1": 64, "pool1": 64, "fire2-concat": 128, "pool3": 128, "fire6-squeeze1x1": 48, "conv10": 1000}
    for n in names:
        assert acts[n].shape == (eh[n], ew[n], channels[n]), n
    if hw == (454, 340):  # twice the 227 input's height → about twice its maps' height
        assert acts["conv1"].shape[0] == 2 * 113 and acts["fire6-squeeze1x1"].shape[0] == 2 * 14
    # and analyze_network predicts exactly these shapes for that input size, without computing
    rows = {r.name: r for r in analyze_network(squeezenet, hw).rows}
    for n in names:
        assert rows[n].activation_size == acts[n].shape, n


def test_batch_of_images(squeezenet, photo227, all_acts):
    batch = np.stack([photo227, photo227[:, ::-1]])
    out = jaxvis.activations(squeezenet, batch, "conv1")
    assert out.shape == (2, 113, 113, 64)
    np.testing.assert_allclose(out[0], all_acts["conv1"], rtol=1e-5, atol=1e-3)


# ------------------------------------------------------------------ analyze_network
def _param_count(tree) -> int:
    return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))


def test_analyze_squeezenet_totals_and_every_activation_size(squeezenet, all_acts):
    report = analyze_network(squeezenet)
    assert report.total_learnables == 1_235_496 == _param_count(squeezenet.params)
    assert report.architecture_learnables == report.total_learnables and report.not_loaded == []
    assert [r.name for r in report.rows] == squeezenet.layers.names
    for r in report.rows:  # every layer: eval_shape prediction == the shape actually produced
        assert r.activation_size == all_acts[r.name].shape, r.name
    conv1 = report.rows[1]
    assert (conv1.type, conv1.learnables, conv1.learnable_count, conv1.loaded) == (
        "Convolution", {"Weights": (3, 3, 3, 64), "Bias": (1, 1, 64)}, 3 * 3 * 3 * 64 + 64, True)
    assert report.rows[2].learnables == {} and report.rows[2].loaded is None
    text = str(report)
    assert "1,235,496" in text and "Weights 1×1×512×1000, Bias 1×1×1000" in text
    assert text.count("\n") == len(report.rows) + 4


def test_analyze_alexnet_missing_fc_weights(alexnet):
    report = analyze_network(alexnet)
    rows = {r.name: r for r in report.rows}
    # loaded total = what the weight file holds; the architecture total = torchvision's published count
    assert report.total_learnables == _param_count(alexnet.params) == 2_469_696
    assert report.architecture_learnables == 61_100_840
    assert report.not_loaded == ["fc6", "fc7", "fc8"]
    c1 = rows["conv1"]
    assert c1.activation_size == (55, 55, 64) and c1.loaded
    assert c1.learnables == {"Weights": (11, 11, 3, 64), "Bias": (1, 1, 64)} and c1.learnable_count == 23_296
    fc6 = rows["fc6"]
    assert (fc6.activation_size, fc6.loaded, fc6.learnables, fc6.learnable_count) == (
        (1, 1, 4096), False, {"Weights": (4096, 9216), "Bias": (4096, 1)}, 9216 * 4096 + 4096)
    assert rows["avgpool"].activation_size == (6, 6, 256) and rows["prob"].activation_size == (1, 1, 1000)
    assert "not loaded" in str(report)
    # the computable part matches what the network produces
    acts = jaxvis.activations(alexnet, np.zeros((224, 224, 3), np.float32), layers=["pool2", "conv5", "avgpool"])
    for n, a in acts.items():
        assert rows[n].activation_size == a.shape


def test_analyze_grouped_convolution_shapes_as_matlab():
    from jaxvis.nets.analysis import _matlab_learnables
    assert _matlab_learnables("conv", dict(kernel=5, cin=96, cout=256, groups=2)) == {
        "Weights": (5, 5, 48, 128, 2), "Bias": (1, 1, 128, 2)}


def test_analysis_html_is_escaped_and_saved_atomically(tmp_path):
    rows = [LayerInfo(0, "data", "Image Input", "images", (4, 4, 3), {}, 0, None),
            LayerInfo(1, "<b>evil</b>&", "Convolution", "x<y", (2, 2, 8),
                      {"Weights": (3, 3, 3, 8), "Bias": (1, 1, 8)}, 224, False)]
    rep = NetworkAnalysis("m<1>", (4, 4), rows)
    page = rep.to_html()
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http" not in page
    assert "&lt;b&gt;evil&lt;/b&gt;&amp;" in page and "x&lt;y" in page and "<b>evil" not in page
    assert 'class="missing"' in page and rep.total_learnables == 0 and rep.architecture_learnables == 224
    dest = tmp_path / "sub" / "net.html"
    dest.parent.mkdir()  # jaxvis creates no folder above an output (issue 24)
    rep.save_html(dest)
    assert dest.read_text(encoding="utf-8") == page and os.listdir(dest.parent) == ["net.html"]


def test_analyze_too_small_input(squeezenet):
    with pytest.raises(ImageError, match="too small"):
        analyze_network(squeezenet, (2, 2))


# ------------------------------------------------------------------ reading tools
def test_strongest_channel_matlab_max_max_max():
    a = np.zeros((3, 4, 5), np.float32)
    a[..., :] = -1.0
    a[2, 1, 3] = 7.0
    a[0, 0, 4] = 7.0       # tie: MATLAB's max returns the first index
    a[1, 1, 1] = np.nan    # ignored, as by MATLAB's max
    assert strongest_channel(a) == (3, 7.0)
    assert strongest_channel(a[None]) == (3, 7.0)  # 1×H×W×C accepted
    assert strongest_channel(-np.arange(6.0).reshape(1, 2, 3)) == (0, 0.0)
    with pytest.raises(DisplayError, match="act\\[i\\]"):
        strongest_channel(np.zeros((2, 3, 3, 4)))


def test_channel_image_rescales_then_resizes():
    a = np.zeros((2, 2, 3), np.float32)
    a[..., 1] = [[1, 3], [5, 9]]
    a[..., 2] = [[0, 0], [0, 18]]
    g = channel_image(a, 1, (4, 4), method="nearest")
    np.testing.assert_allclose(g, np.kron([[0, 0.25], [0.5, 1]], np.ones((2, 2))))
    bil = channel_image(a, 1, (5, 7))
    np.testing.assert_allclose(bil, imresize(mat2gray(a[..., 1]), (5, 7)), atol=1e-6)
    assert bil.shape == (5, 7) and 0 <= bil.min() and bil.max() <= 1
    assert channel_image(a, 1).shape == (2, 2)
    pair = channel_image(a, [1, 2], (2, 2))  # joint min/max: 0..18, as mat2gray(act(:,:,:,[k l]))
    np.testing.assert_allclose(pair, [a[..., 1] / 18, a[..., 2] / 18], atol=1e-6)
    with pytest.raises(DisplayError, match="valid 0..2"):
        channel_image(a, 3, (4, 4))


def test_side_by_side_tiles_photo_and_channels():
    im = np.random.default_rng(1).integers(0, 256, (10, 12, 3)).astype(np.uint8)
    ch = np.linspace(0, 1, 30).reshape(5, 6)
    out = side_by_side(im, ch, ch)
    assert out.shape == (10, 36, 3)
    np.testing.assert_allclose(out[:, :12], im / 255.0)
    np.testing.assert_allclose(out[:, 12:24, 1], imresize(ch, (10, 12)), atol=1e-12)
    np.testing.assert_allclose(side_by_side(im.astype(np.float32), ch)[:, :12], im / 255.0, atol=1e-6)
    with pytest.raises(DisplayError):
        side_by_side(im)


def test_activation_grid_is_imtile_of_mat2gray_row_major():
    c = 5
    act = np.broadcast_to(np.arange(c, dtype=np.float32) * 10, (3, 4, c))  # channel k constant 10k
    g = activation_grid(act, (2, 3))
    assert g.shape == (6, 12)
    cells = np.array([[g[r * 3, k * 4] for k in range(3)] for r in range(2)])
    np.testing.assert_allclose(cells, [[0, 0.25, 0.5], [0.75, 1, 0]])  # global min/max; empty cell = 0
    assert activation_grid(act, (1, 5), 8).shape == (8, 40)
    framed = activation_grid(act, (2, 3), 2, border=1, background=1.0)
    assert framed.shape == (8, 12) and framed[0, 0] == 1.0 and framed[1, 1] == 0.0


def test_heatmap_overlay_builtin_colormap_and_limits():
    im = np.full((4, 4, 3), 128, np.uint8)
    m = np.arange(4.0).reshape(2, 2)
    np.testing.assert_allclose(heatmap_overlay(im, m, 0.4, "jet"), overlay(im, m, alpha=0.4, cmap="jet"))
    # limits fix the colour scale: the map's max 3 is half of (0, 6)
    out = heatmap_overlay(im, m, 1.0, "gray", limits=(0, 6))
    assert out[-1, -1, 0] == pytest.approx(0.5, abs=0.01)
    import importlib.util
    if importlib.util.find_spec("matplotlib") is None:  # built-in fallback
        np.testing.assert_allclose(heatmap_overlay(im, m), heatmap_overlay(im, m, cmap="jet"))
    with pytest.raises(DisplayError, match="one channel"):
        heatmap_overlay(im, np.zeros((2, 2, 3)))


# ------------------------------------------------------------------ bad input
def test_unknown_layer_lists_close_names(squeezenet, photo227):
    with pytest.raises(LayerError, match="'fire6-relu_squeeze1x1'"):
        jaxvis.activations(squeezenet, photo227, "fire6-relu_sqeeze1x1")
    with pytest.raises(LayerError, match="did you mean"):
        jaxvis.activations(squeezenet, photo227, layers=["conv1", "conv_1"])
    with pytest.raises(TypeError, match="layers=\\['conv1'\\]"):
        jaxvis.activations(squeezenet, photo227, layers="conv1")


def test_bad_image_paths(squeezenet, tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        jaxvis.activations(squeezenet, tmp_path / "nope.jpg", "conv1")
    txt = tmp_path / "notes.jpg"
    txt.write_text("this is not a picture\n")
    with pytest.raises(ImageError, match="not a readable image"):
        jaxvis.activations(squeezenet, txt, "conv1")
    with pytest.raises(ImageError, match="not a readable image"):
        side_by_side(txt, np.zeros((2, 2)))


# ------------------------------------------------------------------ CLI
def test_cli_activations_and_analyze(tmp_path, capsys):
    from PIL import Image
    grid = tmp_path / "act.png"
    assert main(["activations", "--image", str(PHOTO), "--layer", "conv1", "--grid", "8x8",
                 "--resize", "stretch", "--out", str(grid)]) == 0
    assert Image.open(grid).size == (8 * 113, 8 * 113)
    one = tmp_path / "one.png"
    assert main(["activations", "--image", str(PHOTO), "--layer", "fire6-relu_squeeze1x1", "--strongest",
                 "--heatmap", "--resize", "stretch", "--out", str(one)]) == 0
    assert Image.open(one).size == (3 * 227, 227)
    assert "channel 13" in capsys.readouterr().out  # MATLAB's channel 14, the eye detector
    page = tmp_path / "net.html"
    assert main(["analyze", "--model", "squeezenet", "--html", str(page)]) == 0
    assert "1,235,496" in capsys.readouterr().out and "1,235,496" in page.read_text(encoding="utf-8")
    assert main(["activations", "--image", str(PHOTO), "--layer", "fire6-relu_sqeeze1x1",
                 "--out", str(tmp_path / "x.png")]) == 2
    assert "did you mean 'fire6-relu_squeeze1x1'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_saved_png_is_readable_like_a_plain_file(tmp_path):
    # save_png once left mkstemp's 0600 mode on outputs (figures unreadable to other users).
    from jaxvis.imaging.display import save_png
    umask = os.umask(0)
    os.umask(umask)
    save_png(tmp_path / "a.png", np.zeros((2, 2)))
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o666 & ~umask
