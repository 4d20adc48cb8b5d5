"""Handlers for normalisations: Batch-, Instance-, Layer-, Group-, LpNormalization and LRN.

Statistics are taken over run-time axes (the ONNX axes mapped through the tensor's
layout), so an NHWC feature map is normalised where it lies; per-channel scales and
biases are laid out for it once at import.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from .. import ops
from .layout import NCHW_TO_NHWC, bcast_const, canonical, feat_order, identity, to_layout
from .registry import Ctx, op


def _spatial(c: Ctx, x):
    if x.rank != 4:
        raise c.fail(f"only 2-D spatial ops are supported (input rank 4), got input of shape {list(x.shape)}")


def _no_extra_outputs(c: Ctx, what: str) -> None:
    extra = [o for o in c.node.outputs[1:] if o and o in c.b.read]
    if extra:
        raise c.fail(f"its {what} outputs ({', '.join(map(repr, extra))}) are training statistics, which jaxvis "
                     "does not compute (inference only)")


def _channel_shape(x, n: int) -> list[int]:
    """Broadcast shape of a per-channel (ONNX axis 1) vector against `x`'s run-time layout."""
    shape = [1] * x.rank
    shape[x.axis(1)] = n
    return shape


@op("BatchNormalization")
def batch_norm(c: Ctx):
    x = c.need(0)
    if c.attr("training_mode", 0):
        raise c.fail("training_mode=1 is not supported (inference only)")
    _no_extra_outputs(c, "running-statistics")
    for i in range(1, 5):
        if (r := c.inp(i)) is None or not r.is_const:
            raise c.fail(f"input {i} must be an initializer or constant")
    eps = float(c.attr("epsilon", 1e-5))
    shape = _channel_shape(x, x.shape[1]) if x.rank > 1 else [1] * x.rank
    x_perm, x_feat = x.perm, x.feat
    # BatchNorm1d after a flatten: per-feature statistics follow the features' NHWC order.
    conv = (lambda a: a[feat_order(x_feat)]) if x_feat is not None else None

    def fn(v, scale, bias, mean, var):
        inv = scale * lax.rsqrt(var + eps)
        return v * inv.reshape(shape) + (bias - mean * inv).reshape(shape)

    refs = [c.data(0)] + [c.data(i, conv, f"bn{x_feat}" if conv else "") for i in range(1, 5)]
    return c.emit(fn, refs, [(x_perm, x_feat)], like=refs[0] if refs[0][0] == "env" else None, cl=x.cl)


@op("InstanceNormalization")
def instance_norm(c: Ctx):
    x = c.need(0)
    if x.rank < 3:
        raise c.fail(f"needs an N×C×spatial input, got shape {list(x.shape)}")
    eps = float(c.attr("epsilon", 1e-5))
    if x.feat is not None:
        x_perm, axes, shape = identity(x.rank), tuple(range(2, x.rank)), [1, x.shape[1]] + [1] * (x.rank - 2)
    else:
        x_perm, axes, shape = x.perm, tuple(x.axis(a) for a in range(2, x.rank)), _channel_shape(x, x.shape[1])

    def fn(v, scale, bias):
        v = canonical(v, x) if x.feat is not None else v
        mean = jnp.mean(v, axes, keepdims=True)
        var = jnp.mean(jnp.square(v - mean), axes, keepdims=True)
        return (v - mean) * lax.rsqrt(var + eps) * scale.reshape(shape) + bias.reshape(shape)

    return c.emit(fn, [c.data(0), c.data(1), c.data(2)], [(x_perm, None)], cl=x.cl)


@op("LayerNormalization")
def layer_norm(c: Ctx):
    x = c.need(0)
    _no_extra_outputs(c, "mean and inverse standard deviation")
    eps = float(c.attr("epsilon", 1e-5))
    first = int(c.attr("axis", -1)) % max(x.rank, 1)
    onnx_axes = tuple(range(first, x.rank))
    canon = x.feat is not None
    perm = identity(x.rank) if canon else x.perm
    axes = onnx_axes if canon else tuple(x.axis(a) for a in onnx_axes)
    # Scale and bias broadcast against X's trailing axes (ONNX order), laid out like X at run time.
    lay = (lambda a: bcast_const(a, x.rank, perm)) if not canon else None
    refs = [c.data(0), c.data(1, lay, f"ln{perm}")] + ([c.data(2, lay, f"ln{perm}")] if c.inp(2) is not None else [])
    runtime_scale = [i for i in (1, 2) if (r := c.inp(i)) is not None and not r.is_const]
    if runtime_scale:
        raise c.fail("its scale and bias must be initializers or constants")

    def fn(v, scale, bias=None):
        v = canonical(v, x) if canon else v
        mean = jnp.mean(v, axes, keepdims=True)
        var = jnp.mean(jnp.square(v - mean), axes, keepdims=True)
        y = (v - mean) * lax.rsqrt(var + eps) * scale
        return y if bias is None else y + bias

    return c.emit(fn, refs, [(perm, None)], cl=x.cl)


@op("GroupNormalization")
def group_norm(c: Ctx):
    x = c.need(0)
    if x.rank < 3 or x.feat is not None:
        raise c.fail(f"needs an N×C×spatial input, got shape {list(x.shape)}")
    g, ch = int(c.attr("num_groups")), x.shape[1]
    if g < 1 or ch % g:
        raise c.fail(f"num_groups {g} does not divide the {ch} channels")
    eps = float(c.attr("epsilon", 1e-5))
    scale, bias = c.need(1), c.need(2)
    if not (scale.is_const and bias.is_const):
        raise c.fail("its scale and bias must be initializers or constants")
    # Opset 18 gave scale and bias per group, opset 21 per channel.
    per_group = scale.shape[0] == g and g != ch
    widen = (lambda a: np.repeat(a, ch // g)) if per_group else None
    cl_perm = (0, *range(2, x.rank), 1)  # channels last at run time, whatever the input's layout

    def fn(v, s, b):
        v = to_layout(v, x, cl_perm)
        grouped = v.reshape(*v.shape[:-1], g, ch // g)
        axes = tuple(range(1, x.rank - 1)) + (x.rank,)
        mean = jnp.mean(grouped, axes, keepdims=True)
        var = jnp.mean(jnp.square(grouped - mean), axes, keepdims=True)
        y = ((grouped - mean) * lax.rsqrt(var + eps)).reshape(v.shape)
        return y * s + b

    return c.emit(fn, [c.data(0), c.data(1, widen, f"gn{g}"), c.data(2, widen, f"gn{g}")], [(cl_perm, None)])


@op("LpNormalization")
def lp_norm(c: Ctx):
    x = c.need(0)
    p = int(c.attr("p", 2))
    if p not in (1, 2):
        raise c.fail(f"p must be 1 or 2, got {p}")
    canon = x.feat is not None
    axis = int(c.attr("axis", -1)) % x.rank
    ax = axis if canon else x.axis(axis)

    def fn(v):
        v = canonical(v, x) if canon else v
        norm = jnp.sum(jnp.abs(v), ax, keepdims=True) if p == 1 else jnp.sqrt(jnp.sum(v * v, ax, keepdims=True))
        return v / norm

    return c.emit(fn, [c.data(0)], [(identity(x.rank) if canon else x.perm, None)], cl=x.cl)


@op("LRN")
def lrn(c: Ctx):
    x = c.need(0)
    _spatial(c, x)
    size, alpha = int(c.attr("size")), float(c.attr("alpha", 1e-4))
    beta, bias = float(c.attr("beta", 0.75)), float(c.attr("bias", 1.0))
    return c.emit(lambda v: ops.lrn(to_layout(v, x, NCHW_TO_NHWC), size, alpha, beta, bias),
                  [c.data(0)], [(NCHW_TO_NHWC, None)])
