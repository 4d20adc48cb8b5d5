"""Exact halo tiling of convolutional layers: which image crops to run, and which outputs each crop owns.

A layer's output position j sees the input pixels of its receptive field, centred near
``offset + j·stride``. Split the output positions into tiles; run each tile on a crop of the image
that reaches a halo of at least one receptive field past the tile's positions; keep only the
positions the tile owns. Crops start on multiples of the stride, so crop output j is image output
``j + a/stride``, and their lengths equal the image's modulo the stride, so size-dependent padding
('same' with strides, ceil-mode pools) pads every layer of a crop as it pads the image's. The owned
outputs are then the image's outputs exactly, not an approximation, while memory is bounded by one
crop. Used by :func:`jaxvis.activations` on large images and by :func:`jaxvis.recipes.dream_photo`.
"""

from __future__ import annotations

import math
from typing import Sequence

Crop = tuple[int, int, int, int]  # (a, b, j0, j1): image crop [a, b), owning crop outputs [j0, j1)


def field_halo(size: int, offset: float, stride: int) -> int:
    """Halo (input pixels, a multiple of `stride`) that holds a receptive field of `size` px centred `offset`
    px from its output position's grid point: ``ceil((size + |offset|) / stride) · stride``."""
    return int(math.ceil((size + abs(offset)) / stride)) * stride


def tiles_1d(length: int, m: int, stride: int, halo: int, tile: int) -> list[Crop]:
    """(a, b, j0, j1) per tile: crop [a, b) of the image, owning crop outputs [j0, j1).

    Crops start on multiples of the stride (crop output j is image output j + a/stride) and their
    lengths equal the image's modulo the stride, so size-dependent padding ('SAME' with strides)
    pads a crop as it pads the image; all crops share one length (the last is moved back to end at
    the image's end), so one compiled function serves every tile.

    Args:
      length: image length along the axis (pixels).
      m: the layer's output positions along the axis.
      stride: the layer's stride (input pixels per output position).
      halo: pixels of context on each side, a multiple of `stride` (see :func:`field_halo`).
      tile: input pixels of owned outputs per tile (at least one output).

    Returns:
      one (0, length, 0, m) when a single tile covers the axis, else the tiles in order.
    """
    per = max(1, tile // stride)          # output positions per tile
    if m <= per or length <= per * stride + 2 * halo:
        return [(0, length, 0, m)]
    crop = per * stride + 2 * halo + length % stride
    out = []
    for i0 in range(0, m, per):
        i1 = min(m, i0 + per)
        a = max(0, i0 * stride - halo)
        b = a + crop
        if b >= length:
            b = length
            a = max(0, min(a, (length - crop) // stride * stride))
        out.append((a, b, i0 - a // stride, i1 - a // stride))
    return out


def layer_tiles(length: int, strides: Sequence[int], halos: Sequence[int], outputs: Sequence[int],
                tile: int) -> list[tuple[int, int, list[tuple[int, int]]]]:
    """Tiling of one axis shared by several layers (one forward pass per crop serves them all).

    The crops lie on the grid of the least common multiple L of the layers' strides, with the
    largest halo (rounded up to a multiple of L); tile k owns the image pixels [P0, P1) of its grid
    cells, and of each layer the outputs j with j·stride in [P0, P1) (the first tile from output 0,
    the last to the layer's end).

    Args:
      length: image length along the axis.
      strides, halos, outputs: per layer, its stride, :func:`field_halo` and output positions.
      tile: input pixels owned per tile at most (evened out over the axis, so that the last crop,
        moved back to end at the image's end, does not recompute most of its neighbour).

    Returns:
      (a, b, [(j0, j1) per layer, in crop output coordinates]) per crop.
    """
    grid = math.lcm(*strides)
    halo = -(-max(halos) // grid) * grid
    n_cells = -(-length // grid)
    per = max(1, tile // grid)
    per = -(-n_cells // -(-n_cells // per))  # as many tiles as `tile` needs, evened out: no sliver of a last tile
    cells = tiles_1d(length, n_cells, grid, halo, per * grid)
    out = []
    for k, (a, b, c0, c1) in enumerate(cells):
        p0, p1 = (c0 + a // grid) * grid, (c1 + a // grid) * grid
        owned = []
        for s, m in zip(strides, outputs):
            hi = m if k == len(cells) - 1 else min(m, p1 // s)
            lo = 0 if k == 0 else min(p0 // s, hi)
            owned.append((lo - a // s, hi - a // s))
        out.append((a, b, owned))
    return out
