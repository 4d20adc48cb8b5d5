"""Handlers for shape and indexing ops: folded at import when their inputs are known, layout-aware otherwise.

Shape arithmetic (Shape → Gather → Unsqueeze → Concat → Reshape, as torch exports
`x.view(x.size(0), -1)`) is evaluated at import with the batch size 1; a Reshape
whose target starts with that batch keeps the run-time batch instead.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from .. import ops
from .layout import NCHW_TO_NHWC, canonical, identity
from .registry import Ctx, op


@op("Shape")
def shape(c: Ctx):
    x = c.inp(0)
    start, end = c.attr("start", 0), c.attr("end", None)
    return c.const(np.asarray(x.shape[start:end], np.int64))


@op("Size")
def size(c: Ctx):
    return c.const(np.asarray(int(np.prod(c.inp(0).shape)), np.int64))


@op("Constant")
def constant(c: Ctx):
    for k in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        v = c.attr(k)
        if v is not None:
            return c.const(np.asarray(v, np.float32 if "float" in k else np.int64 if "int" in k else None))
    raise c.fail("only tensor, float(s) and int(s) constants are supported")


@op("ConstantOfShape")
def constant_of_shape(c: Ctx):
    v = c.attr("value")
    v = np.zeros(1, np.float32) if v is None else np.asarray(v)
    if v.size != 1:
        raise c.fail(f"its value must hold one element, not {v.size}")
    shape = [int(d) for d in np.asarray(c.static(0, "shape")).reshape(-1)]
    c.check("its output", shape, v.dtype)
    # A read-only broadcast of the one value: no memory until something needs it laid out.
    return c.const(np.broadcast_to(v.reshape(()), tuple(shape)))


def _squeezed_perm(perm, removed):
    """Layout after removing ONNX axes `removed` (run-time axes removed alike)."""
    kept = [a for a in perm if a not in removed]
    return tuple(sorted(kept).index(a) for a in kept)


@op("Gather")
def gather(c: Ctx):
    x = c.inp(0)
    idx = np.asarray(c.static(1, "indices"))
    if x.rank == 0:
        raise c.fail("cannot gather from a scalar")
    axis = int(c.attr("axis", 0)) % x.rank
    if idx.dtype.kind not in "iu" or idx.size and (idx.min() < -x.shape[axis] or idx.max() >= x.shape[axis]):
        raise c.fail(f"indices {idx.reshape(-1)[:6].tolist()} are outside axis {axis} of {list(x.shape)}")
    idx = np.where(idx < 0, idx + x.shape[axis], idx)
    if x.feat is not None or idx.ndim > 1:
        return c.emit(lambda v: jnp.take(canonical(v, x), idx, axis=axis), [c.data(0)], [(None, None)])
    ax = x.axis(axis)
    perm = _squeezed_perm(x.perm, {axis}) if idx.ndim == 0 else x.perm
    return c.emit(lambda v: jnp.take(v, idx, axis=ax), [c.data(0)], [(perm, None)])


@op("Slice")
def slice_(c: Ctx):
    x = c.inp(0)
    if c.opset < 10:
        starts, ends, axes, steps = c.attr("starts"), c.attr("ends"), c.attr("axes"), None
    else:
        starts, ends = c.static(1, "starts"), c.static(2, "ends")
        axes, steps = c.static(3, "axes"), c.static(4, "steps")
    raw_axes = list(range(len(starts))) if axes is None else [int(a) for a in axes]
    steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
    if not len(starts) == len(ends) == len(raw_axes) == len(steps):
        raise c.fail(f"starts {list(starts)}, ends {list(ends)}, axes {raw_axes} and steps {steps} differ in length")
    if any(not -x.rank <= a < x.rank for a in raw_axes) or 0 in steps:
        raise c.fail(f"axes {raw_axes} must lie in {-x.rank}..{x.rank - 1} and steps {steps} be non-zero "
                     f"(input of shape {list(x.shape)})")
    axes = [a % x.rank for a in raw_axes]
    if len(set(axes)) != len(axes):
        raise c.fail(f"axes {raw_axes} name an axis twice")
    canon = x.feat is not None
    rank_axes = axes if canon else [x.axis(a) for a in axes]
    index = [slice(None)] * x.rank
    for a, ra, s, e, st in zip(axes, rank_axes, starts, ends, steps):
        # ONNX's clamping in Python's exact integers (INT64_MIN/MAX starts, ends and steps included), then a
        # slice JAX's int64 shape arithmetic cannot overflow: a step longer than the axis takes one element.
        n = int(x.shape[a])
        r = range(*slice(int(s), int(e), st).indices(n))
        if not len(r):
            index[ra] = slice(0, 0)
        else:
            step = max(min(r.step, max(n, 1)), -max(n, 1))
            index[ra] = slice(r.start, r.stop if r.stop >= 0 else None, step)
    index = tuple(index)
    if canon:
        return c.emit(lambda v: canonical(v, x)[index], [c.data(0)], [(None, None)])
    return c.emit(lambda v: v[index], [c.data(0)], [(x.perm, None)])


@op("Concat")
def concat(c: Ctx):
    recs = [c.need(i) for i in range(len(c.ins))]
    axis = int(c.attr("axis")) % recs[0].rank
    dyn = [r for r in recs if not r.is_const]
    # A constant folded at batch 1 (torch's cls_token.expand(batch, ...)) follows the run-time batch.
    widen = [r.is_const and axis != 0 and r.shape[0] == 1 for r in recs] if dyn else [False] * len(recs)
    if dyn and not c.fold and all(r.perm == dyn[0].perm and r.feat is None for r in dyn):
        perm = dyn[0].perm
        ax, bx = perm.index(axis), perm.index(0)
        lead = next(i for i, r in enumerate(recs) if not r.is_const)
        refs = [c.data(i, (lambda a: np.ascontiguousarray(a.transpose(perm))) if r.is_const else None, f"t{perm}")
                for i, r in enumerate(recs)]

        def fn(*vs):
            n = vs[lead].shape[bx]
            vs = [jnp.broadcast_to(v, v.shape[:bx] + (n,) + v.shape[bx + 1:]) if w else v for v, w in zip(vs, widen)]
            return ops.concat_channels(vs) if ax == len(perm) - 1 else jnp.concatenate(vs, axis=ax)

        return c.emit(fn, refs, [(perm, None)], cl=dyn[0].cl)
    lead = next((i for i, r in enumerate(recs) if not r.is_const), 0)

    def canon(*vs):
        vs = [canonical(v, r) for v, r in zip(vs, recs)]
        n = vs[lead].shape[0] if vs[lead].ndim else 1
        vs = [jnp.broadcast_to(v, (n,) + v.shape[1:]) if w else v for v, w in zip(vs, widen)]
        return jnp.concatenate(vs, axis=axis)

    return c.emit(canon, [c.data(i) for i in range(len(recs))], [(None, None)])


def _flatten_nhwc(c: Ctx, x):
    """A 4-D NHWC map flattened to [N, C·H·W]: features stay in NHWC order (see layout.Rec.feat)."""
    _, ch, h, w = x.shape
    feat = None if h * w == 1 else (ch, h, w)
    return c.emit(lambda v: v.reshape(v.shape[0], -1), [c.data(0)], [(identity(2), feat)])


@op("Flatten")
def flatten(c: Ctx):
    x = c.inp(0)
    axis = int(c.attr("axis", 1)) % (x.rank + 1) if x.rank else 0
    if x.rank == 4 and axis == 1 and x.perm == NCHW_TO_NHWC and not c.fold:
        return _flatten_nhwc(c, x)
    if axis == 0:
        return c.emit(lambda v: canonical(v, x).reshape(1, -1), [c.data(0)], [(None, None)])
    inner = int(np.prod(x.shape[axis:]))
    return c.emit(lambda v: canonical(v, x).reshape(-1, inner), [c.data(0)], [(None, None)])


@op("Reshape")
def reshape(c: Ctx):
    x = c.inp(0)
    target = [int(d) for d in np.asarray(c.static(1, "shape")).reshape(-1)]
    allowzero = bool(c.attr("allowzero", 0))
    if target.count(-1) > 1 or min(target, default=0) < -1 or (not allowzero and len(target) > max(x.rank, 0)
                                                                 and 0 in target[x.rank:]):
        raise c.fail(f"cannot reshape {list(x.shape)} to {target}")
    t = [x.shape[i] if d == 0 and not allowzero else d for i, d in enumerate(target)]
    size = math.prod(x.shape)
    if -1 in t:
        known = math.prod(d for d in t if d != -1)
        t[t.index(-1)] = size // known if known else 0
    if math.prod(t) != size:
        raise c.fail(f"cannot reshape {list(x.shape)} to {target}")
    if c.fold:
        return c.emit(lambda v: v.reshape(t), [c.data(0)], [(None, None)])
    if tuple(t) == tuple(x.shape):
        return c.emit(lambda v: v, [c.data(0)], [(x.perm, x.feat)])
    if x.rank == 4 and len(t) == 2 and t[0] == x.shape[0] and x.perm == NCHW_TO_NHWC:
        return _flatten_nhwc(c, x)
    # The batch is 1 at import; a target that keeps it keeps the run-time batch.
    keeps_batch = x.rank > 0 and len(t) > 0 and t[0] == x.shape[0]
    rest = tuple(t[1:])
    fn = (lambda v: canonical(v, x).reshape((v.shape[0],) + rest)) if keeps_batch else \
        (lambda v: canonical(v, x).reshape(t))
    return c.emit(fn, [c.data(0)], [(None, None)])


@op("Transpose")
def transpose(c: Ctx):
    x = c.inp(0)
    q = [int(a) for a in c.attr("perm", list(range(x.rank))[::-1])]
    if sorted(q) != list(range(x.rank)):
        raise c.fail(f"perm {q} is not a permutation of the {x.rank} axes of {list(x.shape)}")
    if x.feat is not None or c.fold:
        return c.emit(lambda v: jnp.transpose(canonical(v, x), q), [c.data(0)], [(None, None)])
    # No data moves: the run-time array stays, only its ONNX-relative layout changes. A 4-D map whose
    # channels end up last (tf2onnx's transposes back to NHWC) is channels last from here on.
    ch = 3 if x.cl else 1
    cl = x.rank == 4 and q.index(ch) == 3 and sorted(q[1:3]) == sorted(a for a in (1, 2, 3) if a != ch)
    return c.emit(lambda v: v, [c.data(0)], [(tuple(q.index(a) for a in x.perm), None)], cl=cl)


@op("Squeeze")
def squeeze(c: Ctx):
    x = c.inp(0)
    axes = c.attr("axes") if c.opset < 13 else c.static(1, "axes")
    axes = [i for i, d in enumerate(x.shape) if d == 1] if axes is None else [int(a) % x.rank for a in axes]
    if x.feat is not None:
        return c.emit(lambda v: jnp.squeeze(canonical(v, x), tuple(axes)), [c.data(0)], [(None, None)])
    rt = tuple(x.axis(a) for a in axes)
    return c.emit(lambda v: jnp.squeeze(v, rt), [c.data(0)], [(_squeezed_perm(x.perm, set(axes)), None)])


@op("Unsqueeze")
def unsqueeze(c: Ctx):
    x = c.inp(0)
    axes = c.attr("axes") if c.opset < 13 else c.static(1, "axes")
    if axes is None:
        raise c.fail("needs its axes")
    axes = [int(a) for a in np.asarray(axes).reshape(-1)]
    r = x.rank + len(axes)
    new = sorted(int(a) % r for a in axes)
    old_to_new = [a for a in range(r) if a not in new]  # ONNX input axis i → output axis old_to_new[i]
    if x.feat is not None:
        return c.emit(lambda v: jnp.expand_dims(canonical(v, x), new), [c.data(0)], [(None, None)])
    # New unit axes go last at run time; the layout records where they are in ONNX order.
    perm = tuple(old_to_new[a] for a in x.perm) + tuple(new)
    k = len(new)
    return c.emit(lambda v: v.reshape(v.shape + (1,) * k), [c.data(0)], [(perm, None)])


@op("Pad")
def pad(c: Ctx):
    x = c.inp(0)
    mode = c.attr("mode", "constant")
    if c.opset < 11:
        pads, value, axes = c.attr("pads", c.attr("paddings")), float(c.attr("value", 0.0)), None
    else:
        pads = c.ints(1, "pads")
        value = c.static(2, "constant_value", 0.0)
        value = np.asarray(value).reshape(-1)[0].item() if np.size(value) else 0.0
        axes = None if c.inp(3) is None else c.ints(3, "axes")
    axes = list(range(x.rank)) if axes is None else [int(a) % x.rank for a in axes]
    n = len(axes)
    pads = [int(p) for p in pads]
    if len(pads) != 2 * n:
        raise c.fail(f"pads {pads} must hold a begin and an end for each of {n} axes")
    jmode = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}.get(mode)
    if jmode is None:
        raise c.fail(f"pad mode {mode!r} is not one of constant, reflect, edge, wrap")
    out = list(x.shape)
    for i, a in enumerate(axes):
        out[a] += pads[i] + pads[i + n]
        # Reflection mirrors within the axis, wrapping repeats it once: bigger pads are not ONNX (and would
        # make jnp.pad loop over copies of the axis).
        limit = {"reflect": x.shape[a] - 1, "wrap": x.shape[a]}.get(mode)
        if limit is not None and max(pads[i], pads[i + n]) > limit:
            raise c.fail(f"{mode} pads {pads[i]}, {pads[i + n]} exceed axis {a}'s size {x.shape[a]} "
                         f"(at most {limit} for {mode})")
    if min(out, default=0) < 0:
        raise c.fail(f"pads {pads} would crop {list(x.shape)} below nothing")
    c.check("its output", out, c.dtype(0))  # pads of 10⁹ pixels end here, before XLA sees the shape
    canon = x.feat is not None
    grow, crop = [(0, 0)] * x.rank, [slice(None)] * x.rank
    for i, a in enumerate(axes):
        ax = a if canon else x.axis(a)
        lo, hi = pads[i], pads[i + n]
        grow[ax] = (max(lo, 0), max(hi, 0))
        if lo < 0 or hi < 0:  # negative pads crop
            crop[ax] = slice(max(-lo, 0), max(lo, 0) + x.shape[a] + min(hi, 0))
    index = tuple(crop)
    kw = {"constant_values": value} if jmode == "constant" else {}

    def fn(v):
        v = canonical(v, x) if canon else v
        return jnp.pad(v, grow, jmode, **kw)[index]

    return c.emit(fn, [c.data(0)], [(None if canon else x.perm, None)], cl=x.cl and not canon)
