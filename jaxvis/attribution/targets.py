"""What an attribution map explains: a class (index or name) or a hidden unit (layer, channel).

Every target becomes one scalar per image, `score = mean over space of layer[..., channel]`:
for a class that is the pre-softmax class score (a fully connected layer is 1×1, and
SqueezeNet's `pool10` is already the spatial mean of `relu_conv10`), or with
`score="softmax"` the softmax of those scores (the class probability, MATLAB's default);
for a hidden unit it is the unit's mean activation (MATLAB's "activation strength").
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import TargetError

SCORES = ("logit", "softmax")


@dataclasses.dataclass(frozen=True)
class Target:
    """A resolved target.

    Attributes:
      layer: layer whose channel is scored.
      channel: 0-based channel of `layer`.
      kind: 'class' or 'unit'.
      score: 'logit' (the class score), 'softmax' (softmax over the class scores: the class
        probability), 'activation' (a class index as a channel of another layer, Grad-CAM's
        reduction layer) or 'unit' (hidden unit).
      class_index: the class for class targets, else None.
      class_name: its name, else None.
    """

    layer: str
    channel: int
    kind: str
    score: str
    class_index: int | None = None
    class_name: str | None = None

    def __str__(self) -> str:
        if self.kind == "class":
            name = "" if self.class_name is None else f" {self.class_name!r}"
            return f"class {self.class_index}{name} ({self.score} of {self.layer!r})"
        return f"unit {self.layer!r} channel {self.channel}"


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_))


def suggest_classes(name: str, classes: Sequence[str], n: int = 6) -> list[str]:
    """Class names close to `name`: spelling neighbours first, then names containing it."""
    low = [c.lower() for c in classes]
    q = name.strip().lower()
    close = difflib.get_close_matches(q, low, n=n, cutoff=0.6)
    close += [c for c in low if q and q in c and c not in close]
    seen, out = set(), []
    for c in close:
        if c not in seen:
            seen.add(c)
            out.append(classes[low.index(c)])
    return out[:n]


def class_index(target: int | str, classes: Sequence[str]) -> int:
    """0-based class index of a class given by index or name.

    Names match exactly, else case-insensitively. ImageNet has two duplicated names,
    'crane' (134 bird, 517 machine) and 'maillot' (638, 639): those are refused with
    both indices listed rather than silently picking one.

    Raises:
      TargetError: unknown name (with close names), ambiguous name, index out of range.
    """
    n = len(classes)
    if _is_int(target):
        i = int(target)
        if not 0 <= i < n:
            raise TargetError(f"class index {i} is out of range: the network has {n} classes, 0..{n - 1}")
        return i
    if not isinstance(target, str):
        raise TargetError(f"a class target must be an index (int) or a name (str), not {type(target).__name__} "
                          f"{target!r}; for a hidden unit pass (layer, channel)")
    hits = [i for i, c in enumerate(classes) if c == target]
    if not hits:
        hits = [i for i, c in enumerate(classes) if c.lower() == target.strip().lower()]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise TargetError(f"class name {target!r} is ambiguous: it is the name of classes "
                          f"{', '.join(map(str, hits))}; pass the index instead")
    close = suggest_classes(target, classes)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise TargetError(f"unknown class name {target!r}{hint} (see net.classes for all {n})")


def resolve(target, *, classes: Sequence[str] | None, class_layer: str | None, score: str = "logit",
            layer_name: Callable = str, num_channels: Callable[[str], int] | None = None) -> Target:
    """Turn a user's target into a :class:`Target`.

    Args:
      target: class index (int), class name (str), or (layer, channel) for a hidden unit.
      classes: class names of the network (None if it has none).
      class_layer: layer holding the pre-softmax class scores (None if the network has none).
      score: 'logit' (the class score) or 'softmax' (its softmax over classes) for class targets.
      layer_name: maps a layer name/index to its name (raises for unknown layers).
      num_channels: layer name → channel count, to range-check unit targets.

    Returns:
      The resolved :class:`Target`.
    """
    if score not in SCORES:
        hint = " ('probability' is called 'softmax')" if score == "probability" else ""
        raise TargetError(f"score must be one of {SCORES}, not {score!r}{hint}")
    if isinstance(target, (tuple, list)):
        if score != "logit":
            raise TargetError(f"score={score!r} applies to class targets; a hidden unit {tuple(target)!r} is "
                              "scored by its mean activation (leave score='logit')")
        if len(target) != 2 or not _is_int(target[1]):
            raise TargetError(f"a hidden-unit target is (layer, channel) with an int channel, got {target!r}")
        layer, ch = layer_name(target[0]), int(target[1])
        if num_channels is not None:
            c = num_channels(layer)
            if not 0 <= ch < c:
                raise TargetError(f"channel {ch} is out of range for layer {layer!r}: it has {c} channels, 0..{c - 1}")
        return Target(layer, ch, "unit", "unit")
    if class_layer is None:
        raise TargetError("this network has no class scores to take a class target from; "
                          "pass a (layer, channel) target instead")
    if not classes:  # class scores without names (an imported graph): the index is the target
        if not _is_int(target):
            raise TargetError(f"this network has no class names, so the class target must be an index, not "
                              f"{target!r} (or give the network its classes, e.g. from_onnx(..., classes=))")
        i, n = int(target), None if num_channels is None else num_channels(class_layer)
        if i < 0 or (n is not None and i >= n):
            raise TargetError(f"class {i} is out of range: {class_layer!r} has {n} class scores, 0..{(n or 1) - 1}")
        return Target(class_layer, i, "class", score, i, None)
    i = class_index(target, classes)
    return Target(class_layer, i, "class", score, i, classes[i])
