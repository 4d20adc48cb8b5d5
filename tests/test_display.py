"""Tests for jaxvis.imaging.display against MATLAB's documented semantics and closed forms."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from jaxvis.errors import OutputError
from jaxvis.imaging.display import (DisplayError, apply_colormap, colormap, imresize, imtile,
                            mat2gray, overlay, save_png, to_uint8)

nan = float("nan")


# ------------------------------------------------------------------ mat2gray
def test_mat2gray_uses_global_min_max_not_per_channel():
    a = np.zeros((2, 2, 2))
    a[..., 0] = [[0, 1], [2, 3]]        # channel 0 spans 0..3
    a[..., 1] = [[10, 11], [12, 20]]    # channel 1 spans 10..20
    out = mat2gray(a)
    np.testing.assert_allclose(out, a / 20.0)
    assert out.dtype == np.float64 and out.shape == a.shape


def test_mat2gray_limits_clip():
    out = mat2gray(np.array([-5.0, 0.0, 5.0, 10.0, 20.0]), limits=(0, 10))
    np.testing.assert_allclose(out, [0, 0, 0.5, 1, 1])


def test_mat2gray_constant_returns_input_clipped():
    np.testing.assert_array_equal(mat2gray(np.full((2, 2), 0.3)), np.full((2, 2), 0.3))
    np.testing.assert_array_equal(mat2gray(np.full((2, 2), 7.0)), np.ones((2, 2)))
    np.testing.assert_array_equal(mat2gray(np.array([-1.0, 0.5, 4.0]), limits=(2, 2)), [0, 0.5, 1])


def test_mat2gray_nan_propagates_and_int_input():
    out = mat2gray(np.array([0.0, nan, 4.0, 2.0]))
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2, 3]], [0, 1, 0.5])
    out = mat2gray(np.array([[0, 50], [100, 200]], dtype=np.uint8))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, [[0, 0.25], [0.5, 1]])
    assert mat2gray(np.array([1, 2], dtype=np.float32)).dtype == np.float32
    np.testing.assert_array_equal(mat2gray(np.array([True, False])), [1, 0])


@pytest.mark.parametrize("limits", [(3, 1), (1,), (1, 2, 3), (nan, 1)])
def test_mat2gray_bad_limits(limits):
    with pytest.raises(DisplayError, match="limits"):
        mat2gray(np.arange(4), limits=limits)


# ------------------------------------------------------------------ imtile
def _frames(n=5, h=2, w=3, dtype=np.float64):
    # Frame k is constant k+1 so positions are identifiable (0 = background).
    return np.stack([np.full((h, w), k + 1, dtype=dtype) for k in range(n)])


def _cell_values(tile, rows, cols, h, w):
    return np.array([[tile[r * h, c * w] for c in range(cols)] for r in range(rows)])


def test_imtile_default_grid_and_row_major_placement():
    # montage default: cols = ceil(sqrt(5*2/3)) = 2, rows = ceil(5/2) = 3.
    t = imtile(_frames())
    assert t.shape == (3 * 2, 2 * 3) and t.dtype == np.float64
    np.testing.assert_array_equal(_cell_values(t, 3, 2, 2, 3), [[1, 2], [3, 4], [5, 0]])
    np.testing.assert_array_equal(t[4:6, 3:6], 0)  # unused cell = background


@pytest.mark.parametrize("grid, shape, cells", [
    ((2, nan), (2, 3), [[1, 2, 3], [4, 5, 0]]),
    ((nan, 4), (2, 4), [[1, 2, 3, 4], [5, 0, 0, 0]]),
    ((1, 2), (1, 2), [[1, 2]]),            # too small: only the first 2 frames
    ((nan, nan), (3, 2), [[1, 2], [3, 4], [5, 0]]),
])
def test_imtile_grid_size(grid, shape, cells):
    t = imtile(_frames(), grid_size=grid)
    assert t.shape == (shape[0] * 2, shape[1] * 3)
    np.testing.assert_array_equal(_cell_values(t, *shape, 2, 3), cells)


@pytest.mark.parametrize("grid", [(0, 2), (-1, nan), (1.5, 2), (1, 2, 3)])
def test_imtile_bad_grid(grid):
    with pytest.raises(DisplayError, match="grid_size"):
        imtile(_frames(), grid_size=grid)


def test_imtile_bad_rank():
    with pytest.raises(DisplayError):
        imtile(np.zeros((2, 3)))
    with pytest.raises(DisplayError):
        imtile(np.zeros((2, 3, 3, 2)))


def test_imtile_border_and_background():
    t = imtile(_frames(3), grid_size=(1, 3), border_size=(1, 2), background_color=9)
    # Each cell is (2 + 2*1) x (3 + 2*2).
    assert t.shape == (4, 3 * 7)
    for k in range(3):
        cell = t[:, k * 7:(k + 1) * 7]
        np.testing.assert_array_equal(cell[1:3, 2:5], k + 1)
        inner = np.zeros_like(cell, dtype=bool)
        inner[1:3, 2:5] = True
        np.testing.assert_array_equal(cell[~inner], 9)


def test_imtile_thumbnail_size_and_nan():
    t = imtile(_frames(4, 4, 6), thumbnail_size=(2, 3), grid_size=(2, 2))
    assert t.shape == (4, 6)
    np.testing.assert_allclose(_cell_values(t, 2, 2, 2, 3), [[1, 2], [3, 4]])
    t = imtile(_frames(4, 4, 6), thumbnail_size=(nan, 3), grid_size=(2, 2), border_size=1)
    assert t.shape == (2 * (2 + 2), 2 * (3 + 2))


def test_imtile_list_of_different_sizes_uses_first_size():
    t = imtile([np.ones((2, 2)), np.full((4, 4), 2.0)], grid_size=(1, 2))
    assert t.shape == (2, 4)
    np.testing.assert_allclose(t, [[1, 1, 2, 2], [1, 1, 2, 2]])


def test_imtile_grayscale_with_rgb_background_uint8():
    f = _frames(2, dtype=np.uint8)
    t = imtile(f, grid_size=(1, 3), background_color=(255, 0, 10))
    assert t.shape == (2, 9, 3) and t.dtype == np.uint8
    np.testing.assert_array_equal(t[:, :3], 1)
    np.testing.assert_array_equal(t[:, 3:6], 2)
    np.testing.assert_array_equal(t[:, 6:], np.broadcast_to([255, 0, 10], (2, 3, 3)))


def test_imtile_frames_and_channel_last_one():
    t = imtile(_frames()[..., None], frames=[4, 0], grid_size=(1, 2))
    assert t.shape == (2, 6)
    np.testing.assert_array_equal(_cell_values(t, 1, 2, 2, 3), [[5, 1]])


# ------------------------------------------------------------------ imresize
def test_imresize_nearest_upsample_is_repeat():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    expect = np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(imresize(a, scale=2, method="nearest"), expect)
    np.testing.assert_array_equal(imresize(a, (4, 4), method="nearest"), expect)


def test_imresize_bilinear_matches_matlab_ramp():
    # MATLAB: imresize([0 1], [1 4], 'bilinear') -> [0 0.25 0.75 1]
    np.testing.assert_allclose(imresize(np.array([[0.0, 1.0]]), (1, 4)), [[0, 0.25, 0.75, 1]])


def test_imresize_constant_stays_constant_and_sizes():
    a = np.full((5, 5, 3), 0.7)
    out = imresize(a, scale=0.5)
    assert out.shape == (3, 3, 3)  # ceil(0.5 * 5)
    np.testing.assert_allclose(out, 0.7)
    assert imresize(np.zeros((4, 6)), (nan, 3)).shape == (2, 3)
    assert imresize(np.zeros((2, 4, 6, 1)), (2, 3)).shape == (2, 2, 3, 1)


def test_imresize_uint8_stays_uint8():
    a = np.array([[0, 255]], dtype=np.uint8)
    out = imresize(a, (1, 4))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[0, 64, 191, 255]])  # round(0.25*255)=64


def test_imresize_antialias_checkerboard():
    cb = (np.add.outer(np.arange(12), np.arange(12)) % 2).astype(np.float64)
    # Factor 2 with antialiasing: interior averages to exactly 0.5.
    out = imresize(cb, scale=0.5)
    assert out.shape == (6, 6)
    np.testing.assert_allclose(out[1:-1, 1:-1], 0.5)
    # Factor 3: antialiased kernel [1 2 3 2 1]/9 gives 41/81 or 40/81 inside...
    cb = (np.add.outer(np.arange(18), np.arange(18)) % 2).astype(np.float64)
    aa = imresize(cb, (6, 6))
    assert np.all(np.abs(aa[1:-1, 1:-1] - 0.5) < 0.01)
    # ...while without antialiasing the taps land on pixel centres: pure 0/1.
    raw = imresize(cb, (6, 6), antialias=False)
    assert set(np.unique(raw).round(12)) <= {0.0, 1.0}


def test_imresize_errors():
    with pytest.raises(DisplayError):
        imresize(np.zeros((2, 2)))
    with pytest.raises(DisplayError):
        imresize(np.zeros((2, 2)), (nan, nan))
    with pytest.raises(DisplayError):
        imresize(np.zeros((2, 2)), (2, 2), method="lanczos")


# ------------------------------------------------------------------ colormaps
def test_jet_matches_matlab():
    j = colormap("jet", 256)
    assert j.shape == (256, 3)
    np.testing.assert_allclose(j[0], [0, 0, 0.515625])   # MATLAB jet(256)(1,:)
    np.testing.assert_allclose(j[-1], [0.5, 0, 0])       # MATLAB jet(256)(end,:)
    np.testing.assert_allclose(j[127], [0.5, 1, 0.5])  # derived by hand from jet.m
    # Small m, evaluated by hand from jet.m (m=5 exercises the mod(m,4)==1 shift).
    np.testing.assert_allclose(colormap("jet", 4), [[0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]])
    np.testing.assert_allclose(colormap("jet", 5), [[0, .5, 1], [0, 1, 1], [.5, 1, .5], [1, 1, 0], [1, .5, 0]])


def test_gray_and_hot():
    np.testing.assert_allclose(colormap("gray", 3), [[0, 0, 0], [0.5, 0.5, 0.5], [1, 1, 1]])
    h = colormap("hot", 8)  # n = fix(3/8*8) = 3
    np.testing.assert_allclose(h[:, 0], [1 / 3, 2 / 3, 1, 1, 1, 1, 1, 1])
    np.testing.assert_allclose(h[:, 1], [0, 0, 0, 1 / 3, 2 / 3, 1, 1, 1])
    np.testing.assert_allclose(h[:, 2], [0, 0, 0, 0, 0, 0, 0.5, 1])


def test_unknown_colormap_lists_names():
    with pytest.raises(DisplayError, match="jet"):
        colormap("no-such-map")


def test_apply_colormap_and_overlay():
    v = np.array([[0.0, 1.0], [nan, 0.5]])
    rgb = apply_colormap(v, "gray")
    assert rgb.shape == (2, 2, 3)
    np.testing.assert_allclose(rgb[0, 1], 1)
    np.testing.assert_allclose(rgb[1, 0], 0)   # NaN -> black
    img = np.full((4, 4, 3), 255, dtype=np.uint8)
    out = overlay(img, np.array([[0.0, 2.0], [2.0, 0.0]]), alpha=0.5, cmap="gray")
    assert out.shape == (4, 4, 3) and 0 <= out.min() and out.max() <= 1
    np.testing.assert_allclose(out[0, 0], 0.5)    # white*0.5 + black*0.5
    np.testing.assert_allclose(out[0, -1], 1.0)   # white*0.5 + white*0.5


# ------------------------------------------------------------------ output
def test_to_uint8():
    np.testing.assert_array_equal(to_uint8(np.array([-1, 0, 0.5, 1, 2, nan])), [0, 0, 128, 255, 255, 0])


def test_save_png_atomic_roundtrip(tmp_path):
    a = (np.arange(2 * 3 * 3) * 9).astype(np.uint8).reshape(2, 3, 3)
    dest = tmp_path / "sub" / "dir" / "x.png"
    with pytest.raises(OutputError, match="does not exist"):
        save_png(dest, a)  # no folder is created above an output (issue 24)
    assert not (tmp_path / "sub").exists()
    save_png(dest, a, parents=True)  # inside a tree the caller owns
    assert os.listdir(dest.parent) == ["x.png"]  # no temp file left
    np.testing.assert_array_equal(np.asarray(Image.open(dest)), a)
    save_png(dest, np.array([[0.0, 1.0]]))          # overwrite, float grey
    np.testing.assert_array_equal(np.asarray(Image.open(dest)), [[0, 255]])
    assert os.listdir(dest.parent) == ["x.png"]
    with pytest.raises(DisplayError):
        save_png(tmp_path / "bad.png", np.zeros((2, 2, 2)))
    assert not (tmp_path / "bad.png").exists()
