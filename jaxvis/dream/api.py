"""MATLAB's `deepDreamImage` on a :class:`jaxvis.Network`: argument checks, start image, table, scaling."""

from __future__ import annotations

import math
import numbers
import sys
import weakref
from typing import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from ..display import mat2gray
from ..errors import ChannelError, ImageError
from ..images import ImageLike, to_batch
from ..network import LayerRef, Network
from . import core

# Defaults (see docs/dream.md for how they were chosen).
STEP_SIZE = 3.0       # pixels (0..255 scale) per step times the Laplacian-normalised gradient
JITTER = 0            # no roll: MATLAB's conv1 strengths rise linearly, which any roll would break
LAP_LEVELS = 4        # the TF tutorial's lap_n
START_MEAN, START_STD = 127.5, 10.0  # random start: mid-gray plus Gaussian noise
PIXEL_RANGE = (0.0, 255.0)  # images stay valid 0..255 RGB pictures

_fns: "weakref.WeakKeyDictionary[Network, dict]" = weakref.WeakKeyDictionary()


def _net_fn(net: Network, layer: str):
    """One pure function per (network, layer), so compiled levels are found again in core's cache."""
    per = _fns.setdefault(net, {})
    if layer not in per:
        per[layer] = net.function([layer])
    return per[layer]


def _out_shape(fn, params, layer: str, hw) -> tuple[int, ...] | None:
    """Shape of `layer` for one hw image, or None if the network cannot take that size."""
    try:
        shape = jax.eval_shape(fn, params, jax.ShapeDtypeStruct((1, *hw, 3), jnp.float32))[layer].shape
    except (TypeError, ValueError):  # a fixed-size flatten (fc6) meets another size
        return None
    return None if 0 in shape else tuple(shape)


def _size_needed(fn, net: Network, name: str) -> str:
    """What sizes the layer accepts, for error messages (binary search on square sizes; shape inference only)."""
    h, w = net.input_size
    if _out_shape(fn, net.params, name, (h, w)) is None:
        return f"it cannot be computed even at the network's input size {h}×{w}"
    if _out_shape(fn, net.params, name, (h + 1, w + 1)) is None:
        return f"it only accepts the network's input size {h}×{w}"
    lo, hi = 1, min(h, w)  # hi works
    while lo < hi:
        mid = (lo + hi) // 2
        if _out_shape(fn, net.params, name, (mid, mid)) is None:
            lo = mid + 1
        else:
            hi = mid
    return f"it needs images of at least {lo}×{lo}"


def _channels(channels) -> list[int]:
    if isinstance(channels, numbers.Integral) or (isinstance(channels, np.ndarray) and channels.ndim == 0):
        return [int(channels)]
    if isinstance(channels, (str, bytes)) or not isinstance(channels, Iterable):
        raise TypeError(f"channels must be an int, a range or an iterable of ints, got {channels!r}")
    out = []
    for c in channels:
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, numbers.Integral):
            raise TypeError(f"channels must be integers (0-based), got {c!r}")
        out.append(int(c))
    if not out:
        raise ValueError("channels is empty; give at least one channel index")
    return out


def _check_options(pyramid_levels, pyramid_scale, num_iterations, output_scaling, step_size, jitter,
                   batch_size, lap_levels) -> None:
    def integer(v, name, lo):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    integer(pyramid_levels, "pyramid_levels", 1)
    integer(num_iterations, "num_iterations", 1)
    integer(jitter, "jitter", 0)
    integer(lap_levels, "lap_levels", 0)
    if batch_size is not None:
        integer(batch_size, "batch_size", 1)
    if not isinstance(pyramid_scale, numbers.Real) or not math.isfinite(pyramid_scale) or pyramid_scale <= 1:
        raise ValueError(f"pyramid_scale must be a number > 1 (each level this much larger; MATLAB's "
                         f"default 1.4), got {pyramid_scale!r}")
    if not isinstance(step_size, numbers.Real) or not math.isfinite(step_size) or step_size <= 0:
        raise ValueError(f"step_size must be a positive number, got {step_size!r}")
    if output_scaling not in ("linear", "none"):
        raise ValueError(f"output_scaling must be 'linear' or 'none', got {output_scaling!r}")


def _keys(seed: int):
    """(start-noise key, jitter key) from one seed."""
    return jax.random.split(jax.random.PRNGKey(seed))


def _start(initial_image, n: int, hw, seed: int) -> np.ndarray:
    if initial_image is None:
        noise = jax.random.normal(_keys(seed)[0], (1, *hw, 3), jnp.float32)
        return np.asarray(START_MEAN + START_STD * noise)
    batch, _ = to_batch(initial_image)
    if batch.shape[0] not in (1, n):
        raise ImageError(
            f"initial_image holds {batch.shape[0]} images of {batch.shape[1]}×{batch.shape[2]}×3; expected one "
            f"H×W×3 image for all channels or {n} (one per channel) as {n}×H×W×3")
    return batch


class _Table:
    """MATLAB's verbose table, printed a pyramid level at a time (the level's steps run inside one jit)."""

    RULE = "|" + "=" * 46 + "|"

    def __init__(self, file=None):
        self.file = file or sys.stdout
        self.started = False

    def __call__(self, chunk, n_chunks, chans, level, strengths) -> None:
        p = lambda s: print(s, file=self.file)  # noqa: E731
        if level == 0 and n_chunks > 1:
            if self.started:
                p(self.RULE)
            names = ", ".join(map(str, chans)) if len(chans) <= 6 else f"{chans[0]}, {chans[1]}, …, {chans[-1]}"
            p(f"Channels {names} (batch {chunk + 1} of {n_chunks}; strength = this batch's mean):")
            self.started = False
        if not self.started:
            p(self.RULE)
            p("|  Iteration  |  Activation  |  Pyramid Level  |")
            p("|             |   Strength   |                 |")
            p(self.RULE)
            self.started = True
        for i, s in enumerate(strengths):
            p(f"|{i + 1:>12} |{s:>13.2f} |{level + 1:>16} |")
        self.file.flush()

    def close(self) -> None:
        if self.started:
            print(self.RULE, file=self.file)
            self.file.flush()


def deep_dream(net: Network, layer: LayerRef, channels, *, pyramid_levels: int = 3, pyramid_scale: float = 1.4,
               num_iterations: int = 10, verbose: bool = True, initial_image: ImageLike | None = None,
               seed: int = 0, step_size: float = STEP_SIZE, jitter: int = JITTER, lap_levels: int = LAP_LEVELS,
               batch_size: int | None = None, image_size: int | tuple[int, int] | None = None,
               pixel_range: tuple[float, float] | None = PIXEL_RANGE, devices=None) -> core.DreamResult:
    """:func:`deep_dream_image` returning raw pixels and the activation strengths (a :class:`DreamResult`).

    Arguments as :func:`deep_dream_image`. Returns `DreamResult(images C×H×W×3 raw 0..255-space
    pixels, strengths levels×iterations, channel_strengths levels×iterations×C, sizes, batch_size)`.
    """
    _check_options(pyramid_levels, pyramid_scale, num_iterations, "none", step_size, jitter, batch_size, lap_levels)
    name = net.layer_name(layer)
    chans = _channels(channels)
    fn = _net_fn(net, name)  # raises MissingWeightsError for layers past the shipped weights
    if image_size is not None:
        hw = (image_size, image_size) if isinstance(image_size, numbers.Integral) else tuple(image_size)
        if len(hw) != 2 or any(not isinstance(v, numbers.Integral) or v < 1 for v in hw):
            raise ValueError(f"image_size must be a positive int or (H, W), got {image_size!r}")
        if initial_image is not None:
            raise ValueError("give image_size or initial_image, not both (the initial image sets the size)")
    else:
        hw = tuple(net.input_size)
    start = _start(initial_image, len(chans), hw, seed)
    sizes = core.pyramid_sizes(start.shape[1:3], pyramid_levels, pyramid_scale)

    # Channel count and size checks by shape inference only (nothing is computed).
    tile = None
    shape = _out_shape(fn, net.params, name, sizes[0])
    if shape is None:
        what = "the initial image" if initial_image is not None else "image_size"
        raise ImageError(f"layer {name!r} of {net.name!r} cannot be computed from {sizes[0][0]}×{sizes[0][1]} "
                         f"images ({what}); {_size_needed(fn, net, name)}")
    if any(_out_shape(fn, net.params, name, hw) is None for hw in sizes[1:]):
        # Fixed-size layers (BVLC AlexNet's fc6 flattens 6×6×256): larger levels are covered by input-size tiles.
        if any(h < net.input_size[0] or w < net.input_size[1] for h, w in sizes):
            raise ImageError(f"layer {name!r} of {net.name!r} only accepts {net.input_size[0]}×{net.input_size[1]} "
                             f"images; start from that size (pyramid sizes would be {sizes})")
        tile = tuple(net.input_size)
    n_ch = shape[-1]
    bad = [c for c in chans if not 0 <= c < n_ch]
    if bad:
        raise ChannelError(f"channel {bad[0]} is out of range for layer {name!r}: it has {n_ch} channels, "
                           f"valid indices are 0..{n_ch - 1} (0-based)")

    table = _Table() if verbose else None
    try:
        return core.dream(fn, net.params, name, chans, start, pyramid_levels=pyramid_levels,
                          pyramid_scale=pyramid_scale, num_iterations=num_iterations, step_size=step_size,
                          jitter=jitter, lap_levels=lap_levels, key=_keys(seed)[1],
                          batch_size=batch_size, devices=devices, tile_hw=tile, pixel_range=pixel_range,
                          on_level=table)
    finally:
        if table is not None:
            table.close()


def deep_dream_image(net: Network, layer: LayerRef, channels, *, pyramid_levels: int = 3,
                     pyramid_scale: float = 1.4, num_iterations: int = 10, output_scaling: str = "linear",
                     verbose: bool = True, initial_image: ImageLike | None = None, seed: int = 0,
                     step_size: float = STEP_SIZE, jitter: int = JITTER, lap_levels: int = LAP_LEVELS,
                     batch_size: int | None = None, image_size: int | tuple[int, int] | None = None,
                     pixel_range: tuple[float, float] | None = PIXEL_RANGE, return_strengths: bool = False,
                     devices=None):
    """Images that strongly activate channels of a layer (MATLAB's `deepDreamImage`).

    Each channel gets its own image, found by gradient ascent on the channel's mean
    activation (a neuron for fully connected layers, the pre-softmax class score for
    `fc8`) with Laplacian Pyramid Gradient Normalization, over a multi-resolution
    pyramid: level k runs `num_iterations` steps at the start size × `pyramid_scale`**k,
    the image being upscaled (bilinear) between levels. All channels run as one
    vmapped batch in one compiled XLA call per level, chunked by `batch_size` and
    sharded over all devices (`jax.devices()`; under `jax.distributed` that is every
    host's devices, and every process must make the same call).

    Args:
      net: the network.
      layer: layer name or 0-based index into `net.layers`.
      channels: 0-based channel index, or an iterable/range of them (MATLAB's `1:56` is `range(56)`).
      pyramid_levels: number of pyramid levels (MATLAB `PyramidLevels`, default 3); 1 keeps the start size.
      pyramid_scale: size ratio between levels (MATLAB `PyramidScale`, 1.4), > 1.
      num_iterations: gradient-ascent steps per level (MATLAB `NumIterations`, 10).
      output_scaling: 'linear' (each image min-max scaled to [0, 1] on its own) or 'none'
        (raw pixel values of the network's input space, 0..255 RGB).
      verbose: print MATLAB's table (Iteration | Activation Strength | Pyramid Level); rows
        appear level by level as each level's compiled loop finishes. Strength = mean
        objective over the channels, measured before each step.
      initial_image: start image(s) instead of noise: one image for all channels or one per
        channel (anything :func:`jaxvis.images.to_batch` accepts, 0..255 RGB). Its size sets
        the pyramid sizes.
      seed: seed of the random start (mid-gray plus Gaussian noise, std 10) and of the jitter.
      step_size: pixels added per step times the Laplacian-normalised gradient (default 3.0;
        the TensorFlow tutorial's 1.0 on the same 0..255 scale gives pale images in MATLAB's
        10 iterations per level).
      jitter: random roll of up to ±`jitter` pixels per step, undone after the step
        (default 0, as MATLAB, whose strengths on a linear layer rise exactly linearly).
      lap_levels: Laplacian pyramid splits in the gradient normalisation (4, the tutorial's).
      batch_size: channels per compiled call; None picks it from an estimate of activation
        memory (about 2 GB on CPU, 40 % of each accelerator's memory).
      image_size: start size (int or (H, W)) instead of the network's input size.
      pixel_range: (lo, hi) the image is clipped to after every step (default 0..255, the
        network's pixel range); None lets pixels grow without bound.
      return_strengths: also return the levels×iterations strengths.
      devices: devices to shard channels over (default `jax.devices()`).

    Returns:
      numpy float32 C×H×W×3 with H, W = start size × pyramid_scale**(pyramid_levels-1)
      rounded; with `return_strengths`, `(images, strengths)`.

    Raises:
      LayerError: unknown layer. ChannelError: a channel outside 0..C-1 (the message gives
      the range). MissingWeightsError: the layer needs weights that are not loaded.
      ImageError: a bad initial image. ValueError: bad options.
    """
    _check_options(pyramid_levels, pyramid_scale, num_iterations, output_scaling, step_size, jitter, batch_size,
                   lap_levels)
    res = deep_dream(net, layer, channels, pyramid_levels=pyramid_levels, pyramid_scale=pyramid_scale,
                     num_iterations=num_iterations, verbose=verbose, initial_image=initial_image, seed=seed,
                     step_size=step_size, jitter=jitter, lap_levels=lap_levels, batch_size=batch_size,
                     image_size=image_size, pixel_range=pixel_range, devices=devices)
    images = res.images
    if output_scaling == "linear":
        images = np.stack([mat2gray(im) for im in images]).astype(np.float32)
    return (images, res.strengths) if return_strengths else images
