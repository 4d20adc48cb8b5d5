"""Walkthrough pictures of the CS231n recipes (docs/cs231n_images.md): class models, a fooling image, a dreamed photo.

  python scripts/figures/cs231n_images.py --out docs/cs231n

Writes class_models.png (8 SqueezeNet class models), fooling.png (photo | fooling image | magnified
difference) and dream_photo.png (chelsea.png from ../shared/images DeepDreamed at fire5-concat).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts" / "data")]  # run from a source checkout; the judge network
SHARED = ROOT.parent / "shared" if (ROOT.parent / "shared").is_dir() else Path("/work/shared")
CLASSES = ["goldfish", "flamingo", "tarantula", "king penguin", "monarch", "school bus", "strawberry", "volcano"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs/cs231n")
    ap.add_argument("--steps", type=int, default=200, help="class-model steps (default 200)")
    ap.add_argument("--only", default="class,fool,dream")
    args = ap.parse_args(argv)
    import jaxvis
    from jaxvis.imaging.display import imtile, save_png
    from jaxvis.imaging.images import fit_to_size, read_image
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net = jaxvis.load_model("squeezenet")
    only = args.only.split(",")
    if "class" in only:
        t = time.perf_counter()
        v = jaxvis.class_model(net, CLASSES, steps=args.steps, progress=True)
        save_png(out / "class_models.png", imtile(v.images, grid_size=(2, 4), thumbnail_size=(150, 150)))  # < 400 KB
        own = [p[0][0] for p in jaxvis.classify(net, list(v.images), top=1, resize="none")]
        print(f"class models ({time.perf_counter() - t:.0f} s): {list(zip(CLASSES, own))}", flush=True)
        judge_dir = SHARED / "testdata" / "squeezenet1_1_onnxzoo"
        if (judge_dir / "weights").is_dir():  # the independent torchvision SqueezeNet's top-5 (docs/quality.md)
            from onnx_zoo import judge_network
            top5 = jaxvis.classify(judge_network(judge_dir), list(v.images), top=5, resize="stretch")
            hits = [c in [n for n, _ in p] for c, p in zip(CLASSES, top5)]
            print(f"independent top-5: {sum(hits)}/{len(hits)}; top-1: "
                  f"{sum(p[0][0] == c for c, p in zip(CLASSES, top5))}/{len(hits)}", flush=True)
    if "fool" in only:
        photo = fit_to_size(read_image(SHARED / "images" / "chelsea.png")[None].astype(np.float32), net.input_size)
        t = time.perf_counter()
        r = jaxvis.fool(net, photo, "goldfish")
        before = jaxvis.classify(net, photo, top=1, resize="none")[0]
        r.save(out / "fooling.png")
        print(f"fooling ({time.perf_counter() - t:.0f} s): {before} → {r.top5[0][0]} in {r.steps[0]} steps, "
              f"L2 {r.l2[0]:.0f}, L∞ {r.linf[0]:.1f} (pixel units)", flush=True)
    if "dream" in only:
        t = time.perf_counter()
        d = jaxvis.dream_photo(net, SHARED / "images" / "chelsea.png", "fire5-concat", progress=True)
        d.save(out / "dream_photo.png")
        print(f"dream_photo ({time.perf_counter() - t:.0f} s): {d.image.shape}", flush=True)
    for p in sorted(out.glob("*.png")):
        print(p, f"{p.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
