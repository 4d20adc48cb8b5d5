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


def _exact(c: Ctx, exact, idxs):
    """Integer constants folded with Python integers: shape arithmetic never wraps around silently."""
    vals = [np.asarray(c.inp(i).const) for i in idxs]
    shape = np.broadcast_shapes(*(v.shape for v in vals))
    c.check("the constant it folds to", shape, np.int64)
    res = np.asarray(exact(*(v.astype(object) for v in vals)))
    flat = [int(v) for v in res.reshape(-1)]
    if any(not -(2**63) <= v < 2**63 for v in flat):
        raise c.fail(f"integer overflow in shape arithmetic: {c.node.op} of {[v.reshape(-1)[:4].tolist() for v in vals]} "
                     "leaves the int64 range")
    return c.const(np.asarray(flat, np.int64).reshape(res.shape))


def _elementwise(c: Ctx, f, idxs=None, relu=False, exact=None):
    idxs = list(range(len(c.ins))) if idxs is None else idxs
    recs = [c.inp(i) for i in idxs]
    if exact is not None and c.fold and all(np.asarray(r.const).dtype.kind in "iu" for r in recs):
        return _exact(c, exact, idxs)
    rank = max(r.rank for r in recs)
    dyn = [r for r in recs if not r.is_const]
    same = dyn and all(r.rank == rank and r.perm == dyn[0].perm and r.feat == dyn[0].feat for r in dyn)
    if same and not c.fold:
        perm, feat = dyn[0].perm, dyn[0].feat
        refs = [c.data(i) if not r.is_const else
                c.data(i, lambda a: bcast_const(a, rank, perm, feat), f"b{perm}{feat}") for i, r in zip(idxs, recs)]
        # One operand with the output's layout: the output has its shape (no shape trace needed).
        like = refs[0] if len(idxs) == 1 or all(r.is_const and r.const.size == 1 for r in recs[1:]) else None
        return c.emit(f, refs, [(perm, feat)], relu=relu, like=like if like and like[0] == "env" else None,
                      cl=dyn[0].cl)

    def canon(*vals, **kw):
        return f(*[canonical(v, r) for v, r in zip(vals, recs)], **kw)

    cl = bool(dyn) and all(r.cl for r in dyn if r.rank == rank)
    return c.emit(canon, [c.data(i) for i in idxs], [(identity(rank), None)], relu=relu, cl=cl)


def _div(a, b):
    if jnp.issubdtype(jnp.result_type(a, b), jnp.integer):  # ONNX integer division truncates
        return lax.div(*jnp.broadcast_arrays(jnp.asarray(a), jnp.asarray(b)))
    return a / b


def _int_div(a, b):
    """Truncating division of Python-integer arrays (ONNX Div on integers; `binary` refuses a 0 divisor)."""
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -q, q)


def _mod(fmod: bool):
    if fmod:  # the sign of the dividend (C fmod)
        return lambda a, b: a - b * jnp.trunc(a / b) if jnp.issubdtype(jnp.result_type(a, b), jnp.floating) \
            else lax.rem(*jnp.broadcast_arrays(jnp.asarray(a), jnp.asarray(b)))
    return jnp.mod  # the sign of the divisor (Python's %)


_BINARY = {"Add": jnp.add, "Sub": jnp.subtract, "Mul": jnp.multiply, "Div": _div, "Pow": jnp.power,
           "Equal": jnp.equal, "Greater": jnp.greater, "Less": jnp.less, "GreaterOrEqual": jnp.greater_equal,
           "LessOrEqual": jnp.less_equal, "And": jnp.logical_and, "Or": jnp.logical_or, "Xor": jnp.logical_xor,
           "BitwiseAnd": jnp.bitwise_and, "BitwiseOr": jnp.bitwise_or, "BitwiseXor": jnp.bitwise_xor}
# Integer folds in exact arithmetic (Python ints in object arrays), checked for int64 overflow.
_EXACT = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": _int_div, "Max": np.maximum,
          "Min": np.minimum, "Neg": np.negative, "Abs": np.abs}


@op(*_BINARY, "Mod")
def binary(c: Ctx):
    if c.node.op == "Mod":
        return _elementwise(c, _mod(bool(c.attr("fmod", 0))), [0, 1])
    if c.node.op == "Pow" and c.fold and c.dtype(0).kind in "iu":
        base, exp = (np.asarray(c.inp(i).const) for i in (0, 1))
        if np.any(exp < 0) or np.any(exp > 64):
            raise c.fail(f"integer power with exponents {exp.reshape(-1)[:4].tolist()} is not shape arithmetic")
        return _elementwise(c, jnp.power, [0, 1], exact=lambda a, b: a ** b)
    if c.node.op in ("Div", "Mod") and c.inp(1).is_const and c.dtype(1).kind in "iu" and np.any(c.inp(1).const == 0):
        raise c.fail("divides integers by zero")
    return _elementwise(c, _BINARY[c.node.op], [0, 1], exact=_EXACT.get(c.node.op))


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
    exact = {"Max": _variadic(np.maximum), "Min": _variadic(np.minimum), "Sum": _variadic(np.add)}.get(c.node.op)
    return _elementwise(c, f, exact=exact)


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
        "Celu": lambda v: jax.nn.celu(v, float(a("alpha", 1.0))),
        "ThresholdedRelu": lambda v: jnp.where(v > float(a("alpha", 1.0)), v, 0.0),
        "Shrink": _shrink(float(a("bias", 0.0)), float(a("lambd", 0.5))),
        "Swish": lambda v: v * jax.nn.sigmoid(float(a("alpha", 1.0)) * v),
        "Round": jnp.round,  # ONNX rounds half to even, as jnp.round does
        "Sin": jnp.sin, "Cos": jnp.cos, "Tan": jnp.tan, "Asin": jnp.arcsin, "Acos": jnp.arccos, "Atan": jnp.arctan,
        "Sinh": jnp.sinh, "Cosh": jnp.cosh, "Asinh": jnp.arcsinh, "Acosh": jnp.arccosh, "Atanh": jnp.arctanh,
        "IsNaN": jnp.isnan, "IsInf": _is_inf(bool(a("detect_negative", 1)), bool(a("detect_positive", 1))),
        "BitwiseNot": jnp.bitwise_not,
    }


def _shrink(bias: float, lambd: float):
    return lambda v: jnp.where(v < -lambd, v + bias, jnp.where(v > lambd, v - bias, 0.0)).astype(v.dtype)


def _is_inf(neg: bool, pos: bool):
    return lambda v: (jnp.isneginf(v) & neg) | (jnp.isposinf(v) & pos)


_UNARY_OPS = ("Sigmoid", "Tanh", "Erf", "Sqrt", "Exp", "Log", "Neg", "Abs", "Reciprocal", "Floor", "Ceil", "Sign",
              "Not", "LeakyRelu", "Elu", "Selu", "Softplus", "Softsign", "HardSigmoid", "HardSwish", "Mish", "Gelu",
              "Celu", "ThresholdedRelu", "Shrink", "Swish", "Round", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan",
              "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "IsNaN", "IsInf", "BitwiseNot")


@op(*_UNARY_OPS)
def unary(c: Ctx):
    return _elementwise(c, _unary_table(c)[c.node.op], [0], exact=_EXACT.get(c.node.op))


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
        bounds = [c.inp(i) for i in (1, 2)]
        if any(b is not None and not b.is_const for b in bounds):  # bounds computed at run time
            idx = [0] + [i for i, b in zip((1, 2), bounds) if b is not None]
            has = [b is not None for b in bounds]

            def f(v, *bs):
                it = iter(bs)
                lo_, hi_ = (next(it) if h else None for h in has)
                return jnp.clip(v, lo_, hi_)

            return _elementwise(c, f, idx)
        lo, hi = (None if b is None else b.const for b in bounds)
    lo, hi = (None if b is None or np.size(b) == 0 else np.asarray(b).reshape(-1)[0].item() for b in (lo, hi))
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


@op("Cast", "CastLike")
def cast(c: Ctx):
    if c.node.op == "CastLike":
        target = c.dtype(1)
    else:
        onnx = require_onnx()  # installed: it decoded this graph (a call, so the extra stays optional)
        try:
            target = onnx.helper.tensor_dtype_to_np_dtype(int(c.attr("to")))
        except (KeyError, ValueError, TypeError):
            raise c.fail(f"'to' = {c.attr('to')!r} is not an ONNX tensor type") from None
    if c.fold:  # constants keep ONNX's types (int64 shapes)
        v = np.asarray(c.inp(0).const)
        if v.dtype.kind == "f" and np.dtype(target).kind in "iu" and not np.isfinite(v).all():
            raise c.fail("casts a non-finite value to an integer")
        return c.const(v.astype(target))
    dt = jax.dtypes.canonicalize_dtype(target)
    return _elementwise(c, lambda v: v.astype(dt), [0])


def _hardmax(v, axis):
    return jax.nn.one_hot(jnp.argmax(v, axis), v.shape[axis], axis=axis, dtype=v.dtype)


@op("Softmax", "LogSoftmax", "Hardmax")
def softmax(c: Ctx):
    x = c.inp(0)
    f = {"Softmax": jax.nn.softmax, "LogSoftmax": jax.nn.log_softmax, "Hardmax": _hardmax}[c.node.op]
    axis = int(c.attr("axis", -1 if c.opset >= 13 else 1)) % x.rank
    if c.opset >= 13 or all(d == 1 for d in x.shape[axis + 1:]):
        if x.feat is not None and c.node.op != "Hardmax":  # a softmax does not care about the features' order
            return c.emit(lambda v: f(v, axis=-1), [c.data(0)], [(x.perm, x.feat)])
        if x.feat is None:
            ax = x.axis(axis)
            return c.emit(lambda v: f(v, axis=ax), [c.data(0)], [(x.perm, None)], cl=x.cl)

    def coerced(v):  # opset < 13: softmax over everything from `axis` on, as a 2-D matrix
        v = canonical(v, x)
        return f(v.reshape(*v.shape[:axis], -1), axis=-1).reshape(v.shape)

    return c.emit(coerced, [c.data(0)], [(identity(x.rank), None)])


def _reduce_axes(c: Ctx):
    x = c.inp(0)
    takes_input = c.opset >= 18 or (c.node.op == "ReduceSum" and c.opset >= 13)
    if x.rank == 0:
        return None
    axes = c.static(1, "axes") if takes_input else c.attr("axes")
    if axes is None or len(np.atleast_1d(axes)) == 0:
        return None if c.attr("noop_with_empty_axes", 0) else tuple(range(x.rank))
    return tuple(sorted(int(a) % x.rank for a in np.atleast_1d(axes)))


def _logsumexp(v, axis, keepdims):
    return jax.nn.logsumexp(v, axis=axis, keepdims=keepdims)


_REDUCE = {"ReduceMean": jnp.mean, "ReduceSum": jnp.sum, "ReduceMax": jnp.max, "ReduceMin": jnp.min,
           "ReduceProd": jnp.prod, "ReduceL1": lambda v, axis, keepdims: jnp.sum(jnp.abs(v), axis, keepdims=keepdims),
           "ReduceL2": lambda v, axis, keepdims: jnp.sqrt(jnp.sum(v * v, axis, keepdims=keepdims)),
           "ReduceSumSquare": lambda v, axis, keepdims: jnp.sum(v * v, axis, keepdims=keepdims),
           "ReduceLogSum": lambda v, axis, keepdims: jnp.log(jnp.sum(v, axis, keepdims=keepdims)),
           "ReduceLogSumExp": _logsumexp}
_EXACT_REDUCE = {"ReduceSum": np.sum, "ReduceProd": np.prod, "ReduceMax": np.max, "ReduceMin": np.min}


@op(*_REDUCE)
def reduce(c: Ctx):
    x = c.inp(0)
    axes = _reduce_axes(c)
    if axes is None:
        return _elementwise(c, lambda v: v, [0])
    keep = bool(c.attr("keepdims", 1))
    red = _REDUCE[c.node.op]
    if c.fold and c.node.op in _EXACT_REDUCE and c.dtype(0).kind in "iu":  # shape arithmetic, exactly
        exact = _EXACT_REDUCE[c.node.op]
        return _exact(c, lambda v: exact(v, axis=axes, keepdims=keep), [0])
    if x.feat is not None:
        return c.emit(lambda v: red(canonical(v, x), axis=axes, keepdims=keep), [c.data(0)], [(None, None)])
    rt = tuple(x.axis(a) for a in axes)
    if keep:
        perm = x.perm
    else:
        kept = [a for a in x.perm if a not in axes]
        perm = tuple(sorted(kept).index(a) for a in kept)
    return c.emit(lambda v: red(v, axis=rt, keepdims=keep), [c.data(0)], [(perm, None)])


@op("ImageScaler")
def image_scaler(c: Ctx):
    """Opsets ≤ 9 (experimental; tiny-YOLOv2 of the model zoo): scale · x + per-channel bias."""
    x = c.need(0)
    scale = float(c.attr("scale", 1.0))
    bias = np.asarray(c.attr("bias", [0.0] * x.shape[1]), np.float32)
    if x.rank != 4 or bias.size != x.shape[1]:
        raise c.fail(f"bias of {bias.size} values does not fit input {list(x.shape)}")
    c.ins.append(Rec(f"{c.node.name}:bias", (x.shape[1], 1, 1), identity(3), None, bias.reshape(-1, 1, 1)))
    return _elementwise(c, lambda v, b: v * scale + b, [0, len(c.ins) - 1])


@op("DequantizeLinear")
def dequantize(c: Ctx):
    """(x − zero_point) · scale, per tensor or per `axis` (quantized weights; what QDQ models hold)."""
    x, scale = c.need(0), c.need(1)
    zp = c.inp(2)
    axis = int(c.attr("axis", 1)) % max(x.rank, 1)
    if scale.rank == 1 and scale.shape[0] > 1:  # per-axis: broadcast along `axis`
        shape = [1] * x.rank
        shape[axis] = scale.shape[0]
        for i in (1, 2):
            r = c.inp(i)
            if r is not None:
                if not r.is_const:
                    raise c.fail("a per-axis scale and zero point must be constants")
                c.ins[i] = Rec(r.name, tuple(shape), identity(x.rank), None, np.asarray(r.const).reshape(shape))
    if zp is None:
        return _elementwise(c, lambda v, s: v.astype(jnp.float32) * s, [0, 1])
    return _elementwise(c, lambda v, s, z: (v.astype(jnp.float32) - z.astype(jnp.float32)) * s, [0, 1, 2])
