"""The :class:`LayerGraph` of any network function, read from its jaxpr.

One trace of ``apply(params, image) -> {layer: activation}`` at the graph's input size: the named
outputs are the nodes; a node's inputs are the named outputs (or the image) its value is computed
from without passing another named output; its kind, geometry and parameters come from the
primitives in between (``conv_general_dilated``, ``reduce_window_max``, ``max(x, 0)``,
``dot_general``, ``concatenate``, …). Calls (``jit``, ``custom_jvp``/``custom_vjp`` wrappers,
``checkpoint``) are inlined; other higher-order primitives are one opaque op. Geometry is None
where the primitives do not say it plainly (several windows between two named outputs, a
transposed convolution): receptive fields are then measured instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

from .graph import LayerGraph, LayerNode, nhwc

_CALLS = {"pjit", "jit", "closed_call", "core_call", "remat", "remat2", "checkpoint", "custom_jvp_call",
          "custom_vjp_call", "custom_vjp_call_jaxpr"}
_SAME_VALUE = {"reshape", "squeeze", "expand_dims", "convert_element_type", "copy", "copy_p"}
_NEUTRAL = _SAME_VALUE | {"broadcast_in_dim", "stop_gradient"}
_POINTWISE = _NEUTRAL | {
    "add", "add_any", "sub", "mul", "div", "max", "min", "neg", "exp", "exp2", "log", "log1p", "expm1", "logistic",
    "tanh", "sqrt", "rsqrt", "cbrt", "integer_pow", "pow", "abs", "sign", "square", "erf", "erf_inv", "select_n",
    "clamp", "gt", "ge", "lt", "le", "eq", "ne", "and", "or", "not", "is_finite", "floor", "ceil", "round",
    "sin", "cos", "reduce_precision"}
_REDUCE = {"reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "argmax", "argmin"}

ParamRef = tuple[tuple[str, Any], tuple[int, ...] | None, tuple[int, ...] | None]  # (source, perm, shape)


@dataclasses.dataclass
class _Eqn:
    prim: str
    params: dict
    ins: list  # var ids (int) or _Lit
    outs: list[int]
    in_shapes: list[tuple[int, ...]]
    out_shapes: list[tuple[int, ...]]


@dataclasses.dataclass(frozen=True)
class _Lit:
    val: Any


def _sub_jaxpr(eqn) -> tuple[jcore.Jaxpr, list] | None:
    if eqn.primitive.name not in _CALLS:
        return None
    for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        sub = eqn.params.get(key)
        if isinstance(sub, jcore.ClosedJaxpr):
            return sub.jaxpr, list(sub.consts)
        if isinstance(sub, jcore.Jaxpr):
            return sub, []
    return None


class _Flat:
    """A jaxpr with its calls inlined: equations over integer variable ids."""

    def __init__(self, closed: jcore.ClosedJaxpr):
        self.eqns: list[_Eqn] = []
        self.shapes: dict[int, tuple[int, ...]] = {}
        self.consts: dict[int, Any] = {}
        self._n = 0
        env: dict = {}
        for v, c in zip(closed.jaxpr.constvars, closed.consts):
            env[v] = self._const(v, c)
        for v in closed.jaxpr.invars:
            env[v] = self._new(v)
        self.invars = [env[v] for v in closed.jaxpr.invars]
        self.outs = self._inline(closed.jaxpr, env)
        self.producer = {o: i for i, e in enumerate(self.eqns) for o in e.outs}

    def _new(self, v) -> int:
        self._n += 1
        self.shapes[self._n] = tuple(getattr(v.aval, "shape", ()))
        return self._n

    def _const(self, v, value) -> int:
        i = self._new(v)
        self.consts[i] = value
        return i

    def _read(self, env, v):
        return _Lit(v.val) if isinstance(v, jcore.Literal) else env[v]

    def _inline(self, jaxpr: jcore.Jaxpr, env: dict) -> list:
        for eqn in jaxpr.eqns:
            ins = [self._read(env, v) for v in eqn.invars]
            sub = _sub_jaxpr(eqn)
            if sub is not None and len(sub[0].invars) == len(ins):
                inner_jaxpr, consts = sub
                inner = dict(zip(inner_jaxpr.invars, ins))
                for cv, c in zip(inner_jaxpr.constvars, consts):
                    inner[cv] = self._const(cv, c)
                for o, r in zip(eqn.outvars, self._inline(inner_jaxpr, inner)):
                    env[o] = r
                continue
            outs = [self._new(o) for o in eqn.outvars]
            env.update(zip(eqn.outvars, outs))
            self.eqns.append(_Eqn(eqn.primitive.name, dict(eqn.params), ins, outs,
                                  [tuple(getattr(v.aval, "shape", ())) for v in eqn.invars],
                                  [self.shapes[o] for o in outs]))
        return [self._read(env, v) for v in jaxpr.outvars]


def traced_graph(apply: Callable[[Any, jax.Array], dict], params: Any, hw: tuple[int, int], channels: int,
                 layers: tuple[str, ...]) -> tuple[LayerGraph, dict[str, dict[str, ParamRef]]]:
    """The graph of `apply(params, image) -> {layer: activation}` for one hw×channels image.

    Args:
      apply: the network function (dict outputs, activations N×H×W×C or N×C).
      params: its first argument (any pytree).
      hw: (H, W) of the image traced.
      channels: image channels.
      layers: the layer names, in the network's order (all of them among the outputs).

    Returns:
      (the graph, {layer: {'kernel' | 'bias': where its parameter is}}) — see :func:`param_value`.
    """
    spec = jax.ShapeDtypeStruct((1, *hw, channels), jnp.float32)
    closed, shapes = jax.make_jaxpr(apply, return_shape=True)(params, spec)
    flat = _Flat(closed)
    paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(shapes)[0]]
    out_of = {getattr(p[0], "key", str(p[0])): v for p, v in zip(paths, flat.outs)}
    image = flat.invars[-1]
    refs: dict[int, tuple[str, Any]] = {v: ("leaf", i) for i, v in enumerate(flat.invars[:-1])}
    refs.update({v: ("const", c) for v, c in flat.consts.items()})
    return _Builder(flat, image, refs, out_of, layers, shapes).build()


class _Builder:
    def __init__(self, flat: _Flat, image: int, refs: dict, out_of: dict, layers: tuple[str, ...], shapes):
        self.f, self.image, self.refs, self.layers = flat, image, refs, layers
        self.out_shape = {n: nhwc(shapes[n].shape) for n in layers}
        self.out_of = {n: out_of[n] for n in layers}
        self.owner: dict[int, str] = {}
        self.input_name = next((n for n in layers if self.out_of[n] == image), None)
        for n in layers:  # first name of a value owns it
            v = self.out_of[n]
            if isinstance(v, int) and v not in self.owner and v != image:
                self.owner[v] = n
        for n in layers:  # a reshape or cast of an unnamed value is the same layer (dense outputs as N×1×1×C)
            v = self.out_of[n]
            while isinstance(v, int) and self.owner.get(v) == n and v in flat.producer:
                e = flat.eqns[flat.producer[v]]
                src = [i for i in e.ins if isinstance(i, int)]
                if e.prim not in _SAME_VALUE or len(src) != 1 or src[0] in self.owner or src[0] == image \
                        or src[0] in refs:
                    break
                v = src[0]
                self.owner[v] = n

    def build(self) -> tuple[LayerGraph, dict]:
        inp = self.input_name
        if inp is None:
            inp = "input"
            while inp in self.out_of:
                inp += "_"
        nodes: list[tuple[int, LayerNode]] = [(-1, LayerNode(inp, "input", "image", (), nhwc(self.f.shapes[self.image]),
                                                   description="the image"))]
        roles: dict[str, dict[str, ParamRef]] = {}
        for n in self.layers:
            if n == inp:
                continue
            v = self.out_of[n]
            if not isinstance(v, int):
                nodes.append((-1, LayerNode(n, "other", "constant", (), self.out_shape[n], description="a constant")))
            elif self.owner.get(v) != n:  # the same value as an earlier layer (or the image)
                src = inp if v == self.image else self.owner[v]
                nodes.append((self.f.producer.get(v, -1), LayerNode(n, "elementwise", "identity", (src,),
                                                               self.out_shape[n], description=f"= {src}")))
            else:
                node, role = self._node(n, v, inp)
                nodes.append((self.f.producer.get(v, -1), node))
                if role:
                    roles[n] = role
        nodes.sort(key=lambda p: p[0])  # production order: every node after its inputs
        return LayerGraph([nd for _, nd in nodes], self.layers), roles

    def _segment(self, n: str, v: int, inp: str) -> tuple[list[int], list[str], list[int]]:
        """Equations computing layer `n` from earlier named values; the names it reads; its parameters."""
        eqns, deps, params, seen, todo = set(), [], [], set(), [v]
        while todo:
            u = todo.pop()
            if u in seen:
                continue
            seen.add(u)
            owner = self.owner.get(u)
            if owner is not None and owner != n:
                deps.append(owner)
            elif u == self.image:
                deps.append(inp)
            elif u in self.refs:
                params.append(u)
            elif u in self.f.producer:
                e = self.f.producer[u]
                eqns.add(e)
                todo.extend(i for i in self.f.eqns[e].ins if isinstance(i, int))
        order = {name: i for i, name in enumerate((inp, *self.layers))}
        return sorted(eqns), sorted(set(deps), key=order.__getitem__), params

    def _node(self, n: str, v: int, inp: str) -> tuple[LayerNode, dict[str, ParamRef]]:
        ids, deps, params = self._segment(n, v, inp)
        eqns = [self.f.eqns[i] for i in ids]
        count = sum(int(np.prod(self.f.shapes[p])) for p in params)
        kind, typ, geo, role = _classify(self, eqns, len(deps))
        desc = typ
        if geo.get("kernel") is not None:
            (t, b), (l, r) = geo["padding"]
            desc = (f"{geo['kernel'][0]}×{geo['kernel'][1]} {typ}, stride [{geo['stride'][0]} {geo['stride'][1]}], "
                    f"padding [{t} {b} {l} {r}]")
        return LayerNode(n, kind, typ, tuple(deps), self.out_shape[n], count, description=desc, **geo), role

    # -- parameter roles -------------------------------------------------------------------------
    def ref(self, x, through=_SAME_VALUE | {"broadcast_in_dim"}) -> int | None:
        """The parameter variable `x` is (a cast, reshape or broadcast of), or None."""
        while isinstance(x, int):
            if x in self.refs:
                return x
            e = self.f.producer.get(x)
            if e is None or self.f.eqns[e].prim not in through:
                return None
            src = [i for i in self.f.eqns[e].ins if isinstance(i, int)]
            if len(src) != 1:
                return None
            x = src[0]
        return None


def _spatial_pads(b: _Builder, x, axes: tuple[int, int], seg: set[int]) -> list[list[int]]:
    """Padding a `pad` equation of the segment adds in front of a window (folded into its padding)."""
    e = b.f.producer.get(x) if isinstance(x, int) else None
    if e is not None and e in seg and b.f.eqns[e].prim == "pad":
        cfg = b.f.eqns[e].params["padding_config"]
        if all(int(c[2]) == 0 and int(c[0]) >= 0 and int(c[1]) >= 0 for c in cfg) and \
                all(int(c[0]) == int(c[1]) == 0 for i, c in enumerate(cfg) if i not in axes):
            return [[int(cfg[a][0]), int(cfg[a][1])] for a in axes]
    return [[0, 0], [0, 0]]


def _classify(b: _Builder, eqns: list[_Eqn], n_deps: int):
    """(kind, type, geometry fields, parameter roles) of a node from the equations computing it."""
    seg = {b.f.producer[e.outs[0]] for e in eqns if e.outs}
    prims = [e.prim for e in eqns]
    windows = [e for e in eqns if e.prim == "conv_general_dilated" or e.prim.startswith("reduce_window")]
    dots = [e for e in eqns if e.prim == "dot_general"]
    cats = [e for e in eqns if e.prim == "concatenate"]
    flats = [e for e in eqns if e.prim == "reshape" and len(e.in_shapes[0]) == 4 and len(e.out_shapes[0]) <= 2
             and e.in_shapes[0][1] * e.in_shapes[0][2] > 1]
    glob = [e for e in eqns if e.prim in _REDUCE and len(e.in_shapes[0]) == 4
            and {1, 2} <= set(e.params.get("axes", ()))]
    chan = [e for e in eqns if e.prim in _REDUCE and e not in glob]
    unknown = sorted({p for p in prims if p not in _POINTWISE | _REDUCE and p != "pad"
                      and p not in ("conv_general_dilated", "dot_general", "concatenate")
                      and not p.startswith("reduce_window")})
    pads = [e for e in eqns if e.prim == "pad"]
    structural = windows + dots + cats + flats + glob
    named = sorted({p for p in prims if p not in _NEUTRAL})
    other: tuple[str, str, dict, dict] = ("other", "+".join(named) or "identity", {}, {})
    if unknown:
        return other
    if dots and len(dots) == 1 and not windows and not cats:
        return _dense(b, dots[0], eqns, flats or glob)
    if len(structural) > 1 or (pads and not windows):
        return other
    if windows:
        return _window(b, windows[0], eqns, seg)
    if cats:
        e = cats[0]
        return ("concat" if e.params["dimension"] == len(e.out_shapes[0]) - 1 else "other"), "concatenate", {}, {}
    if glob:
        return "global_pool", glob[0].prim, {}, {}
    if flats:
        return "flatten", "reshape", {}, {}
    if chan:
        return ("softmax", "softmax", {}, {}) if "exp" in prims else ("norm", "+".join(named), {}, {})
    if set(named) == {"max"} and all(any(isinstance(i, _Lit) and np.all(np.asarray(i.val) == 0) for i in e.ins)
                                     for e in eqns if e.prim == "max"):
        return "relu", "max", {}, {}
    if n_deps > 1 and "add" in named:
        return "add", "+".join(named), {}, {}
    return "elementwise", "+".join(named) or "identity", {}, _bias(b, eqns, None)


def _bias(b: _Builder, eqns: list[_Eqn], cout: int | None) -> dict[str, ParamRef]:
    for e in eqns:
        if e.prim in ("add", "add_any"):
            for x in e.ins:
                r = b.ref(x)
                if r is not None and (cout is None or int(np.prod(b.f.shapes[r])) == cout):
                    return {"bias": (b.refs[r], None, (int(np.prod(b.f.shapes[r])),))}
    return {}


def _window(b: _Builder, e: _Eqn, eqns: list[_Eqn], seg: set[int]):
    p = e.params
    if e.prim == "conv_general_dilated":
        dn = p["dimension_numbers"]
        lhs, rhs, out = dn.lhs_spec, dn.rhs_spec, dn.out_spec
        if len(p["window_strides"]) != 2 or any(d != 1 for d in p["lhs_dilation"]) or p["batch_group_count"] != 1:
            return "other", e.prim, {}, {}
        extra = _spatial_pads(b, e.ins[0], (lhs[2], lhs[3]), seg)
        ws = e.in_shapes[1]
        kernel = (int(ws[rhs[2]]), int(ws[rhs[3]]))
        groups = int(p["feature_group_count"])
        cin, os_ = int(e.in_shapes[0][lhs[1]]), e.out_shapes[0]
        cout = int(os_[out[1]])
        geo = dict(kernel=kernel, stride=tuple(int(s) for s in p["window_strides"]),
                   padding=tuple((int(lo) + extra[i][0], int(hi) + extra[i][1]) for i, (lo, hi) in enumerate(p["padding"])),
                   dilation=tuple(int(d) for d in p["rhs_dilation"]), groups=groups,
                   macs=int(os_[out[2]]) * int(os_[out[3]]) * cout * kernel[0] * kernel[1] * (cin // groups))
        role: dict[str, ParamRef] = {}
        k = b.ref(e.ins[1], _SAME_VALUE)
        if k is not None:
            role["kernel"] = (b.refs[k], (rhs[2], rhs[3], rhs[1], rhs[0]), None)  # to HWIO
        role.update(_bias(b, eqns, cout))
        return "conv", e.prim, geo, role
    wd, ws, wp = p["window_dimensions"], p["window_strides"], p["padding"]
    if len(wd) != 4 or any(d != 1 for d in p["base_dilation"]):
        return "other", e.prim, {}, {}
    if wd[0] == ws[0] == wd[3] == ws[3] == 1:
        extra = _spatial_pads(b, e.ins[0], (1, 2), seg)
        geo = dict(kernel=(int(wd[1]), int(wd[2])), stride=(int(ws[1]), int(ws[2])),
                   padding=tuple((int(wp[a][0]) + extra[i][0], int(wp[a][1]) + extra[i][1])
                                 for i, a in enumerate((1, 2))),
                   dilation=(int(p["window_dilation"][1]), int(p["window_dilation"][2])))
        return "pool", e.prim, geo, {}
    if wd[:3] == (1, 1, 1) and tuple(ws) == (1, 1, 1, 1):  # a window across channels only (LRN)
        return "norm", e.prim, {}, {}
    return "other", e.prim, {}, {}


def _dense(b: _Builder, e: _Eqn, eqns: list[_Eqn], flattened: list):
    (lc, rc), (lb, rb) = e.params["dimension_numbers"]
    ls, rs, os_ = e.in_shapes[0], e.in_shapes[1], e.out_shapes[0]
    if lb or rb or len(rs) != 2 or tuple(lc) != (len(ls) - 1,) or tuple(rc) not in ((0,), (1,)):
        return "other", e.prim, {}, {}
    cin, cout = int(ls[-1]), int(rs[1 - rc[0]])
    k = b.ref(e.ins[1], _SAME_VALUE)
    role: dict[str, ParamRef] = {}
    if len(ls) == 4 and not flattened:  # a dense layer at every position: a 1×1 convolution
        if k is not None:
            role["kernel"] = (b.refs[k], (0, 1) if rc[0] == 0 else (1, 0), (1, 1, cin, cout))
        role.update(_bias(b, eqns, cout))
        geo = dict(kernel=(1, 1), stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1,
                   macs=int(os_[1]) * int(os_[2]) * cin * cout)
        return "conv", e.prim, geo, role
    if len(ls) != 2:
        return "other", e.prim, {}, {}
    if k is not None:
        role["kernel"] = (b.refs[k], (0, 1) if rc[0] == 0 else (1, 0), None)
    role.update(_bias(b, eqns, cout))
    return "fc", e.prim, dict(macs=cin * cout), role


def param_value(params: Any, ref: ParamRef) -> jax.Array:
    """A parameter found by :func:`traced_graph`, in jaxvis layout (HWIO kernels, in×out dense kernels)."""
    (src, where), perm, shape = ref
    a = jax.tree.leaves(params)[where] if src == "leaf" else where
    a = jnp.asarray(a)
    if perm is not None:
        a = jnp.transpose(a, perm)
    return a.reshape(shape) if shape is not None else a
