"""Translation of a decoded ONNX graph into one pure JAX function (done once, at import).

Each node's handler (see :mod:`.ops_nn`, :mod:`.ops_math`, :mod:`.ops_shape`) looks at
its inputs' :class:`~.layout.Rec` and emits an :class:`~.registry.Instruction`: a closure over static
options plus the names of its inputs (run-time tensors, params or literals). Nodes
whose inputs are all known at import (shape arithmetic: Shape → Gather → Concat →
Reshape) are evaluated then and become constants. Output shapes come from
``jax.eval_shape`` of the step, so every handler's shape logic is JAX's own.
The forward function then only replays the steps: tracing it costs what tracing a
hand-written model costs, and XLA sees the same operations.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ...errors import OnnxError
from . import ops_index, ops_math, ops_nn, ops_norm, ops_resize, ops_shape  # noqa: F401  (each registers its handlers)
from .budget import Budget
from .layout import NCHW_TO_NHWC, Rec, canonical, from_nhwc, identity, to_nhwc
from .proto import Graph, Node, SubGraph, require_onnx
from .registry import OPS, REFUSED, Ctx, Instruction


@dataclasses.dataclass
class Program:
    """The translated graph: its instructions (`steps`), tensors, params (jaxvis layout) and the layer table."""

    source: str
    input_name: str
    input_size: tuple[int, int]
    steps: list[Instruction]
    recs: dict[str, Rec]
    params: dict[str, np.ndarray]
    literals: dict[str, np.ndarray]
    layers: dict[str, str]  # layer name → tensor name, graph order
    aliases: dict[str, str]  # tensor name → layer name
    layer_ops: dict[str, str]  # layer name → ONNX op type
    opset: int


@functools.lru_cache(maxsize=None)
def required_inputs(op: str, opset: int) -> int:
    """How many leading inputs the ONNX schema of `op` at `opset` requires (0 if the schema is unknown)."""
    onnx = require_onnx()
    try:
        return int(onnx.defs.get_schema(op, opset, "").min_input)
    except onnx.defs.SchemaError:
        return 0


MAX_EXTRA_TOKENS = 5  # class, distillation and register tokens ahead of a transformer's patch tokens
GRID_OPS = {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "Resize", "Upsample"}  # they make feature maps


def _read_tensors(nodes) -> set[str]:
    """Every tensor the nodes read, inside If branches too."""
    out: set[str] = set()
    for n in nodes:
        out.update(n.inputs)
        for a in n.attrs.values():
            if isinstance(a, SubGraph):
                out |= _read_tensors(a.nodes) | set(a.outputs)
    return out


class Builder:
    """Walks the graph once, folding constants and emitting steps, every size checked against `budget`."""

    def __init__(self, graph: Graph, input_size: tuple[int, int], budget: Budget):
        self.graph, self.budget = graph, budget
        self.recs: dict[str, Rec] = {}
        self.structs: dict[str, jax.ShapeDtypeStruct] = {}
        self.params: dict[str, np.ndarray] = {}
        self.literals: dict[str, np.ndarray] = {}
        self._param_ids: dict[tuple[str, str], str] = {}
        self.steps: list[Instruction] = []
        self.input_size = input_size
        self.grids: list[tuple[int, int]] = []  # (H, W) of the feature maps so far, for token tensors
        self.read = _read_tensors(graph.nodes) | set(graph.outputs)  # tensors some node or the graph reads

    def param_key(self, name: str, tag: str, value: np.ndarray, fail) -> str:
        """The parameter holding `value` (constant `name` converted as `tag` says), added once."""
        key = self._param_ids.get((name, tag))
        if key is None:
            key = name if name not in self.params else f"{name}:{tag or len(self._param_ids)}"
            self.budget.check(f"parameter {key!r}", value.shape, 4, fail, keep=True)
            self._param_ids[(name, tag)] = key
            self.params[key] = value.astype(np.float32) if value.dtype == np.float64 else value
        return key

    def struct(self, kind: str, name: str):
        if kind == "env":
            return self.structs[name]
        v = self.params[name] if kind == "param" else self.literals[name]
        return jax.ShapeDtypeStruct(v.shape, jax.dtypes.canonicalize_dtype(v.dtype))

    def fail(self, what: str):
        return lambda msg: OnnxError(f"{self.graph.source}: {what}: {msg}")

    def build(self) -> Program:
        g = self.graph
        h, w = self.input_size
        if g.input_layout == "NHWC":  # channels last in ONNX too: the run-time array is the ONNX tensor
            c_ = g.input_shape[3]
            rec = Rec(g.input_name, (1, h, w, c_), identity(4), cl=True)
        else:
            c_ = g.input_shape[1]
            rec = Rec(g.input_name, (1, c_, h, w), NCHW_TO_NHWC)
        self.budget.check("the input", (1, h, w, c_), 4, self.fail(f"input {g.input_name!r}"))
        self.recs[rec.name] = rec
        self.structs[rec.name] = jax.ShapeDtypeStruct((1, h, w, c_), jnp.float32)
        for name, a in g.initializers.items():
            self.budget.check("it", a.shape, a.dtype.itemsize, self.fail(f"initializer {name!r}"), keep=True)
            self.recs[name] = Rec(name, a.shape, tuple(range(a.ndim)), None, a)
        self.layers, self.aliases, self.layer_ops = {g.input_name: g.input_name}, {}, {g.input_name: "Input"}
        layers, aliases, layer_ops = self.layers, self.aliases, self.layer_ops
        for node in g.nodes:
            self._register(node, self._node(node))
        for name, t in list(layers.items()):
            aliases.setdefault(t, name)
        return Program(g.source, g.input_name, (h, w), self.steps, self.recs, self.params, self.literals,
                    layers, {a: l for a, l in aliases.items() if a not in layers}, layer_ops, g.opset)

    def _register(self, node: Node, outs: list[Rec]) -> None:
        """Run-time outputs become layers: the first by node name, others by tensor name."""
        for k, r in enumerate(r for r in outs if not r.is_const):
            lname = node.name if k == 0 and node.name not in self.layers else r.name
            self.layers[lname] = r.name
            self.layer_ops[lname] = node.op
            self.aliases.setdefault(r.name, lname)

    def _inline_if(self, node: Node) -> list[Rec]:
        """An If whose condition is known at import (torch exports rank checks so): the taken branch, inlined."""
        cond = self.recs.get(node.inputs[0])
        if cond is None or not cond.is_const:
            raise OnnxError(f"{self.graph.source}: node {node.name!r} (If, opset {self.graph.opset}) branches on "
                            "a value computed at run time; jaxvis only inlines Ifs decided at import")
        if np.size(cond.const) != 1:
            raise OnnxError(f"{self.graph.source}: node {node.name!r} (If) has a condition of {np.size(cond.const)} "
                            "values, not one")
        branch = node.attrs.get("then_branch" if bool(np.asarray(cond.const).reshape(-1)[0]) else "else_branch")
        if not isinstance(branch, SubGraph):
            raise OnnxError(f"{self.graph.source}: node {node.name!r} (If) has no graph for the branch it takes")
        for name, a in branch.initializers.items():
            self.budget.check("it", a.shape, a.dtype.itemsize, self.fail(f"initializer {name!r} of {node.name!r}"),
                              keep=True)
            self.recs[name] = Rec(name, a.shape, tuple(range(a.ndim)), None, a)
        for sub in branch.nodes:
            sub = dataclasses.replace(sub, name=f"{node.name}/{sub.name}")
            self._register(sub, self._node(sub))
        res = []
        for src, dst in zip(branch.outputs, node.outputs):
            r = self.recs[src]
            if r.is_const:
                res.append(dataclasses.replace(r, name=dst))
            else:  # a named alias step, so the If's output is a layer like any node's
                ctx = Ctx(self, dataclasses.replace(node, outputs=(dst,)), [r], False)
                res += ctx.emit(lambda v: v, [("env", src)], [(r.perm, r.feat)])
        for r in res:
            self.recs[r.name] = r
        return res

    def _node(self, node: Node) -> list[Rec]:
        if node.op == "If" and node.domain == "":
            return self._inline_if(node)
        ins = []
        for i in node.inputs:
            if i == "":
                ins.append(None)
            elif i not in self.recs:
                raise OnnxError(f"{self.graph.source}: node {node.name!r} ({node.op}) reads {i!r}, an output "
                                "of an op jaxvis does not compute (e.g. a training-only or index output)")
            else:
                ins.append(self.recs[i])
        handler = OPS.get(node.op) if node.domain == "" else None
        if handler is None:
            where = f" from domain {node.domain!r}" if node.domain else ""
            raise OnnxError(f"{self.graph.source}: node {node.name!r} uses op {node.op!r}{where} (opset "
                            f"{self.graph.opset}), which jaxvis cannot translate. Supported ops: "
                            f"{', '.join(sorted(set(OPS) - REFUSED))}")
        need = required_inputs(node.op, self.graph.opset)
        absent = [k for k in range(need) if k >= len(node.inputs) or not node.inputs[k]]
        if absent:
            raise OnnxError(f"{self.graph.source}: node {node.name!r} ({node.op}) leaves out input {absent[0]}, "
                            f"which {node.op} requires ({need} inputs at opset {self.graph.opset})")
        fold = all(r is None or r.is_const for r in ins) and node.op not in ("Shape",)
        ctx = Ctx(self, node, ins, fold)
        try:
            outs = handler(ctx)
        except OnnxError:
            raise
        except (TypeError, ValueError, IndexError, KeyError, AttributeError, ArithmeticError) as e:
            # What a handler did not foresee in a malformed node still names the node.
            raise ctx.fail(f"cannot be translated: {type(e).__name__}: {e}") from None
        outs = [self._as_tokens(r) for r in outs]
        for r in outs:
            self.recs[r.name] = r
            if node.op in GRID_OPS and not r.is_const and r.rank == 4 and not r.cl and r.shape[2] * r.shape[3] > 1:
                self.grids.append((r.shape[2], r.shape[3]))
        return outs

    def _as_tokens(self, r: Rec) -> Rec:
        """A run-time 1×T×C (or 1×C×T, C > 1) tensor whose T is the h·w of the last feature map before it
        (plus up to MAX_EXTRA_TOKENS leading class/register tokens): a vision transformer's tokens, shown as
        an h×w map."""
        if r.is_const or r.rank != 3 or r.shape[0] != 1 or r.feat is not None or not self.grids:
            return r
        h, w = self.grids[-1]
        for axis in (1, 2):
            extra = r.shape[axis] - h * w
            if 0 <= extra <= MAX_EXTRA_TOKENS and r.shape[3 - axis] > 1:
                return dataclasses.replace(r, grid=(axis, extra, h, w))
        return r


def make_forward(plan: Program, flat_2d: bool = False):
    """The translated network: `forward(params, images, *, relu=None, taps=None, layers=None)`.

    images are N×H×W×C (already preprocessed); returns {layer: N×H×W×C activation} for
    `layers` (default: all). `relu` is used for every Relu node; `taps` {layer: array}
    are added to those layers' outputs. With `flat_2d`, layers of rank < 4 come back in
    their ONNX shape (N×C) instead of N×1×1×C: for `jaxvis.from_function`, whose taps
    then land on the very value later nodes read.
    """
    step_of = {o: i for i, s in enumerate(plan.steps) for o in s.outputs}
    literals = dict(plan.literals)  # numpy: constants of the traced function

    def forward(params, images, *, relu=None, taps=None, layers=None):
        relu = relu or jax.nn.relu
        want = list(plan.layers) if layers is None else list(layers)
        taps = taps or {}
        tap_t = {plan.layers[k]: v for k, v in taps.items()}
        last = max([step_of.get(plan.layers[n], -1) for n in [*want, *taps]], default=-1)
        env = {plan.input_name: images}
        if plan.input_name in tap_t:
            env[plan.input_name] = images + from_nhwc(tap_t[plan.input_name], plan.recs[plan.input_name])
        for s in plan.steps[:last + 1]:
            vals = [env[n] if k == "env" else params[n] if k == "param" else literals[n] for k, n in s.inputs]
            res = s.fn(*vals, relu=relu) if s.relu else s.fn(*vals)
            res = res if isinstance(res, (tuple, list)) else (res,)
            for o, v in zip(s.outputs, res):
                env[o] = v + from_nhwc(tap_t[o], plan.recs[o]) if o in tap_t else v
        if flat_2d:
            return {n: (to_nhwc if plan.recs[plan.layers[n]].rank == 4 else canonical)(
                env[plan.layers[n]], plan.recs[plan.layers[n]]) for n in want}
        return {n: to_nhwc(env[plan.layers[n]], plan.recs[plan.layers[n]]) for n in want}

    return forward
