"""Turning what users pass as an image into a float32 N×H×W×3 batch of 0..255 RGB pixels."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ImageError

ImageLike = Any  # path, PIL image, numpy array (H×W, H×W×C, N×H×W×C) or a list of those


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 H×W×3 RGB (grayscale replicated, alpha dropped)."""
    p = Path(path)
    if not p.exists():
        raise ImageError(f"image file {str(p)!r} does not exist")
    if p.is_dir():
        raise ImageError(f"{str(p)!r} is a folder, not an image file")
    try:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise ImageError(f"{str(p)!r} is not a readable image (PNG, JPEG, …): {e}") from e


def _one(x: ImageLike, what: str) -> np.ndarray:
    if isinstance(x, (str, os.PathLike)):
        return read_image(x).astype(np.float32)
    if isinstance(x, Image.Image):
        return np.asarray(x.convert("RGB"), np.float32)
    a = np.asarray(x)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ImageError(f"{what} has dtype {a.dtype}; expected uint8 (0..255) or float pixels in 0..255")
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3:
        raise ImageError(f"{what} has shape {a.shape}; expected H×W, H×W×C or N×H×W×C")
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


def to_batch(image: ImageLike) -> tuple[np.ndarray, bool]:
    """Normalise an image or batch to float32 N×H×W×3 RGB pixels in 0..255.

    Returns:
      (batch, single): `single` is True when the input was one image (so results drop N).
    """
    if isinstance(image, (list, tuple)):
        if not image:
            raise ImageError("an empty list of images was given")
        ims = [_one(x, f"image {i}") for i, x in enumerate(image)]
        if len({i.shape for i in ims}) > 1:
            raise ImageError(f"images in a batch must share one size; got {sorted({i.shape[:2] for i in ims})}")
        return np.stack(ims), False
    if not isinstance(image, (str, os.PathLike, Image.Image)):
        a = np.asarray(image)
        if a.ndim == 4:
            return np.stack([_one(x, f"image {i} of the batch") for i, x in enumerate(a)]), False
    return _one(image, "the image")[None], True


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
        raise ValueError(f"resize must be 'crop', 'stretch' or 'none', not {mode!r}")
    out = []
    for im in batch:
        pil = Image.fromarray(np.clip(im, 0, 255).round().astype(np.uint8))
        if mode == "stretch":
            pil = pil.resize((w, h), Image.BILINEAR)
        else:
            s = max(h / pil.height, w / pil.width)
            nw, nh = max(w, round(pil.width * s)), max(h, round(pil.height * s))
            pil = pil.resize((nw, nh), Image.BILINEAR)
            left, top = (nw - w) // 2, (nh - h) // 2
            pil = pil.crop((left, top, left + w, top + h))
        out.append(np.asarray(pil, np.float32))
    return np.stack(out)
