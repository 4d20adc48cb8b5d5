"""Handlers for ops that repeat, split, pick or scatter elements.

Tile, Expand and Split keep a feature map's run-time layout (their sizes mapped through
it); the rest (TopK, ArgMax/ArgMin, GatherElements, GatherND, ScatterND, ScatterElements,
CumSum, OneHot, Range) work in ONNX layout. Ops whose output shape depends on the data
(NonZero, NonMaxSuppression, …) are refused with the reason.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .layout import canonical, identity
from .registry import Ctx, op


def _axis(c: Ctx, x, default: int = 0) -> int:
    axis = int(c.attr("axis", default))
    if not -x.rank <= axis < x.rank:
        raise c.fail(f"axis {axis} is outside the rank-{x.rank} input")
    return axis % x.rank


@op("Tile")
def tile(c: Ctx):
    x = c.need(0)
    reps = c.ints(1, "repeats")
    if len(reps) != x.rank or min(reps, default=0) < 0:
        raise c.fail(f"repeats {reps} must be {x.rank} non-negative ints (one per axis of {list(x.shape)})")
    c.check("its output", [d * r for d, r in zip(x.shape, reps)], c.dtype(0))  # exact: JAX's product can wrap
    if x.feat is not None or x.rank == 0 or c.fold:
        return c.emit(lambda v: jnp.tile(canonical(v, x), reps), [c.data(0)], [(None, None)])
    rt = tuple(reps[a] for a in x.perm)
    return c.emit(lambda v: jnp.tile(v, rt), [c.data(0)], [(x.perm, None)], cl=x.cl)


@op("Expand")
def expand(c: Ctx):
    x = c.need(0)
    target = c.ints(1, "shape")
    r = max(x.rank, len(target))
    have = (1,) * (r - x.rank) + tuple(x.shape)
    want = (1,) * (r - len(target)) + tuple(target)
    out = []
    for a, b in zip(have, want):
        if a != b and 1 not in (a, b):
            raise c.fail(f"cannot broadcast {list(x.shape)} to {target}")
        out.append(a if b == 1 else b)
    c.check("its output", out, c.dtype(0))
    # Axes the input already has at full size keep their run-time size (the batch).
    keep = [a == o for a, o in zip(have, out)]
    if x.feat is not None or r != x.rank or c.fold:
        lead = r - x.rank

        def canon(v):
            v = canonical(v, x)
            return jnp.broadcast_to(v, tuple(v.shape[i - lead] if i >= lead and keep[i] else out[i] for i in range(r)))

        return c.emit(canon, [c.data(0)], [(None, None)])
    perm = x.perm
    return c.emit(lambda v: jnp.broadcast_to(v, tuple(v.shape[j] if keep[perm[j]] else out[perm[j]]
                                                      for j in range(r))), [c.data(0)], [(perm, None)], cl=x.cl)


@op("Range")
def range_(c: Ctx):
    vals = [np.asarray(c.static(i, name)).reshape(-1) for i, name in enumerate(("start", "limit", "delta"))]
    if any(v.size != 1 for v in vals):
        raise c.fail("start, limit and delta must be scalars")
    dtype = vals[0].dtype
    start, limit, delta = (v[0].item() for v in vals)
    if delta == 0 or not all(math.isfinite(v) for v in (start, limit, delta)):
        raise c.fail(f"Range({start}, {limit}, {delta}) has no finite length")
    n = max(math.ceil((limit - start) / delta), 0) if dtype.kind == "f" else max(-((start - limit) // delta), 0)
    c.check("its output", (n,), dtype)  # before numpy allocates it
    return c.const((start + delta * np.arange(n)).astype(dtype))


@op("Split")
def split(c: Ctx):
    x = c.need(0)
    axis = _axis(c, x)
    d, n_out = x.shape[axis], len(c.node.outputs)
    sizes = c.attr("split") if c.opset < 13 else None if c.inp(1) is None else c.ints(1, "split")
    if sizes is None:
        num = int(c.attr("num_outputs", n_out))
        if num < 1 or num != n_out:
            raise c.fail(f"num_outputs {num} does not match its {n_out} outputs")
        chunk = -(-d // num)  # opset 18: the last part takes what is left
        sizes = [chunk] * (num - 1) + [d - chunk * (num - 1)]
    sizes = [int(s) for s in sizes]
    if len(sizes) != n_out or min(sizes, default=0) < 0 or sum(sizes) != d:
        raise c.fail(f"split sizes {sizes} do not divide axis {axis} of size {d} into {n_out} outputs")
    starts = np.cumsum([0] + sizes[:-1]).tolist()
    canon = x.feat is not None
    ax = axis if canon else x.axis(axis)

    def fn(v):
        v = canonical(v, x) if canon else v
        return tuple(lax.slice_in_dim(v, s, s + n, axis=ax) for s, n in zip(starts, sizes))

    layout = (identity(x.rank) if canon else x.perm, None)
    return c.emit(fn, [c.data(0)], [layout] * n_out, cl=x.cl and not canon)


@op("TopK")
def top_k(c: Ctx):
    x = c.need(0)
    k = int(c.attr("k")) if c.opset < 10 else c.ints(1, "K")[0]
    axis = _axis(c, x, -1)
    if not 0 <= k <= x.shape[axis]:
        raise c.fail(f"K = {k} is outside 0..{x.shape[axis]}")
    largest = bool(c.attr("largest", 1))

    def fn(v):
        v = jnp.moveaxis(canonical(v, x), axis, -1)
        vals, idx = lax.top_k(v if largest else -v, k)
        return jnp.moveaxis(vals if largest else -vals, -1, axis), jnp.moveaxis(idx, -1, axis)

    return c.emit(fn, [c.data(0)], [(None, None), (None, None)])


@op("ArgMax", "ArgMin")
def arg_max(c: Ctx):
    x = c.need(0)
    axis, keep = _axis(c, x), bool(c.attr("keepdims", 1))
    last = bool(c.attr("select_last_index", 0))
    f = jnp.argmax if c.node.op == "ArgMax" else jnp.argmin

    def fn(v):
        v = canonical(v, x)
        if last:  # the last of equal extremes: search the reversed axis
            return v.shape[axis] - 1 - f(jnp.flip(v, axis), axis=axis, keepdims=keep)
        return f(v, axis=axis, keepdims=keep)

    return c.emit(fn, [c.data(0)], [(None, None)])


def _indices(v, size: int):
    """ONNX indices (negative counts from the end) as non-negative ones."""
    return jnp.where(v < 0, v + size, v)


@op("GatherElements")
def gather_elements(c: Ctx):
    x, ix = c.need(0), c.need(1)
    axis = _axis(c, x)
    return c.emit(lambda v, i: jnp.take_along_axis(canonical(v, x), _indices(canonical(i, ix), x.shape[axis]), axis),
                  [c.data(0), c.data(1)], [(None, None)])


@op("GatherND")
def gather_nd(c: Ctx):
    x, ix = c.need(0), c.need(1)
    b = int(c.attr("batch_dims", 0))

    def one(v, i):
        i = _indices(i, jnp.asarray(v.shape[:i.shape[-1]]))
        return v[tuple(jnp.moveaxis(i, -1, 0))]

    for _ in range(b):
        one = jax.vmap(one)
    return c.emit(lambda v, i: one(canonical(v, x), canonical(i, ix)), [c.data(0), c.data(1)], [(None, None)])


_REDUCE = {"none": "set", "add": "add", "mul": "multiply", "max": "max", "min": "min"}


@op("ScatterND")
def scatter_nd(c: Ctx):
    x, ix, up = c.need(0), c.need(1), c.need(2)
    how = _REDUCE.get(c.attr("reduction", "none"))
    if how is None:
        raise c.fail(f"reduction {c.attr('reduction')!r} is not one of {', '.join(_REDUCE)}")

    def fn(v, i, u):
        v, i = canonical(v, x), canonical(i, ix)
        i = _indices(i, jnp.asarray(v.shape[:i.shape[-1]]))
        return getattr(v.at[tuple(jnp.moveaxis(i, -1, 0))], how)(canonical(u, up))

    return c.emit(fn, [c.data(0), c.data(1), c.data(2)], [(None, None)])


@op("ScatterElements", "Scatter")
def scatter_elements(c: Ctx):
    x, ix, up = c.need(0), c.need(1), c.need(2)
    axis = _axis(c, x)
    how = _REDUCE.get(c.attr("reduction", "none"))
    if how is None:
        raise c.fail(f"reduction {c.attr('reduction')!r} is not one of {', '.join(_REDUCE)}")

    def fn(v, i, u):
        v, i = canonical(v, x), _indices(canonical(i, ix), x.shape[axis])
        where = tuple(i if a == axis else lax.broadcasted_iota(i.dtype, i.shape, a) for a in range(x.rank))
        return getattr(v.at[where], how)(canonical(u, up))

    return c.emit(fn, [c.data(0), c.data(1), c.data(2)], [(None, None)])


@op("CumSum")
def cumsum(c: Ctx):
    x = c.need(0)
    axis = int(np.asarray(c.static(1, "axis")).reshape(-1)[0]) % x.rank
    excl, rev = bool(c.attr("exclusive", 0)), bool(c.attr("reverse", 0))

    def fn(v):
        v = canonical(v, x)
        v = jnp.flip(v, axis) if rev else v
        y = jnp.cumsum(v, axis)
        if excl:
            y = y - v
        return jnp.flip(y, axis) if rev else y

    return c.emit(fn, [c.data(0)], [(None, None)])


@op("OneHot")
def one_hot(c: Ctx):
    ix = c.need(0)
    depth = int(np.asarray(c.static(1, "depth")).reshape(-1)[0])
    values = np.asarray(c.static(2, "values")).reshape(-1)
    if depth < 0 or values.size != 2:
        raise c.fail(f"depth {depth} must be >= 0 and values two numbers")
    axis = int(c.attr("axis", -1)) % (ix.rank + 1)
    c.check("its output", (*ix.shape, depth), values.dtype)
    off, on = values

    def fn(i):
        i = _indices(canonical(i, ix), depth)
        hot = jnp.expand_dims(i, axis) == jnp.arange(depth).reshape([-1 if a == axis else 1 for a in range(ix.rank + 1)])
        return jnp.where(hot, on, off).astype(values.dtype)

    return c.emit(fn, [c.data(0)], [(None, None)])


@op("NonZero", "NonMaxSuppression", "Unique", "Compress", "Loop", "Scan", "RoiAlign", "MaxRoiPool", refused=True)
def data_dependent(c: Ctx):
    raise c.fail("its output's size depends on the data (or on a loop run at run time); jaxvis translates graphs "
                 "whose shapes are fixed at import. For a detector, export it without its post-processing "
                 "(box decoding and NMS) and import the heads")


@op("QuantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear",
    refused=True)
def quantized(c: Ctx):
    raise c.fail("it computes in integers (a quantized graph); jaxvis differentiates through the network, which "
                 "rounding to integers stops: import the float model (DequantizeLinear of quantized weights alone "
                 "is translated)")
