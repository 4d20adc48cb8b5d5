"""Do class images made on one network get recognised by another? (docs/quality.md)

Makes a class visualisation per preset for 30 ImageNet classes on the shipped SqueezeNet
(DeepScale v1.1, Caffe) and asks an independently trained network — torchvision's SqueezeNet 1.1
from the ONNX-zoo weights in ../shared/testdata — for its top-5. Reports the top-1/top-5 rates per
preset, writes one tiled picture per preset and a JSON of every prediction.

  python scripts/quality/transfer.py --out docs/quality            # all presets
  python scripts/quality/transfer.py --presets lucid --lucid-steps 512 --classes 8
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts" / "data")]  # run from a source checkout; the judge network

from onnx_zoo import judge_network  # noqa: E402

# Thirty recognisable classes across ImageNet (animals, objects, food, vehicles).
CLASSES = [1, 9, 22, 71, 76, 94, 130, 145, 207, 254, 291, 292, 309, 323, 340, 386, 417, 430, 466, 508, 565, 609,
           779, 817, 920, 937, 949, 954, 967, 980]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="lucid,matlab,keras_vis,cs231n")
    ap.add_argument("--classes", type=int, default=len(CLASSES), help="how many of the 30 classes (default all)")
    ap.add_argument("--lucid-steps", type=int, default=None, help="steps of the lucid preset (default its 512)")
    ap.add_argument("--size", type=int, default=None, help="image size (default the network's 227)")
    ap.add_argument("--testdata", default=str(ROOT.parent / "shared" / "testdata" / "squeezenet1_1_onnxzoo"))
    ap.add_argument("--out", default="docs/quality", help="folder for the tiles and results.json")
    args = ap.parse_args(argv)
    import numpy as np

    import jaxvis
    from jaxvis.imaging.display import imtile, save_png
    from jaxvis.engine import objectives as O

    testdata = Path(args.testdata)
    if not (testdata / "weights").is_dir():
        print(f"needs the ONNX-zoo SqueezeNet 1.1 weights in {testdata}/weights (../shared/testdata)", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net = jaxvis.load_model("squeezenet")
    judge = judge_network(testdata)
    classes = CLASSES[: args.classes]
    results = {}
    for preset in args.presets.split(","):
        kw = dict(preset=preset, image_size=args.size, progress=True)
        if preset == "lucid" and args.lucid_steps:
            kw["steps"] = args.lucid_steps
        t = time.perf_counter()
        v = jaxvis.visualize(net, [O.class_logit(c) for c in classes], **kw)
        secs = time.perf_counter() - t
        preds = jaxvis.classify(judge, list(v.images), top=5, resize="stretch")
        own = jaxvis.classify(net, list(v.images), top=5, resize="stretch")
        top1 = [p[0][0] == net.classes[c] for p, c in zip(preds, classes)]
        top5 = [net.classes[c] in [n for n, _ in p] for p, c in zip(preds, classes)]
        own1 = [p[0][0] == net.classes[c] for p, c in zip(own, classes)]
        results[preset] = {"top1": float(np.mean(top1)), "top5": float(np.mean(top5)), "own_top1": float(np.mean(own1)),
                           "seconds": secs, "settings": v.settings,
                           "predictions": {net.classes[c]: p for c, p in zip(classes, preds)}}
        save_png(out / f"{preset}.png", imtile(v.images, thumbnail_size=(112, 112)))
        print(f"wrote {out / f'{preset}.png'}")
        print(f"{preset}: independent top-1 {np.mean(top1):.0%}, top-5 {np.mean(top5):.0%} "
              f"(own network top-1 {np.mean(own1):.0%}) over {len(classes)} classes, {secs:.0f} s", flush=True)
        (out / "results.json").write_text(json.dumps({"classes": [net.classes[c] for c in classes],
                                                      "results": results}, indent=1))
        print(f"wrote {out / 'results.json'}")
    print("\n| preset | steps | independent top-1 | independent top-5 | own top-1 | time |")
    print("|---|---|---|---|---|---|")
    for p, r in results.items():
        print(f"| {p} | {r['settings']['steps']} × {len(r['settings']['levels'])} level(s) | {r['top1']:.0%} | "
              f"{r['top5']:.0%} | {r['own_top1']:.0%} | {r['seconds']:.0f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
