"""Reading one image of a dataset without trusting the file system.

A file is opened with ``O_NONBLOCK`` and checked with ``fstat`` on the open descriptor, so a FIFO or
device that replaced a listed file is refused without ever blocking on it; at most
:data:`MAX_PHOTO_BYTES` are read; the pixel budget is checked from the header before decoding
(decompression bombs); the size seen when the folder was listed must still hold (a file that
changed or vanished during the scan is skipped, not half-read).
"""

from __future__ import annotations

import errno
import io
import os
import stat
import warnings

import numpy as np
from PIL import Image

from ..errors import ImageError
from ..imaging import images as imgs

# Largest image file a dataset reader loads (a 40-megapixel PNG is ~120 MB; JPEGs far less). With
# `workers` decoding threads, the loader holds at most workers × (this + 16 B × MAX_PIXELS) bytes
# of files being decoded (RGB uint8 plus the float32 resize copy), plus (prefetch + 1) batches.
MAX_PHOTO_BYTES = 256 << 20

_REASONS = {errno.ENOENT: "vanished after the folder was listed (no such file now)",
            errno.ELOOP: "a symlink loop", errno.EACCES: "permission denied", errno.EPERM: "permission denied",
            errno.EIO: "an I/O error", errno.ENXIO: "a socket or device without a reader",
            errno.ENAMETOOLONG: "the name is too long", errno.ENOTDIR: "a parent in its path is not a folder"}


def why(e: OSError) -> str:
    """A short reason for an OSError met while listing or reading a photo."""
    return _REASONS.get(e.errno or 0, f"{e.strerror or type(e).__name__}")


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    for test, name in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def read_file(path: str, *, expect_size: int | None = None, offset: int = 0, length: int | None = None,
              max_bytes: int = MAX_PHOTO_BYTES) -> bytes:
    """The bytes of a regular file (or of `length` bytes at `offset` in it: a tar member).

    Args:
      path: the file.
      expect_size: the file's size when it was listed; a different size now means it changed.
      offset, length: a slice of the file (default: the whole file).
      max_bytes: refuse anything larger.

    Raises:
      ImageError: the reason, in words (vanished, changed, a FIFO/device, too large, empty, unreadable).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise ImageError(f"cannot open: {why(e)}") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(f"{file_kind(st.st_mode)}, not an image file")
        if expect_size is not None and st.st_size != expect_size:
            raise ImageError(f"changed during the scan (listed with {expect_size} bytes, {st.st_size} now)")
        n = st.st_size - offset if length is None else length
        if n <= 0:
            raise ImageError("an empty file (0 bytes)")
        if n > max_bytes:
            raise ImageError(f"{n} bytes is over the {max_bytes}-byte limit for a photo "
                             "(jaxvis.datasets.read.MAX_PHOTO_BYTES)")
        data = os.pread(fd, n, offset)
        if len(data) != n:
            raise ImageError(f"changed during the scan (read {len(data)} of {n} bytes)")
        return data
    except OSError as e:
        raise ImageError(f"cannot read: {why(e)}") from e
    finally:
        os.close(fd)


def decode(data: bytes, max_pixels: int | None = None) -> np.ndarray:
    """Image bytes as uint8 H×W×3 RGB; the pixel budget (:data:`jaxvis.imaging.images.MAX_PIXELS`) is
    checked from the header before any pixel is decoded.

    Raises:
      ImageError: over the budget (a decompression bomb), truncated, corrupt or not an image.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
                imgs.check_pixels(h, w, "the image", max_pixels)
                return np.asarray(im.convert("RGB"))
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(f"over the pixel limit, a possible decompression bomb ({e})") from e
    except Image.UnidentifiedImageError as e:
        raise ImageError("not a readable image (no image format Pillow knows, or a damaged header)") from e
    except Exception as e:  # Pillow reports damage as OSError, ValueError, SyntaxError, EOFError, …
        raise ImageError(f"not a readable image: {type(e).__name__}: {str(e)[:160]}") from e
