"""`jaxvis dream-photo`: DeepDream a photo of any size (octaves, detail carried, random roll; tiled gradient)."""

from __future__ import annotations

import argparse

from ..errors import UsageError
from .args import add_model_args, add_progress_args, bounded_int, check_outputs, hw, load, seed


def positive_float(what: str):
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, not {text!r}") from None
        if not (v > 0 and v < float("inf")):
            raise argparse.ArgumentTypeError(f"{what} must be > 0, not {text!r}")
        return v
    parse.__name__ = what
    return parse


def register(sub) -> None:
    p = sub.add_parser("dream-photo", help="DeepDream a photo: the original octave recipe, output the photo's size")
    add_model_args(p)
    p.add_argument("--layer", required=True, help="layer name or 0-based index (e.g. fire5-concat)")
    p.add_argument("--channel", type=bounded_int(0, 65535, "channel"), default=None,
                   help="maximise this 0-based channel's mean (default: the whole layer's L2, DeepDream's)")
    p.add_argument("--image", required=True, help="the photo (PNG/JPEG/…)")
    p.add_argument("--octaves", type=bounded_int(1, 12, "octaves"), default=4, help="octaves (default 4)")
    p.add_argument("--octave-scale", type=positive_float("octave scale"), default=1.4,
                   help="size ratio between octaves, > 1 (default 1.4)")
    p.add_argument("--steps", type=bounded_int(1, 10000, "steps per octave"), default=10,
                   help="steps per octave (default 10)")
    p.add_argument("--step-size", type=positive_float("step size"), default=1.5,
                   help="pixels per step × g/mean|g| (default 1.5)")
    p.add_argument("--jitter", type=bounded_int(0, 512, "jitter"), default=32, help="max random roll in px (32)")
    p.add_argument("--tile", type=bounded_int(16, 8192, "tile"), default=512,
                   help="gradient tile size in px (default 512; memory bounded by one tile)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the rolls (default 0)")
    p.add_argument("--out", default="dream_photo.png", help="output PNG, written atomically")
    add_progress_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..engine import objectives as O
    from ..recipes import dream_photo
    check_outputs(args.out)  # before the network loads
    net = load(args)
    layer = int(args.layer) if args.layer.isdigit() else args.layer
    target = layer if args.channel is None else O.channel(net.layer_name(layer), args.channel)
    if args.octave_scale <= 1:
        raise UsageError(f"--octave-scale must be > 1, got {args.octave_scale}")
    r = dream_photo(net, args.image, target, octaves=args.octaves, octave_scale=args.octave_scale,
                    steps_per_octave=args.steps, step_size=args.step_size, jitter=args.jitter, tile=args.tile,
                    seed=args.seed, progress=args.progress)
    r.save(args.out)
    print(f"{r.settings['layer']}: dreamed {hw(r.image.shape)} photo → {args.out}")
    return 0
