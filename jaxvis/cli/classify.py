"""`jaxvis classify`: top-k classes of images."""

from __future__ import annotations

from .args import add_model_args, bounded_int, load


def register(sub) -> None:
    p = sub.add_parser("classify", help="top-k ImageNet classes of images")
    add_model_args(p)
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--top", type=bounded_int(1, 1000, "--top"), default=5, help="how many classes (1..1000, default 5)")
    p.add_argument("--resize", choices=("crop", "stretch", "none"), default="crop",
                   help="bring each photo to the input size: centre crop, stretch (MATLAB's imresize) or none")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..maps.activations import classify
    net = load(args)
    for path in args.images:
        top = classify(net, path, top=args.top, resize=args.resize)  # an error names the file: no name printed first
        print(path)
        for name, p in top:
            print(f"  {p:8.4f}  {name}")
    return 0
