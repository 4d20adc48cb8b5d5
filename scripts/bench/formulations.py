"""The XLA:CPU formulations of issue 22's second pass against the plain JAX they replace, each alone.

  python scripts/bench/formulations.py [--repeats 5]

Same process, interleaved, best of `--repeats` after a compiling call; every pair is checked to compute the
same values first. The rows of docs/benchmarks.md's table S1–S8:

* S1 lucid's zoom/turn (`transforms.affine` with its static reach) against `map_coordinates` per channel
  differentiated by JAX (a scatter-add), forward + image gradient, 12×256×256×3 onto a 268×268 canvas;
* S2 the saliency map's colour reduction (`reduce_channels`) against numpy's `abs(x).max(-1)`, 227×227×3;
* S3 top_patches' maxima and positions (`topk.batch_maxima`) against `max` + `argmax`, 32×13×13×1000;
* S5 SqueezeNet's forward to conv10 at 227, 32 images in one pass against 4 blocks of 8 (`lax.map`);
* S6/S7 3×3/2 max pooling (`ops.max_pool`) against `lax.reduce_window`, forward and VJP, 8×113×113×64 ReLU'd;
* S8 two ReLU'd fire-module halves concatenated (`ops.concat_channels`) against `jnp.concatenate`, 32×28×28×128.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT)]


def best_of(pairs: dict, repeats: int) -> dict:
    """{name: (plain s, jaxvis s)} for {name: (plain fn, jaxvis fn)}, each fn returning something to block on."""
    import jax
    for a, b in pairs.values():
        jax.block_until_ready(a())
        jax.block_until_ready(b())
    best = {k: [float("inf"), float("inf")] for k in pairs}
    for _ in range(repeats):
        for k, fns in pairs.items():
            for i, f in enumerate(fns):
                t = time.perf_counter()
                jax.block_until_ready(f())
                best[k][i] = min(best[k][i], time.perf_counter() - t)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args(argv)

    import jax
    import jax.numpy as jnp
    from jax import lax
    from jax.scipy.ndimage import map_coordinates

    import jaxvis
    from jaxvis.attribution.gradients import reduce_channels
    from jaxvis.engine import transforms as T
    from jaxvis.nets import cpu, ops
    from jaxvis.patches import topk

    r = np.random.default_rng(0)
    pairs, checks = {}, {}

    # S1: lucid's resampling, forward + image gradient
    x = jnp.asarray(r.uniform(0, 1, (12, 256, 256, 3)).astype(np.float32))
    out = (268, 268)
    ct = jnp.asarray(r.normal(size=(12, *out, 3)).astype(np.float32))
    ra = T.STANDARD.transforms[2]

    def plain_affine(v, s, deg):
        t = jnp.deg2rad(deg)
        yy, xx = jnp.meshgrid(jnp.arange(out[0]) - (out[0] - 1) / 2, jnp.arange(out[1]) - (out[1] - 1) / 2,
                              indexing="ij")
        sy, sx = (jnp.cos(t) * yy - jnp.sin(t) * xx) / s + 127.5, (jnp.sin(t) * yy + jnp.cos(t) * xx) / s + 127.5
        planes = jnp.moveaxis(v, -1, 1).reshape(-1, 256, 256)
        res = jax.vmap(lambda p: map_coordinates(p, [sy, sx], order=1, mode="constant", cval=0.5))(planes)
        return jnp.moveaxis(res.reshape(12, 3, *out), 1, -1)

    def vjp_of(f):
        return cpu.jit(lambda v, s, deg, c: jax.vjp(lambda u: f(u, s, deg), v)[1](c)[0])

    fa = vjp_of(plain_affine)
    fb = vjp_of(lambda v, s, deg: T.affine(v, s, deg, 0.5, out, ra.reach))
    s, deg = jnp.float32(1.04), jnp.float32(4.0)
    checks["S1 affine"] = float(jnp.abs(fa(x, s, deg, ct) - fb(x, s, deg, ct)).max() / jnp.abs(fa(x, s, deg, ct)).max())
    pairs["S1 lucid zoom/turn, fwd + grad, 12×256²×3"] = (lambda: fa(x, s, deg, ct), lambda: fb(x, s, deg, ct))

    # S2: the saliency map's colour reduction (numpy)
    raw = r.normal(size=(227, 227, 3)).astype(np.float32)
    checks["S2 reduce"] = float(np.abs(np.abs(raw).max(-1) - reduce_channels(raw, "gradient")).max())
    pairs["S2 saliency colour reduction, 227²×3"] = (lambda: np.abs(raw).max(-1), lambda: reduce_channels(raw, "gradient"))

    # S3: per-unit maxima and their positions
    acts = jnp.asarray(r.normal(size=(32, 13, 13, 1000)).astype(np.float32))
    valid = jnp.ones(32, bool)
    plain_max = cpu.jit(lambda v: (v.reshape(32, -1, 1000).max(1), v.reshape(32, -1, 1000).argmax(1)))
    ours_max = cpu.jit(lambda v: topk.batch_maxima(v, valid))
    checks["S3 positions"] = float(np.abs(np.asarray(plain_max(acts)[1]).T - np.asarray(ours_max(acts)[1])).max())
    pairs["S3 maxima + positions, 32×13²×1000"] = (lambda: plain_max(acts), lambda: ours_max(acts))

    # S5: SqueezeNet forward to conv10, one pass of 32 against blocks of 8
    net = jaxvis.load_model("squeezenet")
    fn = net.function(["conv10"])
    imgs = jnp.asarray(r.uniform(0, 255, (32, 227, 227, 3)).astype(np.float32))
    whole = cpu.jit(lambda p, v: fn(p, v)["conv10"])
    blocks = cpu.jit(lambda p, v: jax.lax.map(lambda b: fn(p, b)["conv10"], v.reshape(4, 8, *v.shape[1:]))
                     .reshape(32, *fn(p, v[:1])["conv10"].shape[1:]))
    checks["S5 blocks"] = float(jnp.abs(whole(net.params, imgs) - blocks(net.params, imgs)).max()
                                / jnp.abs(whole(net.params, imgs)).max())
    pairs["S5 SqueezeNet forward, 32 at once vs 4 × 8"] = (lambda: whole(net.params, imgs),
                                                          lambda: blocks(net.params, imgs))

    # S6/S7: 3×3/2 max pooling, forward and VJP
    px = jnp.asarray(np.maximum(r.normal(size=(8, 113, 113, 64)), 0).astype(np.float32))

    def rw(v):
        return lax.reduce_window(v, -jnp.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "VALID")

    pf, of = cpu.jit(rw), cpu.jit(lambda v: ops.max_pool(v, 3, 2))
    pct = jnp.asarray(r.normal(size=rw(px).shape).astype(np.float32))
    pv = cpu.jit(lambda v, c: jax.vjp(rw, v)[1](c)[0])
    ov = cpu.jit(lambda v, c: jax.vjp(lambda u: ops.max_pool(u, 3, 2), v)[1](c)[0])
    checks["S6 pool"] = float(jnp.abs(pf(px) - of(px)).max())
    checks["S7 pool grad"] = float(jnp.abs(pv(px, pct) - ov(px, pct)).max() / jnp.abs(pv(px, pct)).max())
    pairs["S6 max pool 3×3/2 forward, 8×113²×64"] = (lambda: pf(px), lambda: of(px))
    pairs["S7 max pool 3×3/2 VJP, 8×113²×64"] = (lambda: pv(px, pct), lambda: ov(px, pct))

    # S8: a fire module's concatenation of two ReLU'd halves
    h1 = jnp.asarray(r.normal(size=(32, 28, 28, 128)).astype(np.float32))
    h2 = h1 + 1
    pc = cpu.jit(lambda u, v: jnp.concatenate([jax.nn.relu(u), jax.nn.relu(v)], -1))
    oc = cpu.jit(lambda u, v: ops.concat_channels([jax.nn.relu(u), jax.nn.relu(v)]))
    checks["S8 concat"] = float(jnp.abs(pc(h1, h2) - oc(h1, h2)).max())
    pairs["S8 concatenation, 2 × 32×28²×128"] = (lambda: pc(h1, h2), lambda: oc(h1, h2))

    print("max differences (relative where the values have a scale):", {k: f"{v:.1e}" for k, v in checks.items()})
    res = best_of(pairs, a.repeats)
    print("\n| formulation | plain JAX / numpy ms | jaxvis ms | speed-up |\n|---|---|---|---|")
    for k, (tp, to) in res.items():
        print(f"| {k} | {1e3 * tp:.2f} | {1e3 * to:.2f} | {tp / to:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
