"""`jaxvis filters`: a convolution layer's filters as one PNG (RGB tiles for the first layer, L2-norm maps deeper)."""

from __future__ import annotations

from .args import add_model_args, bounded_int, check_outputs, load, plural


def register(sub) -> None:
    p = sub.add_parser("filters", help="save a convolution layer's filters as a tiled PNG (CS231n's conv1 weights)")
    add_model_args(p)
    p.add_argument("--onnx", default=None, metavar="FILE",
                   help="read the filters of an ONNX graph instead of --model (default: --model)")
    p.add_argument("--layer", default="conv1", help="convolution layer (or the ReLU after it), default conv1")
    p.add_argument("--upsample", type=bounded_int(1, 64, "--upsample"), default=4,
                   help="pixels per weight, nearest neighbour (1..64, default 4)")
    p.add_argument("--gap", type=bounded_int(0, 64, "--gap"), default=1, help="white pixels between tiles (default 1)")
    p.add_argument("--mode", choices=("auto", "rgb", "norm"), default="auto",
                   help="rgb: signed weights as colours (3 input channels); norm: L2 norm over input channels; "
                        "auto (default): rgb where possible")
    p.add_argument("--cmap", default="gray", help="colormap of norm maps (gray, jet, hot; default gray)")
    p.add_argument("--columns", type=bounded_int(1, 256, "--columns"), default=None,
                   help="tiles per row (default: roughly square)")
    p.add_argument("--out", default="filters.png", help="output PNG (written atomically)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..imaging.display import save_png
    from ..maps.filters import filter_image
    check_outputs(args.out)
    if args.onnx:
        from ..nets.onnx import from_onnx
        net = from_onnx(args.onnx)
    else:
        net = load(args)
    f = filter_image(net, args.layer, upsample=args.upsample, gap=args.gap, mode=args.mode, cmap=args.cmap,
                     columns=args.columns)
    save_png(args.out, f.image)
    kh, kw, cin, cout = f.kernel_shape
    what = "RGB, 0.5 + w/(2·max|w|)" if f.mode == "rgb" else "L2 norm over input channels / max norm"
    print(f"{f.layer}: {plural(cout, 'filter')} {kh}×{kw}×{cin} ({what}; scale {f.scale:.4g}) → {args.out}")
    return 0
