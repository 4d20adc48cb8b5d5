"""Occlusion sensitivity (Zeiler & Fergus 2014), with MATLAB's or captum's window placement.

A mask slides over the image; at each position the masked pixels are replaced by
`mask_value` and the score change score(original) − score(occluded) is recorded:
positive where hiding the region lowers the score, i.e. where the region supports the
target. The occluded copies are built with `jax.vmap` inside one jitted call per chunk of
`batch_size`.

placement="matlab" (`occlusionSensitivity`): MaskSize 'auto' = round(20 % of the input
size), Stride 'auto' = round(10 %), MaskValue 'auto' = the image's per-channel mean,
MaskClipping 'on' (mask centres at 0, stride, 2·stride, … < size: the first mask is
centred on the top-left pixel, edge masks are clipped), and OutputUpsampling 'bicubic'
(the grid of one value per mask position, imresize'd to the input size; 'nearest' and
'none' also offered). Not averaged over overlapping masks.

placement="captum" (`captum.attr.Occlusion` with a sliding window covering all colour
channels): windows start at 0, stride, …, ceil((size − mask)/stride)·stride (the last one
clipped at the far edge), and each pixel gets the mean score change of the windows that
cover it.

Score: the pre-softmax class score by default; MATLAB scores the softmax output
(`score="softmax"` gives MATLAB's).
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import AttributionError
from ..imaging.display import imresize
from ..imaging.images import ImageLike
from ..nets.protocol import Net
from .base import AttributionMethod, chunking, function_kernel, matlab_round, pad_rows, positive_int, unit_score
from .result import AttributionMap

DEFAULT_BATCH = 32  # occluded 227×227 copies per jitted forward call
UPSAMPLING = ("bicubic", "nearest", "none")
PLACEMENTS = ("matlab", "captum")


def _build_occ(fn, layer, softmax):
    def k(params, image, corners, mask_hw, fill, channel):
        rows = jnp.arange(image.shape[0])[:, None]
        cols = jnp.arange(image.shape[1])[None, :]

        def occlude(c):
            m = (rows >= c[0]) & (rows < c[0] + mask_hw[0]) & (cols >= c[1]) & (cols < c[1] + mask_hw[1])
            return jnp.where(m[..., None], fill, image)

        return unit_score(fn(params, jax.vmap(occlude)(corners)), layer, channel, softmax)
    return k


def mask_starts(size: int, mask: int, stride: int, clipping: bool = True, placement: str = "matlab") -> np.ndarray:
    """First row (or column) of each mask position along one axis.

    placement='matlab', clipping=True (MaskClipping 'on'): centres at 0, stride, 2·stride,
    … < size; masks hang over the edges. clipping=False ('off'): masks start at 0, stride,
    … and stay inside. placement='captum': starts 0, stride, …, ceil((size − mask)/stride)·stride
    (captum's shift counts; the last window may hang over the far edge).
    """
    if placement == "captum":
        return np.arange(math.ceil((size - mask) / stride) + 1) * stride
    if clipping:
        return np.arange(0, size, stride) - mask // 2
    return np.arange(0, size - mask + 1, stride)


def window_mean(grid: np.ndarray, rows: np.ndarray, cols: np.ndarray, mask_size: tuple[int, int],
                hw: tuple[int, int]) -> np.ndarray:
    """Per-pixel mean of `grid[r, c]` over the masks (starts rows × cols) covering the pixel (captum's
    map); 0 where no mask covers it."""
    def cover(starts, m, n):  # n × len(starts): pixel i lies in window k
        i = np.arange(n)[:, None]
        return ((i >= starts[None]) & (i < starts[None] + m)).astype(np.float64)
    r, c = cover(rows, mask_size[0], hw[0]), cover(cols, mask_size[1], hw[1])
    total = r @ grid.astype(np.float64) @ c.T
    count = r.sum(1)[:, None] * c.sum(1)[None, :]
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def occlusion_scores(fn, params, image, layer: str, channel: int, *, corners, mask_size: tuple[int, int],
                     fill, batch_size: int | None = None, softmax: bool = False) -> tuple[np.ndarray, float]:
    """Scores of the image with a mask at each corner, and of the unoccluded image.

    Args:
      fn: pure `fn(params, images) -> {layer: activation}`.
      params: its parameters.
      image: H×W×C input.
      layer, channel: score = spatial mean of `layer[..., channel]`.
      corners: P×2 (row, col) of each mask's top-left pixel (may be negative: clipped).
      mask_size: (rows, cols) of the mask.
      fill: value or (C,) values written under the mask.
      batch_size: most occluded copies per jitted call (default 32).
      softmax: score the softmax over `layer`'s channels (class probability).

    Returns:
      (P scores, unoccluded score).
    """
    k = function_kernel(fn, _build_occ, layer, softmax)
    return _occlusion(k, params, image, channel, corners, mask_size, fill, batch_size)


def _occlusion(k, params, image, channel: int, corners, mask_size: tuple[int, int], fill,
               batch_size: int | None) -> tuple[np.ndarray, float]:
    x = jnp.asarray(image)
    h, w = x.shape[:2]
    # Row 0 is a mask placed wholly outside the image: the unoccluded score, same call.
    pos = np.concatenate([[[-h - mask_size[0], -w - mask_size[1]]], np.asarray(corners, np.int32)]).astype(np.int32)
    b, n = chunking(len(pos), batch_size, DEFAULT_BATCH)
    fill = jnp.broadcast_to(jnp.asarray(fill, x.dtype), (x.shape[-1],))
    m = jnp.asarray(mask_size, jnp.int32)
    out = [np.asarray(k(params, x, jnp.asarray(pad_rows(pos[c * b:(c + 1) * b], b)), m, fill, jnp.int32(channel)))
           for c in range(n)]
    s = np.concatenate(out)[:len(pos)]
    return s[1:], float(s[0])


def _pair(v, name: str, auto: tuple[int, int]) -> tuple[int, int]:
    if isinstance(v, str):
        if v != "auto":
            raise AttributionError(f"{name} must be 'auto', an int or (rows, cols); got {v!r}")
        return auto
    vals = [v, v] if isinstance(v, numbers.Number) else list(v) if isinstance(v, (tuple, list, np.ndarray)) else []
    if len(vals) != 2:
        raise AttributionError(f"{name} must be an int or (rows, cols); got {v!r}")
    return positive_int(vals[0], name), positive_int(vals[1], name)


class Occlusion(AttributionMethod):
    """Occlusion sensitivity (Zeiler & Fergus 2014): MATLAB's `occlusionSensitivity` or captum's `Occlusion`."""

    method = "occlusion"

    def attribute(self, *, mask_size="auto", stride="auto", mask_value="mean", placement: str = "matlab",
                  mask_clipping: bool | None = None, output_upsampling: str | None = None,
                  batch_size: int | None = None) -> AttributionMap:
        """score(original) − score(occluded) at each mask position, as a map.

        Args:
          mask_size, stride, mask_value, placement, mask_clipping, output_upsampling, batch_size:
            see :func:`occlusion_sensitivity`.

        Returns:
          :class:`AttributionMap`: `.raw` the grid of score changes, one per mask position.
        """
        if placement not in PLACEMENTS:
            raise AttributionError(f"placement must be one of {PLACEMENTS}, not {placement!r}")
        if placement == "captum" and (mask_clipping is not None or output_upsampling is not None):
            raise AttributionError("mask_clipping and output_upsampling apply to placement='matlab'; captum's "
                                   "windows start at 0 and its map is the per-pixel mean of the windows")
        mask_clipping = True if mask_clipping is None else bool(mask_clipping)
        output_upsampling = output_upsampling or "bicubic"
        if output_upsampling not in UPSAMPLING:
            raise AttributionError(f"output_upsampling must be one of {UPSAMPLING}, not {output_upsampling!r}")
        batch_size = positive_int(batch_size, "batch_size", allow_none=True)
        x, (h, w) = self.image, self.hw
        mh, mw = _pair(mask_size, "mask_size", (max(1, matlab_round(0.2 * h)), max(1, matlab_round(0.2 * w))))
        if mh > h or mw > w:
            raise AttributionError(f"mask_size {mh}×{mw} is larger than the {h}×{w} image the network sees; "
                                   f"use at most {h}×{w}")
        sh, sw = _pair(stride, "stride", (max(1, matlab_round(0.1 * h)), max(1, matlab_round(0.1 * w))))
        fill = _fill(mask_value, x)
        rows = mask_starts(h, mh, sh, mask_clipping, placement)
        cols = mask_starts(w, mw, sw, mask_clipping, placement)
        corners = np.stack(np.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)
        scores, s = _occlusion(self.kernel("occlusion", _build_occ), self.params, x, self.target.channel, corners,
                               (mh, mw), fill, batch_size)
        grid = (s - scores).reshape(len(rows), len(cols)).astype(np.float32)
        opts = {"mask_size": (mh, mw), "stride": (sh, sw), "mask_value": fill.tolist(), "placement": placement,
                "grid": grid.shape, "batch_size": batch_size or DEFAULT_BATCH}
        if placement == "captum":
            big = window_mean(grid, rows, cols, (mh, mw), (h, w)).astype(np.float32)
        else:
            opts.update(mask_clipping=mask_clipping, output_upsampling=output_upsampling)
            big = grid if output_upsampling == "none" else \
                imresize(grid.astype(np.float64), (h, w), method=output_upsampling).astype(np.float32)
        return self.result(big, s, grid, opts)


def occlusion_sensitivity(net: Net, image: ImageLike, target=None, *, mask_size="auto", stride="auto",
                          mask_value="mean", placement: str = "matlab", mask_clipping: bool | None = None,
                          output_upsampling: str | None = None, score: str = "logit",
                          batch_size: int | None = None, resize: str = "crop") -> AttributionMap:
    """Occlusion sensitivity map, MATLAB's (default) or captum's.

    Args:
      net: the network.
      image: one image; resized to `net.input_size` like :func:`jaxvis.classify`.
      target: class index, class name or (layer, channel); None = the predicted class.
      mask_size: 'auto' (round(0.2·H), round(0.2·W): 45×45 at 227), an int or (rows, cols)
        (captum's `sliding_window_shapes` without the colour axis).
      stride: 'auto' (round(0.1·H), round(0.1·W): 23 at 227), an int or (rows, cols).
      mask_value: 'mean' (= MATLAB 'auto': the image's per-channel mean), a number or an
        RGB triple in 0..255 (captum's `baselines`; captum's default is 0).
      placement: 'matlab' (masks centred on 0, stride, …; map = the grid of score changes,
        resized) or 'captum' (windows from 0; each pixel = mean score change of the windows
        covering it). See the module docstring.
      mask_clipping: placement='matlab' only: True (default) = MaskClipping 'on' (first mask
        centred on the top-left pixel, edge masks clipped); False = 'off' (masks stay inside).
      output_upsampling: placement='matlab' only: 'bicubic' (default) or 'nearest' imresize
        of the grid to the image size, or 'none' (the map is the grid itself).
      score: class targets: 'logit' (pre-softmax class score, default) or 'softmax' (the class
        probability, MATLAB's: its classification networks end in a softmax layer).
      batch_size: most occluded copies per jitted call (default 32).
      resize: 'crop', 'stretch' or 'none'.

    Returns:
      :class:`AttributionMap`: `.map` H×W, positive where the region supports the target;
      `.raw` the grid of score(original) − score(occluded), one value per mask position;
      `.options` the mask size, stride, mask value, placement and grid shape used.
    """
    return Occlusion(net, image, target, score=score, resize=resize).attribute(
        mask_size=mask_size, stride=stride, mask_value=mask_value, placement=placement, mask_clipping=mask_clipping,
        output_upsampling=output_upsampling, batch_size=batch_size)


def _fill(mask_value, x: np.ndarray) -> np.ndarray:
    if isinstance(mask_value, str):
        if mask_value not in ("mean", "auto"):
            raise AttributionError(f"mask_value must be 'mean', a number or an RGB triple; got {mask_value!r}")
        return x.reshape(-1, x.shape[-1]).mean(0).astype(np.float32)
    try:
        v = np.asarray(mask_value, np.float32)
    except (TypeError, ValueError):  # not numbers: reported below like any other bad value
        v = np.full(2, np.nan, np.float32)
    c = x.shape[-1]
    if v.shape not in ((), (1,), (c,)) or not np.all(np.isfinite(v)):
        raise AttributionError(f"mask_value must be 'mean', a finite number or one value per input channel ({c}); "
                               f"got {mask_value!r}")
    return np.broadcast_to(v, (c,)).astype(np.float32)
