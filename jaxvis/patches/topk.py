"""Streaming top-k per unit: one jitted step per batch, memory independent of the number of images.

Semantics (Zeiler & Fergus 2014, OpenAI Microscope): a unit's hits are the k images with the
largest activation of that unit, each image counted once at its maximum position; ties between
positions go to the first in row-major order (``argmax``), ties between images to the lower image
index. The state of a layer is three C×k arrays: ``value`` (float32, ``-inf`` = empty slot),
``index`` (image id, -1 = empty) and ``position`` (flat ``y * w + x`` of the maximum).

The merge is exact and order-independent: top-k of a union equals the top-k of the union of
top-ks, with ties by image index, so per-device, per-process and resumed runs all agree.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

State = dict[str, tuple[jax.Array, jax.Array, jax.Array]]


def spatial(a: jax.Array) -> jax.Array:
    """Activations as N×h×w×C (a fully connected N×C layer is one position)."""
    return a[:, None, None, :] if a.ndim == 2 else a


def init_state(channels: dict[str, int], k: int) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Empty state: every slot ``-inf`` / -1."""
    return {l: (np.full((c, k), -np.inf, np.float32), np.full((c, k), -1, np.int32), np.full((c, k), -1, np.int32))
            for l, c in channels.items()}


def merge(state, value, index, position, k: int):
    """Merge a batch's per-unit maxima (C×B; images in increasing index) into a running C×k state.

    The running entries come first and hold lower image ids than the batch's (batches are processed
    in order), and ``lax.top_k`` keeps the lower position on ties: so ties go to the lower image id.
    """
    v0, i0, p0 = state
    v = jnp.concatenate([v0, value], axis=1)
    i = jnp.concatenate([i0, jnp.broadcast_to(index, value.shape)], axis=1)
    p = jnp.concatenate([p0, position], axis=1)
    v, j = jax.lax.top_k(v, k)
    return v, jnp.take_along_axis(i, j, 1), jnp.take_along_axis(p, j, 1)


def batch_maxima(a: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per image and unit: the maximum over positions and its flat position (C×B each); masked images -inf."""
    a = spatial(a)
    flat = a.reshape(a.shape[0], -1, a.shape[-1]).astype(jnp.float32)
    top = flat.max(axis=1)
    # argmax as the least position holding the maximum (a NaN maximum: the first NaN, as argmax): two plain
    # reductions, where XLA:CPU's two-output argmax reduction took 5× as long (12.9 vs 2.7 ms at 32×13×13×1000)
    at = (flat == top[:, None]) | (jnp.isnan(flat) & jnp.isnan(top)[:, None])
    pos = jnp.where(at, jax.lax.broadcasted_iota(jnp.int32, flat.shape, 1), flat.shape[1]).min(axis=1)
    return jnp.where(valid[:, None], top, -jnp.inf).T, pos.T


def batch_mean_sums(a: jax.Array, groups: jax.Array) -> jax.Array:
    """Per group and unit: the sum over the group's images of the image's activation averaged over positions
    (G×C). `groups` is N×G, one-hot rows (a row of zeros: a masked image); one group: all valid images."""
    a = spatial(a)
    means = a.reshape(a.shape[0], -1, a.shape[-1]).astype(jnp.float32).mean(axis=1)  # N×C
    return jnp.einsum("ng,nc->gc", groups.astype(jnp.float32), means)


# Forward passes on XLA:CPU run fastest in blocks of about 8 images (SqueezeNet at 227: 201 images/s at 8,
# 156 at 32: a block's activations stay in the cache, docs/benchmarks.md); a step scans its batch in blocks.
CPU_BLOCK = 8


def block_size(batch: int, devices: tuple) -> int:
    """Images per forward pass inside a step of `batch`: the largest divisor of `batch` ≤ CPU_BLOCK on one CPU
    device, else the whole batch (accelerators want large batches; sharded batches stay whole)."""
    if len(devices) != 1 or devices[0].platform != "cpu":
        return batch
    return max(d for d in range(1, min(batch, CPU_BLOCK) + 1) if batch % d == 0)


def make_step(net, layers: tuple[str, ...], k: int, block: int | None = None):
    """`step(params, state, images_u8, index, valid, groups) -> (state, sums)`: one forward pass for all
    layers, `block` images at a time (default all); ``sums[layer]`` is the batch's :func:`batch_mean_sums`
    per group (class) of `groups` (N×G)."""
    fn = net.function(layers)

    def reduce(params, images, valid, groups):
        acts = fn(params, images.astype(jnp.float32))
        return {l: (*batch_maxima(acts[l], valid), batch_mean_sums(acts[l], groups)) for l in layers}

    def step(params, state, images, index, valid, groups):
        n = images.shape[0]
        b = n if block is None or n % block else block
        if b == n:
            red = reduce(params, images, valid, groups)
        else:  # blocks scanned; per-image maxima joined along the image axis, sums added
            split = lambda a: a.reshape(n // b, b, *a.shape[1:])
            parts = jax.lax.map(lambda t: reduce(params, *t), (split(images), split(valid), split(groups)))
            red = {l: (jnp.moveaxis(m, 0, 1).reshape(m.shape[1], n), jnp.moveaxis(p, 0, 1).reshape(p.shape[1], n),
                       s.sum(0)) for l, (m, p, s) in parts.items()}
        out, sums = {}, {}
        for l in layers:
            m, pos, sums[l] = red[l]
            out[l] = merge(state[l], m, index[None, :], pos, k)
        return out, sums
    return step


def jitted_step(net, layers: tuple[str, ...], k: int, devices: tuple, batch: int):
    """The cached jit of :func:`make_step`, data-parallel over `devices` (batch axis sharded, state replicated).

    Cached in the network's cache under ``("top_patches", "step", layers, k, device ids, block)``: one trace per
    batch shape.
    """
    mesh = Mesh(np.array(devices), ("batch",))
    shard, repl = NamedSharding(mesh, P("batch")), NamedSharding(mesh, P())
    block = block_size(batch, devices)
    key = ("top_patches", "step", layers, k, tuple(d.id for d in devices), block)
    fn = net.cache.jit(key, lambda: make_step(net, layers, k, block), out_shardings=repl)
    return fn, key, shard, repl


def merge_host(states: list[dict], k: int) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Exact merge of several processes' states on the host: per unit sort by (value desc, image id asc)."""
    out = {}
    for l in states[0]:
        v = np.concatenate([np.asarray(s[l][0]) for s in states], 1)
        i = np.concatenate([np.asarray(s[l][1]) for s in states], 1)
        p = np.concatenate([np.asarray(s[l][2]) for s in states], 1)
        # empty slots (-1) sort last among -inf ties, so they never displace a real hit
        order = np.lexsort((np.where(i < 0, np.iinfo(np.int32).max, i), -v), axis=1)[:, :k]
        out[l] = (np.take_along_axis(v, order, 1), np.take_along_axis(i, order, 1), np.take_along_axis(p, order, 1))
    return out
