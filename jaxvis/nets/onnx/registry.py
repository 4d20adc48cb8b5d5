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
import numpy as np

from ...errors import OnnxError
from .layout import Rec, canonical, onnx_shape
from .proto import Node

if TYPE_CHECKING:  # the builder that makes each Ctx (translate.py imports this module, not the reverse)
    from .translate import Builder

Ref = tuple[str, str]  # ("env" | "param" | "lit", name)
Handler = Callable[["Ctx"], list[Rec]]
OPS: dict[str, Handler] = {}
REFUSED: set[str] = set()  # ops with a handler only to say why they cannot be translated


def op(*names: str, refused: bool = False):
    """Register a handler for ONNX op types (`refused`: one that explains why they are not supported)."""
    def deco(fn):
        for n in names:
            OPS[n] = fn
            if refused:
                REFUSED.add(n)
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

    def check(self, what: str, shape, dtype=np.float32, keep: bool = False) -> int:
        """Bytes of a tensor this node would create; OnnxError unless it fits the import's memory budget
        (`keep`: a constant or parameter held from now on, counted with the others)."""
        return self.b.budget.check(what, shape, np.dtype(dtype).itemsize, self.fail, keep)

    def attr(self, name: str, default=None):
        return self.node.attrs.get(name, default)

    def inp(self, i: int) -> Rec | None:
        return self.ins[i] if i < len(self.ins) else None

    def need(self, i: int) -> Rec:
        """Input i, which the op requires (an OnnxError if the node leaves it out)."""
        r = self.inp(i)
        if r is None:
            raise self.fail(f"needs input {i}, which the node leaves out")
        return r

    def dtype(self, i: int) -> np.dtype:
        """Element type of input i."""
        r = self.need(i)
        return np.asarray(r.const).dtype if r.is_const else np.dtype(self.b.structs[r.name].dtype)

    def ints(self, i: int, what: str) -> list[int]:
        """Input i as a list of ints known at import (e.g. a Tile's repeats); an error if it is left out."""
        v = self.static(i, what, None)
        if v is None:
            raise self.fail(f"needs its {what} (input {i})")
        return [int(a) for a in np.asarray(v).reshape(-1)]

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
        return ("param", self.b.param_key(r.name, tag, v, self.fail))

    def emit(self, fn: Callable, inputs: list[Ref], layouts: list[tuple], relu: bool = False,
             like: Ref | None = None, cl: bool = False) -> list[Rec]:
        """Add a step; `layouts` gives each output's (perm, feat). Returns the output records.

        `like`: an input whose shape and dtype the (single) output has, which skips the shape trace.
        `cl`: 4-D outputs are channels last in ONNX (see :class:`~.layout.Rec`).
        Every output's size is checked against the memory budget before anything is computed: a
        folded node is evaluated (in 64-bit) only after its abstract shapes fit.
        """
        outs = self.node.outputs[:len(layouts)]
        traced = (lambda *v: fn(*v, relu=jax.nn.relu)) if relu else fn
        if self.fold:
            vals = [self.lits[n] if k == "lit" else self.b.recs[n].const for k, n in inputs]
            # 64-bit while folding: shape arithmetic in int64 as ONNX says (a thread-local setting, restored after).
            recs = []
            with jax.enable_x64(True):
                for name, s in zip(outs, _as_tuple(self._shapes(traced, [_struct(v) for v in vals]))):
                    self.check(f"the constant {name!r} it folds to", s.shape, s.dtype, keep=True)
                for name, v, (perm, feat) in zip(outs, _as_tuple(traced(*vals)), layouts):
                    rec = Rec(name, (0,) * np.ndim(v), tuple(range(np.ndim(v))) if perm is None else tuple(perm), feat)
                    c = np.asarray(canonical(v, rec))
                    recs.append(Rec(name, c.shape, tuple(range(c.ndim)), None, c))
            return recs
        self.b.literals.update(self.lits)
        structs = [self.b.struct(k, n) for k, n in inputs]
        res = _as_tuple(self.b.struct(*like) if like is not None else self._shapes(traced, structs))
        recs = []
        for name, s, (perm, feat) in zip(outs, res, layouts):
            perm = tuple(range(len(s.shape))) if perm is None else perm
            if len(perm) != len(s.shape):
                raise self.fail(f"internal layout error: rank {len(s.shape)} output with layout {perm}")
            shape = onnx_shape(s.shape, tuple(perm), feat)
            self.check(f"its output {name!r}", shape, s.dtype)  # for one image; before XLA ever sees it
            recs.append(Rec(name, shape, tuple(perm), feat, cl=cl and len(shape) == 4))
            self.b.structs[name] = jax.ShapeDtypeStruct(s.shape, s.dtype)
        self.b.steps.append(Instruction(self.node.name, fn, tuple(inputs), tuple(outs), relu))
        return recs

    def _shapes(self, fn: Callable, structs: list):
        """Output shapes of `fn` on abstract inputs (nothing computed; JAX's own shape rules)."""
        try:
            return jax.eval_shape(fn, *structs)
        except (TypeError, ValueError, IndexError, OverflowError) as e:
            shapes = ", ".join(f"{r.name!r} {list(r.shape)}" for r in self.ins if r is not None)
            raise self.fail(f"cannot be applied to its inputs ({shapes}): {e}") from None

    def const(self, *values) -> list[Rec]:
        """Outputs known at import (each counted against the memory budget)."""
        recs = []
        for n, v in zip(self.node.outputs, values):
            v = np.asarray(v)
            self.check(f"the constant {n!r}", v.shape, v.dtype, keep=True)
            recs.append(Rec(n, v.shape, tuple(range(v.ndim)), None, v))
        return recs


def _as_tuple(res) -> tuple:
    return tuple(res) if isinstance(res, (tuple, list)) else (res,)


def _struct(v) -> jax.ShapeDtypeStruct:
    v = np.asarray(v)
    return jax.ShapeDtypeStruct(v.shape, jax.dtypes.canonicalize_dtype(v.dtype))
