"""`jaxvis dream`: deepDreamImage of a layer's channels, saved as one tiled PNG (and optionally one PNG each)."""

from __future__ import annotations

import argparse

from .args import (SELECTION_FORMS, add_model_args, bounded_int, channel_list, check_outputs, grid, hw, layer_channels,
                   load, plural, seed, selection, thumbnail)

__all__ = ["register", "run", "channel_list"]


def pixel_range(text: str) -> tuple[float, float]:
    """'0,255' → (0.0, 255.0): the pixel range to clip to after each step."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--pixel-range must look like LO,HI (e.g. 0,255), not {text!r}") from None
    if not lo < hi:
        raise argparse.ArgumentTypeError(f"--pixel-range needs LO < HI, got {text!r}")
    return lo, hi


def register(sub) -> None:
    p = sub.add_parser("dream", help="deepDreamImage: images that maximise channels of a layer, tiled into a PNG")
    add_model_args(p)
    p.add_argument("--layer", required=True, help="layer name or 0-based index (e.g. conv5, fire9-expand3x3)")
    p.add_argument("--channels", type=selection, default=list(range(16)),
                   help=f"0-based channels: {SELECTION_FORMS} (default 0:16)")
    p.add_argument("--pyramid-levels", type=bounded_int(1, 8, "pyramid levels"), default=3,
                   help="MATLAB PyramidLevels (default 3)")
    p.add_argument("--pyramid-scale", type=float, default=1.4, help="MATLAB PyramidScale (default 1.4)")
    p.add_argument("--iterations", type=bounded_int(1, 100000, "iterations"), default=10,
                   help="MATLAB NumIterations per level (default 10)")
    p.add_argument("--step-size", type=float, default=None, help="ascent step in pixels (default: the library's)")
    p.add_argument("--jitter", type=bounded_int(0, 512, "jitter"), default=None,
                   help="max random roll per step in pixels (default 0)")
    p.add_argument("--batch-size", type=bounded_int(1, 4096, "batch size"), default=None,
                   help="channels per compiled call (default: automatic)")
    p.add_argument("--image-size", type=bounded_int(8, 4096, "image size"), default=None,
                   help="start size in pixels (default: network input)")
    p.add_argument("--start-image", "--initial-image", dest="start_image", default=None,
                   help="start from this image file instead of noise (MATLAB InitialImage; default: noise)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the random start and jitter (default 0)")
    p.add_argument("--pixel-range", type=pixel_range, default=None,
                   help="LO,HI: clip pixels (0..255 scale) after every step; default: unclipped ascent")
    p.add_argument("--output-scaling", choices=("linear", "percentile"), default="linear",
                   help="MATLAB OutputScaling 'linear' (each image min–max; default) or 'percentile' (0.5–99.5 %%)")
    p.add_argument("--no-seamless", action="store_true",
                   help="MATLAB's plain objective (shallow layers then get bright frames)")
    p.add_argument("--thumbnail", type=thumbnail, default=None, help="tile thumbnail size in pixels (default: full)")
    p.add_argument("--grid", type=grid, default=None, help="ROWSxCOLS of the tiling (default: roughly square)")
    p.add_argument("--out", default="dream.png", help="tiled output PNG, written atomically (default dream.png)")
    p.add_argument("--save-each", default=None, metavar="DIR",
                   help="also write each channel's image as DIR/<layer>_<channel>.png (DIR is created; its parent must "
                        "exist; default: none)")
    p.add_argument("--quiet", action="store_true", help="do not print MATLAB's progress table")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..dream import matlab as api
    from ..imaging.display import imtile, save_png
    from ..imaging.fileio import make_folder
    check_outputs(args.out, folders=[args.save_each])  # every output checked before any work
    net = load(args)
    layer = int(args.layer) if args.layer.isdigit() else args.layer
    name = net.layer_name(layer)
    chans = args.channels if args.channels is not None else list(range(layer_channels(net, name)))
    each = [Path(args.save_each) / f"{name}_{c}.png" for c in chans] if args.save_each else []
    check_outputs(args.out, *each, folders=[args.save_each])  # the file names need the layer's name
    opts = {k: v for k, v in (("step_size", args.step_size), ("jitter", args.jitter)) if v is not None}
    images = api.deep_dream_image(
        net, layer, chans, pyramid_levels=args.pyramid_levels, pyramid_scale=args.pyramid_scale,
        num_iterations=args.iterations, output_scaling=args.output_scaling, verbose=not args.quiet,
        initial_image=args.start_image, seed=args.seed, batch_size=args.batch_size, image_size=args.image_size,
        pixel_range=args.pixel_range, seamless=not args.no_seamless, progress=False, **opts)
    ts = (args.thumbnail, args.thumbnail) if args.thumbnail else None
    save_png(args.out, imtile(images, grid_size=args.grid, thumbnail_size=ts))
    if each:
        make_folder(args.save_each)
    for path, im in zip(each, images):
        save_png(path, im)
    print(f"{name}: {plural(len(chans), 'channel image')} of {hw(images.shape[1:3])} → {args.out}")
    for path in each:
        print(f"wrote {path}")
    return 0
