"""What an ONNX op handler is given and where handlers are registered.

Each handler module (:mod:`.ops_nn`, :mod:`.ops_math`, :mod:`.ops_shape`) registers its
functions with :func:`op` when imported; :mod:`.translate` imports all of them at its top
and looks node types up in :data:`OPS`. A handler gets a :class:`Ctx` for its node and
emits :class:`Instruction` s through it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from ...errors import OnnxError
from .layout import Rec, canonical, onnx_shape
from .proto import Node

if TYPE_CHECKING:  # the builder that makes each Ctx (translate.py imports this module, not the reverse)
    from .translate import Builder

Ref = tuple[str, str]  # ("env" | "param" | "lit", name)
Handler = Callable[["Ctx"], list[Rec]]
OPS: dict[str, Handler] = {}


def op(*names: str):
    """Register a handler for ONNX op types."""
    def deco(fn):
        for n in names:
            OPS[n] = fn
        return fn
    return deco


@dataclasses.dataclass(frozen=True)
class Instruction:
    """One translated node: `fn(*inputs)` (with `relu=` when `relu`) gives the tensors `outputs`."""

    node: str
    fn: Callable
    inputs: tuple[Ref, ...]
    outputs: tuple[str, ...]
    relu: bool


class Ctx:
    """What a handler sees of its node: inputs, attributes, and ways to emit steps."""

    def __init__(self, b: Builder, node: Node, ins: list[Rec | None], fold: bool):
        self.b, self.node, self.ins, self.fold = b, node, ins, fold
        self.opset = b.graph.opset
        self.lits: dict[str, Any] = {}

    def fail(self, msg: str) -> OnnxError:
        return OnnxError(f"{self.b.graph.source}: node {self.node.name!r} ({self.node.op}, opset {self.opset}): {msg}")

    def attr(self, name: str, default=None):
        return self.node.attrs.get(name, default)

    def inp(self, i: int) -> Rec | None:
        return self.ins[i] if i < len(self.ins) else None

    def static(self, i: int, what: str, default=None):
        """Value of input i, which must be known at import (e.g. a Reshape's shape)."""
        r = self.inp(i)
        if r is None:
            return default
        if not r.is_const:
            raise self.fail(f"its {what} (input {i}, {r.name!r}) is computed at run time; jaxvis needs it "
                            "known at import (a constant, initializer or shape arithmetic on fixed sizes)")
        return r.const

    def data(self, i: int, convert: Callable[[np.ndarray], np.ndarray] | None = None, tag: str = "") -> Ref:
        """Reference to input i at run time; constants are converted once (to jaxvis layout) here."""
        r = self.inp(i)
        if r is None:  # an omitted optional input that this op needs after all
            raise self.fail(f"needs input {i}, which the node leaves out")
        if not r.is_const:
            return ("env", r.name)
        const = np.asarray(r.const)
        v = np.asarray(const if convert is None else convert(const))
        if self.fold or v.size <= 1 or v.dtype.kind not in "f":
            key = f"{r.name}#{tag}#{len(self.lits)}"
            self.lits[key] = v
            return ("lit", key)
        return ("param", self.b.param_key(r.name, tag, v))

    def emit(self, fn: Callable, inputs: list[Ref], layouts: list[tuple], relu: bool = False,
             like: Ref | None = None) -> list[Rec]:
        """Add a step; `layouts` gives each output's (perm, feat). Returns the output records.

        `like`: an input whose shape and dtype the (single) output has, which skips the shape trace.
        """
        outs = self.node.outputs[:len(layouts)]
        if self.fold:
            vals = [self.lits[n] if k == "lit" else self.b.recs[n].const for k, n in inputs]
            res = fn(*vals, relu=jax.nn.relu) if relu else fn(*vals)
            res = res if isinstance(res, (tuple, list)) else (res,)
            recs = []
            for name, v, (perm, feat) in zip(outs, res, layouts):
                rec = Rec(name, (), tuple(range(np.ndim(v))) if perm is None else tuple(perm), feat)
                c = np.asarray(canonical(jnp.asarray(v), dataclasses.replace(rec, shape=(0,) * np.ndim(v))))
                recs.append(Rec(name, c.shape, tuple(range(c.ndim)), None, c))
            return recs
        self.b.literals.update(self.lits)
        structs = [self.b.struct(k, n) for k, n in inputs]
        try:
            traced = (lambda *v: fn(*v, relu=jax.nn.relu)) if relu else fn
            res = self.b.struct(*like) if like is not None else jax.eval_shape(traced, *structs)
        except (TypeError, ValueError, IndexError) as e:
            shapes = ", ".join(f"{r.name!r} {list(r.shape)}" for r in self.ins if r is not None)
            raise self.fail(f"cannot be applied to its inputs ({shapes}): {e}") from None
        res = res if isinstance(res, (tuple, list)) else (res,)
        recs = []
        for name, s, (perm, feat) in zip(outs, res, layouts):
            perm = tuple(range(len(s.shape))) if perm is None else perm
            if len(perm) != len(s.shape):
                raise self.fail(f"internal layout error: rank {len(s.shape)} output with layout {perm}")
            recs.append(Rec(name, onnx_shape(s.shape, tuple(perm), feat), tuple(perm), feat))
            self.b.structs[name] = jax.ShapeDtypeStruct(s.shape, s.dtype)
        self.b.steps.append(Instruction(self.node.name, fn, tuple(inputs), tuple(outs), relu))
        return recs

    def const(self, *values) -> list[Rec]:
        """Outputs known at import."""
        return [Rec(n, np.shape(v), tuple(range(np.ndim(v))), None, np.asarray(v))
                for n, v in zip(self.node.outputs, values)]
