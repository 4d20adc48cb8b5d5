"""Class names: the ImageNet names shipped with jaxvis (attribution in jaxvis/data/README.md), and the one
rule that turns a class given by index or name into a class id (:func:`class_index`)."""

from __future__ import annotations

import difflib
import functools
import numbers
from collections.abc import Sequence
from importlib import resources

import numpy as np

from ..errors import TargetError


@functools.cache
def _names() -> tuple[str, ...]:
    text = (resources.files("jaxvis") / "data" / "imagenet_classes.txt").read_text(encoding="utf-8")
    names = tuple(text.splitlines())
    assert len(names) == 1000, "jaxvis/data/imagenet_classes.txt must hold 1000 lines"
    return names


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names, index = class id (0 'tench', 8 'hen', …)."""
    return list(_names())


def suggest_classes(name: str, classes: Sequence[str], n: int = 6) -> list[str]:
    """Class names close to `name`: spelling neighbours first, then names containing it (case-insensitive).

    Args:
      name: what the user typed.
      classes: the network's class names.
      n: at most this many suggestions.

    Returns:
      Up to `n` names from `classes`, best first.
    """
    low = [c.lower() for c in classes]
    q = name.strip().lower()
    close = difflib.get_close_matches(q, low, n=n, cutoff=0.6)
    close += [c for c in low if q and q in c and c not in close]
    return [classes[low.index(c)] for c in dict.fromkeys(close)][:n]


def class_index(classes: Sequence[str] | None, c: int | np.integer | str) -> int:
    """0-based class id of a class given by index or name: the one class vocabulary of jaxvis.

    Names match exactly, else case-insensitively (surrounding spaces ignored). ImageNet has two
    duplicated names, 'crane' (134 bird, 517 machine) and 'maillot' (638, 639): those are refused
    with both indices listed rather than silently picking one.

    Args:
      classes: the network's class names (index = class id), or None for class scores without
        names (then `c` must be an index; the caller checks it against the class-score layer's width).
      c: a 0-based index (int or NumPy integer, not bool) or a class name.

    Returns:
      The class id.

    Raises:
      TargetError: index out of range, unknown name (close names listed), ambiguous name, a name
        for a network without class names, or neither an int nor a str.
    """
    if isinstance(c, numbers.Integral) and not isinstance(c, (bool, np.bool_)):
        i, n = int(c), None if classes is None else len(classes)
        if i < 0 or (n is not None and i >= n):
            valid = "class indices are 0-based" if n is None else f"the network has {n} classes, 0..{n - 1}"
            raise TargetError(f"class index {i} is out of range: {valid}")
        return i
    if not isinstance(c, str):
        raise TargetError(f"a class is an index (int) or a name (str), not {type(c).__name__} {c!r}; "
                          "for a hidden unit give (layer, channel)")
    if classes is None:
        raise TargetError(f"this network has no class names, so a class must be given by index, not {c!r} "
                          "(or give the network its classes: from_function(..., classes=) / from_onnx(..., classes=))")
    hits = [i for i, name in enumerate(classes) if name == c]
    if not hits:
        hits = [i for i, name in enumerate(classes) if name.lower() == c.strip().lower()]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise TargetError(f"class name {c!r} is ambiguous: it names classes {', '.join(map(str, hits))}; "
                          "give the index instead")
    close = suggest_classes(c, classes)
    hint = f"; did you mean {', '.join(repr(s) for s in close)}?" if close else ""
    raise TargetError(f"unknown class name {c!r}{hint} (net.classes lists all {len(classes)})")
