"""`jaxvis analyze`: MATLAB's analyzeNetwork as a text table (and optionally an HTML page)."""

from __future__ import annotations

import argparse

from .args import add_model_args, check_outputs, load


def _size(text: str) -> tuple[int, int]:
    """'454x454' → (454, 454)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
        if 0 < h <= 65536 and 0 < w <= 65536:
            return h, w
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"input size must look like HxW with integers in 1..65536 (e.g. 227x227), "
                                     f"not {text!r}")


def register(sub) -> None:
    p = sub.add_parser("analyze", help="table of layers: activation sizes, learnable shapes and counts")
    add_model_args(p)
    p.add_argument("--input-size", type=_size, default=None, metavar="HxW",
                   help="analyse for this image size, e.g. 454x454 (default: the network's input size)")
    p.add_argument("--onnx", default=None, metavar="FILE",
                   help="analyse an ONNX graph (.onnx, or .h5 from `jaxvis convert onnx`) instead of --model (default: --model)")
    p.add_argument("--out", "--html", dest="out", default=None, metavar="PATH",
                   help="also write a self-contained HTML page here (atomically; default: the table on stdout only)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..nets.analysis import analyze_network
    check_outputs(args.out)
    if args.onnx:
        from ..nets.onnx import from_onnx
        net = from_onnx(args.onnx, input_size=args.input_size)
    else:
        net = load(args)
    report = analyze_network(net, args.input_size)
    print(report)
    if args.out:
        report.save_html(args.out)
        print(f"wrote {args.out}")
    return 0
