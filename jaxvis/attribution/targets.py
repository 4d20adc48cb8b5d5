"""What an attribution map explains: a class (index or name) or a hidden unit (layer, channel).

Every target becomes one scalar per image, `score = mean over space of layer[..., channel]`:
for a class that is the pre-softmax class score of `net.logits_layer` (a fully connected layer
is 1×1, and SqueezeNet's `pool10` is already the spatial mean of `relu_conv10`), or with
`score="softmax"` the softmax of those scores (the class probability, MATLAB's default);
for a hidden unit it is the unit's mean activation (MATLAB's "activation strength").
Classes given by name or index follow jaxvis's one class vocabulary,
:func:`jaxvis.nets.classes.class_index`.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import TargetError
from ..nets.classes import class_index

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


def resolve(target, *, classes: Sequence[str] | None, logits_layer: str | None, score: str = "logit",
            layer_name: Callable = str, num_channels: Callable[[str], int] | None = None) -> Target:
    """Turn a user's target into a :class:`Target`.

    Args:
      target: class index (int), class name (str), or (layer, channel) for a hidden unit.
      classes: class names of the network (None if it has none).
      logits_layer: the layer holding the pre-softmax class scores (`net.logits_layer`; None if
        the network has none).
      score: 'logit' (the class score) or 'softmax' (its softmax over classes) for class targets.
      layer_name: maps a layer name/index to its name (raises for unknown layers).
      num_channels: layer name → channel count, to range-check unit targets and class indices of
        a network without class names.

    Returns:
      The resolved :class:`Target`.

    Raises:
      TargetError: an unknown or out-of-range class or channel, a bad score, or a class target
        for a network without class scores.
    """
    if score not in SCORES:
        hint = " ('probability' is called 'softmax')" if score == "probability" else ""
        raise TargetError(f"score must be one of {SCORES}, not {score!r}{hint}")
    if isinstance(target, (tuple, list)):
        if score != "logit":
            raise TargetError(f"score={score!r} applies to class targets; a hidden unit {tuple(target)!r} is "
                              "scored by its mean activation (leave score='logit')")
        if len(target) != 2 or not isinstance(target[1], numbers.Integral) or isinstance(target[1], (bool, np.bool_)):
            raise TargetError(f"a hidden-unit target is (layer, channel) with an int channel, got {target!r}")
        layer, ch = layer_name(target[0]), int(target[1])
        if num_channels is not None:
            c = num_channels(layer)
            if not 0 <= ch < c:
                raise TargetError(f"channel {ch} is out of range for layer {layer!r}: it has {c} channels, 0..{c - 1}")
        return Target(layer, ch, "unit", "unit")
    if logits_layer is None:
        raise TargetError("this network has no class-score layer (net.logits_layer is None), so it takes no class "
                          "target; name a (layer, channel) target, or give the network its class scores with "
                          "from_function(..., logits=<layer>)")
    i = class_index(classes, target)
    if classes is None and num_channels is not None:  # unnamed class scores: the layer's width bounds the index
        n = num_channels(logits_layer)
        if i >= n:
            raise TargetError(f"class {i} is out of range: {logits_layer!r} has {n} class scores, 0..{n - 1}")
    return Target(logits_layer, i, "class", score, i, None if classes is None else classes[i])
