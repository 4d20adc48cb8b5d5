"""Whose is the blue-violet lean of `lucid` class images: the recipe's or the network's? (docs/quality.md)

The same lucid recipe (the preset, RedirectedReLU off so every network below runs it alike) on:
the shipped SqueezeNet (DeepScale's Caffe weights) and torchvision's SqueezeNet 1.1 (ONNX-zoo weights,
../shared/testdata), 8 class logits each; AlexNet (torchvision's conv layers) `conv5` channels 0–15.
Each network also runs with its input's red and blue channels swapped (the network sees x[..., ::-1]):
a preference of the network for blue then becomes a preference for red, while a lean made by the
recipe (parameterisation, colour decorrelation, sigmoid, transforms) would stay blue. Reports each
set's mean RGB and blue lean B − (R + G)/2 (0..1 scale), writes a tile per set and a JSON.

    python scripts/quality/colour_cast.py [--steps 128] [--out docs/quality]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts" / "data")]  # run from a source checkout; the judge network
SHARED = ROOT.parent / "shared" if (ROOT.parent / "shared").is_dir() else ROOT.parents[1] / "shared"
CLASSES = ["goldfish", "flamingo", "tarantula", "king penguin", "monarch", "school bus", "strawberry", "volcano"]


def swapped(net, layer: str):
    """`net` seeing its input with red and blue swapped (same weights, same preprocessing after the swap)."""
    import jaxvis

    def apply(params, x):
        return {layer: net.apply(params, x[..., ::-1], [layer])[layer]}

    logits = layer == net.logits_layer
    return jaxvis.from_function(apply, net.params, input_size=net.input_size, classes=net.classes if logits else None,
                                logits=layer if logits else None, name=f"{net.name} (R/B swapped)")


def stats(images) -> dict:
    import numpy as np
    x = np.asarray(images, np.float64) / 255.0
    m = x.mean(axis=(0, 1, 2))
    per = x.mean(axis=(1, 2))
    lean = per[:, 2] - (per[:, 0] + per[:, 1]) / 2
    return {"mean_rgb": [round(float(v), 3) for v in m], "blue_lean": round(float(m[2] - (m[0] + m[1]) / 2), 3),
            "blue_lean_per_image": [round(float(v), 3) for v in lean]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--out", default=str(ROOT / "docs" / "quality"))
    ap.add_argument("--runs", default="0,1,2", help="which networks (0 SqueezeNet, 1 SqueezeNet 1.1, 2 AlexNet)")
    args = ap.parse_args(argv)
    import jaxvis
    from jaxvis.engine import objectives as O
    from jaxvis.imaging.display import imtile, save_png
    from onnx_zoo import judge_network
    out = Path(args.out)
    sq, tv, alex = (jaxvis.load_model("squeezenet"), judge_network(SHARED / "testdata" / "squeezenet1_1_onnxzoo"),
                    jaxvis.load_model("alexnet"))
    runs = [("SqueezeNet (Caffe)", sq, sq.logits_layer, [O.class_logit(c) for c in CLASSES]),
            ("SqueezeNet 1.1 (torchvision)", tv, tv.logits_layer, [O.class_logit(c) for c in CLASSES]),
            ("AlexNet conv5 (torchvision)", alex, "conv5", O.units("conv5", range(16)))]
    f = out / "colour_cast.json"
    results = json.loads(f.read_text())["results"] if f.is_file() else {}
    for name, net, layer, objs in [runs[int(i)] for i in args.runs.split(",")]:
        for swap in (False, True):
            model = swapped(net, layer) if swap else net
            v = jaxvis.visualize(model, objs, preset="lucid", steps=args.steps, redirected_relu_steps=0, progress=True)
            key = f"{name}{', R/B swapped' if swap else ''}"
            results[key] = stats(v.images)
            print(key, results[key]["mean_rgb"], "blue lean", results[key]["blue_lean"], flush=True)
            slug = "".join(c if c.isalnum() else "_" for c in key.lower()).strip("_")
            save_png(out / f"cast_{slug}.png", imtile(v.images, grid_size=(2, len(v.images) // 2), thumbnail_size=(96, 96)))
        f.write_text(json.dumps({"steps": args.steps, "results": results}, indent=1) + "\n")
    print(f"wrote {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
