"""What a gallery renders: layers, their units, and the fixed blocks units are rendered in.

Blocks are fixed by unit index (not by what is left to do), so a resumed job compiles and runs
exactly the batches an uninterrupted one would: the images come out byte for byte the same.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import numpy as np

from ..errors import GalleryError, MissingWeightsError

# Graph node kinds worth a page (the others repeat a neighbour's units).
_SHOWN = ("conv", "concat", "fc", "add")


@dataclasses.dataclass(frozen=True)
class LayerPlan:
    """One layer of the gallery: its name, activation shape (H, W, C) or (C,), units, type and slug."""

    name: str
    shape: tuple[int, ...]
    units: tuple[int, ...]
    type: str
    slug: str

    def blocks(self, size: int) -> list[tuple[int, ...]]:
        return [self.units[i:i + size] for i in range(0, len(self.units), size)]


def slug(name: str) -> str:
    """A file-name-safe form of a layer name (collisions are resolved by plan_layers)."""
    s = re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip(".") or "layer"
    return s


def plan_layers(net, layers: str | Sequence[str], units: int | Sequence[int] | None = None) -> list[LayerPlan]:
    """Resolve `layers` ("all" or names/indices) to :class:`LayerPlan` s.

    "all" means every layer with units of its own, read from the network's layer graph: convolutions,
    concatenations, additions and fully connected layers (not their ReLUs, pools or dropouts); every
    layer where the graph knows none of those kinds. Layers whose weights are missing are left out
    of "all" and are an error when named. `units`: None (all), a count (the first ones) or unit indices
    (those below each layer's width; a selection leaving a layer with none is an error).
    """
    g = net.graph()
    if isinstance(layers, str) and layers == "all":
        names = [n for n in g.layers if g[n].kind in _SHOWN] or list(g.layers)
        usable = []
        for n in names:
            try:
                net.require_weights([n])
                usable.append(n)
            except MissingWeightsError:
                continue
        names = usable
    else:
        names = [net.layer_name(l) for l in ([layers] if isinstance(layers, (str, int)) else layers)]
        net.require_weights(names)
    if not names:
        raise GalleryError(f"no layers to render for {net.name!r}: give layer names (e.g. {net.layer_names[-1]!r})")
    out, seen = [], set()
    for n in dict.fromkeys(names):
        shape = tuple(int(d) for d in g[n].shape[1:])
        c = shape[-1]
        s = slug(n)
        while s in seen:
            s += "_"
        seen.add(s)
        out.append(LayerPlan(n, shape, _units(n, c, units), g[n].type, s))
    return out


def _units(layer: str, c: int, units: int | Sequence[int] | None) -> tuple[int, ...]:
    if units is None:
        return tuple(range(c))
    if isinstance(units, (int, np.integer)):
        return tuple(range(min(c, int(units))))
    picked = tuple(dict.fromkeys(int(u) for u in units if 0 <= int(u) < c))
    if not picked:
        raise GalleryError(f"layer {layer!r} has {c} units (0..{c - 1}); the selection {list(units)[:8]} names none of them")
    return picked


# The folder inside a gallery's output that holds its resumable state: settings, finished blocks, the patch cache.
STATE = ".jaxvis-gallery"
