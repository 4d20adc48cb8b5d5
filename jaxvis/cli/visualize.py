"""`jaxvis visualize`: feature visualization (channels, neurons or classes) with a preset; one tiled PNG."""

from __future__ import annotations

from .args import (SELECTION_FORMS, add_model_args, add_progress_args, bounded_int, check_outputs, grid,
                   layer_channels, load, plural, seed, selection, thumbnail)


def register(sub) -> None:
    from ..engine.presets import PRESETS
    p = sub.add_parser("visualize", help="feature visualization of channels, neurons or classes (lucid, MATLAB, "
                       "keras-vis, CS231n presets), tiled into a PNG")
    add_model_args(p)
    p.add_argument("--preset", choices=tuple(PRESETS), default="lucid", help="engine settings (default lucid)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--layer", help="layer whose channels to visualise (with --channels)")
    what.add_argument("--classes", help="comma-separated class names or 0-based indices (pre-softmax scores)")
    p.add_argument("--channels", type=selection, default=list(range(16)),
                   help=f"0-based channels of --layer: {SELECTION_FORMS} (default 0:16)")
    p.add_argument("--neuron", action="store_true", help="the centre neuron of each channel (default: what fits the "
                   "layer: the neuron for a layer linear in the image with a small receptive field, else the mean)")
    p.add_argument("--steps", type=bounded_int(1, 100000, "steps"), default=None, help="steps (default: the preset's)")
    p.add_argument("--image-size", type=bounded_int(16, 2048, "image size"), default=None,
                   help="image side in pixels (default: the network's input)")
    p.add_argument("--batch", type=bounded_int(1, 64, "batch"), default=1, help="images per unit (default 1)")
    p.add_argument("--diversity", type=float, default=0.0,
                   help="weight of lucid's diversity term across each unit's batch (use with --batch > 1; default 0)")
    p.add_argument("--param", choices=("fft", "pixel", "maco"), default=None, help="parameterisation (default: the preset's)")
    p.add_argument("--seed", type=seed, default=0, help="seed of starts and transforms (default 0)")
    p.add_argument("--batch-size", type=bounded_int(1, 4096, "batch size"), default=None,
                   help="units per compiled call (default: automatic)")
    p.add_argument("--thumbnail", type=thumbnail, default=None,
                   help="tile thumbnail size in pixels (default: the images' own size)")
    p.add_argument("--grid", type=grid, default=None, help="ROWSxCOLS of the tiling (default: roughly square)")
    p.add_argument("--out", default="visualize.png", help="tiled output PNG (default visualize.png)")
    p.add_argument("--save-each", default=None, metavar="DIR",
                   help="also write one PNG per image into DIR (created; its parent must exist; default: none)")
    add_progress_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..engine import objectives as O
    from ..engine.visualize import visualize
    check_outputs(args.out, folders=[args.save_each])  # before the network loads: nothing runs for a bad path
    net = load(args)
    if args.layer is not None:
        layer = net.layer_name(int(args.layer) if args.layer.isdigit() else args.layer)
        chans = args.channels if args.channels is not None else list(range(layer_channels(net, layer)))
        objs = [O.neuron(layer, c) for c in chans] if args.neuron else O.unit_objectives(net, layer, chans)
    else:
        names = [c.strip() for c in args.classes.split(",") if c.strip()]
        objs = [O.class_logit(int(c) if c.isdigit() else c) for c in names]
        layer = None
    if args.diversity:
        objs = [o + O.diversity(layer or net.logits_layer, args.diversity) for o in objs]
    v = visualize(net, objs, preset=args.preset, steps=args.steps, image_size=args.image_size, batch=args.batch,
                  param=args.param, seed=args.seed, batch_size=args.batch_size, progress=args.progress)
    ts = (args.thumbnail, args.thumbnail) if args.thumbnail else None
    v.save(args.out, grid_size=args.grid, thumbnail_size=ts)
    written = [args.out] + (v.save_each(args.save_each) if args.save_each else [])
    print(f"{plural(len(v.labels), 'unit')} × {plural(args.batch, 'image')} ({args.preset}): "
          + ", ".join(v.labels[:6]) + (", …" if len(v.labels) > 6 else ""))
    for w in written:
        print(f"wrote {w}")
    return 0
