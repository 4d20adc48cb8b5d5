"""jaxvis.visualize against torch-lucent's render_vis: same weights, objective, parameterisation, transforms.

Both optimise N class images of the shipped SqueezeNet (DeepScale v1.1) at 227×227: lucid's FFT
parameterisation with decorrelated colours and sigmoid, lucid's standard transforms, Adam 0.05, the
objective each class's pre-softmax score (the mean of relu_conv10's channel). Runs are interleaved,
best of 3, in one process; the first call of each is a warm-up (JAX compiles there).

  python scripts/bench/visualize.py [--units 8] [--steps 32] [--size 227] [--repeats 3]

Needs torch and torch-lucent 0.1.8 (benchmark only: `pip install --no-deps torch-lucent==0.1.8
kornia==0.4.1 decorator tqdm`, into the shared environment or with `--target .lucent` in the repository root,
which this script adds to its path); torchvision is replaced by a stand-in for the one class lucent imports.
"""

from __future__ import annotations

import argparse
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
if (ROOT / ".lucent").is_dir():  # a private install: pip install --no-deps --target .lucent torch-lucent==0.1.8 ...
    sys.path.append(str(ROOT / ".lucent"))
CLASSES = [1, 9, 22, 71, 76, 94, 130, 145, 207, 254, 291, 292, 309, 323, 340, 386]


def _torchvision_standin(torch) -> None:
    """lucent imports only torchvision.transforms.Normalize; the CPU torchvision wheel does not load here."""
    if "torchvision" in sys.modules:
        return

    class Normalize(torch.nn.Module):
        def __init__(self, mean, std):
            super().__init__()
            self.mean, self.std = torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1)

        def forward(self, x):
            return (x - self.mean) / self.std

    tv, tr = types.ModuleType("torchvision"), types.ModuleType("torchvision.transforms")
    tr.Normalize, tv.transforms = Normalize, tr
    sys.modules.update({"torchvision": tv, "torchvision.transforms": tr})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", type=int, default=8)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--size", type=int, default=227)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    import torch

    _torchvision_standin(torch)
    from lucent.optvis import objectives as LO
    from lucent.optvis import param as LP
    from lucent.optvis import render, transform
    from torch_reference import squeezenet_from_jaxvis as from_jaxvis

    import jaxvis
    from jaxvis.engine import objectives as O
    from jaxvis.engine.presets import Preset

    net = jaxvis.load_model("squeezenet")
    classes = (CLASSES * 8)[: args.units]

    class Pixels01(torch.nn.Module):  # lucent's images are 0..1; the SqueezeNet takes 0..255
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(255.0 * x)

    tmodel = Pixels01(from_jaxvis(net.params)).eval()
    for p in tmodel.parameters():
        p.requires_grad_(False)
    obj = sum(LO.channel("inner_net_classifier_2", c, batch=i) for i, c in enumerate(classes))  # relu_conv10

    def lucent_run():
        render.render_vis(tmodel, obj, lambda: LP.image(args.size, batch=len(classes), fft=True, decorrelate=True),
                          transforms=transform.standard_transforms, thresholds=(args.steps,), preprocess=False,
                          progress=False, show_image=False, fixed_image_size=None)

    objs = [O.class_logit(c) for c in classes]

    def jax_run():
        # lucid's exact recipe (the `lucid` preset adds a border and a margin against frames: more pixels
        # than lucent computes); the same work on both sides
        v = jaxvis.visualize(net, objs, preset=Preset("lucid"), steps=args.steps, image_size=args.size,
                             redirected_relu_steps=0, progress=False, batch_size=len(classes))
        return v

    def jax_preset():  # the registered `lucid` preset with every default (border, margin, redirected ReLU)
        return jaxvis.visualize(net, objs, preset="lucid", steps=args.steps, image_size=args.size, progress=False,
                                batch_size=len(classes))

    t = time.perf_counter()
    jax_run()
    print(f"jaxvis first call (compile + run): {time.perf_counter() - t:.1f} s", flush=True)
    t = time.perf_counter()
    lucent_run()
    print(f"lucent first call: {time.perf_counter() - t:.1f} s", flush=True)
    jax_preset()
    best = {"jaxvis": float("inf"), "lucent": float("inf"), "preset": float("inf")}
    for r in range(args.repeats):
        for name, f in (("jaxvis", jax_run), ("lucent", lucent_run), ("preset", jax_preset)):
            t = time.perf_counter()
            f()
            best[name] = min(best[name], time.perf_counter() - t)
        print(f"run {r + 1}: jaxvis {best['jaxvis']:.2f} s, lucent {best['lucent']:.2f} s (best so far)", flush=True)
    work = len(classes) * args.steps
    rj, rl, rp = work / best["jaxvis"], work / best["lucent"], work / best["preset"]
    from flops import forward_flops
    from peak_flops import peak_gflops

    from jaxvis.engine import transforms as T
    seen = T.STANDARD.out_size((args.size, args.size))  # what the network sees each step
    gf = 2 * forward_flops(net, "relu_conv10", seen) / 1e9  # forward + image gradient, per image-step
    peak = peak_gflops()[0] or float("nan")
    print(f"\n{len(classes)} units × {args.steps} steps at {args.size}: jaxvis {rj:.1f} image-steps/s "
          f"({rj * gf:.0f} GFLOP/s, {100 * rj * gf / peak:.0f} % of {peak:.0f}; the network sees "
          f"{seen[0]}×{seen[1]}), lucent {rl:.1f} image-steps/s ({rl * gf:.0f} GFLOP/s), ratio {rj / rl:.2f}× "
          f"(torch threads {torch.get_num_threads()})")
    print(f"the registered `lucid` preset (its defaults: border, margin, redirected ReLU): {rp:.1f} image-steps/s, "
          f"{rp / rl:.2f}× lucent's recipe")
    return 0


if __name__ == "__main__":
    sys.exit(main())
