"""`jaxvis dream`: deepDreamImage of a layer's channels, saved as one tiled PNG (and optionally one PNG each)."""

from __future__ import annotations

import argparse

from .common import add_model_args, grid, load


def channel_list(text: str) -> list[int]:
    """'0:30' (Python slice, end excluded) | '3' | '1,5,9' | '0:8,20:24' → 0-based channel indices."""
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if ":" in part:
                bits = [int(b) if b else None for b in part.split(":")]
                if len(bits) > 3 or bits[1] is None:
                    raise ValueError
                start, stop = bits[0] or 0, bits[1]
                step = bits[2] if len(bits) == 3 and bits[2] else 1
                out.extend(range(start, stop, step))
            else:
                out.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"channels must look like 0:30 (0-based, end excluded), 5 or 1,5,9; got {text!r}") from None
    if not out:
        raise argparse.ArgumentTypeError(f"{text!r} selects no channels")
    return out


def register(sub) -> None:
    p = sub.add_parser("dream", help="deepDreamImage: images that maximise channels of a layer, tiled into a PNG")
    add_model_args(p)
    p.add_argument("--layer", required=True, help="layer name or 0-based index (e.g. conv5, fire9-expand3x3)")
    p.add_argument("--channels", type=channel_list, default=channel_list("0:16"),
                   help="0-based channels: 0:30 (end excluded), 7 or 1,5,9 (default 0:16)")
    p.add_argument("--pyramid-levels", type=int, default=3, help="MATLAB PyramidLevels (default 3)")
    p.add_argument("--pyramid-scale", type=float, default=1.4, help="MATLAB PyramidScale (default 1.4)")
    p.add_argument("--iterations", type=int, default=10, help="MATLAB NumIterations per level (default 10)")
    p.add_argument("--step-size", type=float, default=None, help="ascent step in pixels (default: the library's)")
    p.add_argument("--jitter", type=int, default=None, help="max random roll per step in pixels (default 0)")
    p.add_argument("--batch-size", type=int, default=None, help="channels per compiled call (default: automatic)")
    p.add_argument("--image-size", type=int, default=None, help="start size in pixels (default: network input)")
    p.add_argument("--initial-image", default=None, help="start from this image file instead of noise")
    p.add_argument("--seed", type=int, default=0, help="seed of the random start and jitter (default 0)")
    p.add_argument("--thumbnail", type=int, default=None, help="tile thumbnail size in pixels (default: full size)")
    p.add_argument("--grid", type=grid, default=None, help="ROWSxCOLS of the tiling (default: roughly square)")
    p.add_argument("--out", default="dream.png", help="tiled output PNG, written atomically (default dream.png)")
    p.add_argument("--save-each", default=None, metavar="DIR",
                   help="also write each channel's image as DIR/<layer>_<channel>.png")
    p.add_argument("--quiet", action="store_true", help="do not print the progress table")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..display import imtile, save_png
    from ..dream import api
    net = load(args)
    layer = int(args.layer) if args.layer.isdigit() else args.layer
    opts = {}
    if args.step_size is not None:
        opts["step_size"] = args.step_size
    if args.jitter is not None:
        opts["jitter"] = args.jitter
    images = api.deep_dream_image(
        net, layer, args.channels, pyramid_levels=args.pyramid_levels, pyramid_scale=args.pyramid_scale,
        num_iterations=args.iterations, output_scaling="linear", verbose=not args.quiet,
        initial_image=args.initial_image, seed=args.seed, batch_size=args.batch_size,
        image_size=args.image_size, **opts)
    name = net.layer_name(layer)
    ts = (args.thumbnail, args.thumbnail) if args.thumbnail else None
    save_png(args.out, imtile(images, grid_size=args.grid, thumbnail_size=ts))
    if args.save_each:
        for c, im in zip(args.channels, images):
            save_png(Path(args.save_each) / f"{name}_{c}.png", im)
    print(f"{name}: {len(args.channels)} channel images of {images.shape[1]}×{images.shape[2]} → {args.out}"
          + (f" (and each in {args.save_each}/)" if args.save_each else ""))
    return 0
