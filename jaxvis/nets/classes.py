"""ImageNet class names shipped with jaxvis (attribution in jaxvis/data/README.md)."""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def _names() -> tuple[str, ...]:
    text = (resources.files("jaxvis") / "data" / "imagenet_classes.txt").read_text(encoding="utf-8")
    names = tuple(text.splitlines())
    assert len(names) == 1000, "jaxvis/data/imagenet_classes.txt must hold 1000 lines"
    return names


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names, index = class id (0 'tench', 8 'hen', …)."""
    return list(_names())
