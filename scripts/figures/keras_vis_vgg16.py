"""The keras-vis VGG16 examples, on jaxvis's feature-visualization engine (`preset="keras_vis"`).

  python scripts/figures/keras_vis_vgg16.py [--weights vgg16.h5] [--out docs/keras_vis]
                                            [--size 224] [--steps 200] [--filters 8]

keras-vis's VGG16 notebooks, figure by figure (`docs/keras_vis.md` shows the results):

1. `dense_ouzel.png`: activation maximisation of `predictions` class 20 (water ouzel) with the
   softmax swapped for a linear activation — jaxvis's `predictions:logits` (`objectives.class_logit`).
2. `dense_random_classes.png`: the same for a set of random classes, one batched call.
3. `block1_conv2_all64.png`: all 64 filters of `block1_conv2` in one batched call.
4. `filters_<layer>[_plain].png`: filters of block2_conv2, block3_conv3, block4_conv3, block5_conv3
   with the preset's jitter + total variation / L1 regularisers, and without them (`_plain`).
5. `saliency_<photo>.png`: vanilla, guided and rectified (deconvnet) saliency, and Grad-CAM
   (block5_conv3), of the predicted class on `predictions:logits`, for two photos.

Weights: `--weights` or whatever `load_model("vgg16")` finds. With the convolution-only weights
(`jaxvis convert lpips --arch vgg16`) the filter figures are made and the dense/saliency figures
are skipped with the reason; full weights (`jaxvis convert keras ... --arch vgg16`) make everything.
keras-vis's own settings are 224×224 and 200 steps (`--size`/`--steps` trade quality for time
on a CPU: VGG16 to block5_conv3 is ~61 GFLOP per image-step).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import jaxvis  # noqa: E402
from jaxvis import objectives as O  # noqa: E402
from jaxvis.imaging.display import apply_colormap, imtile, mat2gray, overlay, save_png, to_uint8  # noqa: E402
from jaxvis.engine import presets  # noqa: E402

PHOTOS = ("coffee.png", "chelsea.png")  # examples/images, see its SOURCES.md
FILTER_LAYERS = ("block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--out", default=str(ROOT / "docs" / "keras_vis"))
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--filters", type=int, default=8, help="filters per layer in figure 4")
    ap.add_argument("--classes", type=int, default=8, help="random classes in figure 2")
    ap.add_argument("--only", default=None, help="comma-separated figure numbers to make (default all)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net = jaxvis.load_model("vgg16", weights=args.weights)
    try:
        net.require_weights(["predictions:logits"])
        full = True
    except jaxvis.MissingWeightsError as e:
        full, why = False, str(e).split(". To get them")[0]
    only = set(args.only.split(",")) if args.only else None
    want = lambda k: only is None or str(k) in only  # noqa: E731
    kw = dict(preset="keras_vis", image_size=args.size, steps=args.steps, progress=False)
    plain = dataclasses.replace(presets.get("keras_vis"), transforms="none", regularizers=())
    report, skipped = [], []

    def run(name, objective, what, **extra):
        t = time.perf_counter()
        vis = jaxvis.visualize(net, objective, **{**kw, **extra})
        path = out / f"{name}.png"
        vis.save(path)
        dt = time.perf_counter() - t
        report.append((name, what, vis.labels, dt))
        print(f"{path}: {what} ({len(vis.labels)} images, {dt:.0f} s)")

    print(f"{net!r}; {'full weights' if full else 'convolutions only'}; {args.size}×{args.size}, {args.steps} steps")
    if want(1) or want(2):
        if not full:
            skipped.append(("1, 2 (dense-layer visualisation)", why))
        else:
            if want(1):
                run("dense_ouzel", O.class_logit(20), "predictions class 20 (water ouzel), softmax → linear")
            if want(2):
                cls = sorted(np.random.default_rng(0).choice(1000, args.classes, replace=False).tolist())
                run("dense_random_classes", [O.class_logit(int(c)) for c in cls],
                    f"predictions classes {cls}, softmax → linear")
    if want(3):
        run("block1_conv2_all64", O.units("block1_conv2", range(64)), "all 64 filters of block1_conv2, one call")
    if want(4):
        for layer in FILTER_LAYERS:
            objs = O.units(layer, range(args.filters))
            run(f"filters_{layer}", objs, f"filters 0–{args.filters - 1} of {layer}, jitter + TV/L1")
            run(f"filters_{layer}_plain", objs, f"filters 0–{args.filters - 1} of {layer}, no jitter, no TV/L1",
                preset=plain)
    if want(5):
        if not full:
            skipped.append(("5 (saliency and Grad-CAM on predictions)", why))
        else:
            for photo in PHOTOS:
                t = time.perf_counter()
                img = jaxvis.imaging.images.read_image(ROOT / "examples" / "images" / photo)
                maps = [jaxvis.saliency(net, img, method=m) for m in ("gradient", "guided_backprop", "deconvnet")]
                maps.append(jaxvis.grad_cam(net, img))
                # keras-vis shows saliency as a jet heat map and Grad-CAM over the photo
                tiles = [maps[0].image / 255] + [apply_colormap(mat2gray(a.map), "jet") for a in maps[:3]]
                tiles.append(overlay(maps[3].image / 255, maps[3].map))
                name = f"saliency_{Path(photo).stem}"
                save_png(out / f"{name}.png", imtile(np.stack([to_uint8(x) for x in tiles]), grid_size=(1, 5)))
                print(f"wrote {out / f'{name}.png'}")
                what = (f"{photo}: class {maps[0].target.class_name!r}; photo, vanilla, guided, rectified saliency, "
                        f"Grad-CAM ({maps[3].options.get('layer')})")
                report.append((name, what, [], time.perf_counter() - t))
                print(f"{out / name}.png: {what}")
    for figs, why in skipped:
        print(f"skipped figure(s) {figs}: {why}")
    write_md(out, net, args, report, skipped, full)
    return 0


def write_md(out: Path, net, args, report, skipped, full) -> None:
    rel = out.name
    lines = ["# The keras-vis VGG16 examples in jaxvis", "",
             f"Made by `scripts/figures/keras_vis_vgg16.py` (`jaxvis.visualize(..., preset=\"keras_vis\")`) on "
             f"`{net.name}` ({'full weights' if full else 'convolution-only weights: ' + str(net.meta.get('source'))}), "
             f"{args.size}×{args.size}, {args.steps} steps per image.", "",
             f"Command: `python scripts/figures/keras_vis_vgg16.py --size {args.size} --steps {args.steps} "
             f"--filters {args.filters}`. keras-vis's own "
             "settings are 224×224 and 200 steps (the defaults of the script); the figures here were made with "
             "fewer pixels and steps on a shared 2-core CPU, so they are less developed than keras-vis's. "
             "Times are wall-clock on that machine, compilation included.", ""]
    for name, what, labels, dt in report:
        lines += [f"## {name}", "", f"{what} ({dt:.0f} s).", "", f"![{name}]({rel}/{name}.png)", ""]
    if skipped:
        lines += ["## Skipped", ""] + [f"- figure(s) {f}: {w}" for f, w in skipped] + [""]
    (out.parent / f"{rel}.md").write_text("\n".join(lines))
    print(f"wrote {out.parent / f'{rel}.md'}")


if __name__ == "__main__":
    sys.exit(main())
