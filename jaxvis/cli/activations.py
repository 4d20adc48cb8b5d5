"""`jaxvis activations`: a layer's channels as a mat2gray'd imtile grid PNG, or one channel beside the photo."""

from __future__ import annotations

import argparse

from ..errors import UsageError
from .args import MAX_CHANNEL, add_model_args, bounded_int, check_outputs, grid, load, thumbnail

MAX_TILE = 16384


def tile_size(text: str) -> int:
    """argparse type of --tile: 0 (off) or 16..MAX_TILE pixels."""
    v = bounded_int(0, MAX_TILE, "--tile")(text)
    if 0 < v < 16:
        raise argparse.ArgumentTypeError(f"--tile must be 0 (off) or in 16..{MAX_TILE}, not {v}")
    return v


def register(sub) -> None:
    p = sub.add_parser("activations", help="save a grid of one layer's activation channels (or one channel) as PNG")
    add_model_args(p)
    p.add_argument("--image", required=True, help="image file")
    p.add_argument("--layer", default="conv1", help="layer name (see `jaxvis analyze`), default conv1")
    p.add_argument("--grid", type=grid, default=None,
                   help="ROWSxCOLS, e.g. 8x8, each 1..256 (default: roughly square)")
    p.add_argument("--thumbnail", type=thumbnail, default=None,
                   help="thumbnail size in pixels (1..2048; default: the activation map's own size)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--channel", type=bounded_int(0, MAX_CHANNEL, "--channel"), default=None, metavar="N",
                       help="save channel N (0-based; MATLAB's N+1) resized beside the photo instead of the grid "
                            "(default: the grid)")
    which.add_argument("--strongest", action="store_true",
                       help="save the strongest channel (MATLAB's max(max(max(act)))) beside the photo")
    p.add_argument("--heatmap", action="store_true",
                   help="with --channel/--strongest: blend the channel over the photo as a heat map as well")
    p.add_argument("--method", choices=("bilinear", "nearest"), default="bilinear",
                   help="how a channel is resized to the photo (default bilinear)")
    p.add_argument("--resize", choices=("none", "stretch", "crop"), default="none",
                   help="bring the photo to the network's input size first: 'stretch' as MATLAB's "
                        "imresize(im, inputSize), 'crop' (centre crop), 'none' (default: any size)")
    p.add_argument("--tile", type=tile_size, default=None, metavar="PX",
                   help="compute the layer tile by tile (exact), PX input pixels a tile; 0: the whole image at "
                        "once; default: tiles when the whole-image pass would need over 1 GiB")
    p.add_argument("--out", default="activations.png", help="output PNG (written atomically)")
    p.add_argument("--classify", action="store_true", help="also print the top-5 classes")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..maps.channel_views import (activation_grid, channel_image, heatmap_overlay, side_by_side,
                                    strongest_channel)
    from ..maps.activations import activations, classify
    from ..imaging.display import save_png, to_uint8
    from ..imaging.images import fit_to_size, to_batch
    if args.heatmap and args.channel is None and not args.strongest:
        raise UsageError("--heatmap needs --channel N or --strongest")
    check_outputs(args.out)
    batch, _ = to_batch(args.image)  # a bad image fails before the network is loaded
    net = load(args)
    if args.resize != "none":
        batch = fit_to_size(batch, net.input_size, args.resize)
    photo = to_uint8(batch[0] / 255.0)
    if args.classify:
        for name, p in classify(net, photo):
            print(f"  {p:8.4f}  {name}")
    act = activations(net, photo, args.layer, tile=args.tile)
    top, value = strongest_channel(act)
    h, w, c = act.shape
    if args.channel is None and not args.strongest:
        save_png(args.out, activation_grid(act, args.grid, args.thumbnail))
        print(f"{args.layer}: activations {h}×{w}×{c}, strongest channel {top} (max {value:.4g}) → {args.out}")
        return 0
    k = top if args.strongest else args.channel
    chan = channel_image(act, k, photo.shape[:2], method=args.method)
    tiles = [chan, heatmap_overlay(photo, act[..., k])] if args.heatmap else [chan]
    save_png(args.out, side_by_side(photo, *tiles))
    print(f"{args.layer}: activations {h}×{w}×{c}, channel {k} (max {float(act[..., k].max()):.4g}; "
          f"strongest channel {top}) beside the photo → {args.out}")
    return 0
