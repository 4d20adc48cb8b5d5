"""Turning what users pass as an image into a float32 N×H×W×3 batch of 0..255 RGB pixels."""

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


def to_rgb(x: ImageLike, what: str = "the image", max_pixels: int | None = None) -> np.ndarray:
    """One image as float32 H×W×3 RGB pixels in 0..255 (gray repeated, alpha dropped), checked.

    Args:
      x: path, PIL image or array (H×W or H×W×C with C in 1, 3, 4; uint8 or float in 0..255).
      what: how error messages call it, e.g. "image 3".
      max_pixels: largest height × width; None means :data:`MAX_PIXELS`.

    Returns:
      The float32 H×W×3 array.

    Raises:
      ImageError: unreadable, wrong dtype, rank or channel count, NaN/inf, or over the pixel budget.
    """
    if isinstance(x, (str, os.PathLike)):
        return read_image(x, max_pixels).astype(np.float32)
    if isinstance(x, Image.Image):
        check_pixels(x.height, x.width, what, max_pixels)
        return np.asarray(x.convert("RGB"), np.float32)
    a = np.asarray(x)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ImageError(f"{what} has dtype {a.dtype}; expected uint8 (0..255) or float pixels in 0..255")
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3:
        raise ImageError(f"{what} has shape {a.shape}; expected H×W, H×W×C or N×H×W×C")
    check_pixels(a.shape[0], a.shape[1], what, max_pixels)
    c = a.shape[-1]
    if c == 1:
        a = np.repeat(a, 3, axis=-1)  # grayscale → RGB, as MATLAB's examples do with cat(3, I, I, I)
    elif c == 4:
        a = a[..., :3]  # drop alpha
    elif c != 3:
        raise ImageError(f"{what} has {c} channels (shape {a.shape}); expected 1 (gray), 3 (RGB) or 4 (RGBA), "
                         "channels last")
    a = a.astype(np.float32)
    if not np.all(np.isfinite(a)):
        raise ImageError(f"{what} contains NaN or infinite values")
    return a


def to_batch(image: ImageLike, max_pixels: int | None = None) -> tuple[np.ndarray, bool]:
    """Normalise an image or batch to float32 N×H×W×3 RGB pixels in 0..255.

    Args:
      image: path, PIL image, array (H×W, H×W×C, N×H×W×C) or a list of those.
      max_pixels: largest height × width per image; None means :data:`MAX_PIXELS`.

    Returns:
      (batch, single): `single` is True when the input was one image (so results drop N).
    """
    if isinstance(image, (list, tuple)):
        if not image:
            raise ImageError("an empty list of images was given")
        ims = [to_rgb(x, f"image {i}", max_pixels) for i, x in enumerate(image)]
        if len({i.shape for i in ims}) > 1:
            raise ImageError(f"images in a batch must share one size; got {sorted({i.shape[:2] for i in ims})}")
        return np.stack(ims), False
    if not isinstance(image, (str, os.PathLike, Image.Image)):
        a = np.asarray(image)
        if a.ndim == 4:
            return np.stack([to_rgb(x, f"image {i} of the batch", max_pixels) for i, x in enumerate(a)]), False
    return to_rgb(image, "the image", max_pixels)[None], True


def fit_to_size(batch: np.ndarray, size: tuple[int, int], mode: str = "crop") -> np.ndarray:
    """Resize a batch to the network's input size.

    Args:
      batch: N×H×W×3 float pixels.
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
    out = []
    for im in batch:
        pil = Image.fromarray(np.clip(im, 0, 255).round().astype(np.uint8))
        if mode == "stretch":
            pil = pil.resize((w, h), Image.Resampling.BILINEAR)
        else:
            s = max(h / pil.height, w / pil.width)
            nw, nh = max(w, round(pil.width * s)), max(h, round(pil.height * s))
            pil = pil.resize((nw, nh), Image.Resampling.BILINEAR)
            left, top = (nw - w) // 2, (nh - h) // 2
            pil = pil.crop((left, top, left + w, top + h))
        out.append(np.asarray(pil, np.float32))
    return np.stack(out)
