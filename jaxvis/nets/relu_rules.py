"""ReLU backward rules for any JAX function, without hooks: its jaxpr re-interpreted with the ReLUs swapped.

:func:`analyse` reads a function's jaxpr once (per input shape: the caller caches it) into a
:class:`JaxprProgram`: calls (``jit``, ``closed_call``, ``checkpoint``) are inlined, the ReLUs are recognised,
and :meth:`JaxprProgram.run` evaluates it with every ReLU replaced by a rule's ``custom_vjp`` (guided,
deconvnet, redirected: :func:`jaxvis.nets.ops.relu_fn`), optionally adding a tap to named values where
they are produced (Grad-CAM's intermediate gradients). With no rule it binds the original equations:
the function's own values and derivatives.

Recognised as a ReLU of x (0: a literal zero, or a cast or broadcast of one):

* ``max(x, 0)`` / ``max(0, x)``: ``jnp.maximum(x, 0)``, ``jnp.clip(x, 0)``, the body of ``jax.nn.relu``;
* a ``custom_jvp`` / ``custom_vjp`` function whose body is one of these: ``jax.nn.relu``, Flax's
  ``nn.relu`` / ``nnx.relu``, a hand-written custom-gradient ReLU;
* ``select_n(x > 0, 0, x)`` and its mirrors (``x >= 0``, ``0 < x``, ``x <= 0`` with the branches
  swapped): ``jnp.where(x > 0, x, 0)``;
* ``x * (x > 0)`` (the comparison cast to x's type).

ReLU-like patterns that are not a ReLU make a rule refuse to run (:attr:`JaxprProgram.unknown` names them),
never silently fall back to the plain gradient: a clipped ReLU (``min(max(x, 0), c)``: ``jax.nn.relu6``,
``jnp.clip(x, 0, 6)``), a select or product on the sign of x that does not zero one side (leaky and
parametric ReLU, ELU), a ReLU inside a function with its own derivative rule, or inside a higher-order
primitive other than ``scan``, ``cond`` and ``while`` (whose bodies are rewritten in place). Smooth
activations (GELU, SiLU, softplus) are not ReLUs: their gradient is their own, as in captum.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.extend import core as jcore

_CALLS = frozenset({"jit", "pjit", "closed_call", "core_call", "remat", "remat2", "checkpoint"})
_CUSTOM = frozenset({"custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr"})
_CONTROL = {"scan": ("jaxpr",), "cond": ("branches",), "while": ("cond_jaxpr", "body_jaxpr")}
_SAME = frozenset({"convert_element_type", "copy", "copy_p", "reshape", "squeeze", "expand_dims",
                   "broadcast_in_dim"})
_SIGN = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


@dataclasses.dataclass(frozen=True)
class Lit:
    """A literal operand."""

    val: Any


@dataclasses.dataclass
class Op:
    """One equation of a flattened program over integer variable ids.

    `relu` is the operand it is a ReLU of (the rule replaces it); `subs` the rewritten bodies of a
    scan/cond/while holding ReLUs (param name -> JaxprProgram or tuple of Programs)."""

    eqn: Any
    ins: list
    outs: list[int]
    scope: str = ""
    relu: Any = None
    subs: dict[str, Any] | None = None


def _jaxprs(value) -> list:
    items = value if isinstance(value, (tuple, list)) else (value,)
    return [v for v in items if isinstance(v, (jcore.ClosedJaxpr, jcore.Jaxpr))]


def _closed(j) -> tuple[jcore.Jaxpr, list]:
    return (j.jaxpr, list(j.consts)) if isinstance(j, jcore.ClosedJaxpr) else (j, [])


def _spec(aval) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(aval.shape, aval.dtype, weak_type=getattr(aval, "weak_type", False))


class JaxprProgram:
    """A jaxpr flattened for re-interpretation (see the module docstring); built by :func:`analyse`.

    Attributes:
      relus: how many ReLUs were recognised (bodies of scan/cond/while included).
      unknown: descriptions of ReLU-like patterns that were not recognised; a rule refuses to run if any.
    """

    def __init__(self, jaxpr: jcore.Jaxpr, consts: Sequence, scope: str = ""):
        self.ops: list[Op] = []
        self.unknown: list[str] = []
        self._n = 0
        self._shape: dict[int, tuple] = {}
        self._const: dict[int, Any] = {}
        self._producer: dict[int, Op] = {}
        self._rewritten: dict = {}
        self.in_specs = [_spec(v.aval) for v in jaxpr.invars]
        env: dict = {}
        for v, c in zip(jaxpr.constvars, consts):
            env[v] = self._new(v)
            self._const[env[v]] = c
        self.consts = [(env[v], c) for v, c in zip(jaxpr.constvars, consts)]
        self.invars = [self._new(v) for v in jaxpr.invars]
        env.update(zip(jaxpr.invars, self.invars))
        self.outs = self._inline(jaxpr, env, scope)
        self._recognise()
        bodies = [p for op in self.ops if op.subs for ps in op.subs.values() for p in (ps if isinstance(ps, tuple) else (ps,))]
        self.relus = sum(1 for op in self.ops if op.relu is not None) + sum(p.relus for p in bodies)

    # -- flattening ------------------------------------------------------------------------------
    def _new(self, v) -> int:
        self._n += 1
        self._shape[self._n] = tuple(getattr(v.aval, "shape", ()))
        return self._n

    def _inline(self, jaxpr: jcore.Jaxpr, env: dict, scope: str) -> list:
        def read(v):
            return Lit(v.val) if isinstance(v, jcore.Literal) else env[v]

        for eqn in jaxpr.eqns:
            ins = [read(v) for v in eqn.invars]
            name = eqn.primitive.name
            subs = [j for value in eqn.params.values() for j in _jaxprs(value)]
            if name in _CALLS and len(subs) == 1 and len(_closed(subs[0])[0].invars) == len(ins):
                inner, consts = _closed(subs[0])
                inner_env = dict(zip(inner.invars, ins))
                for cv, c in zip(inner.constvars, consts):
                    inner_env[cv] = self._new(cv)
                    self._const[inner_env[cv]] = c
                    self.consts.append((inner_env[cv], c))
                for o, r in zip(eqn.outvars, self._inline(inner, inner_env, _scope(eqn, scope))):
                    env[o] = r
                continue
            op = Op(eqn, ins, [self._new(o) for o in eqn.outvars], scope)
            env.update(zip(eqn.outvars, op.outs))
            where = _scope(eqn, scope)
            if name in _CUSTOM and subs:
                body = JaxprProgram(*_closed(subs[0]), scope=where)
                if body.is_relu() and len(ins) == 1 and len(op.outs) == 1:
                    op.relu = ins[0]
                elif body.relus or body.unknown:
                    self.unknown.append(f"custom-derivative function {where or '(unnamed)'!r} " + (
                        f"({body.unknown[0]})" if body.unknown else "with a ReLU inside (its own rule would be dropped)"))
            elif name in _CONTROL:
                progs = {k: tuple(JaxprProgram(*_closed(j), scope=where) for j in _jaxprs(eqn.params[k]))
                         for k in _CONTROL[name]}
                flat = [p for ps in progs.values() for p in ps]
                self.unknown += [f"{u} (inside {name})" for p in flat for u in p.unknown]
                if any(p.relus for p in flat):
                    op.subs = {k: ps if isinstance(eqn.params[k], (tuple, list)) else ps[0] for k, ps in progs.items()}
            elif subs:
                inner_progs = [JaxprProgram(*_closed(j), scope=where) for j in subs]
                if any(p.relus or p.unknown for p in inner_progs):
                    self.unknown.append(f"a ReLU inside {name!r} (only jit, scan, cond and while bodies are rewritten)")
            for i in op.outs:
                self._producer[i] = op
            self.ops.append(op)
        return [read(v) for v in jaxpr.outvars]

    # -- recognition -----------------------------------------------------------------------------
    def _made_by(self, r, *prims: str) -> Op | None:
        op = self._producer.get(r) if isinstance(r, int) else None
        return op if op is not None and op.eqn.primitive.name in prims else None

    def _value(self, r) -> np.ndarray | None:
        """The constant `r` is (a literal, a const, or a cast/broadcast/reshape of one), else None."""
        while True:
            if isinstance(r, Lit):
                return np.asarray(r.val)
            if r in self._const:
                try:
                    return np.asarray(self._const[r])
                except Exception:  # an abstract value: not a known constant
                    return None
            op = self._made_by(r, *_SAME)
            if op is None or len(op.ins) != 1:
                return None
            r = op.ins[0]

    def _zero(self, r) -> bool:
        v = self._value(r)
        return v is not None and v.size > 0 and bool(np.all(v == 0))

    def _root(self, r):
        while True:
            op = self._made_by(r, "convert_element_type", "copy", "copy_p")
            if op is None:
                return r
            r = op.ins[0]

    def _sign(self, pred) -> tuple[Any, bool, str] | None:
        """(x, whether pred is true where x > 0, how) if `pred` compares x with zero."""
        op = self._made_by(pred, *_SIGN)
        if op is None:
            return None
        a, b = op.ins
        p = op.eqn.primitive.name
        if self._zero(b) and not self._zero(a):
            return self._root(a), p in ("gt", "ge"), f"x {_SIGN[p]} 0"
        if self._zero(a) and not self._zero(b):
            return self._root(b), p in ("lt", "le"), f"0 {_SIGN[p]} x"
        return None

    def _recognise(self) -> None:
        for op in self.ops:
            p, ins, out = op.eqn.primitive.name, op.ins, op.outs[0] if op.outs else None
            if op.relu is not None or out is None:
                continue
            if p == "max" and len(ins) == 2:
                x = ins[1] if self._zero(ins[0]) else ins[0] if self._zero(ins[1]) else None
                if isinstance(x, int) and self._shape[x] == self._shape[out]:
                    op.relu = x
            elif p == "select_n" and len(ins) == 3:
                s = self._sign(ins[0])
                if s is None:
                    continue
                x, pos_true, how = s
                pos, neg = (ins[2], ins[1]) if pos_true else (ins[1], ins[2])
                if self._root(pos) == x and self._zero(neg) and self._shape.get(pos) == self._shape[out]:
                    op.relu = pos
                elif x in (self._root(pos), self._root(neg)):
                    self.unknown.append(f"select_n on the sign of x ({how}) that does not zero one side "
                                        f"(a leaky/parametric ReLU or ELU){self._in(op)}")
            elif p == "mul" and len(ins) == 2:
                for m, other in ((ins[0], ins[1]), (ins[1], ins[0])):
                    cast = self._made_by(m, "convert_element_type")
                    s = self._sign(cast.ins[0]) if cast is not None else None
                    if s is not None and self._root(other) == s[0]:
                        if s[1] and self._shape.get(other) == self._shape[out]:
                            op.relu = other
                        else:
                            self.unknown.append(f"x * ({s[2]}){self._in(op)}")
                        break
        for op in self.ops:  # clipped ReLUs: min(max(x, 0), c), max(min(x, c), 0), clamp(0, x, c)
            p = op.eqn.primitive.name
            if p == "min" and len(op.ins) == 2:
                for a, b in ((op.ins[0], op.ins[1]), (op.ins[1], op.ins[0])):
                    inner = self._producer.get(a) if isinstance(a, int) else None
                    c = self._value(b)
                    if inner is not None and inner.relu is not None and c is not None:
                        inner.relu = None
                        self.unknown.append(f"a clipped ReLU min(max(x, 0), {_show(c)}){self._in(op)}")
            elif op.relu is not None:
                m = self._made_by(self._root(op.relu), "min")
                if m is not None and any(self._value(i) is not None for i in m.ins):
                    op.relu = None
                    self.unknown.append(f"a clipped ReLU max(min(x, c), 0){self._in(op)}")
            elif p == "clamp" and self._zero(op.ins[0]):
                self.unknown.append(f"a clipped ReLU clamp(0, x, {_show(self._value(op.ins[2]))}){self._in(op)}")

    @staticmethod
    def _in(op: Op) -> str:
        return f" in {op.scope!r}" if op.scope else ""

    def is_relu(self) -> bool:
        """Whether the whole program is one ReLU of its one input."""
        relus = [op for op in self.ops if op.relu is not None]
        return (not self.unknown and len(self.invars) == 1 and len(self.outs) == 1 and len(relus) == 1
                and relus[0].outs[0] == self.outs[0] and self._root(relus[0].relu) == self.invars[0])

    # -- evaluation ------------------------------------------------------------------------------
    def run(self, args: Sequence, rule: Callable | None = None, taps: dict[int, Any] | None = None) -> list:
        """Evaluate on `args` (the jaxpr's inputs, flat), every ReLU computed by `rule` (None: as written).

        `taps` maps variable ids (:attr:`outs` entries) to arrays added to the value where it is produced.
        """
        env: dict = {}

        def read(r):
            return r.val if isinstance(r, Lit) else env[r]

        def write(i, v):
            env[i] = v + taps[i] if taps and i in taps else v

        for i, c in self.consts:
            write(i, c)
        for i, a in zip(self.invars, args):
            write(i, a)
        for op in self.ops:
            if rule is not None and op.relu is not None:
                write(op.outs[0], rule(read(op.relu)))
                continue
            params = op.eqn.params
            if rule is not None and op.subs:
                params = {**params, **{k: self._body(k, v, rule) for k, v in op.subs.items()}}
            bound = op.eqn.primitive.get_bind_params(params)
            subfuns, bound = bound if isinstance(bound, tuple) else ((), bound)  # JAX < 0.7 also returned subfuns
            with op.eqn.ctx.manager:
                outs = op.eqn.primitive.bind(*subfuns, *[read(r) for r in op.ins], **bound)
            for i, v in zip(op.outs, outs if op.eqn.primitive.multiple_results else [outs]):
                write(i, v)
        return [read(r) for r in self.outs]

    def _body(self, key: str, progs, rule: Callable):
        """A control-flow body (or tuple of branches) with its ReLUs swapped, as closed jaxprs."""
        cache_key = (key, id(progs), rule)
        if cache_key not in self._rewritten:
            one = lambda p: jax.make_jaxpr(lambda *a: p.run(a, rule))(*p.in_specs)  # noqa: E731
            self._rewritten[cache_key] = tuple(one(p) for p in progs) if isinstance(progs, tuple) else one(progs)
        return self._rewritten[cache_key]


def _scope(eqn, outer: str) -> str:
    """The name of a call (a jit's name, a custom-derivative function's), or `outer` for private helpers
    (`_where`): messages name the function a user would recognise, e.g. 'leaky_relu'."""
    name = eqn.params.get("name")
    if name is None:
        body = eqn.params.get("call_jaxpr")
        info = getattr(getattr(body, "jaxpr", body), "debug_info", None)
        name = str(getattr(info, "func_src_info", "") or "").split(" ")[0]
    name = str(name)
    return outer if not name or name.startswith("_") or name == "<lambda>" else name


def _show(c) -> str:
    c = np.asarray(c)
    return f"{float(c):g}" if c.size == 1 else "c"


def analyse(closed: jcore.ClosedJaxpr) -> JaxprProgram:
    """The :class:`JaxprProgram` of a traced function (`jax.make_jaxpr(f)(*args)`)."""
    return JaxprProgram(closed.jaxpr, list(closed.consts))


PATTERNS = ("max(x, 0)", "jax.nn.relu / flax nn.relu / nnx.relu (custom_jvp)", "a custom_vjp ReLU",
            "jnp.where(x > 0, x, 0) and mirrors", "x * (x > 0)")
