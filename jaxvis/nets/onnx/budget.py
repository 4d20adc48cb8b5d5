"""The import's memory budget: sizes checked in Python before anything is allocated or handed to XLA.

An ONNX file says how big its tensors are, and a hostile or broken one can ask for
anything (a `ConstantOfShape` of 1×4×10⁵×10⁵, a `Pad` of 10⁹ pixels). Every tensor the
importer would create (folded constants, parameters) and every tensor the translated
network would compute for one image is checked here first, in Python integers (no
overflow), against one limit:

    budget = 2 GiB + 4 × the model's size in bytes + 64 × the input's size in bytes

(input: one image of the size the graph is translated at, float32). Each tensor, and
all constants and parameters together, must fit; a tensor's size counts an empty
dimension as one (its other dimensions still reach XLA). `from_onnx(...,
memory_budget=n)` sets another limit in bytes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

from ...errors import OnnxError

ALLOWANCE = 2 << 30
FILE_FACTOR = 4
INPUT_FACTOR = 64
MAX_DIM = 1 << 62  # larger dimensions (or INT64 "to the end" markers used as sizes) are refused as such


def human(n: int) -> str:
    """Bytes as a short human-readable size."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def dims_str(shape: Sequence) -> str:
    return "×".join(str(d) for d in shape) if len(shape) else "scalar"


def element_count(shape: Sequence, fail: Callable[[str], OnnxError]) -> int:
    """The number of elements of `shape` in exact integers; a negative or absurd dimension is an error."""
    dims = []
    for d in shape:
        try:
            v = int(d)
        except (TypeError, ValueError, OverflowError):
            raise fail(f"dimension {d!r} of shape {list(shape)} is not an integer") from None
        if v < 0 or v > MAX_DIM:
            raise fail(f"shape {list(shape)} has dimension {v}, outside 0..2^62")
        dims.append(v)
    return math.prod(dims)


@dataclasses.dataclass
class Budget:
    """The limit, how it was set (for messages), and the bytes of constants and parameters so far."""

    limit: int
    rule: str
    kept: int = 0

    @classmethod
    def for_model(cls, model_bytes: int, input_shape: Sequence[int], limit: int | None = None) -> Budget:
        """The default rule (or the given `limit`) for a model of `model_bytes` translated for `input_shape`."""
        if limit is not None:
            return cls(int(limit), "memory_budget given")
        in_bytes = 4 * math.prod(int(d) for d in input_shape)
        return cls(ALLOWANCE + FILE_FACTOR * model_bytes + INPUT_FACTOR * in_bytes,
                   f"2 GiB + 4 × the model's {human(model_bytes)} + 64 × the {dims_str(input_shape)} float input; "
                   "from_onnx(..., memory_budget=bytes) sets another")

    def check(self, what: str, shape: Sequence, itemsize: int, fail: Callable[[str], OnnxError],
              keep: bool = False) -> int:
        """Bytes of a tensor of `shape`; `fail(message)` is raised if it does not fit (or, `keep`: if all
        kept tensors together would not)."""
        element_count(shape, fail)  # every dimension an integer in 0..2^62
        # The extent (zero dimensions counted as one): XLA lays out and indexes by the other dimensions
        # even when one is empty, so a 0×2^62 tensor is as unacceptable as a 1×2^62 one.
        n = math.prod(max(int(d), 1) for d in shape) * max(int(itemsize), 1)
        total = self.kept + n if keep else n
        if total > self.limit:
            held = f" (with the {human(self.kept)} of constants and parameters before it)" if keep and self.kept else ""
            raise fail(f"{what} of shape {dims_str(shape)} would take {human(n)}{held}, over the import's memory "
                       f"budget of {human(self.limit)} ({self.rule})")
        if keep:
            self.kept = total
        return n
