"""The layer table: MATLAB's `net.Layers`, ordered, by name or 0-based index."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Iterator, Protocol, Sequence, TypeVar, overload

from ..errors import LayerError
from .steps import Step


class _Named(Protocol):
    @property
    def name(self) -> str: ...


RowT = TypeVar("RowT", bound=_Named)


@dataclasses.dataclass(frozen=True)
class Layer:
    """One row of the layer table."""

    index: int
    name: str
    type: str
    description: str
    inputs: tuple[str, ...]


def describe(s: Step, classes: Sequence[str] = ()) -> str:
    """MATLAB's one-line description of a step (the layer table's last column)."""
    o, k = s.o, s.kind
    if k == "input":
        norm = "'zerocenter'" if tuple(o["std"]) == (1.0, 1.0, 1.0) else "'zscore'"
        return f"images with {norm} normalization"
    if k == "conv":
        kk, g = o["kernel"], o.get("groups", 1)
        pad, st = o.get("pad", 0), o.get("stride", 1)
        conv = f"{kk}×{kk}×{o['cin'] // g} convolutions with stride [{st} {st}] and padding [{pad} {pad} {pad} {pad}]"
        return (f"{g} groups of {o['cout'] // g} " if g > 1 else f"{o['cout']} ") + conv
    if k == "maxpool":
        st, pad = o["stride"], o.get("pad", 0)
        ceil = ", rounding up (ceil mode)" if o.get("ceil") else ""
        return f"{o['kernel']}×{o['kernel']} max pooling with stride [{st} {st}] and padding [{pad} {pad} {pad} {pad}]{ceil}"
    if k == "lrn":
        return f"cross channel normalization with {o['size']} channels per element"
    if k == "fc":
        return f"{o['cout']} fully connected layer"
    if k == "adaptive_avgpool":
        return f"adaptive average pooling to {o['size'][0]}×{o['size'][1]}"
    if k == "output":
        return f"crossentropyex with '{classes[0]}' and {len(classes) - 1} other classes" if classes else "crossentropyex"
    return {"relu": "ReLU", "gap": "Global average pooling", "dropout": "50% dropout",
            "softmax": "softmax", "flatten": "flatten in (H, W, C) order",
            "concat": f"Depth concatenation of {len(s.inputs)} inputs"}[k]


class Table(Sequence[RowT]):
    """Rows with a `name`, looked up by name or 0-based index: the one lookup of every layer table
    (LayerTable here, FunctionLayers of `from_function` networks)."""

    _rows: tuple[RowT, ...]

    def _set_rows(self, rows) -> None:
        self._rows = tuple(rows)
        self._index = {r.name: i for i, r in enumerate(self._rows)}

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[RowT]:
        return iter(self._rows)

    @overload
    def __getitem__(self, key: str | int) -> RowT: ...
    @overload
    def __getitem__(self, key: slice) -> tuple[RowT, ...]: ...
    def __getitem__(self, key):
        if isinstance(key, slice):
            return self._rows[key]
        return self._rows[self.index(key)]

    def __contains__(self, name) -> bool:
        return name in self._index

    @property
    def names(self) -> list[str]:
        return [r.name for r in self._rows]

    def index(self, key: str | int) -> int:  # type: ignore[override]  # by name or position, not Sequence.index(row)
        """0-based index of a layer given by name or index; LayerError with close matches."""
        if isinstance(key, (int,)) and not isinstance(key, bool):
            if -len(self) <= key < len(self):
                return key % len(self)
            raise LayerError(f"layer index {key} is out of range: the network has {len(self)} layers "
                             f"(valid 0..{len(self) - 1}, or negative from the end)")
        if not isinstance(key, str):
            raise LayerError(f"a layer is given by name (str) or 0-based index (int), not {type(key).__name__}")
        if key in self._index:
            return self._index[key]
        close = difflib.get_close_matches(key, self.names, n=5, cutoff=0.5)
        close += [n for n in self.names if key.lower() in n.lower() and n not in close][:5]
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise LayerError(f"no layer named {key!r} in this network{hint} "
                         f"(all {len(self)} names: net.layers.names)")


class LayerTable(Table[Layer]):
    """Ordered layers; ``table["conv1"]`` or ``table[1]``; printing shows MATLAB's listing."""

    def __init__(self, steps: Sequence[Step], classes: Sequence[str] = (), input_size=None):
        rows = tuple(Layer(i, s.name, s.type_name, describe(s, classes), s.inputs) for i, s in enumerate(steps))
        if input_size is not None:  # the input row states the size, as MATLAB's does
            first = rows[0]
            rows = (dataclasses.replace(first, description=f"{input_size[0]}×{input_size[1]}×3 {first.description}"),
                    ) + rows[1:]
        self._set_rows(rows)

    def __repr__(self) -> str:
        w = max(len(l.name) for l in self._rows) + 2
        tw = max(len(l.type) for l in self._rows)
        rows = [f"  {len(self)}×1 Layer array with layers:", ""]
        rows += [f"  {l.index:4d}   {repr(l.name):<{w}}   {l.type:<{tw}}   {l.description}" for l in self._rows]
        return "\n".join(rows)
