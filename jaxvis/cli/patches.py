"""`jaxvis patches`: top-k dataset patches per unit over a folder of photos, written as an HTML page of PNGs."""

from __future__ import annotations

from .args import (SELECTION_FORMS, add_model_args, add_progress_args, bounded_int, check_outputs, load, plural,
                   print_skipped, selection, thumbnail)


def register(sub) -> None:
    p = sub.add_parser("patches", help="the top-k image patches that excite each unit most, over a folder of photos "
                       "(crops beside their guided-backprop reconstructions), as HTML")
    add_model_args(p)
    p.add_argument("--layers", required=True, help="comma-separated layer names, or 'all'")
    p.add_argument("--images", required=True,
                   help="photos: a folder (searched recursively; .jpg .jpeg .png .webp; class subfolders = labels), "
                        "a list file (.txt: 'path [label]' per line) or tar shards ('shards-{000..009}.tar')")
    p.add_argument("--k", type=bounded_int(1, 1000, "k"), default=9, help="hits per unit (1..1000, default 9)")
    p.add_argument("--units", type=selection, default=None,
                   help=f"units to write per layer: {SELECTION_FORMS} (default all; each hit costs one backward pass)")
    p.add_argument("--relu", choices=("guided", "deconvnet"), default="guided",
                   help="backward rule of the reconstructions (default guided backprop)")
    p.add_argument("--no-reconstruction", action="store_true", help="crops only (no backward passes)")
    p.add_argument("--batch-size", type=bounded_int(1, 4096, "batch size"), default=None,
                   help="images per step (default 32)")
    p.add_argument("--resize", choices=("crop", "stretch"), default="crop",
                   help="fit photos to the input: centre crop (default) or stretch")
    p.add_argument("--cache", default=None, metavar="FILE.npz",
                   help="resumable state: rerun the same command after an interrupt to continue (default: none)")
    p.add_argument("--rebuild", action="store_true",
                   help="recompute a --cache written for other settings or damaged (default: refuse it)")
    p.add_argument("--context", type=bounded_int(0, 4096, "context"), default=32,
                   help="smallest crop side in input pixels (0..4096, default 32): smaller receptive fields are "
                        "shown with the photo around them, outlined in red; 0 crops fields exactly")
    p.add_argument("--thumbnail", type=thumbnail, default=64, help="pixels per crop side in the PNGs (default 64)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder (index.html + one PNG per unit), created; its parent must exist")
    add_progress_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..patches import top_patches
    check_outputs(args.cache, folders=[args.out])  # before the network loads
    net = load(args)
    layers = "all" if args.layers.strip() == "all" else [l.strip() for l in args.layers.split(",") if l.strip()]
    r = top_patches(net, args.images, layers, k=args.k, batch_size=args.batch_size, cache=args.cache,
                    rebuild=args.rebuild, progress=args.progress, resize=args.resize, relu=args.relu)
    print(f"{plural(r.n_images, 'image')}, {len(r.skipped)} skipped; top-{r.k} of "
          f"{plural(sum(v.shape[0] for v in r.value.values()), 'unit')} in {', '.join(r.layers)}")
    if r.classes:
        print(f"{len(r.classes)} classes: {', '.join(r.classes[:10])}{' …' if len(r.classes) > 10 else ''}")
    print_skipped(r.skipped, f"{args.out}/skipped.txt")
    written = r.save_html(args.out, units=args.units, reconstruction=not args.no_reconstruction,
                          thumbnail=args.thumbnail, context=args.context)
    for w in written:
        print(f"wrote {w}")
    return 0
