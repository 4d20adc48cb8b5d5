"""Quality of the CS231n recipes (docs/quality.md): class-model transfer and fooling-image statistics.

  python scripts/quality/class_fool.py fool --out docs/quality            # ≥ 20 (photo, target) pairs
  python scripts/quality/class_fool.py class --steps 100 --classes 30     # class models, independent judge

`fool`: 20 (photo, random target) pairs — the 4 photos of ../shared/images, each as a centre crop,
two corner crops and their mirror images, at SqueezeNet's 227×227 — fooled with each method; prints
success rate, median steps and median L2/L∞ perturbation (pixel units, 0..255).
`class`: `jaxvis.class_model` for the 30 classes of scripts/quality/transfer.py, top-5 by the
independent torchvision SqueezeNet 1.1 (ONNX zoo).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts" / "quality"), str(ROOT / "scripts" / "data")]
SHARED = Path("/work/shared") if not (ROOT.parent / "shared").is_dir() else ROOT.parent / "shared"


def photo_pairs(net, n: int, seed: int = 0):
    """n crops/flips of the shared photos at the network's input size, and random targets ≠ their prediction."""
    from PIL import Image

    import jaxvis
    h, w = net.input_size
    ims = []
    for f in sorted((SHARED / "images").glob("*.*g")):
        im = Image.open(f).convert("RGB")
        s = max(h, w) * 1.25 / min(im.size)
        im = np.asarray(im.resize((round(im.width * s), round(im.height * s)), Image.BILINEAR), np.float32)
        H, W = im.shape[:2]
        crops = [im[(H - h) // 2:(H - h) // 2 + h, (W - w) // 2:(W - w) // 2 + w], im[:h, :w], im[H - h:, W - w:]]
        ims += crops + [c[:, ::-1] for c in crops[:2]]
    ims = np.stack(ims[:n])
    pred = [p[0][0] for p in jaxvis.classify(net, list(ims), top=1, resize="none")]
    rng = np.random.default_rng(seed)
    targets = []
    for p in pred:
        t = int(rng.integers(1000))
        while net.classes[t] == p:
            t = int(rng.integers(1000))
        targets.append(t)
    return ims, np.array(targets)


def run_fool(args) -> dict:
    import jaxvis
    from jaxvis.recipes import fool
    net = jaxvis.load_model("squeezenet")
    ims, targets = photo_pairs(net, args.pairs)
    out = {}
    for method, eps in (("cs231n", None), ("pgd", 2.0), ("pgd", 8.0), ("fgsm", 8.0)):
        t = time.perf_counter()
        r = fool(net, ims, targets, method=method, eps=eps, max_steps=100)
        secs = time.perf_counter() - t
        key = method if eps is None else f"{method} eps={eps:g}"
        out[key] = dict(pairs=len(ims), success=float(r.success.mean()), median_steps=float(np.median(r.steps)),
                        max_steps_taken=int(r.steps.max()), median_l2=float(np.median(r.l2)),
                        median_linf=float(np.median(r.linf)), seconds=secs)
        print(key, out[key], flush=True)
        if method == "cs231n":
            r.save(Path(args.out) / "fool_example.png", 0)
    return out


def run_class(args) -> dict:
    import jaxvis
    from jaxvis.imaging.display import imtile, save_png
    from jaxvis.engine import presets as P
    from jaxvis.engine.optimize import Projection
    from jaxvis.recipes import class_model
    from onnx_zoo import judge_network
    from transfer import CLASSES
    net = jaxvis.load_model("squeezenet")
    judge = judge_network(SHARED / "testdata" / "squeezenet1_1_onnxzoo")
    classes = CLASSES[: args.classes]
    pre = dataclasses.replace(P.PRESETS["cs231n"], projection=Projection((0.0, 1.0), args.blur_every, args.blur_sigma))
    t = time.perf_counter()
    v = class_model(net, classes, preset=pre, steps=args.steps, progress=True)
    secs = time.perf_counter() - t
    preds = jaxvis.classify(judge, list(v.images), top=5, resize="stretch")
    own = jaxvis.classify(net, list(v.images), top=5, resize="stretch")
    top1 = np.mean([p[0][0] == net.classes[c] for p, c in zip(preds, classes)])
    top5 = np.mean([net.classes[c] in [n for n, _ in p] for p, c in zip(preds, classes)])
    own1 = np.mean([p[0][0] == net.classes[c] for p, c in zip(own, classes)])
    tag = f"class_model_s{args.steps}_b{args.blur_every}_{args.blur_sigma:g}"
    save_png(Path(args.out) / f"{tag}.png", imtile(v.images, thumbnail_size=(112, 112)))
    res = dict(steps=args.steps, blur_every=args.blur_every, blur_sigma=args.blur_sigma, classes=len(classes),
               top1=float(top1), top5=float(top5), own_top1=float(own1), seconds=secs,
               predictions={net.classes[c]: p for c, p in zip(classes, preds)})
    print(f"{tag}: independent top-1 {top1:.0%} top-5 {top5:.0%}, own top-1 {own1:.0%}, {secs:.0f} s", flush=True)
    return {tag: res}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("fool", "class"))
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--classes", type=int, default=30)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--blur-every", type=int, default=10)
    ap.add_argument("--blur-sigma", type=float, default=0.5)
    ap.add_argument("--out", default="docs/quality")
    args = ap.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    res = run_fool(args) if args.what == "fool" else run_class(args)
    path = Path(args.out) / "cs231n_recipes.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    old.setdefault(args.what, {}).update(res)
    path.write_text(json.dumps(old, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
