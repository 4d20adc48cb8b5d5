"""Turning what users pass as an image into a float32 N×H×W×C batch for a network of C input channels.

3-channel networks take RGB (gray replicated, alpha dropped); 1-channel networks take grayscale (a
colour image converted to ITU-R 601 luma, 0.299 R + 0.587 G + 0.114 B, as Pillow's ``convert("L")``
without its rounding); any other channel count takes arrays only, H×W×C or N×H×W×C with exactly C
channels (image files and PIL images are refused: a PNG's RGBA is not a 4-band raster). Every channel
count shares the 0..255 scale: it is what the network's `preprocess` receives and what feature
visualisation optimises in. :func:`render_rgb` turns C-channel images into RGB for display.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ImageError
from .fileio import regular_file_size

ImageLike = Any  # path, PIL image, numpy array (H×W, H×W×C, N×H×W×C) or a list of those


# Largest image (height × width, per image) jaxvis accepts. `activations` computes
# large images in exact tiles (jaxvis/tiling.py), but its output is whole: a
# 40-megapixel photo's SqueezeNet conv1 map alone is 2.4 GiB, and gradient methods
# (attribution, dreaming whole images) hold the whole image's activations; much larger
# inputs abort inside XLA instead of failing cleanly. Raise it for a machine that can
# take more: ``jaxvis.imaging.images.MAX_PIXELS = 100_000_000``, or pass ``max_pixels=`` to
# :func:`read_image` / :func:`to_batch`.
MAX_PIXELS = 40_000_000
# Largest image file read at all (a compressed image over the pixel budget is refused from its header).
MAX_IMAGE_FILE_BYTES = 1 << 30


def check_pixels(height: int, width: int, what: str, max_pixels: int | None = None) -> None:
    """Raise ImageError unless a `height` × `width` image is within the pixel budget.

    Args:
      height, width: image size in pixels.
      what: how to name the image in the message.
      max_pixels: the budget; None means :data:`MAX_PIXELS`.
    """
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if height < 1 or width < 1:
        raise ImageError(f"{what} is {width}×{height} pixels: it holds no pixels")
    if height * width > limit:
        raise ImageError(
            f"{what} is {width}×{height} = {height * width / 1e6:.1f} megapixels, over the limit of "
            f"{limit / 1e6:g} megapixels; downscale it, or raise the limit (jaxvis.imaging.images.MAX_PIXELS = "
            f"{height * width}, or max_pixels={height * width}) if this machine has the memory (activations "
            f"and dream_photo work in tiles: about the output's size plus one tile)")


def read_image(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as uint8 H×W×3 RGB (grayscale replicated, alpha dropped).

    The pixel budget is checked from the file's header, before anything is decoded.

    Args:
      path: image file (PNG, JPEG, … anything Pillow reads).
      max_pixels: largest height × width accepted; None means :data:`MAX_PIXELS`.

    Raises:
      ImageError: the file is missing, not a regular file, over the pixel budget,
        or cannot be decoded (truncated, corrupt, not an image); the message names the file.
    """
    p = Path(path)
    if not p.exists():
        raise ImageError(f"image file {str(p)!r} does not exist")
    regular_file_size(p, what="image file", error=ImageError, max_bytes=MAX_IMAGE_FILE_BYTES)
    try:
        with warnings.catch_warnings():
            # Our own budget (below Pillow's warning threshold) decides, with a message saying how to raise it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                width, height = im.size
                check_pixels(height, width, f"image {str(p)!r}", max_pixels)
                return np.asarray(im.convert("RGB"))
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(f"image {str(p)!r} is over the pixel limit ({e}); downscale it") from e
    # Pillow reports damaged files as OSError, ValueError, SyntaxError, EOFError, struct.error,
    # MemoryError, ... depending on the format and where the damage is: all mean "cannot be read".
    except Exception as e:
        raise ImageError(f"{str(p)!r} is not a readable image (PNG, JPEG, …): {type(e).__name__}: {str(e)[:200]}") from e


def to_image(x: ImageLike, what: str = "the image", max_pixels: int | None = None, channels: int = 3) -> np.ndarray:
    """One image as float32 H×W×`channels` in 0..255, checked (see the module docstring for the conversions).

    Args:
      x: path, PIL image or array (H×W or H×W×C; uint8 or float pixels in 0..255).
      what: how error messages call it, e.g. "image 3".
      max_pixels: largest height × width; None means :data:`MAX_PIXELS`.
      channels: the network's input channels: 3 (RGB), 1 (grayscale) or any other count (arrays only).

    Returns:
      The float32 H×W×`channels` array.

    Raises:
      ImageError: unreadable, wrong dtype, rank or channel count, an image file or PIL image for a network
        that takes neither 1 nor 3 channels, NaN/inf, or over the pixel budget.
    """
    if channels not in (1, 3) and isinstance(x, (str, os.PathLike, Image.Image)):
        kind = "a PIL image" if isinstance(x, Image.Image) else f"the image file {os.fspath(x)!r}"
        raise ImageError(f"{what} is {kind}, but this network takes {channels} channels: give an array "
                         f"H×W×{channels} or N×H×W×{channels} on the 0..255 scale (image files are read as 1-channel "
                         "gray or 3-channel RGB only)")
    if isinstance(x, (str, os.PathLike)):
        rgb = read_image(x, max_pixels)
        return luma(rgb) if channels == 1 else rgb.astype(np.float32)
    if isinstance(x, Image.Image):
        check_pixels(x.height, x.width, what, max_pixels)
        rgb = np.asarray(x.convert("RGB"))
        return luma(rgb) if channels == 1 else rgb.astype(np.float32)
    a = np.asarray(x)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ImageError(f"{what} has dtype {a.dtype}; expected uint8 (0..255) or float pixels in 0..255")
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3:
        raise ImageError(f"{what} has shape {a.shape}; expected H×W, H×W×C or N×H×W×C")
    check_pixels(a.shape[0], a.shape[1], what, max_pixels)
    c = a.shape[-1]
    if channels == 3:
        if c == 1:
            a = np.repeat(a, 3, axis=-1)  # grayscale → RGB, as MATLAB's examples do with cat(3, I, I, I)
        elif c == 4:
            a = a[..., :3]  # drop alpha
        elif c != 3:
            raise ImageError(f"{what} has {c} channels (shape {a.shape}); expected 1 (gray), 3 (RGB) or 4 (RGBA), "
                             "channels last")
    elif channels == 1:
        if c in (3, 4):
            a = luma(a[..., :3])  # a colour image for a grayscale network
        elif c != 1:
            raise ImageError(f"{what} has {c} channels (shape {a.shape}); this network takes 1 (grayscale): give "
                             "H×W, H×W×1, or an RGB/RGBA image (converted to luma), channels last")
    elif c != channels:
        raise ImageError(f"{what} has {c} channels (shape {a.shape}); this network takes {channels}: give "
                         f"H×W×{channels} or N×H×W×{channels}, channels last" +
                         (" (a 4-channel network does not take RGBA images)" if channels == 4 else ""))
    a = a.astype(np.float32)
    if not np.all(np.isfinite(a)):
        raise ImageError(f"{what} contains NaN or infinite values")
    return a


def to_rgb(x: ImageLike, what: str = "the image", max_pixels: int | None = None) -> np.ndarray:
    """One image as float32 H×W×3 RGB pixels in 0..255 (gray repeated, alpha dropped): :func:`to_image` for 3 channels."""
    return to_image(x, what, max_pixels, 3)


def luma(rgb: np.ndarray) -> np.ndarray:
    """…×3 RGB → …×1 ITU-R 601 luma, 0.299 R + 0.587 G + 0.114 B (float32; exact for gray pixels R = G = B, so a
    gray file, read as RGB, comes back as it is)."""
    a = np.asarray(rgb, np.float64)
    return ((a[..., 0] * 299 + a[..., 1] * 587 + a[..., 2] * 114) / 1000).astype(np.float32)[..., None]


def to_batch(image: ImageLike, max_pixels: int | None = None, channels: int = 3) -> tuple[np.ndarray, bool]:
    """Normalise an image or batch to float32 N×H×W×`channels` in 0..255 (see :func:`to_image`).

    Args:
      image: path, PIL image, array (H×W, H×W×C, N×H×W×C) or a list of those.
      max_pixels: largest height × width per image; None means :data:`MAX_PIXELS`.
      channels: the network's input channels (`net.input_channels`).

    Returns:
      (batch, single): `single` is True when the input was one image (so results drop N).
    """
    if isinstance(image, (list, tuple)):
        if not image:
            raise ImageError("an empty list of images was given")
        ims = [to_image(x, f"image {i}", max_pixels, channels) for i, x in enumerate(image)]
        if len({i.shape for i in ims}) > 1:
            raise ImageError(f"images in a batch must share one size; got {sorted({i.shape[:2] for i in ims})}")
        return np.stack(ims), False
    if not isinstance(image, (str, os.PathLike, Image.Image)):
        a = np.asarray(image)
        if a.ndim == 4:
            return np.stack([to_image(x, f"image {i} of the batch", max_pixels, channels)
                             for i, x in enumerate(a)]), False
    return to_image(image, "the image", max_pixels, channels)[None], True


def channel_colors(channels: int) -> np.ndarray:
    """C×3 weights :func:`render_rgb` mixes channels with: gray for 1, the identity for 3; otherwise channel i
    gets the fully saturated hue i/C, each RGB column scaled to sum to 1 (equal channels render gray)."""
    if channels == 1:
        return np.ones((1, 3), np.float32)
    if channels == 3:
        return np.eye(3, dtype=np.float32)
    hues = np.arange(channels) / channels
    # HSV → RGB at S = V = 1: each component a triangle wave of the hue
    k = (np.array([5.0, 3.0, 1.0])[None] + hues[:, None] * 6) % 6
    w = 1 - np.clip(np.minimum(k, 4 - k), 0, 1)
    return (w / w.sum(axis=0, keepdims=True)).astype(np.float32)


def render_rgb(images: np.ndarray) -> np.ndarray:
    """…×C images → …×3 RGB for display, on the same scale: 3 channels as they are, 1 replicated, other counts
    mixed by :func:`channel_colors` (a linear map: signed maps such as gradients keep their sign)."""
    a = np.asarray(images)
    if a.shape[-1] == 3:
        return a
    return (a.astype(np.float32) @ channel_colors(a.shape[-1])).astype(np.float32)


def fit_to_size(batch: np.ndarray, size: tuple[int, int], mode: str = "crop") -> np.ndarray:
    """Resize a batch to the network's input size.

    Args:
      batch: N×H×W×C float pixels (C = 1 and 3: resampled on 0..255 uint8, as photos; other C: each channel
        resampled as float, by the same Pillow filter).
      size: (H, W) wanted.
      mode: "crop" (scale the shorter side to fit, then centre-crop: keeps aspect ratio),
        "stretch" (resize to exactly `size`, as MATLAB's `imresize(im, inputSize(1:2))`),
        or "none" (must already be `size`).
    """
    h, w = size
    if batch.shape[1:3] == (h, w):
        return batch
    if mode == "none":
        raise ImageError(f"images are {batch.shape[1]}×{batch.shape[2]} but the network takes {h}×{w}; "
                         "resize them or pass resize='crop' or 'stretch'")
    if mode not in ("crop", "stretch"):
        raise ImageError(f"resize must be 'crop', 'stretch' or 'none', not {mode!r}")
    n, ih, iw, c = batch.shape
    if mode == "stretch":
        nh, nw = h, w
    else:
        s = max(h / ih, w / iw)
        nw, nh = max(w, round(iw * s)), max(h, round(ih * s))
    top, left = (nh - h) // 2, (nw - w) // 2
    box = (left, top, left + w, top + h)
    if c not in (1, 3):
        return np.stack([np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(im[..., j], np.float32), "F")
                                              .resize((nw, nh), Image.Resampling.BILINEAR).crop(box))
                                   for j in range(c)], -1) for im in batch])
    ims = []
    for im in batch:
        pil = Image.fromarray(np.clip(im[..., 0] if c == 1 else im, 0, 255).round().astype(np.uint8))
        pil = pil.resize((nw, nh), Image.Resampling.BILINEAR).crop(box)
        ims.append(np.asarray(pil, np.float32).reshape(h, w, c))
    return np.stack(ims)
