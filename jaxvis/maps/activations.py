"""MATLAB-style entry points on any network: `activations` and `classify`."""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ArgumentTypeError, ImageError, JaxvisError, LayerError, NetworkError
from ..imaging.images import ImageLike, fit_to_size, to_batch
from ..nets.protocol import LayerRef, Net
from ..nets.receptive import receptive_field
from .tiling import field_halo, layer_tiles


# Automatic tiling (tile=None): images whose estimated forward-pass memory is above TILE_ABOVE_BYTES are
# computed tile by tile, each tile's working set about TILE_BYTES. Below TILE_MIN_PIXELS (per batch) no
# estimate is made at all (it traces the network once: not worth it for ordinary photos).
TILE_ABOVE_BYTES = 1 << 30
TILE_BYTES = 256 << 20
TILE_MIN_PIXELS = 2_000_000


def activations(net: Net, image: ImageLike, layer: LayerRef | None = None, *,
                layers: Sequence[LayerRef] | None = None, tile: int | bool | None = None):
    """Activations of one layer (MATLAB's `activations(net, im, layer)`) or several in one pass.

    Large images are computed tile by tile, exactly: each tile runs on a crop of the image with a
    halo of the layer's receptive field, aligned to its stride, and only the outputs the tile owns
    are kept (:mod:`jaxvis.maps.tiling`), so the result equals the whole-image pass (to fp32 rounding)
    while memory holds the output plus one crop's activations. A 6000×4000 photo at SqueezeNet's
    conv1 is then bounded by its 1.4 GiB output (docs/benchmarks.md). Tiling applies to layers with
    a spatial receptive field (convolutions, pools, their ReLUs and concatenations); fully
    connected and global layers are computed on the whole image.

    Args:
      net: the network.
      image: path, PIL image or array of 0..255 pixels (H×W, H×W×C; N×H×W×C or a list for a batch):
        RGB for a 3-channel network, grayscale for a 1-channel one (colour converted to luma), an array
        of exactly `net.input_channels` channels for any other. Any size: larger images give larger maps on convolutional
        layers; layers after a fixed-size flatten need the network's input size.
      layer: one layer, by name or 0-based index.
      layers: several layers instead; all computed by one jitted call (per tile).
      tile: None (default): tile when the estimated memory of the whole-image pass (requested
        outputs + twice the largest activation up to the deepest requested layer + the input,
        fp32) exceeds ``TILE_ABOVE_BYTES`` (1 GiB), with tiles of about ``TILE_BYTES`` (256 MiB)
        of working set; an int >= 16: tiles of at most that many input pixels a side (evened
        out over the image, on the stride's grid); 0 or False: never tile; True: always tile,
        at the automatic size. All tiles of a call share one crop shape: one compilation.

    Returns:
      numpy H×W×C (N×H×W×C for a batch); with `layers`, a dict name → such array.
    """
    if (layer is None) == (layers is None):
        raise ArgumentTypeError("give exactly one of `layer` or `layers=[...]`")
    if isinstance(layers, (str, int)):  # a bare name would otherwise be read letter by letter
        raise ArgumentTypeError(f"layers= takes a list of layers, e.g. layers=[{layers!r}]; for one layer use layer={layers!r}")
    if tile is not None and not isinstance(tile, bool) and (not isinstance(tile, (int, np.integer))
                                                            or (tile != 0 and tile < 16)):
        raise ImageError(f"tile must be None (automatic), 0/False (off), True (always) or an integer >= 16 "
                         f"(pixels), got {tile!r}")
    names = list(dict.fromkeys(net.layer_name(l) for l in ([layer] if layers is None else layers)))  # type: ignore[arg-type]  # exactly one is given
    batch, single = to_batch(image, channels=net.input_channels)
    res = _activations(net, names, batch, tile)
    res = {n: res[n][0] if single else res[n] for n in names}
    return res[names[0]] if layers is None else res


def _whole(net: Net, names: list[str], batch: np.ndarray) -> dict[str, np.ndarray]:
    out = net.jitted(names)(net.params, jnp.asarray(batch))
    return {n: np.asarray(out[n]) for n in names}


def _activations(net: Net, names: list[str], batch: np.ndarray, tile: int | bool | None) -> dict[str, np.ndarray]:
    n, h, w = batch.shape[:3]
    if (tile is not None and not tile) or (tile is None and n * h * w <= TILE_MIN_PIXELS):  # 0/False: off
        return _whole(net, names, batch)
    spec = jax.ShapeDtypeStruct(batch.shape, jnp.float32)
    shapes = jax.eval_shape(net.function(names), net.params, spec)
    need = 4 * (sum(math.prod(shapes[k].shape) for k in names) + batch.size + 2 * _largest(net, names, spec))
    if tile is None and need <= TILE_ABOVE_BYTES:
        return _whole(net, names, batch)
    fields = {k: f for k in names if (f := _tileable(net, k)) is not None}
    if not fields:
        return _whole(net, names, batch)
    if tile is None or tile is True:
        # Square tiles whose share of the estimated working set is about TILE_BYTES, about four halos
        # wide at least (the halo's recomputation then costs at most ~2×), in steps of 256 px so that
        # the size (hence the compiled crop shape) does not follow small changes of the estimate.
        halo = max(max(field_halo(f.size[i], f.offset[i], f.stride[i]) for i in (0, 1)) for f in fields.values())
        side = math.sqrt(TILE_BYTES / max(need / (h * w), 1.0))
        size = int(max(256, 4 * halo, min(4096, side)) // 256 * 256)
    else:
        size = int(tile)
    out = _tiled(net, list(fields), batch, fields, {k: shapes[k] for k in fields}, size)
    rest = [k for k in names if k not in fields]
    if rest:  # fully connected / global layers: the whole image
        out.update(_whole(net, rest, batch))
    return out


def _largest(net: Net, names: list[str], spec) -> int:
    """Elements of the largest activation up to the deepest of `names` (their own if that cannot be had)."""
    order = list(net.layer_names)
    deepest = max(order.index(k) for k in names)
    try:
        shapes = jax.eval_shape(net.function(order[:deepest + 1]), net.params, spec)
    except (TypeError, ValueError, JaxvisError):  # e.g. a fixed-size layer before it
        shapes = jax.eval_shape(net.function(names), net.params, spec)
    return max(math.prod(v.shape) for v in shapes.values())


def _tileable(net: Net, name: str):
    """The layer's receptive field if its outputs can be tiled exactly, else None."""
    try:
        f = receptive_field(net, name)
    except (JaxvisError, TypeError, ValueError):
        return None
    if not f.spatial or min(f.stride) < 1:
        return None
    # A measured field as large as its probe (twice the input size) is a dependence on the whole
    # image (e.g. a normalisation over positions), not a local window.
    if f.method == "measured" and max(f.size) >= 2 * max(net.input_size):
        return None
    return f


def _tiled(net: Net, names: list[str], batch: np.ndarray, fields: dict, shapes: dict, size: int
           ) -> dict[str, np.ndarray]:
    """Activations of spatial layers, one jitted forward per crop (all crops share one shape)."""
    out = {k: np.empty(shapes[k].shape, shapes[k].dtype) for k in names}
    axes = []
    for ax in (0, 1):
        axes.append(layer_tiles(batch.shape[1 + ax], [fields[k].stride[ax] for k in names],
                                [field_halo(fields[k].size[ax], fields[k].offset[ax], fields[k].stride[ax])
                                 for k in names],
                                [shapes[k].shape[1 + ax] for k in names], size))
    if len(axes[0]) == len(axes[1]) == 1:  # one crop: the whole image
        return _whole(net, names, batch)
    fn = net.jitted(names)
    for a, b, own_y in axes[0]:
        for c, d, own_x in axes[1]:
            res = fn(net.params, jnp.asarray(batch[:, a:b, c:d]))
            for k, (j0, j1), (i0, i1) in zip(names, own_y, own_x):
                r = np.asarray(res[k])
                y0, x0 = j0 + a // fields[k].stride[0], i0 + c // fields[k].stride[1]
                # The geometry's promise, checked: crops hold what they own, and a crop ending at the
                # image's end ends on the same output (else the stride or alignment was wrong).
                full = out[k].shape
                if (j1 > r.shape[1] or i1 > r.shape[2]
                        or (b == batch.shape[1] and r.shape[1] - j0 != full[1] - y0)
                        or (d == batch.shape[2] and r.shape[2] - i0 != full[2] - x0)):
                    raise LayerError(f"cannot tile {k!r} exactly (crop [{a}:{b}, {c}:{d}] gives {r.shape[1:3]} "
                                     f"outputs for owned [{j0}:{j1}, {i0}:{i1}] of {full[1:3]}); pass tile=0")
                if j1 > j0 and i1 > i0:
                    out[k][:, y0:y0 + j1 - j0, x0:x0 + i1 - i0] = r[:, j0:j1, i0:i1]
            del res
    return out


def classify(net: Net, image: ImageLike, top: int = 5, *, resize: str = "crop"):
    """Top-k classes with probabilities (MATLAB's `classify`, with scores).

    Args:
      net: the network.
      image: one image or a batch (see :func:`activations`).
      top: how many classes to return.
      resize: how images are brought to `net.input_size`: 'crop' (shorter side
        scaled, centre crop), 'stretch' (MATLAB's `imresize(im, inputSize(1:2))`) or 'none'.

    Returns:
      [(class name, probability), …] best first; a list of such lists for a batch.
    """
    if net.logits_layer is None or not net.classes:
        if net.logits_layer is None:
            last = net.graph().nodes[-1]
            why = (f"it has no class-score layer (its last layer {last.name!r} is "
                   f"{'×'.join(map(str, last.shape[1:]))}, not N×K class scores)")
        else:
            why = "it has no class names"
        raise NetworkError(f"{net.name!r} does not classify: {why}; name them where the network is made: "
                           f"{net.classes_hint}")
    batch, single = to_batch(image, channels=net.input_channels)
    batch = fit_to_size(batch, net.input_size, resize)
    z = np.asarray(net.jitted([net.logits_layer])(net.params, jnp.asarray(batch))[net.logits_layer], np.float64)
    z = z.reshape(len(batch), -1)
    prob = np.exp(z - z.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    top = max(1, min(int(top), prob.shape[1]))
    res = [[(net.classes[i], float(p[i])) for i in np.argsort(-p)[:top]] for p in prob]
    return res[0] if single else res
