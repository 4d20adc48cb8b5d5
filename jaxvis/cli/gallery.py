"""`jaxvis gallery`: a browsable per-unit atlas of a whole network (a static site), as one resumable job."""

from __future__ import annotations

from .args import (SELECTION_FORMS, add_model_args, add_progress_args, bounded_int, check_outputs, load, plural,
                   print_skipped, seed, selection)


def register(sub) -> None:
    from ..engine.presets import PRESETS
    p = sub.add_parser("gallery", help="render every unit of a network (feature visualisations, top dataset patches, "
                       "filters) into a static HTML site; rerun the same command to resume")
    add_model_args(p)
    p.add_argument("--onnx", default=None, metavar="FILE", help="an ONNX graph (.onnx) instead of --model (default: --model)")
    p.add_argument("--input-size", type=bounded_int(8, 4096, "input size"), default=None,
                   help="with --onnx: the input side when the graph does not fix it (default: the graph's)")
    p.add_argument("--layers", default="all",
                   help="comma-separated layer names, or 'all': the layers with units of their own (convolutions, "
                        "concatenations, additions, fully connected; not inputs, ReLUs, pools); default all")
    p.add_argument("--images", default=None, metavar="PHOTOS",
                   help="photos for top patches and mean activations: a folder (class subfolders = labels), a list "
                        "file (.txt) or tar shards (.tar) (default: none, feature images only)")
    p.add_argument("--units", type=selection, default=None,
                   help=f"units of each layer: {SELECTION_FORMS} (default all; indices past a layer's width are "
                        "left out for that layer)")
    p.add_argument("--preset", choices=tuple(PRESETS), default="lucid", help="engine settings (default lucid)")
    p.add_argument("--steps", type=bounded_int(1, 100000, "steps"), default=None, help="steps (default: the preset's)")
    p.add_argument("--image-size", type=bounded_int(16, 1024, "image size"), default=None,
                   help="feature-visualisation side in pixels (default: the network's input)")
    p.add_argument("--diversity", type=bounded_int(0, 16, "diversity"), default=0,
                   help="also render a diversity set of this many images per unit (default 0)")
    p.add_argument("--k", type=bounded_int(1, 100, "k"), default=9, help="top dataset patches per unit (default 9)")
    p.add_argument("--block", type=bounded_int(1, 4096, "block"), default=32, help="units per engine call (default 32)")
    p.add_argument("--seed", type=seed, default=0, help="seed (default 0)")
    p.add_argument("--out", default="site", help="site folder, created (its parent must exist); default site/")
    p.add_argument("--rebuild", action="store_true",
                   help="replace a site made with other settings or with damaged state (default: refuse it)")
    p.add_argument("--plan", action="store_true",
                   help="only print the plan and the time estimate (a short measured warm-up), render nothing")
    add_progress_args(p, "the plan and a progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..site import gallery
    check_outputs(folders=[args.out])  # before the network loads
    if args.onnx:
        from ..nets.onnx import from_onnx
        net = from_onnx(args.onnx, input_size=args.input_size)
    else:
        net = load(args)
    layers = "all" if args.layers.strip() == "all" else [s.strip() for s in args.layers.split(",") if s.strip()]
    if args.plan:
        from ..site.estimate import estimate
        from ..site.plan import plan_layers
        est = estimate(net, plan_layers(net, layers, args.units), preset=args.preset, steps=args.steps,
                       image_size=args.image_size, block=args.block)
        print(est.text())
        return 0
    r = gallery(net, args.out, layers=layers, images=args.images, units=args.units, preset=args.preset,
                steps=args.steps, image_size=args.image_size, diversity=args.diversity, k=args.k, block=args.block,
                seed=args.seed, progress=args.progress, plan=args.progress is not False, rebuild=args.rebuild)
    print(f"{plural(r.rendered, 'unit')} rendered, {r.skipped} already done, in {r.seconds:.0f} s")
    print_skipped(r.skipped_files, None)
    if r.manifest is not None:
        print(f"wrote {r.out / 'index.html'}")
        print(f"wrote {r.out / 'index.json'}")
    return 0
