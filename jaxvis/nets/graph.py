"""`LayerGraph`: the one view of a network's layer graph that tools read.

Every adapter builds it from what it knows (a :class:`jaxvis.Network` from its steps, an ONNX
import from its nodes, a `from_function` network from the jaxpr of its function) through
``net.graph(input_size)``; receptive fields, ``analyze_network``, filters, the gallery's plan,
Grad-CAM's default layer and FLOP counts read nothing else.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterator, Sequence

import numpy as np

from ..errors import LayerError, NetworkError

# Op kinds. 'elementwise' (position-wise ops other than ReLU: other activations, scaling, casts),
# 'global_pool' (global or adaptive pooling: no spatial grid after it) and 'output' (a loss layer, the
# identity at inference) extend the basic vocabulary: receptive fields need to tell them apart.
KINDS = frozenset({"input", "conv", "pool", "global_pool", "relu", "elementwise", "concat", "add", "fc", "norm",
                   "softmax", "flatten", "dropout", "output", "other"})

Pair = tuple[int, int]


@dataclasses.dataclass(frozen=True)
class LayerNode:
    """One node of a :class:`LayerGraph`.

    Attributes:
      name: the layer's name (for a `from_function` network's image input: a name no layer has).
      kind: one of :data:`KINDS`.
      type: the original type: MATLAB's layer type for the shipped ports, the ONNX op type, or the
        JAX primitive(s) of a `from_function` network.
      inputs: names of the nodes it reads, in order.
      shape: output shape for one image at the graph's input size, N×H×W×C (dense outputs N×1×1×C).
      params: number of parameters the node applies itself (from the architecture: loaded or not).
      kernel, stride, dilation: (rows, columns) of a window (conv, pool); None where unknown or not a window.
      padding: ((top, bottom), (left, right)) as declared, resolved at the graph's input size ('same' padding
        made explicit); None where unknown.
      groups: a convolution's feature groups; None otherwise.
      ceil: the window's output length rounds up (Caffe/PyTorch ceil mode).
      macs: multiply-adds of one image (conv, fc); None where not computed.
      description: a one-line description (MATLAB's for the shipped ports).
    """

    name: str
    kind: str
    type: str
    inputs: tuple[str, ...]
    shape: tuple[int, ...]
    params: int = 0
    kernel: Pair | None = None
    stride: Pair | None = None
    padding: tuple[Pair, Pair] | None = None
    dilation: Pair | None = None
    groups: int | None = None
    ceil: bool = False
    macs: int | None = None
    description: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise NetworkError(f"node {self.name!r} has kind {self.kind!r}; graph kinds are {', '.join(sorted(KINDS))}")

    @property
    def channels(self) -> int:
        return int(self.shape[-1])


class LayerGraph:
    """Nodes in graph order (every node after its inputs); immutable.

    ``g["conv1"]`` is a :class:`LayerNode`; iterate for all nodes; ``g.layers`` are the names the network
    accepts as layers (a `from_function` network's image input is a node but no layer).
    """

    def __init__(self, nodes: Sequence[LayerNode], layers: Sequence[str] | None = None):
        self._nodes = tuple(nodes)
        self._index = {n.name: i for i, n in enumerate(self._nodes)}
        if len(self._index) != len(self._nodes):
            raise LayerError("node names of a layer graph must be unique")
        for i, n in enumerate(self._nodes):
            late = [x for x in n.inputs if self._index.get(x, len(self._nodes)) >= i]
            if late:
                raise LayerError(f"node {n.name!r} reads {late}, which are not nodes before it")
        inputs = [n for n in self._nodes if n.kind == "input"]
        if len(inputs) != 1:
            raise LayerError(f"a layer graph has one input node, this one has {len(inputs)}")
        self._input = inputs[0]
        self._layers = tuple(n.name for n in self._nodes) if layers is None else tuple(layers)
        for name in self._layers:
            self[name]

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[LayerNode]:
        return iter(self._nodes)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __getitem__(self, name: str) -> LayerNode:
        i = self._index.get(name)
        if i is None:
            close = difflib.get_close_matches(str(name), list(self._index), n=5, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise LayerError(f"no node named {name!r} in this layer graph{hint}")
        return self._nodes[i]

    def __repr__(self) -> str:
        return f"LayerGraph({len(self)} nodes, input {self.input_size[0]}×{self.input_size[1]}×{self.input_channels})"

    @property
    def nodes(self) -> tuple[LayerNode, ...]:
        return self._nodes

    @property
    def layers(self) -> tuple[str, ...]:
        """Names of the nodes that are the network's layers, in graph order."""
        return self._layers

    @property
    def input(self) -> LayerNode:
        return self._input

    @property
    def input_size(self) -> tuple[int, int]:
        return int(self._input.shape[1]), int(self._input.shape[2])

    @property
    def input_channels(self) -> int:
        return self._input.channels

    def ancestors(self, name: str) -> frozenset[str]:
        """Every node `name` depends on, itself included."""
        seen, todo = set(), [self[name].name]
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(self[n].inputs)
        return frozenset(seen)

    def dominates(self, name: str, of: str) -> bool:
        """Whether every path from the input to `of` goes through `name` (`of` dominates itself)."""
        need = self.ancestors(of)
        if name not in need:
            return False
        reach: set[str] = set()  # nodes the input reaches without passing `name`
        for n in self._nodes:
            if n.name in need and n.name != name and (n.kind == "input" or any(i in reach for i in n.inputs)):
                reach.add(n.name)
        return of not in reach

    def macs(self, upto: str | None = None) -> dict[str, int]:
        """Multiply-adds per node for one image: every conv/fc node `upto` depends on (all by default)."""
        need = self.ancestors(upto) if upto is not None else set(self._index)
        return {n.name: n.macs for n in self._nodes if n.name in need and n.macs is not None}

    @property
    def total_macs(self) -> int:
        return sum(self.macs().values())

    @property
    def total_params(self) -> int:
        return sum(n.params for n in self._nodes)


def conv_macs(out_shape: Sequence[int], kernel: Pair, cin: int, groups: int) -> int:
    """Multiply-adds of a convolution for one image: every output value sums kh·kw·cin/groups products."""
    return int(out_shape[1]) * int(out_shape[2]) * int(out_shape[3]) * kernel[0] * kernel[1] * (cin // groups)


def resolve_pads(pad, n: int, k: int, s: int, d: int, axis: int) -> Pair:
    """(begin, end) padding of one axis of a window layer.

    Args:
      pad: an int (all sides), a pair (begin, end) for both axes, MATLAB's [top bottom left right], or
        'same' (MATLAB/TensorFlow: output ceil(n/s), the odd pixel of padding at the end).
      n, k, s, d: input length, kernel, stride and dilation along the axis.
      axis: 0 rows, 1 columns.

    Returns:
      (begin, end) padding in pixels.
    """
    if isinstance(pad, str):
        if pad.lower() != "same":
            raise LayerError(f"padding must be an int, (begin, end), (top, bottom, left, right) or 'same', not {pad!r}")
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        return total // 2, total - total // 2
    if isinstance(pad, (int, np.integer)):
        return int(pad), int(pad)
    pad = tuple(int(v) for v in pad)
    if len(pad) == 2:
        return pad[0], pad[1]
    if len(pad) == 4:
        return pad[2 * axis], pad[2 * axis + 1]
    raise LayerError(f"padding must be an int, (begin, end), (top, bottom, left, right) or 'same', not {pad!r}")


def nhwc(shape: Sequence[int]) -> tuple[int, ...]:
    """An activation's shape as a node's: N×H×W×C, dense outputs N×1×1×C."""
    shape = tuple(int(d) for d in shape)
    if len(shape) == 4:
        return shape
    feats = 1
    for d in shape[1:]:
        feats *= d
    return (shape[0] if shape else 1, 1, 1, feats)
