"""The :class:`LayerGraph` of an imported ONNX graph: one node per layer, kinds and geometry from the ONNX
nodes' op types and attributes, parameters from the translation's steps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..graph import LayerGraph, LayerNode, Pair, conv_macs, resolve_pads
from .proto import Node as OnnxNode
from .translate import Program

_ELEMENTWISE = {"LeakyRelu", "PRelu", "Elu", "Selu", "Clip", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Cast",
                "Identity", "Mul", "Div", "Sub", "Max", "Min", "Neg", "Abs", "Exp", "Log", "Sqrt", "Pow", "Erf",
                "Softplus", "Softsign", "Mish", "Gelu"}
_SIMPLE = {"Relu": "relu", "BatchNormalization": "norm", "LRN": "norm", "Dropout": "dropout",
           "GlobalAveragePool": "global_pool", "GlobalMaxPool": "global_pool", "GlobalLpPool": "global_pool",
           "Flatten": "flatten", "Gemm": "fc"}
_POOLS = {"MaxPool", "AveragePool", "LpPool"}


def _pads(node: OnnxNode, n: Sequence[int], k: Pair, s: Pair, d: Pair) -> tuple[Pair, Pair]:
    auto = node.attrs.get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        same = [resolve_pads("same", n[ax], k[ax], s[ax], d[ax], ax) for ax in (0, 1)]  # the odd pixel at the end
        if auto == "SAME_LOWER":
            same = [(e, b) for b, e in same]
        return same[0], same[1]
    if auto == "VALID":
        return (0, 0), (0, 0)
    p = [int(v) for v in node.attrs.get("pads", [0, 0, 0, 0])]
    return (p[0], p[2]), (p[1], p[3])  # ONNX: [y_begin, x_begin, y_end, x_end]


def _window(node: OnnxNode, plan: Program, weights: list[str], n_in: tuple[int, ...], out: tuple[int, ...]) -> dict:
    kk = node.attrs.get("kernel_shape")
    if kk is None:  # Conv may leave it to the weight (jaxvis layout: HWIO)
        kk = plan.params[weights[0]].shape[:2]
    k = (int(kk[0]), int(kk[1]))
    st, d = node.attrs.get("strides", [1, 1]), node.attrs.get("dilations", [1, 1])
    s, dd = (int(st[0]), int(st[1])), (int(d[0]), int(d[1]))
    geo: dict = dict(kernel=k, stride=s, dilation=dd, padding=_pads(node, n_in[1:3], k, s, dd),
                     ceil=bool(node.attrs.get("ceil_mode", 0)))
    if node.op == "Conv":
        g = int(node.attrs.get("group", 1))
        geo.update(groups=g, macs=conv_macs(out, k, n_in[3], g))
    return geo


def _kind(node: OnnxNode | None, op: str, plan: Program, tensor: str, n_runtime_inputs: int) -> str:
    rank = plan.recs[tensor].rank
    if op in _SIMPLE:
        return _SIMPLE[op]
    if op in ("Add", "Sum"):
        return "add" if n_runtime_inputs > 1 else "elementwise"
    if op in _ELEMENTWISE:
        return "elementwise"
    if op == "Reshape":
        return "flatten" if rank <= 2 else "other"
    if op == "MatMul":
        return "fc" if rank == 2 else "other"
    if node is None:  # an inlined If's node: its attributes are not at hand
        return "other"
    if op in ("Conv", *_POOLS):
        return ("conv" if op == "Conv" else "pool") if rank == 4 else "other"
    if op in ("Concat", "Softmax"):
        default = 1 if op == "Concat" or plan.opset < 13 else -1
        axis = int(node.attrs.get("axis", default)) % rank
        return ("concat" if op == "Concat" else "softmax") if axis == 1 else "other"
    return "other"


def onnx_graph(plan: Program, nodes: Sequence[OnnxNode], shapes: dict[str, tuple[int, ...]]) -> LayerGraph:
    """The graph of a translation.

    Args:
      plan: the translation (layers, steps, parameter shapes).
      nodes: the decoded ONNX nodes (attributes).
      shapes: every layer's shape (N×H×W×C, dense N×1×1×C) at the graph's input size.

    Returns:
      The graph: the input and every node output, in graph order.
    """
    by_name = {n.name: n for n in nodes}
    layer_of = {t: l for l, t in plan.layers.items()}
    step_of = {t: s for s in plan.steps for t in s.outputs}
    out = [LayerNode(plan.input_name, "input", "Input", (), shapes[plan.input_name],
                description=f"{'×'.join(map(str, shapes[plan.input_name][1:]))} input")]
    for layer, tensor in plan.layers.items():
        if layer == plan.input_name:
            continue
        st = step_of[tensor]
        op, node = plan.layer_ops[layer], by_name.get(st.node)
        ins = tuple(dict.fromkeys(layer_of[n] for k, n in st.inputs if k == "env"))
        weights = [n for k, n in st.inputs if k == "param"]
        first = st.outputs[0] == tensor  # a node's parameters count once, on its first output
        count = sum(int(np.prod(plan.params[n].shape)) for n in weights) if first else 0
        kind = _kind(node, op, plan, tensor, len(ins))
        geo: dict = {}
        if kind in ("conv", "pool") and node is not None:
            geo = _window(node, plan, weights, shapes[ins[0]], shapes[layer])
        elif kind == "fc" and first:
            mats = [n for n in weights if len(plan.params[n].shape) == 2]
            if mats:
                geo = dict(macs=int(np.prod(plan.params[mats[0]].shape)))
        desc = op
        if geo.get("kernel") is not None:
            (t, b), (l, r) = geo["padding"]
            desc = (f"{geo['kernel'][0]}×{geo['kernel'][1]} {op}, stride [{geo['stride'][0]} {geo['stride'][1]}], "
                    f"padding [{t} {b} {l} {r}]")
        out.append(LayerNode(layer, kind, op, ins, shapes[layer], count, description=desc, **geo))
    return LayerGraph(out)


def onnx_layer_params(plan: Program, nodes: Sequence[OnnxNode], layer: str) -> dict[str, tuple[str, bool]]:
    """{'kernel' | 'bias': (parameter name, transpose it)} of a layer's Conv/Gemm/MatMul node; {} otherwise."""
    tensor = plan.layers[layer]
    st = next(s for s in plan.steps if tensor in s.outputs)
    if st.outputs[0] != tensor or plan.layer_ops[layer] not in ("Conv", "Gemm", "MatMul"):
        return {}
    weights = [n for k, n in st.inputs if k == "param"]
    node = next((n for n in nodes if n.name == st.node), None)
    trans = plan.layer_ops[layer] == "Gemm" and node is not None and bool(node.attrs.get("transB", 0))
    mats = [n for n in weights if len(plan.params[n].shape) >= 2]
    vecs = [n for n in weights if len(plan.params[n].shape) == 1]
    roles = {"kernel": (mats[0], trans)} if mats else {}
    if vecs:
        roles["bias"] = (vecs[0], False)
    return roles
