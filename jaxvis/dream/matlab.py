"""MATLAB's `deepDreamImage`: the `matlab` preset of the feature-visualization engine.

Argument checks, the start image, MATLAB's verbose table and output scaling live here;
the optimisation is :func:`jaxvis.engine.optimize` (one loop for every visualization).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import sys
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from ..imaging.display import imtile, mat2gray
from ..engine import objectives as O
from ..engine import optimize as engine  # the module (the package exports no `optimize`)
from ..engine.param import Param
from ..engine.presets import optimizer
from ..engine.transforms import Compose, Roll
from ..engine.visualize import check_units, fit_transforms, scale_for_display
from ..errors import ArgumentTypeError, DreamError, ImageError
from ..imaging.images import ImageLike, to_batch
from ..imaging.notebook import Picture, grid_for
from ..nets.protocol import LayerRef
from . import seamless as toroidal  # the module: `seamless` is also deep_dream's argument

# Defaults (see docs/dream.md for how they were chosen).
STEP_SIZE = 3.0       # pixels (0..255 scale) per step times the Laplacian-normalised gradient
JITTER = 0            # no roll: MATLAB's conv1 strengths rise linearly, which any roll would break
LAP_LEVELS = 4        # the TF tutorial's lap_n
START_MEAN, START_STD = 127.5, 10.0  # random start: mid-gray plus Gaussian noise


@dataclasses.dataclass
class DreamResult(Picture):
    """Output of :func:`deep_dream`.

    Attributes:
      images: numpy C×H×W×c float32, raw pixels (the network's 0..255 input space, unclipped; c = the
        network's input channels: 3 RGB, 1 gray, …).
      strengths: numpy levels×iterations, mean objective over the channels before each step
        (MATLAB's "Activation Strength").
      channel_strengths: numpy levels×iterations×C, the same per channel.
      sizes: (H, W) of every pyramid level.
      batch_size: channels per compiled call (a multiple of the device count).
    """

    images: np.ndarray
    strengths: np.ndarray
    channel_strengths: np.ndarray
    sizes: list[tuple[int, int]]
    batch_size: int

    def picture(self, **imtile_kwargs) -> np.ndarray:
        """Every channel's image min–max scaled (MATLAB's 'linear' OutputScaling), tiled with :func:`jaxvis.imtile`:
        what ``.save(path, ...)`` writes and a notebook shows."""
        imtile_kwargs.setdefault("grid_size", grid_for(len(self.images)))
        return imtile(np.stack([mat2gray(im) for im in self.images]), **imtile_kwargs)


def pyramid_sizes(hw, levels: int, scale: float) -> list[tuple[int, int]]:
    """MATLAB's pyramid: level k is the start size × scale**k, rounded."""
    return [(int(round(hw[0] * scale ** k)), int(round(hw[1] * scale ** k))) for k in range(levels)]


def _out_shape(net, name: str, hw) -> tuple[int, ...] | None:
    """Shape of `name` for one hw image, or None if the network cannot take that size."""
    try:
        shape = jax.eval_shape(net.function([name]), net.params,
                               jax.ShapeDtypeStruct((1, *hw, net.input_channels), jnp.float32))[name].shape
    except (TypeError, ValueError):  # a fixed-size flatten (fc6) meets another size
        return None
    return None if 0 in shape else tuple(shape)


def _size_needed(net, name: str) -> str:
    """What sizes the layer accepts, for error messages (binary search on square sizes; shape inference only)."""
    h, w = net.input_size
    if _out_shape(net, name, (h, w)) is None:
        return f"it cannot be computed even at the network's input size {h}×{w}"
    if _out_shape(net, name, (h + 1, w + 1)) is None:
        return f"it only accepts the network's input size {h}×{w}"
    lo, hi = 1, min(h, w)
    while lo < hi:
        mid = (lo + hi) // 2
        if _out_shape(net, name, (mid, mid)) is None:
            lo = mid + 1
        else:
            hi = mid
    return f"it needs images of at least {lo}×{lo}"


def _channels(channels) -> list[int]:
    if isinstance(channels, numbers.Integral) or (isinstance(channels, np.ndarray) and channels.ndim == 0):
        return [int(channels)]
    if isinstance(channels, (str, bytes)) or not isinstance(channels, Iterable):
        raise ArgumentTypeError(f"channels must be an int, a range or an iterable of ints, got {channels!r}")
    out = []
    for c in channels:
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, numbers.Integral):
            raise ArgumentTypeError(f"channels must be integers (0-based), got {c!r}")
        out.append(int(c))
    if not out:
        raise DreamError("channels is empty; give at least one channel index")
    return out


def _check_options(pyramid_levels, pyramid_scale, num_iterations, output_scaling, step_size, jitter,
                   batch_size, lap_levels) -> None:
    def integer(v, name, lo):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
            raise DreamError(f"{name} must be an integer >= {lo}, got {v!r}")
    integer(pyramid_levels, "pyramid_levels", 1)
    integer(num_iterations, "num_iterations", 1)
    integer(jitter, "jitter", 0)
    integer(lap_levels, "lap_levels", 0)
    if batch_size is not None:
        integer(batch_size, "batch_size", 1)
    if not isinstance(pyramid_scale, numbers.Real) or not math.isfinite(pyramid_scale) or pyramid_scale <= 1:
        raise DreamError(f"pyramid_scale must be a number > 1 (each level this much larger; MATLAB's "
                         f"default 1.4), got {pyramid_scale!r}")
    if not isinstance(step_size, numbers.Real) or not math.isfinite(step_size) or step_size <= 0:
        raise DreamError(f"step_size must be a positive number, got {step_size!r}")
    if output_scaling not in ("linear", "none", "percentile"):
        raise DreamError(f"output_scaling must be 'linear', 'none' or 'percentile', got {output_scaling!r}")


def _seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise DreamError(f"seed must be an integer, got {seed!r}")
    return int(seed) % (2 ** 32)  # any integer: JAX keys take 32 bits


def _start(initial_image, n: int, hw, seed: int, c: int) -> np.ndarray:
    """Start pixels (1 or n)×H×W×c on the 0..255 scale: MATLAB-like mid-grey noise, or the given image(s)."""
    if initial_image is None:
        noise = jax.random.normal(jax.random.PRNGKey(seed), (1, *hw, c), jnp.float32)
        return np.asarray(START_MEAN + START_STD * noise)
    batch, _ = to_batch(initial_image, channels=c)
    if batch.shape[0] not in (1, n):
        raise ImageError(
            f"initial_image holds {batch.shape[0]} images of {batch.shape[1]}×{batch.shape[2]}×{c}; expected one "
            f"H×W×{c} image for all channels or {n} (one per channel) as {n}×H×W×{c}")
    return batch


class _Table:
    """MATLAB's verbose table, one pyramid level at a time (each level's steps run inside compiled scans).

    Strength = mean objective over all channels (every chunk of the batch), before each step.
    """

    RULE = "|" + "=" * 46 + "|"

    def __init__(self, file=None):
        self.file = file or sys.stdout
        self.started = False

    def __call__(self, level: int, trace: np.ndarray) -> None:
        p = lambda s: print(s, file=self.file)  # noqa: E731
        if not self.started:
            p(self.RULE)
            p("|  Iteration  |  Activation  |  Pyramid Level  |")
            p("|             |   Strength   |                 |")
            p(self.RULE)
            self.started = True
        for i, s in enumerate(trace.mean(axis=1)):
            p(f"|{i + 1:>12} |{s:>13.2f} |{level + 1:>16} |")
        self.file.flush()

    def close(self) -> None:
        if self.started:
            print(self.RULE, file=self.file)
            self.file.flush()


def deep_dream(net, layer: LayerRef, channels, *, pyramid_levels: int = 3, pyramid_scale: float = 1.4,
               num_iterations: int = 10, verbose: bool = True, initial_image: ImageLike | None = None,
               seed: int = 0, step_size: float = STEP_SIZE, jitter: int = JITTER, lap_levels: int = LAP_LEVELS,
               lap_padding: str = "reflect", seamless: bool | str = True, batch_size: int | None = None,
               image_size: int | tuple[int, int] | None = None, pixel_range: tuple[float, float] | None = None,
               devices=None, progress: bool | None = None) -> DreamResult:
    """:func:`deep_dream_image` returning raw pixels and the activation strengths (a :class:`DreamResult`).

    Arguments as :func:`deep_dream_image`.
    """
    _check_options(pyramid_levels, pyramid_scale, num_iterations, "none", step_size, jitter, batch_size, lap_levels)
    if not (seamless is True or seamless is False or seamless in ("pad", "shift")):
        raise DreamError(f"seamless must be True (the cheaper of 'pad' and 'shift' for the layer), 'pad' (the "
                         f"periodic image's activation), 'shift' (random circular shifts) or False (MATLAB's plain "
                         f"objective), got {seamless!r}")
    seed = _seed(seed)
    name = net.layer_name(layer)
    chans = _channels(channels)
    net.require_weights([name])
    if image_size is not None:
        hw = (image_size, image_size) if isinstance(image_size, numbers.Integral) else tuple(image_size)  # type: ignore[arg-type]  # validated next
        if len(hw) != 2 or any(not isinstance(v, numbers.Integral) or v < 1 for v in hw):
            raise DreamError(f"image_size must be a positive int or (H, W), got {image_size!r}")
        if initial_image is not None:
            raise DreamError("give image_size or initial_image, not both (the initial image sets the size)")
    else:
        hw = tuple(net.input_size)
    if pixel_range is not None and (len(pixel_range) != 2 or not pixel_range[0] < pixel_range[1]):
        raise DreamError(f"pixel_range must be (lo, hi) with lo < hi on the 0..255 scale, got {pixel_range!r}")
    start = _start(initial_image, len(chans), hw, seed, net.input_channels)
    sizes = pyramid_sizes(start.shape[1:3], pyramid_levels, pyramid_scale)

    if _out_shape(net, name, sizes[0]) is None:
        what = "the initial image" if initial_image is not None else "image_size"
        raise ImageError(f"layer {name!r} of {net.name!r} cannot be computed from {sizes[0][0]}×{sizes[0][1]} "
                         f"images ({what}); {_size_needed(net, name)}")
    objs = [O.channel(name, c) for c in chans]
    check_units(net, objs, sizes[0])
    # Seamless: no place of the image is the network's border in every step, so no bright frame (toroidal.py).
    how = toroidal.choose(net, name, sizes[0]) if seamless is True else seamless
    geo = toroidal.layer_geometry(net, name) if how == "shift" else None
    margin = toroidal.shift_margin(sizes[0], geo[2]) if geo is not None else None
    run = (toroidal.seamless(net, name, margin) if how == "pad" or margin else None) or net
    shifts = (toroidal.WrapShift(geo[0] if geo is not None else 1),) if how == "shift" else ()
    tf = Compose(shifts + ((Roll(jitter),) if jitter else ()))
    # Fixed-size layers (BVLC AlexNet's fc6 flattens 6×6×256): larger levels are resized to the input size.
    tf = fit_transforms(run, [name], tf, sizes[-1])
    proj = engine.Projection(None if pixel_range is None else (pixel_range[0] / 255.0, pixel_range[1] / 255.0))
    periodic = run is not net or bool(shifts)
    config = engine.StepConfig(Param(sizes[0], 1, "pixel", False, "none", 0.0, 0.5, channels=net.input_channels),
                               tf,
                               optimizer("laplacian", int(lap_levels), "wrap" if periodic else lap_padding), (name,),
                               proj)
    table = _Table() if verbose else None
    try:
        res = engine.optimize(run, objs, config, levels=[(hw_, num_iterations) for hw_ in sizes],
                              learning_rate=float(step_size) / 255.0, seed=seed, unit_ids=chans,
                              start=(start / 255.0)[:, None], batch_size=batch_size, devices=devices,
                              progress=(False if verbose and progress is None else progress),
                              label=f"deepDreamImage {name}", on_level=table)
    finally:
        if table is not None:
            table.close()
    per = np.asarray(res.trace)  # levels × iterations × C
    return DreamResult(res.images[:, 0] * 255.0, per.mean(axis=2), per, sizes, res.batch_size)


def deep_dream_image(net, layer: LayerRef, channels, *, pyramid_levels: int = 3,
                     pyramid_scale: float = 1.4, num_iterations: int = 10, output_scaling: str = "linear",
                     verbose: bool = True, initial_image: ImageLike | None = None, seed: int = 0,
                     step_size: float = STEP_SIZE, jitter: int = JITTER, lap_levels: int = LAP_LEVELS,
                     lap_padding: str = "reflect", seamless: bool | str = True, batch_size: int | None = None,
                     image_size: int | tuple[int, int] | None = None,
                     pixel_range: tuple[float, float] | None = None, devices=None, progress: bool | None = None):
    """Images that strongly activate channels of a layer (MATLAB's `deepDreamImage`).

    The `matlab` preset of :func:`jaxvis.visualize`: each channel gets its own image, found by
    gradient ascent on the channel's mean activation (a neuron for fully connected layers, the
    pre-softmax class score for `fc8`) with Laplacian Pyramid Gradient Normalization, over a
    multi-resolution pyramid: level k runs `num_iterations` steps at the start size ×
    `pyramid_scale`**k, the image upscaled (bilinear) between levels. All channels are one
    vmapped batch (chunked to a memory budget — on CPU about 2 GB — and sharded over
    `jax.devices()`; under `jax.distributed` every process must make the same call).

    MATLAB's defaults: `PyramidLevels` 3, `PyramidScale` 1.4, `NumIterations` 10,
    `OutputScaling` 'linear', `Verbose` true. The start image (MATLAB's is random) is mid-grey
    127.5 plus Gaussian noise of std 10 from `seed`, shared by every channel. The ascent is
    unclipped (MATLAB's activation strength then rises linearly on a linear layer such as conv1).

    Args:
      net: any jaxvis network.
      layer: layer name or 0-based index into the network's layers.
      channels: 0-based channel index, or an iterable/range of them (MATLAB's `1:56` is `range(56)`).
      pyramid_levels: number of pyramid levels (MATLAB `PyramidLevels`, default 3); 1 keeps the start size.
      pyramid_scale: size ratio between levels (MATLAB `PyramidScale`, 1.4), > 1.
      num_iterations: gradient-ascent steps per level (MATLAB `NumIterations`, 10).
      output_scaling: 'linear' (each image min–max scaled to [0, 1] on its own, MATLAB's), 'none'
        (raw pixel values, 0..255 RGB scale, unclipped) or 'percentile' (each image's 0.5–99.5 %
        range stretched to [0, 1]: less dominated by a few extreme pixels).
      verbose: print MATLAB's table (Iteration | Activation Strength | Pyramid Level), one level at a
        time, strength = mean objective over all channels before each step.
      initial_image: start image(s) instead of noise: one image for all channels or one per channel
        (0..255 RGB). Its size sets the pyramid sizes.
      seed: seed of the random start and of the jitter (any integer).
      step_size: pixels added per step times the Laplacian-normalised gradient (default 3.0).
      jitter: random roll of up to ±`jitter` pixels per step (default 0, as MATLAB).
      lap_levels: Laplacian pyramid splits in the gradient normalisation (4, the tutorial's).
      lap_padding: 'reflect' (default) or 'zero' (the TF tutorial's padding) when `seamless=False`; seamless
        runs use 'wrap'.
      seamless: no bright frames or edge bands, and images that tile (jaxvis.dream.seamless). True
        (default) picks per layer, within 1.15× MATLAB's work: 'pad' where it is cheap (shallow layers:
        the layer's activation of the image tiled periodically, wrap-padded by half the receptive
        field; exactly shift-equivariant, linear layers stay linear) and 'shift' elsewhere (each step
        the image is shifted circularly by a random offset before the network sees it, the gradient
        shifted back: the same canvas as MATLAB's). 'pad' or 'shift' force one ('pad' on deep layers
        costs up to 2× the time: the canvas grows by up to 48 pixels a side). False: MATLAB's plain
        objective (then conv1 images get bright frames).
      batch_size: channels per compiled call; None picks it from an estimate of activation memory.
      image_size: start size (int or (H, W)) instead of the network's input size.
      pixel_range: (lo, hi) on the 0..255 scale to clip the image to after every step; None (default)
        leaves the ascent unclipped.
      devices: devices to shard channels over (default `jax.devices()`).
      progress: a progress bar on stderr: None (default) where stderr is a terminal or a notebook and
        `verbose` is off (the table already reports each level), True always, False never.

    Returns:
      numpy float32 C×H×W×c (c: the network's input channels, 3 for RGB, 1 for gray) with H, W = start
      size × pyramid_scale**(pyramid_levels-1) rounded.

    Raises:
      LayerError: unknown layer. ChannelError: a channel outside 0..C-1 (the message gives the
      range). MissingWeightsError: the layer needs weights that are not loaded. ImageError: a bad
      initial image. ValueError: bad options.
    """
    _check_options(pyramid_levels, pyramid_scale, num_iterations, output_scaling, step_size, jitter, batch_size,
                   lap_levels)
    res = deep_dream(net, layer, channels, pyramid_levels=pyramid_levels, pyramid_scale=pyramid_scale,
                     num_iterations=num_iterations, verbose=verbose, initial_image=initial_image, seed=seed,
                     step_size=step_size, jitter=jitter, lap_levels=lap_levels, lap_padding=lap_padding,
                     seamless=seamless, batch_size=batch_size, image_size=image_size, pixel_range=pixel_range, devices=devices,
                     progress=progress)
    images = res.images
    if output_scaling == "linear":
        images = np.stack([mat2gray(im) for im in images]).astype(np.float32)
    elif output_scaling == "percentile":
        images = scale_for_display(images / 255.0, "percentile").astype(np.float32) / 255.0
    return images
