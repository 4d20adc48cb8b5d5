"""Reading activation maps: the steps of MathWorks' "Visualize Activations" example as functions.

Each function takes one image's activations, H×W×C numpy (what
``jaxvis.activations(net, image, layer)`` returns), channels 0-based: MATLAB's
channel k is channel k-1 here.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from PIL import Image

from ..imaging.display import DisplayError, imresize, imtile, mat2gray, overlay
from ..errors import ImageError
from ..imaging.images import read_image


def _act3(act, what: str = "act") -> np.ndarray:
    a = np.asarray(act)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 3:
        hint = "; pass one image's activations, act[i]" if a.ndim == 4 else ""
        raise DisplayError(f"{what} must be one image's activations, H×W×C; got shape {a.shape}{hint}")
    if a.size == 0:
        raise DisplayError(f"{what} is empty (shape {a.shape})")
    return a


def _check_channel(c, n: int) -> int:
    if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)) or not 0 <= c < n:
        raise DisplayError(f"channel {c!r} does not exist: the activations have {n} channels, valid 0..{n - 1} "
                           "(0-based: MATLAB's channel k is k-1)")
    return int(c)


def _image01(image) -> np.ndarray:
    """Image as float64 H×W×3 in [0, 1]: paths/PIL/uint8 from 0..255; float arrays whose
    maximum exceeds 1 are taken as 0..255 pixels (jaxvis's convention), others as 0..1."""
    if isinstance(image, (str, os.PathLike)):
        a = read_image(image)
    elif isinstance(image, Image.Image):
        a = np.asarray(image.convert("RGB"))
    else:
        a = np.asarray(image)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (3, 4))):
        raise ImageError(f"the image must be H×W, H×W×3 or H×W×4 (one image, channels last); got shape {a.shape}")
    a = a[..., :3] if a.ndim == 3 else np.repeat(a[..., None], 3, axis=-1)
    if a.dtype == np.bool_:
        return a.astype(np.float64)
    if np.issubdtype(a.dtype, np.integer):
        return np.clip(a.astype(np.float64) / 255.0, 0, 1)
    if not np.issubdtype(a.dtype, np.floating):
        raise ImageError(f"the image has dtype {a.dtype}; expected uint8 or float pixels")
    x = a.astype(np.float64)
    if np.nanmax(x) > 1.0:
        x = x / 255.0
    return np.clip(x, 0, 1)


def strongest_channel(act) -> tuple[int, float]:
    """The channel holding the largest activation, MATLAB's ``[v, i] = max(max(max(act)))``.

    Args:
      act: H×W×C activations of one image (or 1×H×W×C).

    Returns:
      (0-based channel index, its maximum value). Ties go to the lowest index and NaNs
      are ignored, as in MATLAB's ``max``.
    """
    a = _act3(act)
    per_channel = np.fmax.reduce(a, axis=(0, 1))  # NaNs ignored, without a copy of a large map
    per_channel = np.where(np.isnan(per_channel), -np.inf, per_channel)  # an all-NaN channel never wins
    i = int(np.argmax(per_channel))  # first maximum, like MATLAB
    return i, float(per_channel[i])


def channel_image(act, channel: int | Sequence[int], size: tuple[int, int] | None = None, *,
                  method: str = "bilinear") -> np.ndarray:
    """One channel (or several) rescaled to [0, 1] and resized to the image's size.

    MATLAB: ``imresize(mat2gray(act(:,:,:,k)), imgSize)``. With several channels the
    rescaling uses their joint min/max, as ``mat2gray(act(:,:,:,[14 47]))`` does, so their
    brightness can be compared.

    Args:
      act: H×W×C activations of one image.
      channel: 0-based channel index, or a sequence of them.
      size: (rows, cols) to resize to, normally the image's size; None keeps the map's size.
      method: 'bilinear' (smooth, MATLAB's default) or 'nearest' (shows the map's cells).

    Returns:
      float32 H'×W' in [0, 1]; K×H'×W' for a sequence of K channels.
    """
    a = _act3(act)
    many = not isinstance(channel, (int, np.integer))
    chans = [_check_channel(c, a.shape[-1]) for c in (channel if many else [channel])]  # type: ignore[union-attr]  # many ⇒ a sequence
    if not chans:
        raise DisplayError("channel_image needs at least one channel")
    g = mat2gray(a[..., chans].astype(np.float32))
    if size is not None:
        g = imresize(g, tuple(size), method=method)
    g = np.clip(g, 0, 1)  # bicubic can overshoot; keep the documented range
    return np.moveaxis(g, -1, 0) if many else g[..., 0]


def side_by_side(image, *channel_images, border: int = 0) -> np.ndarray:
    """The photo and channel images in one row, MATLAB's ``imtile({im, act1ch22})``.

    Args:
      image: path, PIL image or array (uint8 0..255; float 0..255, or 0..1 when its max is ≤ 1).
      *channel_images: H×W maps in [0, 1] (e.g. from :func:`channel_image`) or RGB images;
        resized to the photo's size if they differ.
      border: background pixels around each tile (MATLAB's BorderSize; default 0 as MATLAB).

    Returns:
      float64 H×(K·W)×3 RGB image in [0, 1] (with borders: larger), ready for ``save_png``.
    """
    if not channel_images:
        raise DisplayError("side_by_side needs at least one channel image after the photo")
    frames = [_image01(image)]
    for i, c in enumerate(channel_images):
        c = np.asarray(c, dtype=np.float64)
        if not (c.ndim == 2 or (c.ndim == 3 and c.shape[-1] in (1, 3))):
            raise DisplayError(f"channel image {i} must be H×W (or H×W×3); got shape {c.shape}")
        frames.append(np.clip(c, 0, 1))
    return imtile(frames, grid_size=(1, len(frames)), border_size=border, background_color=1.0)


def activation_grid(act, grid_size: tuple[int, int] | None = (8, 8),
                    thumbnail_size: int | tuple[int, int] | None = None, *, border: int = 0,
                    background: float = 0.0) -> np.ndarray:
    """All channels as one grey image, MATLAB's ``imtile(mat2gray(act), 'GridSize', grid)``.

    mat2gray uses the min/max of the whole array, so channels can be compared: a dark
    tile is a channel that responds weakly everywhere.

    Args:
      act: H×W×C activations of one image; each channel is one tile, filled row by row.
      grid_size: (rows, cols); a NaN entry means "as many as needed"; None: roughly
        square. Channels beyond rows·cols are left out, as in MATLAB.
      thumbnail_size: tile size in pixels (int or (h, w)); None keeps the map's size.
        Tiles are resized bilinearly, as ``imresize(mat2gray(act), [64 64])``.
      border: background pixels around each tile (0, as MATLAB).
      background: grey level of borders and empty cells, 0 (black, MATLAB's) to 1 (white:
        with a border, separates dark tiles).

    Returns:
      float32 (or float64) grey image in [0, 1].
    """
    a = _act3(act)
    frames = np.moveaxis(mat2gray(a), -1, 0)
    ts = (thumbnail_size, thumbnail_size) if isinstance(thumbnail_size, (int, np.integer)) else thumbnail_size
    return np.clip(imtile(frames, grid_size=grid_size, thumbnail_size=ts, border_size=border,
                          background_color=float(background)), 0, 1)


def _default_cmap() -> str:
    try:
        import matplotlib  # noqa: F401  (optional dependency)
        return "turbo"
    except ImportError:
        return "jet"


def heatmap_overlay(image, act_channel, alpha: float = 0.5, cmap: str | np.ndarray | None = None, *,
                    limits: tuple[float, float] | None = None) -> np.ndarray:
    """A channel's map, colour-coded and blended over the photo.

    Args:
      image: path, PIL image or array (see :func:`side_by_side`).
      act_channel: h×w map (raw activations or :func:`channel_image` output); rescaled with
        mat2gray and resized bilinearly to the photo's size.
      alpha: weight of the colours: ``(1-alpha)·photo + alpha·colour``.
      cmap: colormap name or n×3 array. Default: matplotlib's 'turbo' when matplotlib is
        installed, else the built-in port of MATLAB's 'jet' (built in too: 'hot', 'gray').
      limits: (low, high) activation values mapped to the ends of the colormap (mat2gray's
        limits); give the same limits to compare several photos. Default: the map's min/max.

    Returns:
      float64 H×W×3 RGB in [0, 1].
    """
    m = np.asarray(act_channel)
    if m.ndim == 3 and m.shape[-1] > 1:
        raise DisplayError(f"heatmap_overlay needs one channel (h×w); got shape {m.shape}: pass act[..., k]")
    if limits is not None:
        m = mat2gray(m, limits)
    return overlay(_image01(image), m, alpha=alpha, cmap=_default_cmap() if cmap is None else cmap,
                   normalize=limits is None)
