"""Deep dream on a pure network function: one jitted, vmapped `lax.scan` per pyramid level.

Everything here works on `fn(params, images) -> {layer: N×H×W×C}` (a
:class:`jaxvis.Network` gives one with `net.function([layer])`), so the same code
serves any JAX network.

* :func:`level_function` — the compiled unit: a whole pyramid level (resize from
  the previous level, then `num_iterations` steps of jittered gradient ascent with
  Laplacian-normalised gradients) for a batch of images, each maximising its own
  channel. Cached per (fn, layer, iterations, Laplacian levels, output size);
  XLA caches per input shape (size, batch). `.lower(...).compile()` separates
  compile time from run time.
* :func:`dream_batch` — all levels for one batch (what a benchmark times).
* :func:`dream` — all channels: chunks of `batch_size`, each chunk sharded over
  the devices' batch axis, results gathered to numpy.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import weakref
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from .laplacian import lap_normalize
from .objectives import dream_objective

NetFn = Callable[[dict, jax.Array], dict]
# How many times each level function was traced, keyed (layer, in size, out size, batch); tests read it.
trace_counts: collections.Counter = collections.Counter()
_cache: "weakref.WeakKeyDictionary[NetFn, dict]" = weakref.WeakKeyDictionary()

# Budget for one chunk's activations when batch_size is not given. On CPU it is host
# memory shared by all (forced) devices; on accelerators it is per device.
CPU_BUDGET_BYTES = 2 << 30
ACCELERATOR_MEMORY_FRACTION = 0.4


@dataclasses.dataclass
class DreamResult:
    """Output of :func:`dream`.

    Attributes:
      images: numpy C×H×W×3 float32, raw pixels (the network's 0..255 RGB input space).
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


def pyramid_sizes(hw: Sequence[int], levels: int, scale: float) -> list[tuple[int, int]]:
    """MATLAB's pyramid: level k is the start size × scale**k, rounded."""
    return [(int(round(hw[0] * scale ** k)), int(round(hw[1] * scale ** k))) for k in range(levels)]


def _tiles(n: int, t: int) -> list[int]:
    """Start offsets of length-t windows covering 0..n (the last one flush with the end)."""
    starts = list(range(0, n - t + 1, t))
    if starts[-1] + t < n:
        starts.append(n - t)
    return starts


def _tiled(obj, tile_hw):
    """Objective averaged over input-size tiles, for layers that need a fixed input size (fc6 of BVLC AlexNet).

    As the TF tutorial's calc_grad_tiled, each step's random roll moves the tile seams.
    """
    def f(params, image, channel):
        h, w = image.shape[:2]
        th, tw = tile_hw
        if (h, w) == (th, tw):
            return obj(params, image, channel)
        vals = [obj(params, lax.dynamic_slice(image, (y, x, 0), (th, tw, image.shape[2])), channel)
                for y in _tiles(h, th) for x in _tiles(w, tw)]
        return jnp.mean(jnp.stack(vals))

    return f


def level_function(fn: NetFn, layer: str, *, num_iterations: int, lap_levels: int = 4,
                   out_hw: tuple[int, int] | None = None, tile_hw: tuple[int, int] | None = None):
    """The jitted pyramid level `(params, images, channels, key, step_size, jitter) -> (images, strengths)`.

    Args:
      fn: pure network function `(params, N×H×W×3) -> {layer: N×h×w×C}`; reuse the same
        object across calls, the cache is keyed on it.
      layer: the layer maximised.
      num_iterations: gradient-ascent steps (one `lax.scan`).
      lap_levels: Laplacian pyramid splits of the gradient normalisation.
      out_hw: resize (bilinear) the incoming images to this size first; None keeps the size.
      tile_hw: network input size for layers that only accept that size; larger images are
        covered by tiles.

    The returned function takes `images` B×H×W×3 (raw 0..255-space pixels), `channels` (B,)
    int32, a PRNG `key` for the jitter, `step_size` and `jitter` (max roll in pixels; both
    traced, so changing them does not recompile), optionally `lo`, `hi` (the pixel range the
    image is clipped to after every step, default ±inf) and returns the B×H'×W'×3 images after the
    level and the objective of every image before each step, `num_iterations`×B.
    """
    per_fn = _cache.setdefault(fn, {})
    key = (layer, int(num_iterations), int(lap_levels), None if out_hw is None else tuple(out_hw),
           None if tile_hw is None else tuple(tile_hw))
    if key in per_fn:
        return per_fn[key]
    obj = dream_objective(fn, layer)
    if tile_hw is not None:
        obj = _tiled(obj, tuple(tile_hw))
    value_and_grad = jax.vmap(jax.value_and_grad(obj, argnums=1), in_axes=(None, 0, 0))

    def run(params, images, channels, key, step_size, jitter, lo=-jnp.inf, hi=jnp.inf):
        b, h, w, c = images.shape
        trace_counts[(layer, (h, w), out_hw or (h, w), b)] += 1
        if out_hw is not None and (h, w) != tuple(out_hw):
            images = jax.image.resize(images, (b, *out_hw, c), "bilinear")
        # Ascent: optax adds updates, so the step is +step_size times the normalised gradient.
        opt = optax.chain(lap_normalize(lap_levels), optax.scale(step_size))

        def step(carry, k):
            x, state = carry
            dy, dx = jax.random.randint(k, (2,), -jitter, jitter + 1)
            # Roll (circular shift) so every pixel is sometimes far from the border; undo after.
            v, g = value_and_grad(params, jnp.roll(x, (dy, dx), axis=(1, 2)), channels)
            g = jnp.roll(g, (-dy, -dx), axis=(1, 2))
            updates, state = opt.update(g, state, x)
            # Projection onto the valid pixel range [lo, hi] (no-op for ±inf).
            return (jnp.clip(optax.apply_updates(x, updates), lo, hi), state), v

        (x, _), strengths = lax.scan(step, (images, opt.init(images)), jax.random.split(key, num_iterations))
        return x, strengths

    per_fn[key] = jax.jit(run)
    return per_fn[key]


def dream_batch(fn: NetFn, params, layer: str, images: jax.Array, channels: jax.Array, key: jax.Array, *,
                sizes: Sequence[tuple[int, int]], num_iterations: int, step_size: float, jitter: int,
                lap_levels: int = 4, tile_hw: tuple[int, int] | None = None,
                pixel_range: tuple[float, float] | None = None,
                on_level: Callable[[int, jax.Array], None] | None = None):
    """Every pyramid level for one batch: image i maximises channel `channels[i]`.

    Args:
      fn, params: the network function and its weights.
      layer: layer name.
      images: B×H×W×3 start images (H×W = sizes[0]); may be sharded over the batch axis.
      channels: (B,) int channel indices.
      key: PRNG key; level k's jitter uses `fold_in(key, k)`, so results do not depend on
        how channels are batched.
      sizes: (H, W) per level.
      num_iterations, step_size, jitter, lap_levels, tile_hw: see :func:`level_function`.
      pixel_range: (lo, hi) the image is clipped to after every step; None: no clipping.
      on_level: called as `on_level(k, strengths)` when level k has been dispatched.

    Returns:
      (images B×H×W×3 at sizes[-1], [num_iterations×B strengths per level]) as jax arrays.
    """
    strengths = []
    x = images
    lo, hi = (-np.inf, np.inf) if pixel_range is None else pixel_range
    for k, hw in enumerate(sizes):
        f = level_function(fn, layer, num_iterations=num_iterations, lap_levels=lap_levels,
                           out_hw=None if k == 0 else tuple(hw),
                           tile_hw=tile_hw if tile_hw and tuple(hw) != tuple(tile_hw) else None)
        x, s = f(params, x, channels, jax.random.fold_in(key, k), jnp.float32(step_size), jnp.int32(jitter),
                 jnp.float32(lo), jnp.float32(hi))
        strengths.append(s)
        if on_level is not None:
            on_level(k, s)
    return x, strengths


# -- memory estimate ---------------------------------------------------------------
def _jaxpr_bytes(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            shape, dtype = getattr(v.aval, "shape", None), getattr(v.aval, "dtype", None)
            if shape is not None and dtype is not None:
                total += math.prod(shape) * np.dtype(dtype).itemsize
        for p in eqn.params.values():
            for sub in (p if isinstance(p, (list, tuple)) else (p,)):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    total += _jaxpr_bytes(inner)
    return total


def bytes_per_image(fn: NetFn, params, layer: str, hw: tuple[int, int],
                    tile_hw: tuple[int, int] | None = None) -> int:
    """Upper estimate of one image's memory in a gradient step at size `hw`.

    The sum of every intermediate of `value_and_grad` of the objective (traced only,
    nothing is computed or compiled); XLA frees and reuses buffers, so the real peak is lower.
    """
    obj = dream_objective(fn, layer)
    if tile_hw is not None and tuple(hw) != tuple(tile_hw):
        obj = _tiled(obj, tuple(tile_hw))
    img = jax.ShapeDtypeStruct((*hw, 3), jnp.float32)
    jaxpr = jax.make_jaxpr(jax.value_and_grad(obj, argnums=1))(params, img, jnp.int32(0))
    return max(_jaxpr_bytes(jaxpr.jaxpr), 1)


def memory_budget(devices: Sequence) -> int:
    """Bytes one chunk may use in total (see CPU_BUDGET_BYTES, ACCELERATOR_MEMORY_FRACTION)."""
    d = devices[0]
    if d.platform == "cpu":
        return CPU_BUDGET_BYTES
    try:
        limit = d.memory_stats()["bytes_limit"]
    except Exception:  # platforms without memory_stats
        limit = 8 << 30
    return int(limit * ACCELERATOR_MEMORY_FRACTION) * len(devices)


def choose_batch_size(n_channels: int, per_image: int, budget: int, n_devices: int) -> int:
    """Channels per chunk: as many as the budget allows, spread evenly over the chunks,
    rounded up to a multiple of the device count (so every device gets the same share)."""
    most = max(1, budget // per_image)
    n_chunks = math.ceil(n_channels / most)
    b = math.ceil(n_channels / n_chunks)
    return max(n_devices, math.ceil(b / n_devices) * n_devices)


# -- all channels: chunks + sharding -------------------------------------------------
def _to_host(x) -> np.ndarray:
    if jax.process_count() > 1:  # under jax.distributed a global array spans other hosts' devices
        from jax.experimental import multihost_utils
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def dream(fn: NetFn, params, layer: str, channels: Sequence[int], start: np.ndarray, *,
          pyramid_levels: int = 3, pyramid_scale: float = 1.4, num_iterations: int = 10,
          step_size: float, jitter: int, lap_levels: int = 4, key: jax.Array | None = None,
          batch_size: int | None = None, devices: Sequence | None = None,
          tile_hw: tuple[int, int] | None = None, pixel_range: tuple[float, float] | None = None,
          on_level: Callable[[int, int, Sequence[int], int, np.ndarray], None] | None = None) -> DreamResult:
    """Deep dream of many channels, chunked and sharded over devices.

    Args:
      fn, params: network function and weights.
      layer: layer name.
      channels: channel indices, one output image each (validated by the caller).
      start: start images, 1×H×W×3 (shared) or len(channels)×H×W×3, raw pixels.
      pyramid_levels, pyramid_scale: level k runs at start size × scale**k.
      num_iterations: steps per level.
      step_size, jitter, lap_levels, tile_hw, pixel_range: see :func:`dream_batch`.
      key: PRNG key for the jitter (default `PRNGKey(0)`).
      batch_size: channels per compiled call; None picks it from :func:`bytes_per_image`
        and :func:`memory_budget`. Rounded up to a multiple of the device count; the last
        chunk is padded (padding is computed and dropped) so every chunk reuses one executable.
      devices: devices to shard the channel axis over; default `jax.devices()`. Under
        `jax.distributed` that is every process's devices: each process must call with the
        same arguments (each places its own shards), and results are all-gathered.
      on_level: called after each level of each chunk as
        `on_level(chunk, n_chunks, chunk_channels, level, strengths)` with the chunk's
        mean strength per iteration (for live progress).

    Returns:
      :class:`DreamResult`.
    """
    channels = [int(c) for c in channels]
    n = len(channels)
    start = np.asarray(start, np.float32)
    if start.ndim != 4 or start.shape[0] not in (1, n) or start.shape[-1] != 3:
        raise ValueError(f"start must be 1×H×W×3 or {n}×H×W×3, got {start.shape}")
    key = jax.random.PRNGKey(0) if key is None else key
    devices = list(jax.devices() if devices is None else devices)
    nd = len(devices)
    sizes = pyramid_sizes(start.shape[1:3], pyramid_levels, pyramid_scale)
    if batch_size is None:
        per = bytes_per_image(fn, params, layer, sizes[-1], tile_hw)
        batch_size = choose_batch_size(n, per, memory_budget(devices), nd)
    else:
        batch_size = max(nd, math.ceil(int(batch_size) / nd) * nd)
    batch_size = min(batch_size, math.ceil(n / nd) * nd)

    mesh = Mesh(np.array(devices), ("batch",))
    shard, repl = NamedSharding(mesh, P("batch")), NamedSharding(mesh, P())
    params = jax.device_put(params, repl)
    out = np.empty((n, *sizes[-1], 3), np.float32)
    per_channel = np.empty((pyramid_levels, num_iterations, n), np.float32)
    n_chunks = math.ceil(n / batch_size)
    for ci in range(n_chunks):
        lo, hi = ci * batch_size, min(n, (ci + 1) * batch_size)
        pad = batch_size - (hi - lo)
        ch = np.array(channels[lo:hi] + [channels[lo]] * pad, np.int32)
        if start.shape[0] == 1:
            x = np.broadcast_to(start, (batch_size, *start.shape[1:]))
        else:
            x = np.concatenate([start[lo:hi], np.repeat(start[lo:lo + 1], pad, axis=0)])
        x = jax.device_put(np.ascontiguousarray(x), shard)
        chj = jax.device_put(ch, shard)

        def level_done(k, s, lo=lo, hi=hi, ci=ci):
            s = _to_host(s)[:, : hi - lo]  # waits for the level: progress is live per level
            per_channel[k, :, lo:hi] = s
            if on_level is not None:
                on_level(ci, n_chunks, channels[lo:hi], k, s.mean(axis=1))

        x, _ = dream_batch(fn, params, layer, x, chj, key, sizes=sizes, num_iterations=num_iterations,
                           step_size=step_size, jitter=jitter, lap_levels=lap_levels, tile_hw=tile_hw,
                           pixel_range=pixel_range, on_level=level_done)
        out[lo:hi] = _to_host(x)[: hi - lo]
    return DreamResult(out, per_channel.mean(axis=2), per_channel, sizes, batch_size)
