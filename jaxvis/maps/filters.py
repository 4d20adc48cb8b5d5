"""Convolution filters as pictures (CS231n's "visualize the weights").

First layer (3 input channels): each filter is an RGB tile, scaled symmetrically around
zero, ``0.5 + w / (2 max|w|)`` with one ``max|w|`` over the whole layer (so colours and
contrast compare across filters and a zero weight is mid-grey, 128). Deeper layers have
no colours to show: each filter becomes its k×k map of L2 norms over input channels,
scaled by the layer's largest norm and shown in grey or a colormap. Tiles are enlarged
with nearest-neighbour (a 3×3 filter stays nine squares) and tiled with a gap.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..imaging.display import apply_colormap
from ..imaging.notebook import Picture
from ..errors import LayerError

# Graph node kinds a filter can be looked up *through*: asking for 'relu1' means the convolution feeding it.
_PASS = {"relu", "norm", "dropout"}


@dataclasses.dataclass(frozen=True)
class FilterImage(Picture):
    """Filters of one layer drawn as tiles.

    Attributes:
      image: H×W×3 uint8 picture.
      layer: the convolution the kernel came from.
      kernel_shape: (kh, kw, cin, cout) of the kernel (HWIO).
      mode: "rgb" (three input channels, signed weights) or "norm" (L2 norm over input channels).
      scale: the divisor used: max|w| ("rgb") or the largest norm ("norm").
      upsample, gap, cmap: the drawing settings.

    ``.save(path)`` writes `image` as PNG; a notebook shows it.
    """

    image: np.ndarray
    layer: str
    kernel_shape: tuple[int, int, int, int]
    mode: str
    scale: float
    upsample: int
    gap: int
    cmap: str

    def picture(self) -> np.ndarray:
        """The tiled filters (uint8)."""
        return self.image


def conv_kernel(net, layer) -> tuple[str, np.ndarray]:
    """The HWIO kernel of a convolution layer, as float32 numpy.

    Args:
      net: any network of the protocol: the layer is found in ``net.graph()``, its kernel through
        ``net.layer_params``.
      layer: a convolution, or a layer right after one such as its ReLU (name or index).

    Returns:
      (name of the convolution, kernel kh×kw×cin×cout).
    """
    name = net.layer_name(layer)
    g = net.graph()
    node = g[name]
    while node.kind in _PASS and len(node.inputs) == 1:
        node = g[node.inputs[0]]
    if node.kind != "conv":
        convs = [n.name for n in g if n.kind == "conv"]
        raise LayerError(f"{name!r} of {net.name!r} is a {node.kind!r} layer ({node.type}), not a convolution; "
                         f"layers with filters: {', '.join(convs) or 'none'}")
    net.require_weights([node.name])
    kernel = net.layer_params(node.name).get("kernel")
    if kernel is None or np.ndim(kernel) != 4:
        raise LayerError(f"{net.name!r} does not say which parameter is the kernel of {node.name!r}; pass the HWIO "
                         "kernel to jaxvis.maps.filters.filter_tiles")
    return node.name, np.asarray(kernel, np.float32)


def filter_tiles(kernel, *, upsample: int = 4, gap: int = 1, mode: str = "auto", cmap: str = "gray",
                 columns: int | None = None) -> tuple[np.ndarray, str, float]:
    """Tile an HWIO kernel's filters into one uint8 picture.

    Args:
      kernel: kh×kw×cin×cout array.
      upsample: each weight becomes an upsample×upsample square (nearest neighbour), 1..64.
      gap: background pixels between tiles (the background is white).
      mode: "rgb" (needs cin == 3), "norm", or "auto" (rgb for 3 input channels, else norm).
      cmap: colormap of norm maps ("gray", "jet", "hot", or a matplotlib name).
      columns: tiles per row; default as MATLAB's montage (near square).

    Returns:
      (H×W×3 uint8 image, mode used, scale divisor).
    """
    k = np.asarray(kernel, np.float64)
    if k.ndim != 4:
        raise LayerError(f"a filter kernel must be kh×kw×cin×cout (HWIO), got shape {k.shape}")
    if not 1 <= int(upsample) <= 64 or not 0 <= int(gap) <= 64:
        raise LayerError(f"upsample must be in 1..64 and gap in 0..64, got {upsample} and {gap}")
    if mode == "auto":
        mode = "rgb" if k.shape[2] == 3 else "norm"
    if mode == "rgb":
        if k.shape[2] != 3:
            raise LayerError(f"mode='rgb' needs 3 input channels, the kernel has {k.shape[2]}; use mode='norm'")
        scale = float(np.abs(k).max())
        tiles = 0.5 + k / (2 * scale) if scale > 0 else np.full_like(k, 0.5)
        tiles = np.moveaxis(tiles, 3, 0)  # cout × kh × kw × 3
    elif mode == "norm":
        norms = np.sqrt((k ** 2).sum(axis=2))  # kh × kw × cout
        scale = float(norms.max())
        tiles = np.moveaxis(norms / scale if scale > 0 else norms, 2, 0)
        tiles = apply_colormap(tiles, cmap)
    else:
        raise LayerError(f"mode must be 'auto', 'rgb' or 'norm', got {mode!r}")
    u8 = np.round(np.clip(tiles, 0, 1) * 255).astype(np.uint8)
    u8 = u8.repeat(upsample, axis=1).repeat(upsample, axis=2)
    return _tile(u8, columns, gap), mode, scale


def _tile(u8: np.ndarray, columns: int | None, gap: int) -> np.ndarray:
    # Not imtile: its border goes round every tile, so gaps between tiles would be even only.
    n, th, tw = u8.shape[:3]
    cols = int(np.ceil(np.sqrt(n * th / tw))) if columns is None else max(1, min(int(columns), n))
    rows = int(np.ceil(n / cols))
    out = np.full((rows * (th + gap) + gap, cols * (tw + gap) + gap, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        y, x = gap + r * (th + gap), gap + c * (tw + gap)
        out[y:y + th, x:x + tw] = u8[i]
    return out


def filter_image(net, layer="conv1", *, upsample: int = 4, gap: int = 1, mode: str = "auto",
                 cmap: str = "gray", columns: int | None = None) -> FilterImage:
    """Picture of a convolution layer's filters (CS231n's first-layer weights).

    Args:
      net: any network of the protocol (see :func:`conv_kernel`).
      layer: the convolution (or a ReLU/LRN right after it), name or index.
      upsample: pixels per weight (nearest neighbour).
      gap: white pixels between tiles.
      mode: "auto" (RGB for 3-channel input, L2-norm maps otherwise), "rgb" or "norm".
      cmap: colormap of norm maps.
      columns: tiles per row (default near square).

    Returns:
      :class:`FilterImage` (``.image`` is H×W×3 uint8).
    """
    name, k = conv_kernel(net, layer)
    img, used, scale = filter_tiles(k, upsample=upsample, gap=gap, mode=mode, cmap=cmap, columns=columns)
    kh, kw, ci, co = (int(v) for v in k.shape)
    return FilterImage(img, name, (kh, kw, ci, co), used, scale, int(upsample), int(gap), cmap)
