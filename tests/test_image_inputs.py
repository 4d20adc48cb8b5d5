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
