"""MATLAB-compatible image display helpers (pure numpy + Pillow).

Mirrors ``mat2gray``, ``imtile``, ``imresize``, ``jet``/``hot``/``gray`` and the
usual "heat map over image" recipe of MATLAB's Deep Learning Toolbox examples,
so results can be compared pixel for pixel with MATLAB output.  jaxvis puts
the batch axis FIRST (N x H x W x C), unlike MATLAB's 4th dimension.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image

from jaxvis.errors import DisplayError  # defined there; still importable from here
from jaxvis.imaging import images as image_inputs
from jaxvis.imaging.fileio import atomic_path


def _out_float(a: np.ndarray) -> type:
    # MATLAB returns single for single input and double for everything else.
    return np.float32 if a.dtype == np.float32 else np.float64


def mat2gray(a, limits: Sequence[float] | None = None) -> np.ndarray:
    """Rescale to [0, 1] like MATLAB ``mat2gray``.

    Args:
        a: array of any shape; int, bool or float.
        limits: ``(amin, amax)``; defaults to the global min/max of the WHOLE
            array (MATLAB uses ``min(A(:))``, not per channel), NaNs ignored.
    Returns:
        float32 for float32 input, else float64, same shape.  Values below
        ``amin`` map to 0, above ``amax`` to 1.  If ``amin == amax`` MATLAB's
        code takes the "constant image" branch ``I = double(A)`` and then clips
        to [0, 1]; we do the same.  NaNs stay NaN.
    """
    a = np.asarray(a)
    x = a.astype(_out_float(a))  # a copy: rescaled in place below (one copy of a large map, not five)
    if limits is None:
        if x.size == 0:
            return x
        lo, hi = float(np.fmin.reduce(x, axis=None)), float(np.fmax.reduce(x, axis=None))  # NaNs ignored
        if math.isnan(lo):  # all NaN
            return x
    else:
        lim = np.asarray(limits, dtype=np.float64).ravel()
        if lim.size != 2 or np.isnan(lim).any():
            raise DisplayError(f"mat2gray limits must be two numbers (amin, amax), got {limits!r}")
        lo, hi = float(lim[0]), float(lim[1])
        if lo > hi:
            raise DisplayError(f"mat2gray limits need amin <= amax, got ({lo}, {hi})")
    if hi != lo:
        x -= lo
        x /= hi - lo
    # np.clip keeps NaN (MATLAB's max/min would drop it; NaN-in/NaN-out is safer).
    return np.clip(x, 0, 1, out=x)


# ---------------------------------------------------------------- imresize
def _triangle(x):
    return np.clip(1.0 - np.abs(x), 0.0, None)


def _box(x):
    # Half-open interval as in MATLAB's box(): ties go to the right pixel.
    return ((x >= -0.5) & (x < 0.5)).astype(np.float64)


def _cubic(x):
    # Keys cubic with a = -0.5, MATLAB's 'bicubic' kernel.
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


_KERNELS = {"nearest": (_box, 1.0), "bilinear": (_triangle, 2.0), "bicubic": (_cubic, 4.0)}


def _weights(in_len: int, out_len: int, scale: float, method: str, antialias: bool) -> np.ndarray:
    """Dense (out_len, in_len) matrix equivalent to MATLAB's ``contributions``."""
    kernel, width = _KERNELS[method]
    if scale < 1 and antialias:
        # Shrinking: widen the kernel by 1/scale so it low-pass filters.
        h = lambda d: scale * kernel(scale * d)  # noqa: E731
        width = width / scale
    else:
        h = kernel
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)  # pixel-centre alignment, 1-based
    left = np.floor(u - width / 2)
    idx = left[:, None] + np.arange(int(math.ceil(width)) + 2)[None, :]
    w = h(u[:, None] - idx)
    w = w / w.sum(axis=1, keepdims=True)
    # Out-of-range taps are mirrored (aux = [1:n n:-1:1]), i.e. symmetric padding.
    aux = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    cols = aux[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    m = np.zeros((out_len, in_len))
    np.add.at(m, (np.repeat(np.arange(out_len), idx.shape[1]), cols.ravel()), w.ravel())
    return m


def _size_and_scale(in_hw, size, scale):
    if (size is None) == (scale is None):
        raise DisplayError("imresize needs exactly one of size=(rows, cols) or scale=")
    if scale is not None:
        s = np.resize(np.asarray(scale, dtype=np.float64).ravel(), 2)
        if np.size(scale) not in (1, 2) or not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise DisplayError(f"imresize scale must be a positive number or pair, got {scale!r}")
        out = [int(math.ceil(si * n)) for si, n in zip(s, in_hw)]  # MATLAB: ceil(scale*size)
        return out, [float(v) for v in s]
    sz = np.asarray(size, dtype=np.float64).ravel()
    nan = np.isnan(sz)
    if sz.size != 2 or nan.all() or np.any(sz[~nan] <= 0) or np.any(sz[~nan] % 1):
        raise DisplayError(f"imresize size must be (rows, cols) of positive ints, one may be NaN; got {size!r}")
    if nan.any():
        # Keep the aspect ratio: both axes use the scale of the given axis.
        k = int(np.flatnonzero(~nan)[0])
        s = sz[k] / in_hw[k]
        return [int(math.ceil(s * n)) for n in in_hw], [s, s]
    out = [int(v) for v in sz]
    return out, [o / n for o, n in zip(out, in_hw)]


def imresize(image, size=None, *, scale=None, method: str = "bilinear",
             antialias: bool | None = None) -> np.ndarray:
    """Resize like MATLAB ``imresize`` (separable, pixel-centre aligned).

    Args:
        image: H x W, H x W x C, or N x H x W x C (batch first); float, int or bool.
        size: ``(rows, cols)``; one entry may be NaN to keep the aspect ratio
            (the missing one is ``ceil(scale * n)``).
        scale: scalar or per-axis factor; output size is ``ceil(scale * size)``.
        method: "nearest", "bilinear" or "bicubic".
        antialias: widen the kernel by 1/scale when shrinking.  Default as in
            MATLAB: True except for "nearest".
    Returns:
        Resized array, same dtype.  Integer input is rounded and saturated
        (MATLAB casts uint8 that way); bool is thresholded at 0.5.  MATLAB
        rounds between the two 1-D passes for uint8; we round once at the end,
        so results can differ by 1 grey level.
    """
    a = np.asarray(image)
    if method not in _KERNELS:
        raise DisplayError(f"imresize method must be one of {sorted(_KERNELS)}, got {method!r}")
    if a.ndim not in (2, 3, 4):
        raise DisplayError(f"imresize expects H x W, H x W x C or N x H x W x C, got shape {a.shape}")
    if antialias is None:
        antialias = method != "nearest"
    axes = (1, 2) if a.ndim == 4 else (0, 1)
    in_hw = [a.shape[axes[0]], a.shape[axes[1]]]
    if min(in_hw) == 0:
        raise DisplayError(f"imresize got an empty image of shape {a.shape}")
    out_hw, scales = _size_and_scale(in_hw, size, scale)
    x = a.astype(np.float32 if a.dtype == np.float32 else np.float64)
    for ax, n_in, n_out, s in zip(axes, in_hw, out_hw, scales):
        w = _weights(n_in, n_out, s, method, antialias).astype(x.dtype)
        x = np.moveaxis(np.tensordot(w, x, axes=([1], [ax])), 0, ax)
    if a.dtype == np.bool_:
        return x > 0.5
    if np.issubdtype(a.dtype, np.integer):
        info = np.iinfo(a.dtype)
        return np.clip(np.round(x), info.min, info.max).astype(a.dtype)
    return x.astype(a.dtype, copy=False)


# ---------------------------------------------------------------- imtile
def _as_frames(images, frames) -> list[np.ndarray]:
    if isinstance(images, np.ndarray):
        if not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] in (1, 3))):
            raise DisplayError("imtile expects N x H x W, N x H x W x 1 or N x H x W x 3 "
                               f"(batch first), got shape {images.shape}")
    seq = [np.asarray(im) for im in images]
    for i, im in enumerate(seq):
        if not (im.ndim == 2 or (im.ndim == 3 and im.shape[-1] in (1, 3))) or im.size == 0:
            raise DisplayError(f"imtile frame {i} must be H x W, H x W x 1 or H x W x 3, got {im.shape}")
    if frames is not None:
        try:
            seq = [seq[int(k)] for k in np.asarray(frames).ravel()]
        except IndexError as e:
            raise DisplayError(f"imtile frames index out of range for {len(seq)} images") from e
    if not seq:
        raise DisplayError("imtile needs at least one frame")
    return [im[..., 0] if im.ndim == 3 and im.shape[-1] == 1 else im for im in seq]


def _pair(v, name: str, allow_nan: bool = False) -> np.ndarray:
    p = np.resize(np.asarray(v, dtype=np.float64).ravel(), 2)
    if np.size(v) not in (1, 2):
        raise DisplayError(f"imtile {name} must be a scalar or a pair, got {v!r}")
    ok = ~np.isnan(p) if allow_nan else np.ones(2, bool)
    if np.isnan(p[ok]).any() or np.any(p[ok] % 1) or np.any(p[ok] < (1 if allow_nan else 0)):
        raise DisplayError(f"imtile {name} must hold {'positive' if allow_nan else 'non-negative'} "
                           f"integers{' or NaN' if allow_nan else ''}, got {v!r}")
    return p


def imtile(images, *, grid_size=None, thumbnail_size=None, border_size=0,
           background_color=0, frames=None) -> np.ndarray:
    """Tile frames into one image like MATLAB ``imtile``.

    Args:
        images: array N x H x W, N x H x W x 1 or N x H x W x 3 (batch first),
            or a list of H x W[x1|x3] arrays that may differ in size.
        grid_size: ``(rows, cols)``; one NaN means "as many as needed", e.g.
            ``(2, nan)``.  ``None`` or both NaN: MATLAB montage's default,
            ``cols = ceil(sqrt(N * h / w))``, ``rows = ceil(N / cols)`` (h, w =
            thumbnail size).  Fewer cells than frames: the first rows*cols
            frames are shown.  Frames fill row by row.
        thumbnail_size: ``(h, w)``, one may be NaN (aspect of the first frame
            kept).  Default: no resize if all frames match, else the first
            frame's size (MATLAB).  Resizing uses bilinear antialiased imresize.
        border_size: scalar or ``(bh, bw)`` background pixels added on EVERY
            side of each thumbnail: output is rows*(h+2*bh) x cols*(w+2*bw).
        background_color: scalar or RGB triple in the image's value range
            (0..1 floats, 0..255 uint8); an RGB colour makes grey frames RGB.
        frames: indices of the frames to include, in order.
    Returns:
        H' x W' for all-grey frames, else H' x W' x 3, input dtype.
    """
    seq = _as_frames(images, frames)
    dtype = np.result_type(*[im.dtype for im in seq])
    bg = np.asarray(background_color, dtype=np.float64).ravel()
    if bg.size not in (1, 3):
        raise DisplayError(f"imtile background_color must be a scalar or RGB triple, got {background_color!r}")
    rgb = bg.size == 3 or any(im.ndim == 3 for im in seq)
    h0, w0 = seq[0].shape[:2]
    if thumbnail_size is None:
        th, tw = h0, w0
    else:
        t = _pair(thumbnail_size, "thumbnail_size", allow_nan=True)
        if np.isnan(t).all():
            raise DisplayError("imtile thumbnail_size may have at most one NaN")
        th = int(t[0]) if not np.isnan(t[0]) else int(math.ceil(t[1] / w0 * h0))
        tw = int(t[1]) if not np.isnan(t[1]) else int(math.ceil(t[0] / h0 * w0))
    n = len(seq)
    g = np.array([np.nan, np.nan]) if grid_size is None else _pair(grid_size, "grid_size", allow_nan=True)
    if np.isnan(g).all():
        cols = int(math.ceil(math.sqrt(n * th / tw)))
        rows = int(math.ceil(n / cols))
    elif np.isnan(g[0]):
        cols = int(g[1]); rows = int(math.ceil(n / cols))
    elif np.isnan(g[1]):
        rows = int(g[0]); cols = int(math.ceil(n / rows))
    else:
        rows, cols = int(g[0]), int(g[1])
    bh, bw = (int(v) for v in _pair(border_size, "border_size"))
    ch, cw = th + 2 * bh, tw + 2 * bw
    if min(rows, cols, th, tw) < 1:
        raise DisplayError(f"imtile grid {rows}×{cols} of {th}×{tw} thumbnails holds no pixels")
    # Checked before anything is allocated or resized: a huge --grid/--thumbnail must fail cleanly.
    limit = image_inputs.MAX_PIXELS  # read at call time, so a raised limit applies
    if rows * ch * cols * cw > limit:
        raise DisplayError(f"imtile output would be {rows * ch}×{cols * cw} pixels ({rows}×{cols} tiles of {ch}×{cw}), "
                           f"over the {limit / 1e6:g}-megapixel limit (jaxvis.imaging.images.MAX_PIXELS); "
                           f"use a smaller grid or thumbnail size")
    shape = (rows * ch, cols * cw) + ((3,) if rgb else ())
    out = np.empty(shape, dtype=dtype)
    out[...] = bg if rgb else bg[0]  # broadcast fills borders and empty cells
    for k, im in enumerate(seq[: rows * cols]):
        if im.shape[:2] != (th, tw):
            im = imresize(im, (th, tw), method="bilinear")
        if rgb and im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=-1)
        r, c = divmod(k, cols)  # row-major, as MATLAB fills the montage
        out[r * ch + bh: r * ch + bh + th, c * cw + bw: c * cw + bw + tw] = im
    return out


# ---------------------------------------------------------------- colour
def _jet(m: int) -> np.ndarray:
    # Literal port of MATLAB's jet.m (1-based indices shifted at the end).
    n = math.ceil(m / 4)
    u = np.concatenate([np.arange(1, n + 1) / n, np.ones(n - 1), np.arange(n, 0, -1) / n])
    g = math.ceil(n / 2) - (m % 4 == 1) + np.arange(1, u.size + 1)
    r, b = g + n, g - n
    g, r, b = g[g <= m], r[r <= m], b[b >= 1]
    j = np.zeros((m, 3))
    j[r - 1, 0] = u[: r.size]
    j[g - 1, 1] = u[: g.size]
    j[b - 1, 2] = u[u.size - b.size:]
    return j


def _hot(m: int) -> np.ndarray:
    # MATLAB hot.m: red ramps over the first 3/8, then green, then blue.
    n = int(3 / 8 * m)
    r = np.concatenate([np.arange(1, n + 1) / n, np.ones(m - n)])
    g = np.concatenate([np.zeros(n), np.arange(1, n + 1) / n, np.ones(m - 2 * n)])
    b = np.concatenate([np.zeros(2 * n), np.arange(1, m - 2 * n + 1) / max(m - 2 * n, 1)])
    return np.stack([r, g, b], axis=1)


def _gray(m: int) -> np.ndarray:
    v = np.arange(m) / max(m - 1, 1)
    return np.stack([v, v, v], axis=1)


_BUILTIN = {"jet": _jet, "hot": _hot, "gray": _gray}


def colormap(name: str = "jet", n: int = 256) -> np.ndarray:
    """Return an n x 3 colormap in [0, 1].

    Args:
        name: "jet", "hot", "gray" (exact ports of MATLAB's jet(n), hot(n),
            gray(n)); any matplotlib colormap name if matplotlib is installed.
        n: number of entries (MATLAB's m).
    Returns:
        float64 array of shape (n, 3).
    """
    if int(n) != n or n < 1:
        raise DisplayError(f"colormap size must be a positive integer, got {n!r}")
    n = int(n)
    if name in _BUILTIN:
        return _BUILTIN[name](n)
    try:  # optional: matplotlib is not a dependency
        import matplotlib
        cmap = matplotlib.colormaps[name]
    except (ImportError, KeyError):
        cmap = None
    if cmap is None:
        raise DisplayError(f"unknown colormap {name!r}; available: {sorted(_BUILTIN)}"
                           " (plus matplotlib's, if installed)")
    return np.asarray(cmap(np.linspace(0, 1, n)))[:, :3].astype(np.float64)


def apply_colormap(values, cmap="jet") -> np.ndarray:
    """Map values in [0, 1] to RGB, like MATLAB ``ind2rgb(gray2ind(v, n), cmap)``.

    Args:
        values: H x W (any shape) array; clipped to [0, 1]; NaN maps to black.
        cmap: colormap name or an n x 3 array.
    Returns:
        float64 array ``values.shape + (3,)`` in [0, 1].
    """
    lut = colormap(cmap) if isinstance(cmap, str) else np.asarray(cmap, dtype=np.float64)
    if lut.ndim != 2 or lut.shape[1] != 3:
        raise DisplayError(f"colormap array must be n x 3, got shape {lut.shape}")
    v = np.asarray(values, dtype=np.float64)
    nan = np.isnan(v)
    # gray2ind rounds v*(n-1) to the nearest index.
    idx = np.round(np.clip(np.where(nan, 0, v), 0, 1) * (lut.shape[0] - 1)).astype(np.int64)
    out = lut[idx]
    out[nan] = 0.0
    return out


def overlay(image, heat, *, alpha: float = 0.5, cmap="jet", normalize: bool = True) -> np.ndarray:
    """Blend a colour-mapped heat map over an image (Grad-CAM/occlusion style).

    Args:
        image: H x W or H x W x 3, uint8 0..255 or float 0..1.
        heat: h x w map; bilinearly imresize'd to H x W when sizes differ.
        alpha: weight of the heat map: ``out = (1-alpha)*image + alpha*colour``.
        cmap: colormap name or n x 3 array.
        normalize: rescale heat with ``mat2gray`` first; else clip to [0, 1].
    Returns:
        H x W x 3 float64 in [0, 1].
    """
    if not 0.0 <= alpha <= 1.0:
        raise DisplayError(f"overlay alpha must be in [0, 1], got {alpha!r}")
    img = np.asarray(image)
    img = img.astype(np.float64) / 255.0 if img.dtype == np.uint8 else img.astype(np.float64)
    if img.ndim == 2 or (img.ndim == 3 and img.shape[-1] == 1):
        img = np.broadcast_to(img.reshape(img.shape[:2] + (1,)), img.shape[:2] + (3,))
    if img.ndim != 3 or img.shape[-1] != 3:
        raise DisplayError(f"overlay image must be H x W or H x W x 3, got {np.shape(image)}")
    h = np.asarray(heat, dtype=np.float64)
    h = h[..., 0] if h.ndim == 3 and h.shape[-1] == 1 else h
    if h.ndim != 2:
        raise DisplayError(f"overlay heat must be a 2-D map, got shape {h.shape}")
    if h.shape != img.shape[:2]:
        h = imresize(h, img.shape[:2], method="bilinear")
    h = mat2gray(h) if normalize else np.clip(h, 0, 1)
    return np.clip((1 - alpha) * img + alpha * apply_colormap(h, cmap), 0.0, 1.0)


# ---------------------------------------------------------------- output
def to_uint8(a) -> np.ndarray:
    """float [0, 1] -> uint8 like MATLAB ``im2uint8`` (clip, then round; NaN -> 0).

    uint8 input is returned unchanged; bool maps to 0/255.
    """
    a = np.asarray(a)
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    x = np.nan_to_num(a.astype(np.float64), nan=0.0)
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def save_png(path, array, *, parents: bool = False) -> None:
    """Write a PNG atomically (temp file in the same directory, then os.replace).

    Args:
        path: destination; its folder must exist (OutputError naming it otherwise).
        array: H x W, H x W x 1 or H x W x 3; uint8, or float in [0, 1].  Floats
            outside [0, 1] are clipped (as im2uint8 does), not rejected.
        parents: create missing folders above `path` (only inside an output folder the caller made).
    """
    a = to_uint8(array)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] == 3)) or a.size == 0:
        raise DisplayError(f"save_png expects H x W, H x W x 1 or H x W x 3, got {np.shape(array)}")
    # atomic_path: temp file beside `path`, renamed over it on success, with the permissions a
    # plain open() gives (a bare mkstemp file would stay 0600, unreadable to other users).
    with atomic_path(path, parents=parents) as tmp:
        Image.fromarray(np.ascontiguousarray(a)).save(tmp, format="PNG")
