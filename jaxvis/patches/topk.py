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
    m = jnp.where(valid[:, None], flat.max(axis=1), -jnp.inf)
    return m.T, flat.argmax(axis=1).astype(jnp.int32).T


def batch_mean_sums(a: jax.Array, groups: jax.Array) -> jax.Array:
    """Per group and unit: the sum over the group's images of the image's activation averaged over positions
    (G×C). `groups` is N×G, one-hot rows (a row of zeros: a masked image); one group: all valid images."""
    a = spatial(a)
    means = a.reshape(a.shape[0], -1, a.shape[-1]).astype(jnp.float32).mean(axis=1)  # N×C
    return jnp.einsum("ng,nc->gc", groups.astype(jnp.float32), means)


def make_step(net, layers: tuple[str, ...], k: int):
    """`step(params, state, images_u8, index, valid, groups) -> (state, sums)`: one forward pass for all
    layers; ``sums[layer]`` is the batch's :func:`batch_mean_sums` per group (class) of `groups` (N×G)."""
    fn = net.function(layers)

    def step(params, state, images, index, valid, groups):
        acts = fn(params, images.astype(jnp.float32))
        out, sums = {}, {}
        for l in layers:
            m, pos = batch_maxima(acts[l], valid)
            out[l] = merge(state[l], m, index[None, :], pos, k)
            sums[l] = batch_mean_sums(acts[l], groups)
        return out, sums
    return step


def jitted_step(net, layers: tuple[str, ...], k: int, devices: tuple):
    """The cached jit of :func:`make_step`, data-parallel over `devices` (batch axis sharded, state replicated).

    Cached in the network's cache under ``("top_patches", "step", layers, k, device ids)``: one trace per batch shape.
    """
    mesh = Mesh(np.array(devices), ("batch",))
    shard, repl = NamedSharding(mesh, P("batch")), NamedSharding(mesh, P())
    key = ("top_patches", "step", layers, k, tuple(d.id for d in devices))
    fn = net.cache.jit(key, lambda: make_step(net, layers, k), out_shardings=repl)
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
