"""Handlers for the layers with weights or windows: Conv, ConvTranspose, Gemm, MatMul, Einsum, pools.

Feature maps run NHWC; kernels are converted to HWIO once at import. Convolutions
and max pools with square windows and symmetric padding use :mod:`jaxvis.nets.ops`
(the formulations of the hand-written models, with their fast CPU gradients);
everything else goes to `lax` with explicit per-side padding.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from .. import ops
from .layout import NCHW_TO_NHWC, canonical, identity, to_layout
from .registry import Ctx, op

_DN = ("NHWC", "HWIO", "NHWC")


# Windows up to this size use the hand-written models' formulations (jaxvis.nets.ops), whose fast CPU
# gradients loop over the window's offsets at trace time; bigger windows go to XLA's own ops.
HAND_WINDOW = 16
MAX_WINDOW = 2**31 - 1  # the largest kernel, stride, dilation, pad or window extent a Conv or pool may have


def _window(c: Ctx, k: tuple[int, ...]):
    """(strides, dilations, pads [(begin, end)] per spatial axis, auto_pad) of a Conv/pool node."""
    n = len(k)
    strides = tuple(int(v) for v in c.attr("strides", [1] * n))
    dil = tuple(int(v) for v in c.attr("dilations", [1] * n))
    p = [int(v) for v in c.attr("pads", [0] * 2 * n)]
    auto = c.attr("auto_pad", "NOTSET")
    if len(strides) != n or len(dil) != n or len(p) != 2 * n:
        raise c.fail(f"strides {list(strides)}, dilations {list(dil)} and pads {p} do not fit a {n}-D window")
    if min(k) < 1 or min(strides) < 1 or min(dil) < 1 or min(p, default=0) < 0:
        raise c.fail(f"window {list(k)}, strides {list(strides)} and dilations {list(dil)} must be positive, "
                     f"pads {p} non-negative")
    if auto not in ("NOTSET", "", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise c.fail(f"auto_pad {auto!r} is not NOTSET, VALID, SAME_UPPER or SAME_LOWER")
    # XLA adds and multiplies these in int64: bound them so no sum or window extent can wrap around.
    extents = [(kk - 1) * dd + 1 for kk, dd in zip(k, dil)] + [p[i] + p[i + n] for i in range(n)]
    if max(*k, *strides, *dil, *p, *extents) > MAX_WINDOW:
        raise c.fail(f"window {list(k)}, strides {list(strides)}, dilations {list(dil)} and pads {p} exceed "
                     f"{MAX_WINDOW} (2³¹ − 1) along an axis")
    return strides, dil, [(p[i], p[i + n]) for i in range(n)], auto


def _auto_pads(auto: str, pads, sizes, k, s, d):
    """Explicit pads for auto_pad SAME_UPPER/SAME_LOWER/VALID (ONNX's definitions)."""
    if auto in ("NOTSET", ""):
        return pads
    if auto == "VALID":
        return [(0, 0)] * len(k)
    out = []
    for n, kk, ss, dd in zip(sizes, k, s, d):
        total = max((-(-n // ss) - 1) * ss + (kk - 1) * dd + 1 - n, 0)
        lo = total // 2 if auto == "SAME_UPPER" else total - total // 2
        out.append((lo, total - lo))
    return out


def _spatial(c: Ctx, x):
    if x.rank != 4:
        raise c.fail(f"only 2-D spatial ops are supported (input rank 4), got input of shape {list(x.shape)}")


@op("Conv")
def conv(c: Ctx):
    x, w = c.inp(0), c.inp(1)
    _spatial(c, x)
    if not w.is_const:
        raise c.fail("the weights must be an initializer or constant")
    _m, cg, kh, kw = w.shape
    g = int(c.attr("group", 1))
    s, d, pads, auto = _window(c, (kh, kw))
    declared = c.attr("kernel_shape")
    if declared is not None and tuple(int(v) for v in declared) != (kh, kw):
        raise c.fail(f"kernel_shape {list(declared)} disagrees with its weights {list(w.shape)}")
    if g < 1 or _m % g:
        raise c.fail(f"group {g} does not divide its {_m} output channels")
    if x.shape[1] != cg * g:
        raise c.fail(f"weights {list(w.shape)} with group {g} expect {cg * g} input channels, "
                     f"input {x.name!r} has {x.shape[1]}")
    p = _auto_pads(auto, pads, x.shape[2:], (kh, kw), s, d)
    out = [(n + lo + hi - (k - 1) * dd - 1) // ss + 1 for n, (lo, hi), k, dd, ss in zip(x.shape[2:], p, (kh, kw), d, s)]
    if min(out) < 1:
        raise c.fail(f"a {kh}×{kw} kernel (dilations {list(d)}, pads {[list(q) for q in p]}) does not fit its "
                     f"{list(x.shape[2:])} input")
    c.check("its output", (x.shape[0], _m, *out))
    kernel = c.data(1, lambda a: a.transpose(2, 3, 1, 0), "hwio")
    refs = [c.data(0), kernel] + ([c.data(2)] if c.inp(2) is not None else [])

    def fn(xv, k, b=None):
        xv = to_layout(xv, x, NCHW_TO_NHWC)
        p = _auto_pads(auto, pads, xv.shape[1:3], (kh, kw), s, d)
        flat = {v for pr in p for v in pr}
        if (kh == kw <= HAND_WINDOW and s[0] == s[1] and len(flat) == 1 and d == (1, 1)
                and (g == 1 or g <= 4 < cg)):
            y = ops.conv2d(xv, k, None, s[0], p[0][0], g)  # the hand-ported models' formulation
        else:
            y = lax.conv_general_dilated(xv, k, s, p, rhs_dilation=d, dimension_numbers=_DN,
                                         feature_group_count=g)
        return y if b is None else y + b

    return c.emit(fn, refs, [(NCHW_TO_NHWC, None)])


@op("ConvTranspose")
def conv_transpose(c: Ctx):
    x, w = c.inp(0), c.inp(1)
    _spatial(c, x)
    if not w.is_const:
        raise c.fail("the weights must be an initializer or constant")
    cin, mg, kh, kw = w.shape
    g = int(c.attr("group", 1))
    s, d, pads, auto = _window(c, (kh, kw))
    opad = tuple(int(v) for v in c.attr("output_padding", [0, 0]))
    oshape = c.attr("output_shape")
    if g < 1 or cin % g or x.shape[1] != cin:
        raise c.fail(f"weights {list(w.shape)} with group {g} do not fit input {x.name!r} of shape {list(x.shape)}")
    if len(opad) != 2 or min(opad) < 0 or any(o >= max(ss, dd) for o, ss, dd in zip(opad, s, d)):
        raise c.fail(f"output_padding {list(opad)} must be two non-negative ints below the stride or dilation")
    if oshape is not None and (len(oshape) < 2 or min(int(v) for v in oshape[-2:]) < 1):
        raise c.fail(f"output_shape {list(oshape)} must end in two positive sizes")

    def hwio(a):  # (Cin, M/g, kh, kw) → flipped (kh, kw, Cin/g, M) for a forward convolution
        a = a.reshape(g, cin // g, mg, kh, kw).transpose(3, 4, 1, 0, 2).reshape(kh, kw, cin // g, g * mg)
        return np.ascontiguousarray(a[::-1, ::-1])

    refs = [c.data(0), c.data(1, hwio, "convT")] + ([c.data(2)] if c.inp(2) is not None else [])

    def fn(xv, k, b=None):
        xv = to_layout(xv, x, NCHW_TO_NHWC)
        ek = [(kk - 1) * dd + 1 for kk, dd in zip((kh, kw), d)]
        p = pads
        if oshape is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
            tgt = oshape[-2:] if oshape is not None else [n * ss for n, ss in zip(xv.shape[1:3], s)]
            p = []
            for n, ss, e, op_, t in zip(xv.shape[1:3], s, ek, opad, tgt):
                total = ss * (n - 1) + op_ + e - t
                lo = total // 2 if auto != "SAME_LOWER" else total - total // 2
                p.append((lo, total - lo))
        padding = [(e - 1 - lo, e - 1 - hi + op_) for e, (lo, hi), op_ in
                   zip(ek, p, opad if oshape is None and auto not in ("SAME_UPPER", "SAME_LOWER") else (0, 0))]
        y = lax.conv_general_dilated(xv, k, (1, 1), padding, lhs_dilation=s, rhs_dilation=d,
                                     dimension_numbers=_DN, feature_group_count=g)
        return y if b is None else y + b

    return c.emit(fn, refs, [(NCHW_TO_NHWC, None)])


def _pool_geometry(n, k, s, d, pb, pe, ceil):
    """Output length and (begin, end) padding incl. ceil mode's extra end padding (PyTorch's rule)."""
    ek = (k - 1) * d + 1
    num = n + pb + pe - ek
    out = (-(-num // s) if ceil else num // s) + 1
    if ceil and (out - 1) * s >= n + pb:  # no window may start inside the end padding
        out -= 1
    return out, (pb, pe + max((out - 1) * s + ek - (n + pb + pe), 0))


def _pool_setup(c: Ctx):
    x = c.inp(0)
    if x.rank < 3 or x.feat is not None:
        raise c.fail(f"pooling needs an N×C×spatial input, got shape {list(x.shape)}")
    k = tuple(int(v) for v in c.attr("kernel_shape"))
    if len(k) != x.rank - 2:
        raise c.fail(f"kernel_shape {list(k)} does not fit the {x.rank - 2} spatial axes of {list(x.shape)}")
    s, d, pads, auto = _window(c, k)
    ext = [(kk - 1) * dd + 1 for kk, dd in zip(k, d)]
    if any(max(pp) >= e for pp, e in zip(pads, ext)):  # a window of padding only: onnxruntime and PyTorch refuse it
        raise c.fail(f"pads {[list(q) for q in pads]} must be smaller than the window {ext} (dilated kernel) on "
                     f"each side, as onnxruntime and PyTorch require")
    ceil = bool(c.attr("ceil_mode", 0))
    # The output's size, checked before anything is traced (the average pool's divisor table has it).
    sizes = x.shape[2:]
    p = _auto_pads(auto, pads, sizes, k, s, d)
    geo = [_pool_geometry(n, kk, ss, dd, *pp, ceil) for n, kk, ss, dd, pp in zip(sizes, k, s, d, p)]
    out = [o for o, _ in geo]
    if min(out) < 1:
        raise c.fail(f"a {list(k)} window (dilations {list(d)}, pads {[list(q) for q in p]}) does not fit its "
                     f"{list(sizes)} input")
    c.check("its output", (*x.shape[:2], *out))
    # XLA pads the input before it reduces windows over it (and loops over a window's taps): count the padded
    # input like any tensor, so a window and pads of 2³⁰ on an 8-pixel map are refused, not run for minutes.
    c.check("its padded input", (*x.shape[:2], *(n + lo + hi for n, (_, (lo, hi)) in zip(sizes, geo))))
    cl = (0, *range(2, x.rank), 1)  # channels last: NHWC for 2-D maps (1-D and 3-D pools alike)
    return x, k, s, d, pads, auto, ceil, cl


def _padding(xv, k, s, d, pads, auto, ceil):
    p = _auto_pads(auto, pads, xv.shape[1:-1], k, s, d)
    geo = [_pool_geometry(n, kk, ss, dd, *pp, ceil) for n, kk, ss, dd, pp in zip(xv.shape[1:-1], k, s, d, p)]
    return p, geo, [(0, 0), *(g[1] for g in geo), (0, 0)]


@op("MaxPool")
def max_pool(c: Ctx):
    x, k, s, d, pads, auto, ceil, cl = _pool_setup(c)
    if len(c.node.outputs) > 1 and c.node.outputs[1]:
        raise c.fail("the Indices output of MaxPool is not supported")

    def fn(xv):
        xv = to_layout(xv, x, cl)
        p, _, window_pads = _padding(xv, k, s, d, pads, auto, ceil)
        flat = {v for pr in p for v in pr}
        if (len(k) == 2 and k[0] == k[1] <= HAND_WINDOW and s[0] == s[1] and len(flat) == 1 and d == (1, 1)
                and k[0] >= s[0]):
            return ops.max_pool(xv, k[0], s[0], p[0][0], ceil)  # the hand-ported models' formulation
        return lax.reduce_window(xv, -jnp.inf, lax.max, (1, *k, 1), (1, *s, 1), window_pads,
                                 window_dilation=(1, *d, 1))

    return c.emit(fn, [c.data(0)], [(cl, None)])


@op("AveragePool")
def avg_pool(c: Ctx):
    x, k, s, d, pads, auto, ceil, cl = _pool_setup(c)
    include = bool(c.attr("count_include_pad", 0))

    def fn(xv):
        xv = to_layout(xv, x, cl)
        p, geo, window_pads = _padding(xv, k, s, d, pads, auto, ceil)
        y = lax.reduce_window(xv, 0.0, lax.add, (1, *k, 1), (1, *s, 1), window_pads, window_dilation=(1, *d, 1))
        # Divisor per output position (PyTorch's rule): the window clipped to the padded input
        # (count_include_pad) or to the input itself; ceil mode's extra padding never counts. Counted in
        # closed form per position (taps start + j·d, j < k, inside [lo, hi)): memory O(outputs), not O(k).
        div = np.ones((), np.float32)
        for n, kk, ss, dd, pp, (o, _) in zip(xv.shape[1:-1], k, s, d, p, geo):
            lo, hi = (-pp[0], n + pp[1]) if include else (0, n)
            start = np.arange(o, dtype=np.int64) * ss - pp[0]
            first = np.maximum(-((start - lo) // dd), 0)  # ceil((lo - start) / d), at least 0
            last = np.minimum((hi - 1 - start) // dd, kk - 1)
            div = np.multiply.outer(div, np.maximum(last - first + 1, 0).astype(np.float32))
        return y / jnp.asarray(np.maximum(div, 1)[None, ..., None])  # a dilated window can miss the input: 0

    return c.emit(fn, [c.data(0)], [(cl, None)])


@op("LpPool")
def lp_pool(c: Ctx):
    x, k, s, d, pads, auto, ceil, cl = _pool_setup(c)
    p = float(c.attr("p", 2))

    def fn(xv):
        xv = to_layout(xv, x, cl)
        _, _, window_pads = _padding(xv, k, s, d, pads, auto, ceil)
        y = lax.reduce_window(jnp.abs(xv) ** p, 0.0, lax.add, (1, *k, 1), (1, *s, 1), window_pads,
                              window_dilation=(1, *d, 1))
        return y ** (1 / p)

    return c.emit(fn, [c.data(0)], [(cl, None)])


@op("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
def global_pool(c: Ctx):
    x = c.inp(0)
    if x.rank < 3 or x.feat is not None:
        raise c.fail(f"pooling needs an N×C×spatial input, got shape {list(x.shape)}")
    axes = tuple(x.axis(a) for a in range(2, x.rank))
    if c.node.op == "GlobalLpPool":
        p = float(c.attr("p", 2))
        return c.emit(lambda v: jnp.sum(jnp.abs(v) ** p, axis=axes, keepdims=True) ** (1 / p), [c.data(0)],
                      [(x.perm, None)])
    red = jnp.mean if c.node.op == "GlobalAveragePool" else jnp.max
    return c.emit(lambda v: red(v, axis=axes, keepdims=True), [c.data(0)], [(x.perm, None)])


def _rows_for(a, w: np.ndarray) -> np.ndarray:
    """Weight rows (K×N) reordered for an input held in NHWC flatten order."""
    if a.feat is None:
        return w
    c, h, ww = a.feat
    return np.ascontiguousarray(w.reshape(c, h, ww, -1).transpose(1, 2, 0, 3).reshape(c * h * ww, -1))


def _cols_for(a, w: np.ndarray) -> np.ndarray:
    """Torch-layout (N×K) weight columns reordered for an input held in NHWC flatten order."""
    if a.feat is None:
        return w
    c, h, ww = a.feat
    return np.ascontiguousarray(w.reshape(-1, c, h, ww).transpose(0, 2, 3, 1).reshape(w.shape[0], -1))


@op("Gemm")
def gemm(c: Ctx):
    a, b, cc = c.inp(0), c.inp(1), c.inp(2)
    alpha, beta = float(c.attr("alpha", 1.0)), float(c.attr("beta", 1.0))
    ta, tb = bool(c.attr("transA", 0)), bool(c.attr("transB", 0))
    keep_feat = a.feat is not None and not ta and b.is_const
    refs = [c.data(0)]
    if b.is_const:  # kept in the file's orientation (no copy); transB contracts its second axis
        conv = (lambda w: _cols_for(a, w) if tb else _rows_for(a, w)) if keep_feat else None
        refs.append(c.data(1, conv, f"gemm{a.feat if keep_feat else ''}"))
    else:
        refs.append(c.data(1))
    if cc is not None:
        refs.append(c.data(2))

    def fn(av, bv, cv=None):
        av = av if keep_feat else to_layout(av, a, identity(2))
        if ta:
            av = av.T
        if not b.is_const:
            bv = to_layout(bv, b, identity(2))
        y = lax.dot_general(av, bv, (((1,), (1 if tb else 0,)), ((), ())))
        if alpha != 1.0:
            y = alpha * y
        if cv is not None:
            cv = cv if cc.is_const else to_layout(cv, cc, identity(cc.rank))
            y = y + (beta * cv if beta != 1.0 else cv)
        return y

    return c.emit(fn, refs, [(identity(2), None)])


@op("MatMul")
def matmul(c: Ctx):
    a, b = c.inp(0), c.inp(1)
    keep_feat = a.feat is not None and b.is_const and b.rank == 2
    refs = [c.data(0), c.data(1, (lambda w: _rows_for(a, w)) if keep_feat else None,
                               f"mm{a.feat}" if keep_feat else "")]

    def fn(av, bv):
        av = av if keep_feat else to_layout(av, a, identity(a.rank))
        bv = bv if b.is_const else to_layout(bv, b, identity(b.rank))
        return av @ bv

    rank = max(a.rank, b.rank)
    return c.emit(fn, refs, [(identity(rank), None)])


@op("Einsum")
def einsum(c: Ctx):
    eq = str(c.attr("equation", "")).replace(" ", "")
    recs = list(c.ins)
    if not eq or not recs or any(r is None for r in recs):
        raise c.fail("needs an equation and its operands")
    return c.emit(lambda *vs: jnp.einsum(eq, *[canonical(v, r) for v, r in zip(vs, recs)]),
                  [c.data(i) for i in range(len(recs))], [(None, None)])
