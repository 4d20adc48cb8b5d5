"""Handlers for shape and indexing ops: folded at import when their inputs are known, layout-aware otherwise.

Shape arithmetic (Shape → Gather → Unsqueeze → Concat → Reshape, as torch exports
`x.view(x.size(0), -1)`) is evaluated at import with the batch size 1; a Reshape
whose target starts with that batch keeps the run-time batch instead.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

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
    return c.const(np.full(tuple(int(d) for d in c.static(0, "shape")), v.reshape(-1)[0], v.dtype))


def _squeezed_perm(perm, removed):
    """Layout after removing ONNX axes `removed` (run-time axes removed alike)."""
    kept = [a for a in perm if a not in removed]
    return tuple(sorted(kept).index(a) for a in kept)


@op("Gather")
def gather(c: Ctx):
    x = c.inp(0)
    idx = np.asarray(c.static(1, "indices"))
    axis = int(c.attr("axis", 0)) % x.rank
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
    axes = list(range(len(starts))) if axes is None else [int(a) % x.rank for a in axes]
    steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
    lim = lambda v: max(min(int(v), 2**62), -2**62)  # noqa: E731 (INT64_MAX means "to the end")
    canon = x.feat is not None
    rank_axes = axes if canon else [x.axis(a) for a in axes]
    index = [slice(None)] * x.rank
    for a, s, e, st in zip(rank_axes, starts, ends, steps):
        index[a] = slice(lim(s), lim(e), st)
    index = tuple(index)
    if canon:
        return c.emit(lambda v: canonical(v, x)[index], [c.data(0)], [(None, None)])
    return c.emit(lambda v: v[index], [c.data(0)], [(x.perm, None)])


@op("Concat")
def concat(c: Ctx):
    recs = [r for r in c.ins]
    axis = int(c.attr("axis")) % recs[0].rank
    dyn = [r for r in recs if not r.is_const]
    if dyn and not c.fold and all(r.perm == dyn[0].perm and r.feat is None for r in dyn):
        perm = dyn[0].perm
        ax = perm.index(axis)
        refs = [c.data(i, (lambda a: np.ascontiguousarray(a.transpose(perm))) if r.is_const else None, f"t{perm}")
                for i, r in enumerate(recs)]
        return c.emit(lambda *vs: jnp.concatenate(vs, axis=ax), refs, [(perm, None)])
    return c.emit(lambda *vs: jnp.concatenate([canonical(v, r) for v, r in zip(vs, recs)], axis=axis),
                  [c.data(i) for i in range(len(recs))], [(None, None)])


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
    target = [int(d) for d in c.static(1, "shape")]
    allowzero = bool(c.attr("allowzero", 0))
    t = [x.shape[i] if d == 0 and not allowzero else d for i, d in enumerate(target)]
    if -1 in t:
        known = int(np.prod([d for d in t if d != -1]))
        t[t.index(-1)] = int(np.prod(x.shape)) // max(known, 1)
    if int(np.prod(t)) != int(np.prod(x.shape)):
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
    if x.feat is not None or c.fold:
        return c.emit(lambda v: jnp.transpose(canonical(v, x), q), [c.data(0)], [(None, None)])
    # No data moves: the run-time array stays, only its ONNX-relative layout changes.
    return c.emit(lambda v: v, [c.data(0)], [(tuple(q.index(a) for a in x.perm), None)])


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
        pads, value, axes = c.attr("pads"), float(c.attr("value", 0.0)), None
    else:
        pads = c.static(1, "pads")
        value = c.static(2, "constant_value", 0.0)
        value = float(np.asarray(value).reshape(-1)[0]) if np.size(value) else 0.0
        axes = c.static(3, "axes")
    pads = [int(p) for p in pads]
    axes = list(range(x.rank)) if axes is None else [int(a) % x.rank for a in axes]
    n = len(axes)
    if min(pads) < 0:
        raise c.fail("negative pads (cropping) are not supported")
    canon = x.feat is not None
    width = [(0, 0)] * x.rank
    for i, a in enumerate(axes):
        width[a if canon else x.axis(a)] = (pads[i], pads[i + n])
    jmode = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}.get(mode)
    if jmode is None:
        raise c.fail(f"pad mode {mode!r} is not one of constant, reflect, edge, wrap")
    kw = {"constant_values": value} if jmode == "constant" else {}
    if canon:
        return c.emit(lambda v: jnp.pad(canonical(v, x), width, jmode, **kw), [c.data(0)], [(None, None)])
    return c.emit(lambda v: jnp.pad(v, width, jmode, **kw), [c.data(0)], [(x.perm, None)])
