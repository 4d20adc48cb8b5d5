#!/usr/bin/env python
"""MathWorks' "Visualize Features of a Convolutional Neural Network" walkthrough with jaxvis.

MATLAB's example runs `deepDreamImage` on AlexNet: conv1 channels 1:56 with one pyramid
level (tiled at 64×64), conv2 1:30, conv3–conv5 1:30 (tiled at 128×128), fc6 and fc7
channels 1:6 with more iterations, and fc8 classes [9 188 231 563 855 975] titled with
their class names. jaxvis indexes channels from 0, so those classes are 8, 187, 230, 562,
854, 974 (hen, Yorkshire terrier, Shetland sheepdog, fountain, theater curtain, geyser).

AlexNet's convolution weights ship with jaxvis, so conv1–conv5 run on AlexNet itself.
Its fully connected layers need a full checkpoint: the script says which file to convert
and how, and meanwhile runs the same walkthrough on the shipped SqueezeNet (MATLAB's
`squeezenet`), whose conv10 gives the class scores.

    python scripts/figures/alexnet_features.py [--out OUT_DIR] [--quick] [--iterations N] [--levels N]

Writes PNGs into OUT_DIR (default out/alexnet_features).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a source checkout

import jaxvis  # noqa: E402
from jaxvis.imaging.display import imtile, save_png, to_uint8  # noqa: E402
from jaxvis.errors import MissingWeightsError  # noqa: E402
from jaxvis.nets.models import MODELS  # noqa: E402

CLASSES = [8, 187, 230, 562, 854, 974]  # MATLAB's [9 188 231 563 855 975]

# (title, layer, channels, pyramid levels, iterations, thumbnail) — MATLAB's walkthrough on AlexNet.
ALEXNET_CONV = [
    ("conv1", "conv1", range(56), 1, 10, 64),
    ("conv2", "conv2", range(30), 1, 10, 64),
    ("conv3", "conv3", range(30), 1, 10, 128),
    ("conv4", "conv4", range(30), 1, 10, 128),
    ("conv5", "conv5", range(30), 1, 10, 128),
]
ALEXNET_FC = [
    ("fc6", "fc6", range(6), 3, 50, 250),
    ("fc7", "fc7", range(6), 3, 50, 250),
    ("fc8", "fc8", CLASSES, 3, 50, 250),
]
# The same walk on SqueezeNet: its conv layers before the ReLUs (as MATLAB's conv layers), deeper
# fire modules for AlexNet's fc6/fc7, and conv10 (one channel per class) for fc8.
SQUEEZENET = [
    ("conv1", "conv1", range(56), 1, 10, 64),
    ("fire2-expand3x3", "fire2-expand3x3", range(30), 1, 10, 64),
    ("fire4-expand3x3", "fire4-expand3x3", range(30), 1, 10, 128),
    ("fire6-expand3x3", "fire6-expand3x3", range(30), 1, 10, 128),
    ("fire8-expand3x3", "fire8-expand3x3", range(30), 1, 10, 128),
    ("fire9-expand1x1 (for fc6)", "fire9-expand1x1", range(6), 3, 50, 250),
    ("fire9-expand3x3 (for fc7)", "fire9-expand3x3", range(6), 3, 50, 250),
    ("conv10 (for fc8)", "conv10", CLASSES, 3, 50, 250),
]


def titled(images: np.ndarray, titles: list[str], thumb: int) -> list[np.ndarray]:
    """Each image resized to thumb×thumb with its title written in a white band underneath."""
    font = ImageFont.load_default()
    out = []
    for im, title in zip(images, titles):
        pil = Image.fromarray(to_uint8(im)).resize((thumb, thumb), Image.BILINEAR)
        canvas = Image.new("RGB", (thumb, thumb + 18), "white")
        canvas.paste(pil, (0, 0))
        draw = ImageDraw.Draw(canvas)
        w = draw.textlength(title, font=font)
        draw.text(((thumb - w) / 2, thumb + 3), title, fill="black", font=font)
        out.append(np.asarray(canvas))
    return out


def run(net, spec, out_dir: Path, prefix: str, args) -> None:
    for i, (title, layer, channels, levels, iters, thumb) in enumerate(spec):
        levels = args.levels if args.levels is not None else levels
        iters = args.iterations if args.iterations is not None else iters
        if args.quick:
            channels, levels, iters = list(channels)[: 8 if len(channels) > 8 else None], 1, min(iters, 10)
        channels = list(channels)
        print(f"\n{prefix} {title}: channels {channels[0]}…{channels[-1]} ({len(channels)}), "
              f"{levels} pyramid level(s), {iters} iterations", flush=True)
        t = time.time()
        # MATLAB prints the table for the first run only (Verbose=false afterwards).
        images = jaxvis.deep_dream_image(net, layer, channels, pyramid_levels=levels, num_iterations=iters,
                                         verbose=(i == 0), seed=args.seed,
                                         image_size=args.image_size)
        if layer in ("fc8", "conv10"):
            names = [f"{c}: {net.classes[c]}" for c in channels]
            print("  classes: " + ", ".join(names))
            tile = imtile(titled(images, names, thumb), grid_size=(1, len(channels)), border_size=2,
                          background_color=(255, 255, 255))
        else:
            tile = imtile(images, thumbnail_size=(thumb, thumb), border_size=1, background_color=(1.0, 1.0, 1.0))
        path = out_dir / f"{prefix}_{layer}.png"
        save_png(path, tile)
        print(f"  {images.shape[1]}×{images.shape[2]} images in {time.time() - t:.1f} s → {path}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="out/alexnet_features", help="output folder (default out/alexnet_features)")
    p.add_argument("--quick", action="store_true", help="8 channels, 1 level, 10 iterations: a fast check")
    p.add_argument("--iterations", type=int, default=None, help="override iterations per level")
    p.add_argument("--levels", type=int, default=None, help="override pyramid levels")
    p.add_argument("--image-size", type=int, default=None, help="start size (default: the network's input)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="alexnet", choices=("alexnet", "bvlc_alexnet"),
                   help="AlexNet variant: torchvision's (conv weights shipped) or BVLC's = MATLAB's (convert it)")
    p.add_argument("--skip-squeezenet", action="store_true", help="only the AlexNet parts")
    args = p.parse_args(argv)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    try:
        alexnet = jaxvis.load_model(args.model)
    except FileNotFoundError as e:
        print(f"AlexNet ({args.model}) is not available: {e}")
        alexnet = None
    if alexnet is not None:
        run(alexnet, ALEXNET_CONV, out_dir, args.model, args)
        try:
            alexnet.require_weights(["fc8"])
            run(alexnet, ALEXNET_FC, out_dir, args.model, args)
        except MissingWeightsError:
            card = MODELS[args.model]
            print(f"\nAlexNet fc6, fc7 and fc8 need weights jaxvis does not ship ({alexnet.path} holds conv1–conv5).")
            print(f"  How to get them: {card.how_to_get}.")
            print("  Then rerun this script. Running the same walkthrough on SqueezeNet meanwhile.")
    if not args.skip_squeezenet:
        run(jaxvis.load_model("squeezenet"), SQUEEZENET, out_dir, "squeezenet", args)
    print(f"\nDone: PNGs in {out_dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
