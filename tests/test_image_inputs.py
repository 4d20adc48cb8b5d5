"""Every malformed or oversized image → one ImageError naming the file (issue 12)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from jaxvis.imaging import images
from jaxvis.errors import ImageError
from jaxvis.imaging.images import read_image, to_batch


def png_bytes(w: int = 4, h: int = 3) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.arange(w * h * 3, dtype=np.uint8).reshape(h, w, 3)).save(buf, format="PNG")
    return buf.getvalue()


def with_header_size(data: bytes, w: int, h: int) -> bytes:
    """The PNG with its IHDR saying w×h (CRC fixed): the header lies, the pixels are few."""
    b = bytearray(data)
    struct.pack_into(">II", b, 16, w, h)
    struct.pack_into(">I", b, 29, zlib.crc32(bytes(b[12:29])))
    return bytes(b)


def test_good_png(tmp_path):
    (tmp_path / "ok.png").write_bytes(png_bytes())
    assert read_image(tmp_path / "ok.png").shape == (3, 4, 3)


@pytest.mark.parametrize("w,h", [(20000, 20000), (10000, 10000), (7000, 7000)])
def test_pixel_budget_checked_from_the_header(tmp_path, w, h):
    path = tmp_path / "huge.png"
    path.write_bytes(with_header_size(png_bytes(), w, h))
    with pytest.raises(ImageError, match=r"huge\.png.*(megapixels|pixel limit)"):
        read_image(path)


def test_pixel_budget_message_says_how_to_override(tmp_path, monkeypatch):
    path = tmp_path / "ok.png"
    path.write_bytes(png_bytes(4, 3))
    monkeypatch.setattr(images, "MAX_PIXELS", 10)
    with pytest.raises(ImageError, match=r"over the limit of 1e-05 megapixels.*MAX_PIXELS = 12.*max_pixels=12"):
        read_image(path)
    assert read_image(path, max_pixels=12).shape == (3, 4, 3)
    # Arrays and PIL images are held to the same budget, before any copy.
    with pytest.raises(ImageError, match="megapixels"):
        to_batch(np.broadcast_to(np.uint8(0), (4000, 4000, 3)))
    with pytest.raises(ImageError, match="megapixels"):
        to_batch(Image.new("RGB", (5, 5)))
    assert to_batch(Image.new("RGB", (5, 5)), max_pixels=25)[0].shape == (1, 5, 5, 3)


def _damaged_pngs() -> dict[str, bytes]:
    good = png_bytes(16, 16)
    bad_crc = bytearray(good)
    bad_crc[40] ^= 0xFF  # inside IDAT: CRC mismatch
    return {
        "truncated_ihdr": good[:20],
        "truncated_idat": good[: len(good) // 2],
        "bad_crc": bytes(bad_crc),
        "zero_size": with_header_size(good, 0, 0),
        "no_ihdr": good[:8] + good[33:],
        "garbage": b"\x89PNG\r\n\x1a\n" + b"\xff" * 64,
        "empty": b"",
        "text": b"hello",
    }


@pytest.mark.parametrize("kind", list(_damaged_pngs()))
def test_damaged_images_are_image_errors(tmp_path, kind):
    path = tmp_path / f"{kind}.png"
    path.write_bytes(_damaged_pngs()[kind])
    with pytest.raises(ImageError, match=rf"{kind}\.png"):
        read_image(path)


def test_not_regular_files(tmp_path):
    with pytest.raises(ImageError, match="folder"):
        read_image(tmp_path)
    with pytest.raises(ImageError, match="does not exist"):
        read_image(tmp_path / "nope.png")


# ----------------------------------------------------------------------- channel counts (issue 21)
def test_images_for_a_grayscale_network_are_luma(tmp_path):
    """1 channel: a colour photo becomes ITU-R 601 luma (Pillow's convert("L") up to its rounding), a gray file
    or array stays exactly what it is."""
    rgb = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    want = np.asarray(Image.fromarray(rgb).convert("L"), np.float32)
    for x in (str(tmp_path / "c.png"), Image.fromarray(rgb), rgb, np.dstack([rgb, rgb[..., :1]])):  # RGBA: alpha ignored
        got = to_batch(x, channels=1)[0][0]
        assert got.shape == (6, 7, 1) and np.abs(got[..., 0] - want).max() <= 0.5
    Image.fromarray(rgb[..., 1]).save(tmp_path / "g.png")
    np.testing.assert_array_equal(to_batch(str(tmp_path / "g.png"), channels=1)[0][0, ..., 0], rgb[..., 1])
    np.testing.assert_array_equal(to_batch(rgb[..., 1], channels=1)[0][0, ..., 0], rgb[..., 1])
    assert to_batch(np.zeros((2, 6, 7, 1)), channels=1)[0].shape == (2, 6, 7, 1)
    with pytest.raises(ImageError, match="has 2 channels.*takes 1"):
        to_batch(np.zeros((6, 7, 2)), channels=1)


@pytest.mark.parametrize("c", [2, 4, 5])
def test_other_channel_counts_take_arrays_only(tmp_path, c):
    Image.new("RGBA", (5, 4)).save(tmp_path / "a.png")
    for x in (str(tmp_path / "a.png"), Image.new("RGBA", (5, 4))):
        with pytest.raises(ImageError, match=f"takes {c} channels: give an array"):
            to_batch(x, channels=c)
    x = np.random.default_rng(1).uniform(0, 255, (3, 4, 5, c)).astype(np.float32)
    b, single = to_batch(x, channels=c)
    assert not single and b.shape == (3, 4, 5, c)
    np.testing.assert_array_equal(b, x)  # values as given: an RGBA-like 4th channel is kept
    with pytest.raises(ImageError, match=f"has {c + 1} channels"):
        to_batch(np.zeros((4, 5, c + 1)), channels=c)


def test_resizing_c_channel_arrays_matches_the_photo_path():
    """Other channel counts are resampled per channel, as floats, by the filter photos go through."""
    from jaxvis.imaging.images import fit_to_size
    rgb = np.random.default_rng(2).integers(0, 256, (1, 20, 30, 3)).astype(np.float32)
    five = np.concatenate([rgb, rgb[..., ::-1][..., :2]], -1)
    for mode in ("crop", "stretch"):
        a, b = fit_to_size(rgb, (12, 12), mode), fit_to_size(five, (12, 12), mode)
        assert b.shape == (1, 12, 12, 5) and b.dtype == np.float32
        assert np.abs(b[..., :3] - a).max() <= 1.0  # the photo path rounds to uint8 (and Pillow's 8-bit filter)
        np.testing.assert_allclose(b[..., 3:], b[..., [2, 1]], atol=1e-4)


def test_rendering_of_c_channels():
    from jaxvis.imaging.images import channel_colors, render_rgb
    for c in (2, 4, 5, 7):
        m = channel_colors(c)
        np.testing.assert_allclose(m.sum(0), 1.0, rtol=1e-6)  # equal channels render gray
        x = np.random.default_rng(c).normal(size=(3, 4, c))
        np.testing.assert_allclose(render_rgb(x), x @ m, rtol=1e-5, atol=1e-6)  # linear
        np.testing.assert_allclose(render_rgb(-x), -render_rgb(x), rtol=1e-6)
    np.testing.assert_allclose(channel_colors(2), [[1, 0, 0], [0, 1, 1]])  # red and cyan
    x = np.zeros((2, 2, 1)) + 7
    assert render_rgb(x).shape == (2, 2, 3) and np.all(render_rgb(x) == 7)
