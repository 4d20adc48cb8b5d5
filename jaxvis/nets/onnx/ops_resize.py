"""Handlers that change spatial size by interpolation or rearrangement: Resize, Upsample, DepthToSpace,
SpaceToDepth.

Resize is separable: along each resized axis every output position reads n input
positions with fixed weights (n = 1 nearest, 2 linear, 4 cubic, more when
antialiasing). The index and weight tables are computed once at import, following the
ONNX reference implementation (onnx/reference/ops/op_resize.py) for every coordinate
transformation mode, and at run time each axis is a gather and a weighted sum in the
tensor's own layout.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from .layout import NCHW_TO_NHWC, canonical, identity, to_layout
from .registry import Ctx, op

_TRANSFORMS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
               "tf_crop_and_resize")


def _nearest(mode: str):
    def coeffs(ratio, scale):
        if float(ratio).is_integer():
            return np.array([0.0, 1.0])
        up = {"round_prefer_floor": ratio > 0.5, "round_prefer_ceil": ratio >= 0.5, "floor": False, "ceil": True,
              "simple": scale < 1}[mode]
        return np.array([0.0, 1.0]) if up else np.array([1.0, 0.0])
    return coeffs


def _linear(antialias: bool):
    def coeffs(ratio, scale):
        if not antialias:
            return np.array([1 - ratio, ratio])
        scale = min(scale, 1.0)
        start = int(np.floor(-1 / scale) + 1)
        args = (np.arange(start, 2 - start) - ratio) * scale
        w = np.clip(1 - np.abs(args), 0, 1)
        return w / w.sum()
    return coeffs


def _cubic(a: float, antialias: bool):
    def kernel(x):
        x = np.abs(x)
        return np.where(x <= 1, (a + 2) * x**3 - (a + 3) * x**2 + 1,
                        np.where(x < 2, a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a, 0.0))

    def coeffs(ratio, scale):
        if not antialias:
            return kernel(np.array([ratio + 1, ratio, 1 - ratio, 2 - ratio]))
        scale = min(scale, 1.0)
        start = int(np.floor(-2 / scale) + 1)
        w = kernel(scale * (np.arange(start, 2 - start) - ratio))
        return w / w.sum()
    return coeffs


def _source(mode: str, y: np.ndarray, scale: float, n_in: int, n_out: int, roi) -> np.ndarray:
    """Input coordinate of each output position `y` (ONNX's coordinate_transformation_mode)."""
    out_f = scale * n_in
    if mode == "align_corners":
        return np.zeros_like(y) if out_f == 1 else y * (n_in - 1) / (out_f - 1)
    if mode == "asymmetric":
        return y / scale
    if mode == "tf_crop_and_resize":
        x = (np.full_like(y, (roi[1] - roi[0]) * (n_in - 1) / 2) if out_f == 1
             else y * (roi[1] - roi[0]) * (n_in - 1) / (out_f - 1))
        return x + roi[0] * (n_in - 1)
    if mode == "pytorch_half_pixel":
        return np.full_like(y, -0.5) if out_f == 1 else (y + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        return n_in / 2 * (1 - n_out / out_f) + (y + 0.5) / scale - 0.5
    return (y + 0.5) / scale - 0.5


def _tables(coeffs, mode: str, n_in: int, scale: float, n_out: int, roi, exclude: bool):
    """(indices, weights, outside) of one axis: output o = Σ_k weights[o, k] · input[indices[o, k]];
    `outside` marks outputs that take the extrapolation value (tf_crop_and_resize), or None."""
    y = np.arange(n_out, dtype=np.float64)
    x = _source(mode, y, scale, n_in, n_out, roi)
    base = np.floor(x)
    ratio = np.where(x == base, 1.0, x - base)  # the reference prefers the pixel left of x
    w = np.stack([coeffs(float(r), scale) for r in ratio]) if n_out else np.zeros((0, 2))
    n = w.shape[1]
    pad = int(np.ceil(n / 2))
    xp = x + pad
    p = np.floor(xp).astype(np.int64)
    frac = xp - p
    offset = (np.where(frac == 0, -(n // 2), -(n // 2) + 1) if n % 2 == 0 else
              np.where(frac <= 0.5, -((n - 1) // 2), -((n - 1) // 2) + 1))
    idx = (p + offset)[:, None] + np.arange(n)[None] - pad
    if exclude:
        w = np.where((idx < 0) | (idx >= n_in), 0.0, w)
        s = w.sum(1, keepdims=True)
        w = w / np.where(s == 0, 1.0, s)
    outside = ((x < 0) | (x > n_in - 1)) if mode == "tf_crop_and_resize" else None
    return np.clip(idx, 0, n_in - 1).astype(np.int32), w.astype(np.float32), outside


def _resample(v, ax: int, idx: np.ndarray, w: np.ndarray):
    """Along run-time axis `ax`: Σ_k w[:, k] · v[idx[:, k]] (one gather for nearest)."""
    hot = (w == 1.0) & (w.sum(1, keepdims=True) == 1.0)
    if hot.any(1).all():  # nearest (or exact positions): a single gather
        return jnp.take(v, idx[np.arange(len(idx)), hot.argmax(1)], axis=ax)
    shape = [1] * v.ndim
    shape[ax] = len(idx)
    y = None
    for k in range(idx.shape[1]):
        keep = w[:, k] != 0
        if not keep.any():
            continue
        term = jnp.take(v, idx[:, k], axis=ax) * w[:, k].reshape(shape)
        y = term if y is None else y + term
    return y if y is not None else jnp.zeros_like(jnp.take(v, idx[:, 0], axis=ax))


def _resize(c: Ctx, scales, sizes, roi, transform: str, coeffs, exclude: bool, extrapolation: float,
            axes: list[int] | None = None, policy: str = "stretch"):
    x = c.need(0)
    r = x.rank
    axes = list(range(r)) if axes is None else [int(a) % r for a in axes]
    if sizes is not None and len(sizes):
        if len(sizes) != len(axes):
            raise c.fail(f"sizes {list(sizes)} do not match the {len(axes)} resized axes")
        want = [int(s) for s in sizes]
        factors = [w / x.shape[a] if x.shape[a] else 1.0 for w, a in zip(want, axes)]
        if policy != "stretch":
            f = min(factors) if policy == "not_larger" else max(factors)
            factors = [f] * len(axes)
            want = [int(f * x.shape[a] + 0.5) for a in axes]
    elif scales is not None and len(scales):
        if len(scales) != len(axes):
            raise c.fail(f"scales {list(scales)} do not match the {len(axes)} resized axes")
        factors = [float(s) for s in scales]
        if not all(math.isfinite(f) and f > 0 for f in factors):
            raise c.fail(f"scales {factors} must be positive and finite")
        want = [int(f * x.shape[a]) for f, a in zip(factors, axes)]
    else:
        raise c.fail("needs its scales or sizes")
    if min(want, default=0) < 0:
        raise c.fail(f"output sizes {want} must be non-negative")
    shape = list(x.shape)
    for a, w in zip(axes, want):
        shape[a] = w
    c.check("its output", shape, c.dtype(0))  # before the tables are built
    roi = None if roi is None or np.size(roi) == 0 else [float(v) for v in np.asarray(roi).reshape(-1)]
    canon = x.feat is not None
    plan = []
    for i, (a, f, w) in enumerate(zip(axes, factors, want)):
        lo_hi = None if roi is None else (roi[i], roi[i + len(axes)])
        if math.isclose(f, 1.0) and w == x.shape[a] and (lo_hi is None or lo_hi == (0.0, 1.0)):
            continue  # this axis (the batch, usually) stays as it is
        c.check("its interpolation table", (w, 4), np.float32)
        idx, wt, outside = _tables(coeffs, transform, x.shape[a], f, w, lo_hi, exclude)
        plan.append((a if canon else x.axis(a), idx, wt, outside))

    def fn(v):
        v = canonical(v, x) if canon else v
        mask = None
        for ax, idx, wt, outside in plan:
            v = _resample(v, ax, idx, wt)
            if outside is not None:
                m = np.zeros([1] * v.ndim, bool) | outside.reshape([-1 if d == ax else 1 for d in range(v.ndim)])
                mask = m if mask is None else mask | m
        return v if mask is None else jnp.where(mask, jnp.asarray(extrapolation, v.dtype), v)

    return c.emit(fn, [c.data(0)], [(identity(r) if canon else x.perm, None)], cl=x.cl and not canon)


def _mode_coeffs(c: Ctx, mode: str, nearest_mode: str, antialias: bool):
    if mode == "nearest":
        return _nearest(nearest_mode)
    if mode in ("linear", "bilinear"):
        return _linear(antialias)
    if mode == "cubic":
        return _cubic(float(c.attr("cubic_coeff_a", -0.75)), antialias)
    raise c.fail(f"mode {mode!r} is not nearest, linear or cubic")


@op("Resize")
def resize(c: Ctx):
    mode = c.attr("mode", "nearest")
    if c.opset < 11:  # Resize-10: Upsample's coordinates (asymmetric, truncating nearest)
        return _resize(c, c.static(1, "scales"), None, None, "asymmetric", _mode_coeffs(c, mode, "simple", False),
                       False, 0.0)
    transform = c.attr("coordinate_transformation_mode", "half_pixel")
    if transform not in _TRANSFORMS:
        raise c.fail(f"coordinate_transformation_mode {transform!r} is not one of {', '.join(_TRANSFORMS)}")
    antialias = bool(c.attr("antialias", 0))
    coeffs = _mode_coeffs(c, mode, c.attr("nearest_mode", "round_prefer_floor"), antialias and mode != "nearest")
    roi = c.static(1, "roi") if transform == "tf_crop_and_resize" else None
    return _resize(c, c.static(2, "scales"), c.static(3, "sizes"), roi, transform, coeffs,
                   bool(c.attr("exclude_outside", 0)), float(c.attr("extrapolation_value", 0.0)),
                   c.attr("axes"), c.attr("keep_aspect_ratio_policy", "stretch"))


@op("Upsample")
def upsample(c: Ctx):
    scales = c.attr("scales") if c.opset < 9 else c.static(1, "scales")
    coeffs = _mode_coeffs(c, c.attr("mode", "nearest"), "simple", False)
    return _resize(c, scales, None, None, "asymmetric", coeffs, False, 0.0)


def _block(c: Ctx) -> int:
    x = c.need(0)
    if x.rank != 4 or x.feat is not None:
        raise c.fail(f"needs an N×C×H×W input, got shape {list(x.shape)}")
    b = int(c.attr("blocksize"))
    if b < 1:
        raise c.fail(f"blocksize {b} must be positive")
    return b


@op("DepthToSpace")
def depth_to_space(c: Ctx):
    x, b = c.need(0), _block(c)
    ch = x.shape[1]
    if ch % (b * b):
        raise c.fail(f"{ch} channels are not a multiple of blocksize² = {b * b}")
    crd = c.attr("mode", "DCR") == "CRD"

    def fn(v):
        v = to_layout(v, x, NCHW_TO_NHWC)  # channel c = (i·b + j)·C' + k (DCR) or k·b² + i·b + j (CRD)
        n, h, w, _ = v.shape
        if crd:
            v = v.reshape(n, h, w, ch // (b * b), b, b).transpose(0, 1, 4, 2, 5, 3)
        else:
            v = v.reshape(n, h, w, b, b, ch // (b * b)).transpose(0, 1, 3, 2, 4, 5)
        return v.reshape(n, h * b, w * b, ch // (b * b))

    return c.emit(fn, [c.data(0)], [(NCHW_TO_NHWC, None)])


@op("SpaceToDepth")
def space_to_depth(c: Ctx):
    x, b = c.need(0), _block(c)
    if x.shape[2] % b or x.shape[3] % b:
        raise c.fail(f"spatial size {x.shape[2]}×{x.shape[3]} is not a multiple of blocksize {b}")

    def fn(v):
        v = to_layout(v, x, NCHW_TO_NHWC)
        n, h, w, ch = v.shape
        v = v.reshape(n, h // b, b, w // b, b, ch).transpose(0, 1, 3, 2, 4, 5)
        return v.reshape(n, h // b, w // b, b * b * ch)

    return c.emit(fn, [c.data(0)], [(NCHW_TO_NHWC, None)])
