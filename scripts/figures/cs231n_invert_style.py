"""Walkthrough: feature inversion at five depths of SqueezeNet and AlexNet, and neural style transfer.

Writes to --out (default docs/cs231n):
  invert_squeezenet.png, invert_alexnet.png  one row per photo: the photo, then its reconstruction from each layer
  style_transfer.png                         content, style, then one result per set of style weights
  results.json                               feature errors, SSIM, losses before/after, seconds per call

Run: python scripts/figures/cs231n_invert_style.py   (needs scikit-image for the style image:
`pip install scikit-image`; the Hubble eXtreme Deep Field, NASA, public domain).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)  # run from a source checkout

import jaxvis  # noqa: E402
from jaxvis.imaging.display import imresize, imtile, save_png  # noqa: E402
from jaxvis.recipes.invert import invert  # noqa: E402
from jaxvis.recipes.style import style_transfer  # noqa: E402

PHOTOS = os.path.join(ROOT, "..", "shared", "images")
LAYERS = {"squeezenet": ["relu_conv1", "fire3-concat", "fire5-concat", "fire7-concat", "fire9-concat"],
          "alexnet": ["relu1", "relu2", "relu3", "relu4", "relu5"]}
TV = [0.05, 0.3, 0.5, 0.5, 0.5]  # λ_TV per depth: shallow codes keep detail, deep ones need the image prior
STYLE_WEIGHTS = [[1, 1, 1, 1], [10, 10, 10, 10], [100, 100, 100, 100]]
MAX_PNG_BYTES = 400_000


def save_small(path: str, tile: np.ndarray) -> None:
    """save_png, downscaled (bilinear, antialiased) in 10 % steps until the file is under 400 KB."""
    scale = 1.0
    while True:
        im = tile if scale == 1.0 else np.clip(imresize(tile.astype(np.float32), scale=scale), 0, 255).astype(np.uint8)
        save_png(path, im)
        if os.path.getsize(path) < MAX_PNG_BYTES or scale < 0.2:
            return
        scale *= 0.9


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "cs231n"))
    ap.add_argument("--photos", nargs="+", default=["chelsea.png", "coffee.png"])
    ap.add_argument("--photos-dir", default=PHOTOS, help="folder of the shared photos (default ../shared/images)")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--style-steps", type=int, default=200)
    ap.add_argument("--style-size", type=int, default=192)
    ap.add_argument("--vgg16", metavar="H5", help="also style transfer on VGG16's convolutions (weights from "
                    "`jaxvis convert lpips --arch vgg16_torchvision --out H5`), 128×128, 96 steps")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    photos = [os.path.join(args.photos_dir, p) for p in args.photos]
    missing = [p for p in photos if not os.path.isfile(p)]
    if missing:
        raise SystemExit(f"photos not found: {missing}; give --photos-dir (the shared images folder)")
    results: dict = {"invert": {}, "style": {}}
    for name, layers in LAYERS.items():
        net = jaxvis.load_model(name)
        # per_layer: one vmapped call per layer, so conv1's units do not run the network to its 5th depth.
        r = invert(net, photos, layers, steps=args.steps, tv_weight=TV, learning_rate=0.03, per_layer=True)
        path = os.path.join(args.out, f"invert_{name}.png")
        save_small(path, r.tile(border_size=2))
        print(path)
        results["invert"][name] = dict(layers=layers, photos=args.photos, feature_error=r.feature_error.tolist(),
                                       ssim=r.ssim.tolist(), seconds=r.seconds, settings=_jsonable(r.settings))
        print(name, "seconds", round(r.seconds, 1))
        for j, l in enumerate(layers):
            print(f"  {l:14s} feature error {r.feature_error[:, j].round(3)}  SSIM {r.ssim[:, j].round(3)}")

    import skimage.data
    net = jaxvis.load_model("squeezenet")
    t0 = time.perf_counter()
    s = style_transfer(net, photos[0], skimage.data.hubble_deep_field(),
                       content_layer="fire2-concat",
                       style_layers=["relu_conv1", "fire3-concat", "fire4-concat", "fire5-concat"],
                       weights=STYLE_WEIGHTS, content_weight=1.0, tv_weight=1.0, steps=args.style_steps,
                       learning_rate=0.03, image_size=args.style_size)
    path = os.path.join(args.out, "style_transfer.png")
    save_small(path, imtile(np.concatenate([s.content[None], s.style[None], s.images]), border_size=2,
                            grid_size=(1, 2 + len(s.images))))
    print(path)
    results["style"] = dict(weights=STYLE_WEIGHTS, start={k: v.tolist() for k, v in s.start_losses.items()},
                            end={k: v.tolist() for k, v in s.losses.items()}, seconds=s.seconds,
                            wall=time.perf_counter() - t0, settings=_jsonable(s.settings),
                            style_image="skimage.data.hubble_deep_field (NASA, public domain)")
    print("style seconds", round(s.seconds, 1), "start", s.start_losses, "end", s.losses)
    if args.vgg16:
        vgg = jaxvis.load_model("vgg16_torchvision", weights=args.vgg16)
        v = style_transfer(vgg, photos[0], skimage.data.hubble_deep_field(), content_layer="features.22",
                           style_layers=["features.1", "features.6", "features.11", "features.20"],
                           weights=[[1] * 4, [10] * 4], steps=96, learning_rate=0.03, image_size=128)
        path = os.path.join(args.out, "style_transfer_vgg16.png")
        save_small(path, imtile(np.concatenate([v.content[None], v.style[None], v.images]), border_size=2,
                                grid_size=(1, 2 + len(v.images))))
        print(path)
        results["style_vgg16"] = dict(start={k: x.tolist() for k, x in v.start_losses.items()},
                                      end={k: x.tolist() for k, x in v.losses.items()}, seconds=v.seconds,
                                      settings=_jsonable(v.settings))
    path = os.path.join(args.out, "results.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    print(path)


def _jsonable(d: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


if __name__ == "__main__":
    main()
