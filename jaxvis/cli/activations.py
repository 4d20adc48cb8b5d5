"""`jaxvis activations`: a layer's channels as a mat2gray'd imtile grid PNG."""

from __future__ import annotations

from .common import add_model_args, grid, load


def register(sub) -> None:
    p = sub.add_parser("activations", help="save a grid of one layer's activation channels as PNG")
    add_model_args(p)
    p.add_argument("--image", required=True, help="image file")
    p.add_argument("--layer", default="conv1", help="layer name (see `jaxvis layers`), default conv1")
    p.add_argument("--grid", type=grid, default=None, help="ROWSxCOLS, e.g. 8x8 (default: roughly square)")
    p.add_argument("--thumbnail", type=int, default=None, help="thumbnail size in pixels")
    p.add_argument("--out", default="activations.png", help="output PNG (written atomically)")
    p.add_argument("--classify", action="store_true", help="also print the top-5 classes")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from ..api import activations, classify
    from ..display import imtile, mat2gray, save_png
    net = load(args)
    if args.classify:
        for name, p in classify(net, args.image):
            print(f"  {p:8.4f}  {name}")
    act = activations(net, args.image, args.layer)
    frames = np.moveaxis(mat2gray(act), -1, 0)  # mat2gray over the whole array, as MATLAB
    ts = (args.thumbnail, args.thumbnail) if args.thumbnail else None
    tile = imtile(frames, grid_size=args.grid, thumbnail_size=ts)
    save_png(args.out, tile)
    print(f"{args.layer}: activations {act.shape[0]}×{act.shape[1]}×{act.shape[2]}, "
          f"strongest channel {int(np.argmax(act.max(axis=(0, 1))))} → {args.out}")
    return 0
