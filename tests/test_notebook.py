"""Notebook-native results (issue 24): every result type saves itself and displays in Jupyter from one
picture, and long tools show a progress bar by default only where someone watches (a terminal, a notebook)."""

from __future__ import annotations

import inspect
import io
import os
import sys

import numpy as np
import pytest
from PIL import Image

import jaxvis
from jaxvis.imaging.display import imtile, mat2gray, to_uint8
from jaxvis.imaging.notebook import DISPLAY_MAX, Picture, grid_for, png_bytes
from jaxvis.imaging.progress import Progress, interactive, wanted

sys.path.insert(0, os.path.dirname(__file__))
import tiny_nets as T  # noqa: E402

# Every result type a tool returns, and how it shows itself: a picture (PNG) or a table (HTML).
RESULTS = {"Visualization": "png", "AttributionMap": "png", "TopPatches": "html", "FilterImage": "png",
           "Inversion": "png", "StyleTransfer": "png", "FoolResult": "png", "DreamResult": "png",
           "DreamPhotoResult": "png", "GalleryResult": "html", "NetworkAnalysis": "html", "Embedding": "png"}
RESULT_CLASSES = {"DreamResult": "jaxvis.dream", "NetworkAnalysis": "jaxvis.nets.analysis"}


def _cls(name):
    import importlib
    return getattr(importlib.import_module(RESULT_CLASSES[name]), name) if name in RESULT_CLASSES \
        else getattr(jaxvis, name)


@pytest.mark.parametrize("name", sorted(RESULTS))
def test_every_result_type_saves_and_displays(name):
    cls = _cls(name)
    assert callable(cls.save), name
    assert callable(getattr(cls, "_repr_png_" if RESULTS[name] == "png" else "_repr_html_")), name
    if RESULTS[name] == "png":
        assert issubclass(cls, Picture)  # one helper, not copies


@pytest.fixture(scope="module")
def tiny():
    return T.pure_net()


def _png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _check(result, tmp_path, expected: np.ndarray, **options):
    """save(path) writes `expected` (uint8) and the notebook shows the same picture."""
    path = result.save(tmp_path / "r.png", **options)
    assert path == str(tmp_path / "r.png")
    expected = to_uint8(expected)
    np.testing.assert_array_equal(_png(path), expected)
    if not options:
        shown = np.asarray(Image.open(io.BytesIO(result._repr_png_())).convert("RGB"))
        if max(expected.shape[:2]) <= DISPLAY_MAX:
            np.testing.assert_array_equal(shown, expected)


def _u8(a):
    return np.round(np.clip(np.asarray(a, np.float64), 0, 1) * 255).astype(np.uint8)


def test_picture_results_save_what_they_show(tiny, tmp_path):
    v = jaxvis.visualize(tiny, "conv1", steps=2, image_size=32, progress=False)
    _check(v, tmp_path, imtile(v.images, grid_size=(2, 4)))  # 8 channels: a grid without empty cells
    _check(v, tmp_path, imtile(v.images, grid_size=(4, 2)), grid_size=(4, 2))

    photo = np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    m = jaxvis.saliency(tiny, photo, "bee")
    _check(m, tmp_path, _u8(m.overlay()))
    _check(m, tmp_path, _u8(np.clip(m.raw / (2 * np.percentile(np.abs(m.raw), 99)) + 0.5, 0, 1)), style="rgb")

    f = jaxvis.filter_image(tiny, "conv1")
    _check(f, tmp_path, f.image)

    d = jaxvis.dream_photo(tiny, photo, "conv2", octaves=1, steps_per_octave=1, jitter=0, tile=None)
    _check(d, tmp_path, d.image)

    r = jaxvis.deep_dream(tiny, "conv1", [0, 1], pyramid_levels=1, num_iterations=1, verbose=False)
    _check(r, tmp_path, imtile(np.stack([mat2gray(im) for im in r.images]), grid_size=(1, 2)))


def test_fool_result_rows(tiny, tmp_path):
    photo = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3)).astype(np.float32)
    r = jaxvis.fool(tiny, photo, ["bee", "cat"], method="fgsm", eps=2)
    u8 = lambda a: np.round(np.clip(a, 0, 255)).astype(np.uint8)  # noqa: E731
    rows = [np.concatenate([u8(r.originals[i]), u8(r.images[i]), r.magnified()[i]], axis=1) for i in range(2)]
    _check(r, tmp_path, np.concatenate(rows, axis=0))
    _check(r, tmp_path, rows[1], index=1)


def test_inversion_and_style_pictures(tiny, tmp_path):
    photo = np.random.default_rng(2).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    inv = jaxvis.invert(tiny, photo, ["conv1", "conv2"], steps=2, progress=False)
    _check(inv, tmp_path, inv.tile())
    assert inv.picture().shape[:2] == (32, 3 * 32)  # the original, then one reconstruction per layer
    st = jaxvis.style_transfer(tiny, photo, photo[::-1], content_layer="conv2", style_layers=["conv1"], steps=2,
                               progress=False)
    pic = st.picture()
    np.testing.assert_array_equal(pic[:32, :32], st.content)  # the content image first
    _check(st, tmp_path, pic)


def test_embedding_scatter_and_atlas(tiny, tmp_path):
    photos = [np.full((32, 32, 3), v, np.uint8) for v in (0, 90, 180, 255)]
    e = jaxvis.embedding(tiny, photos, "relu2", method="pca")
    e2 = jaxvis.maps.embedding.Embedding(np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0]]), np.zeros((3, 1)), "x",
                                         "pca", 0)
    pic = e2.picture(size=100, dot=3)
    dark = pic.sum(-1) < 300
    # pad 12: (0,0) → bottom left (12, 88), (1,1) → top right (88, 12), (0,1) → top left (12, 12)
    assert dark[88, 12] and dark[12, 88] and dark[12, 12] and not dark[88, 88]
    _check(e, tmp_path, e.picture())
    grid = e.atlas(photos, grid=(2, 2), cell=8)
    np.testing.assert_array_equal(grid, jaxvis.atlas_image(e.coords, photos, grid=(2, 2), cell=8))
    np.testing.assert_array_equal(grid, jaxvis.atlas_image(e, photos, grid=(2, 2), cell=8))  # the README's spelling
    with pytest.raises(jaxvis.EmbeddingError, match="Embedding .* or N×2"):
        jaxvis.atlas_image("coords", photos)


def test_table_results(tiny, squeezenet, tmp_path):
    a = jaxvis.analyze_network(squeezenet)
    html = a._repr_html_()
    assert "<table>" in html and "fire9-concat" in html and "<style" not in html and "<script" not in html
    assert a.save(tmp_path / "a.html") == str(tmp_path / "a.html")
    assert (tmp_path / "a.html").read_text(encoding="utf-8") == a.to_html()
    a.save(tmp_path / "a.txt")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == str(a) + "\n"

    photos = [np.random.default_rng(i).integers(0, 256, (40, 40, 3)).astype(np.uint8) for i in range(5)]
    tp = jaxvis.top_patches(tiny, photos, ["conv2"], k=2, progress=False)
    _check(tp, tmp_path, tp.tile("conv2", range(8)), layer="conv2")
    html = tp._repr_html_()
    assert "conv2" in html and html.count("<img") == 1 and "data:image/png;base64," in html

    g = jaxvis.gallery(tiny, tmp_path / "site", layers=["conv1", "logits"], units=range(3), block=3, steps=2,
                       image_size=32, progress=False)
    thumb = lambda L, u: _png(tmp_path / "site" / g.manifest["layers"][L]["units"][u]["thumb"])  # noqa: E731
    sheet = g.picture(per_layer=3)
    np.testing.assert_array_equal(sheet[2:2 + thumb(0, 0).shape[0], 2:2 + thumb(0, 0).shape[1]], thumb(0, 0))
    html = g._repr_html_()
    assert "index.html" in html and "conv1, logits" in html and "<img" in html
    g.save(tmp_path / "g.png")
    np.testing.assert_array_equal(_png(tmp_path / "g.png"), g.picture())


def test_text_view_is_one_short_line(tiny):
    v = jaxvis.visualize(tiny, "conv1", steps=1, image_size=32, progress=False)
    from IPython.lib.pretty import pretty
    text = pretty(v)
    assert text.startswith("Visualization(images=8×32×32×3 uint8, raw=8×32×32×3 float32") and "\n" not in text
    assert len(text) < 600 and "[[" not in text  # no array printed
    m = jaxvis.grad_cam(tiny, np.zeros((32, 32, 3), np.uint8), "bee")
    assert "target=Target(layer='logits'" in pretty(m)  # a jaxvis object is shown by its repr, not as an array


def test_grids_without_empty_cells():
    assert [grid_for(n) for n in (1, 2, 8, 12, 16, 30, 192)] == [(1, 1), (1, 2), (2, 4), (3, 4), (4, 4), (5, 6),
                                                                  (12, 16)]
    assert grid_for(7) is None and grid_for(10) == (2, 5) and grid_for(11) is None  # 1×11 is too wide


def test_png_bytes_shrinks_large_pictures_for_display():
    big = np.zeros((3000, 1500, 3), np.uint8)
    im = Image.open(io.BytesIO(png_bytes(big)))
    assert im.size == (DISPLAY_MAX // 2, DISPLAY_MAX)


# ---------------------------------------------------------------- progress: on where someone watches
class _Tty(io.StringIO):
    def isatty(self):
        return True


class _Kernel(io.StringIO):  # what ipykernel's OutStream looks like to us: not a tty, module ipykernel.*
    pass


_Kernel.__module__ = "ipykernel.iostream"


def test_progress_default_follows_the_stream():
    assert not interactive(io.StringIO()) and interactive(_Tty()) and interactive(_Kernel())
    assert wanted(None, _Tty()) and not wanted(None, io.StringIO()) and wanted(True, io.StringIO())
    assert not wanted(False, _Tty())
    for stream, shown in ((io.StringIO(), False), (_Tty(), True), (_Kernel(), True)):
        bar = Progress(4, "job", "steps", file=stream)
        bar.update(4)
        bar.close()
        assert ("job: 100.0%" in stream.getvalue()) == shown
    log = io.StringIO()
    bar = Progress(4, "job", file=log, enabled=True)  # asked for: lines, no carriage returns, in a log
    bar.update(4)
    assert "\r" not in log.getvalue() and log.getvalue().count("\n") == 1


def test_long_tools_default_to_progress_none():
    """None = a bar in terminals and notebooks, silence in logs: the same default for every long tool."""
    tools = [jaxvis.visualize, jaxvis.class_model, jaxvis.invert, jaxvis.style_transfer, jaxvis.dream_photo,
             jaxvis.deep_dream_image, jaxvis.deep_dream, jaxvis.top_patches, jaxvis.gallery, jaxvis.embedding]
    for tool in tools:
        assert inspect.signature(tool).parameters["progress"].default is None, tool.__name__
