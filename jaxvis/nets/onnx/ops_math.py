"""Handlers for elementwise arithmetic, activations, Softmax/LogSoftmax and reductions.

Elementwise ops keep their operands' layout when all run-time operands share it
(constants are broadcast and permuted to that layout at import); mixed layouts fall
back to ONNX layout, which is always correct.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .layout import Rec, bcast_const, canonical, identity
from .proto import require_onnx
from .registry import Ctx, op


def _elementwise(c: Ctx, f, idxs=None, relu=False):
    idxs = list(range(len(c.ins))) if idxs is None else idxs
    recs = [c.inp(i) for i in idxs]
    rank = max(r.rank for r in recs)
    dyn = [r for r in recs if not r.is_const]
    same = dyn and all(r.rank == rank and r.perm == dyn[0].perm and r.feat == dyn[0].feat for r in dyn)
    if same and not c.fold:
        perm, feat = dyn[0].perm, dyn[0].feat
        refs = [c.data(i) if not r.is_const else
                c.data(i, lambda a: bcast_const(a, rank, perm, feat), f"b{perm}{feat}") for i, r in zip(idxs, recs)]
        # One operand with the output's layout: the output has its shape (no shape trace needed).
        like = refs[0] if len(idxs) == 1 or all(r.is_const and r.const.size == 1 for r in recs[1:]) else None
        return c.emit(f, refs, [(perm, feat)], relu=relu, like=like if like and like[0] == "env" else None)

    def canon(*vals, **kw):
        return f(*[canonical(v, r) for v, r in zip(vals, recs)], **kw)

    return c.emit(canon, [c.data(i) for i in idxs], [(identity(rank), None)], relu=relu)


def _div(a, b):
    if jnp.issubdtype(jnp.result_type(a, b), jnp.integer):  # ONNX integer division truncates
        return lax.div(*jnp.broadcast_arrays(jnp.asarray(a), jnp.asarray(b)))
    return a / b


_BINARY = {"Add": jnp.add, "Sub": jnp.subtract, "Mul": jnp.multiply, "Div": _div, "Pow": jnp.power,
           "Equal": jnp.equal, "Greater": jnp.greater, "Less": jnp.less, "And": jnp.logical_and,
           "Or": jnp.logical_or}


@op(*_BINARY)
def binary(c: Ctx):
    return _elementwise(c, _BINARY[c.node.op], [0, 1])


@op("Where")
def where(c: Ctx):
    return _elementwise(c, jnp.where, [0, 1, 2])


def _variadic(fn):
    def f(*vs):
        y = vs[0]
        for v in vs[1:]:
            y = fn(y, v)
        return y
    return f


@op("Max", "Min", "Sum", "Mean")
def variadic(c: Ctx):
    n = len(c.ins)
    f = {"Max": _variadic(jnp.maximum), "Min": _variadic(jnp.minimum), "Sum": _variadic(jnp.add),
         "Mean": lambda *vs: _variadic(jnp.add)(*vs) / n}[c.node.op]
    return _elementwise(c, f)


def _hard_sigmoid(alpha, beta):
    return lambda v: jnp.clip(alpha * v + beta, 0.0, 1.0)


def _leaky(alpha):
    return lambda v: jnp.where(v >= 0, v, alpha * v)


def _elu(alpha, gamma):
    return lambda v: gamma * jnp.where(v > 0, v, alpha * jnp.expm1(v))


def _unary_table(c: Ctx):
    a = c.attr
    return {
        "Sigmoid": jax.nn.sigmoid, "Tanh": jnp.tanh, "Erf": lax.erf, "Sqrt": jnp.sqrt, "Exp": jnp.exp,
        "Log": jnp.log, "Neg": jnp.negative, "Abs": jnp.abs, "Reciprocal": lambda v: 1.0 / v,
        "Floor": jnp.floor, "Ceil": jnp.ceil, "Sign": jnp.sign, "Not": jnp.logical_not,
        "LeakyRelu": _leaky(float(a("alpha", 0.01))),
        "Elu": _elu(float(a("alpha", 1.0)), 1.0),
        "Selu": _elu(float(a("alpha", 1.67326319217681884765625)), float(a("gamma", 1.05070102214813232421875))),
        "Softplus": jax.nn.softplus, "Softsign": jax.nn.soft_sign,
        "HardSigmoid": _hard_sigmoid(float(a("alpha", 0.2)), float(a("beta", 0.5))),
        "HardSwish": lambda v: v * _hard_sigmoid(1 / 6, 0.5)(v),
        "Mish": lambda v: v * jnp.tanh(jax.nn.softplus(v)),
        "Gelu": functools.partial(jax.nn.gelu, approximate=a("approximate", "none") == "tanh"),
    }


_UNARY_OPS = ("Sigmoid", "Tanh", "Erf", "Sqrt", "Exp", "Log", "Neg", "Abs", "Reciprocal", "Floor", "Ceil", "Sign",
              "Not", "LeakyRelu", "Elu", "Selu", "Softplus", "Softsign", "HardSigmoid", "HardSwish", "Mish", "Gelu")


@op(*_UNARY_OPS)
def unary(c: Ctx):
    return _elementwise(c, _unary_table(c)[c.node.op], [0])


@op("Relu")
def relu(c: Ctx):
    # The network's relu callable (standard, guided, deconvnet, redirected) is used for every Relu node.
    return _elementwise(c, lambda v, relu: relu(v), [0], relu=True)


@op("PRelu")
def prelu(c: Ctx):
    x, slope = c.inp(0), c.inp(1)
    if c.opset < 7 and slope.is_const and slope.rank == 1 and x.rank > 2 and slope.shape[0] == x.shape[1] > 1:
        # Opset 6 and before: a 1-D slope is per channel (axis 1), not broadcast against the last axis.
        c.ins[1] = Rec(slope.name, (slope.shape[0],) + (1,) * (x.rank - 2), identity(x.rank - 1), None,
                       slope.const.reshape(-1, *(1,) * (x.rank - 2)))
    return _elementwise(c, lambda v, s: jnp.where(v >= 0, v, s * v), [0, 1])


@op("Clip")
def clip(c: Ctx):
    if c.opset < 11:
        lo, hi = c.attr("min"), c.attr("max")
    else:
        lo, hi = c.static(1, "min"), c.static(2, "max")
    lo = None if lo is None else float(np.asarray(lo))
    hi = None if hi is None else float(np.asarray(hi))
    return _elementwise(c, lambda v: jnp.clip(v, lo, hi), [0])


@op("Identity", "Dropout")
def identity_op(c: Ctx):
    training = c.inp(2)
    if training is not None and not training.is_const:
        raise c.fail("its training_mode input is computed at run time; jaxvis runs Dropout in inference mode")
    if c.attr("training_mode") or (training is not None and bool(np.asarray(training.const).reshape(-1)[0])):
        raise c.fail("Dropout in training mode is not supported (inference only)")
    outs = _elementwise(c, lambda v: v, [0])
    mask = c.node.outputs[1] if len(c.node.outputs) > 1 else ""
    if mask and mask in c.b.read:  # inference keeps every element: the mask is all true
        x = outs[0]
        if x.is_const:
            return outs + c.const(np.ones(x.shape, bool))
        c.node = dataclasses.replace(c.node, outputs=(mask,))
        outs += c.emit(lambda v: jnp.ones(v.shape, bool), [("env", x.name)], [(x.perm, x.feat)])
    return outs


@op("Cast")
def cast(c: Ctx):
    onnx = require_onnx()  # installed: it decoded this graph (a call, so the extra stays optional)
    dt = jax.dtypes.canonicalize_dtype(onnx.helper.tensor_dtype_to_np_dtype(int(c.attr("to"))))
    if c.fold:
        return c.const(np.asarray(c.inp(0).const).astype(dt))
    return _elementwise(c, lambda v: v.astype(dt), [0])


@op("Softmax", "LogSoftmax")
def softmax(c: Ctx):
    x = c.inp(0)
    f = jax.nn.softmax if c.node.op == "Softmax" else jax.nn.log_softmax
    axis = int(c.attr("axis", -1 if c.opset >= 13 else 1)) % x.rank
    if c.opset >= 13 or all(d == 1 for d in x.shape[axis + 1:]):
        if x.feat is not None:  # a permutation of the features does not change a softmax over them
            return c.emit(lambda v: f(v, axis=-1), [c.data(0)], [(x.perm, x.feat)])
        ax = x.axis(axis)
        return c.emit(lambda v: f(v, axis=ax), [c.data(0)], [(x.perm, None)])

    def coerced(v):  # opset < 13: softmax over everything from `axis` on, as a 2-D matrix
        v = canonical(v, x)
        return f(v.reshape(*v.shape[:axis], -1), axis=-1).reshape(v.shape)

    return c.emit(coerced, [c.data(0)], [(identity(x.rank), None)])


def _reduce_axes(c: Ctx):
    x = c.inp(0)
    takes_input = c.opset >= 18 or (c.node.op == "ReduceSum" and c.opset >= 13)
    axes = c.static(1, "axes") if takes_input else c.attr("axes")
    if axes is None or len(np.atleast_1d(axes)) == 0:
        return None if c.attr("noop_with_empty_axes", 0) else tuple(range(x.rank))
    return tuple(sorted(int(a) % x.rank for a in np.atleast_1d(axes)))


@op("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin")
def reduce(c: Ctx):
    x = c.inp(0)
    axes = _reduce_axes(c)
    if axes is None:
        return _elementwise(c, lambda v: v, [0])
    keep = bool(c.attr("keepdims", 1))
    red = {"ReduceMean": jnp.mean, "ReduceSum": jnp.sum, "ReduceMax": jnp.max, "ReduceMin": jnp.min}[c.node.op]
    if x.feat is not None:
        fn = lambda v: red(canonical(v, x), axis=axes, keepdims=keep)
        return c.emit(fn, [c.data(0)], [(None, None)])
    rt = tuple(x.axis(a) for a in axes)
    if keep:
        perm = x.perm
    else:
        kept = [a for a in x.perm if a not in axes]
        perm = tuple(sorted(kept).index(a) for a in kept)
    return c.emit(lambda v: red(v, axis=rt, keepdims=keep), [c.data(0)], [(perm, None)])
