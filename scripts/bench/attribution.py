"""Attribution timings: jaxvis (JAX, jitted, batched) against the same computation in PyTorch eager.

  python scripts/bench/attribution.py [--repeats 3] [--image examples/images/coffee.png]

SqueezeNet v1.1 (shipped weights) at 227×227, target 'espresso':
  * SmoothGrad, 50 noisy samples, σ = 0.15 × pixel range, at most 16 samples per batched
    forward + backward pass (jaxvis: 4 chunks of 13 scanned inside one jitted call; torch:
    16, 16, 16, 2);
  * occlusion, 15×15 mask positions (45×45 mask, stride 16, MATLAB clipping), 226 forward
    passes (with the unoccluded image), at most 32 per call (jaxvis 8×29, torch 7×32+2).
PyTorch runs an independent SqueezeNet (tests/torch_reference.py) with the same weights
and the same number of threads, in the same process. Times are the best of
`--repeats`, JAX and torch runs alternating, after a first run (whose extra JAX time,
tracing and compilation, is reported separately).
Then every attribution method against captum 0.9 on the same weights (`--no-captum` skips it), each side
with its own defaults except where a batch size is needed to compare like with like: saliency, integrated
gradients (50 steps, black baseline; captum all steps in one batch), SmoothGrad (50 samples; captum's
NoiseTunnel, all samples in one batch), guided backprop, deconvnet, Grad-CAM at relu_conv10 upsampled to the
image, occlusion (captum's windows: 45×45, stride 16, 13×13 = 169 windows; captum 32 windows per forward,
`perturbations_per_eval=32`, jaxvis its automatic batch).
Needs torch and captum (not jaxvis dependencies: the test extra).
"""

from __future__ import annotations

import argparse
import warnings
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def interleaved(jf, tf, repeats):
    """Best-of times, JAX and torch runs alternating so background load hits both alike.

    Returns (jax best, torch best, jax first timed call)."""
    first = timed(jf)
    tj, tt = [first], [timed(tf)]
    for _ in range(repeats):
        tj.append(timed(jf))
        tt.append(timed(tf))
    return min(tj), min(tt), first


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--image", default=str(ROOT / "examples/images/coffee.png"))
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--grad-batch", type=int, default=16)
    ap.add_argument("--occ-batch", type=int, default=32)
    ap.add_argument("--no-captum", action="store_true", help="skip the captum 0.9 comparison")
    args = ap.parse_args(argv)

    import torch
    from torch_reference import squeezenet_from_jaxvis as from_jaxvis

    import jaxvis

    net = jaxvis.load_model("squeezenet")
    tm = from_jaxvis(net.params)
    cls = net.classes.index("espresso")
    n, gb, ob = args.samples, args.grad_batch, args.occ_batch
    ref = jaxvis.saliency(net, args.image, cls)  # the 227×227 image the network sees
    x = ref.image
    sigma = 0.15 * float(x.max() - x.min())
    print(f"jaxvis on {jaxvis.__name__} / torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
          f"image {Path(args.image).name} → {x.shape[0]}×{x.shape[1]}, target {cls} espresso")

    # ---- SmoothGrad
    def jax_sg():
        return jaxvis.saliency(net, x, cls, method="smoothgrad", num_samples=n, batch_size=gb).raw

    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))

    def torch_sg():
        gen = torch.Generator().manual_seed(0)
        total = torch.zeros_like(xt)
        for c in range(0, n, gb):
            k = min(gb, n - c)
            noisy = (xt[None] + sigma * torch.randn((k, *xt.shape), generator=gen)).requires_grad_(True)
            tm(noisy)[:, cls].sum().backward()
            total += noisy.grad.sum(0)
        return (total / n).numpy().transpose(1, 2, 0)

    # ---- occlusion, 15×15 positions
    occ_kw = {"mask_size": 45, "stride": 16, "batch_size": ob}

    def jax_occ():
        return jaxvis.occlusion_sensitivity(net, x, cls, **occ_kw).raw

    def torch_occ():
        from jaxvis.attribution import mask_starts
        starts = mask_starts(x.shape[0], 45, 16)
        fill = xt.reshape(3, -1).mean(1).view(3, 1, 1)
        corners = [(r, c) for r in starts for c in starts]
        imgs = [xt]
        for r, c in corners:
            o = xt.clone()
            o[:, max(r, 0):r + 45, max(c, 0):c + 45] = fill
            imgs.append(o)
        scores = []
        with torch.no_grad():
            for i in range(0, len(imgs), ob):
                scores.append(tm(torch.stack(imgs[i:i + ob]))[:, cls])
        s = torch.cat(scores).numpy()
        return (s[0] - s[1:]).reshape(len(starts), len(starts))

    # Same results first, so the timings compare like with like.
    first = {}
    t0 = time.perf_counter()
    a = jax_occ()
    first["occ"] = time.perf_counter() - t0
    b = torch_occ()
    print(f"occlusion grids agree: max |jax − torch| = {np.abs(a - b).max():.2e} (scores ~{abs(ref.score):.1f})")
    t0 = time.perf_counter()
    sg_j = jax_sg()
    first["sg"] = time.perf_counter() - t0
    sg_t = torch_sg()
    corr = np.corrcoef(np.abs(sg_j).max(-1).ravel(), np.abs(sg_t).max(-1).ravel())[0, 1]
    print(f"SmoothGrad maps (different noise draws) correlate: r = {corr:.3f}")

    rows = []
    for key, name, jf, tf, count in [("sg", f"SmoothGrad, {n} samples", jax_sg, torch_sg, n),
                                     ("occ", "occlusion, 15x15 grid", jax_occ, torch_occ, 226)]:
        tj, tt, _ = interleaved(jf, tf, args.repeats)
        rows.append((name, tj, tt, first[key] - tj, count))
    traces = {k: v for k, v in net.trace_counts.items() if k[0] == "attribution"}
    print(f"JAX traces per kernel over all runs (1 = never retraced): {traces}")
    print(f"\n{'task':26s} {'jaxvis s':>9s} {'torch s':>9s} {'jax/torch':>10s} {'jax img/s':>10s} "
          f"{'torch img/s':>11s} {'jax compile s*':>14s}")
    for name, tj, tt, comp, count in rows:
        print(f"{name:26s} {tj:9.3f} {tt:9.3f} {tj / tt:10.2f} {count / tj:10.1f} {count / tt:11.1f} {comp:14.1f}")
    print("* first call minus best call: tracing + XLA compilation (once per process and shapes)")
    if not args.no_captum:
        against_captum(net, tm, x, cls, args.repeats)
    return 0


def against_captum(net, tm, x, cls, repeats: int) -> None:
    """Every method, jaxvis's public call against captum's on the same float32 torch model."""
    import captum
    warnings.filterwarnings("ignore", category=UserWarning, module="captum")
    import captum.attr as ca
    import torch

    import jaxvis

    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)[None]))
    sigma = 0.15 * float(x.max() - x.min())
    fill = torch.from_numpy(np.broadcast_to(x.reshape(-1, 3).mean(0), x.shape).transpose(2, 0, 1)[None].copy())
    relu10 = tm.net.classifier[2]

    def gradcam_t():
        raw = ca.LayerGradCam(tm, relu10).attribute(xt, target=cls, relu_attributions=True)
        return ca.LayerAttribution.interpolate(raw, x.shape[:2], interpolate_mode="bilinear")

    cases = [
        ("saliency", lambda: jaxvis.saliency(net, x, cls).map,
         lambda: ca.Saliency(tm).attribute(xt, target=cls, abs=False)),
        ("integrated gradients, 50 steps", lambda: jaxvis.saliency(net, x, cls, method="integrated_gradients").map,
         lambda: ca.IntegratedGradients(tm).attribute(xt, baselines=0.0, target=cls, n_steps=50,
                                                      method="riemann_middle")),
        ("SmoothGrad, 50 samples", lambda: jaxvis.saliency(net, x, cls, method="smoothgrad").map,
         lambda: ca.NoiseTunnel(ca.Saliency(tm)).attribute(xt, nt_type="smoothgrad", nt_samples=50, stdevs=sigma,
                                                          target=cls, abs=False)),
        ("guided backprop", lambda: jaxvis.saliency(net, x, cls, method="guided_backprop").map,
         lambda: ca.GuidedBackprop(tm).attribute(xt, target=cls)),
        ("deconvnet", lambda: jaxvis.saliency(net, x, cls, method="deconvnet").map,
         lambda: ca.Deconvolution(tm).attribute(xt, target=cls)),
        ("Grad-CAM (relu_conv10)", lambda: jaxvis.grad_cam(net, x, cls).map, gradcam_t),
        ("occlusion 45/16, 169 windows",
         lambda: jaxvis.occlusion_sensitivity(net, x, cls, mask_size=45, stride=16, placement="captum").map,
         lambda: ca.Occlusion(tm).attribute(xt, sliding_window_shapes=(3, 45, 45), strides=(3, 16, 16),
                                            baselines=fill, target=cls, perturbations_per_eval=32)),
    ]
    print(f"\nagainst captum {captum.__version__} (same float32 weights, interleaved, best of {repeats}; "
          f"first call excluded)")
    print(f"{'method':32s} {'jaxvis s':>9s} {'captum s':>9s} {'speed-up':>9s}")
    sys.path.insert(0, str(ROOT / "scripts" / "bench"))
    from flops import forward_flops
    from peak_flops import peak_gflops
    gf = 2 * forward_flops(net, net.logits_layer, x.shape[:2]) / 1e9  # forward + image gradient of one image
    peak = peak_gflops()[0] or float("nan")
    for name, jf, cf in cases:
        tj, tc, _ = interleaved(jf, cf, repeats)
        extra = f"   ({gf / tj:.0f} GFLOP/s, {100 * gf / tj / peak:.0f} % of {peak:.0f})" if name == "saliency" else ""
        print(f"{name:32s} {tj:9.4f} {tc:9.4f} {tc / tj:8.2f}x{extra}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
