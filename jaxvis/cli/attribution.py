"""`jaxvis saliency`, `jaxvis gradcam`, `jaxvis occlusion`: attribution maps saved as PNG overlays."""

from __future__ import annotations

import argparse

from ..errors import AttributionError, TargetError
from .args import add_model_args, bounded_int, check_outputs, load, seed


def _target(args):
    if args.unit:
        layer, _, ch = args.unit.rpartition(":")
        try:
            return (layer, int(ch))
        except ValueError:
            raise TargetError(f"--unit must look like LAYER:CHANNEL (e.g. fire9-concat:12), not {args.unit!r}") from None
    if args.cls is None:
        return None
    return int(args.cls) if args.cls.strip().isdigit() else args.cls


def _pair(text: str):
    """'45' → 45, '45x30' → (45, 30), 'auto' → 'auto'."""
    if text == "auto":
        return text
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N, ROWSxCOLS or auto, not {text!r}") from None
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected N, ROWSxCOLS or auto, not {text!r}")
    return parts[0] if len(parts) == 1 else tuple(parts)


def _common(p, default_out: str) -> None:
    add_model_args(p)
    p.add_argument("--image", required=True, help="image file")
    p.add_argument("--class", dest="cls", default=None,
                   help="class name or 0-based index (default: the predicted class)")
    p.add_argument("--unit", default=None, help="explain a hidden unit instead: LAYER:CHANNEL (default: a class)")
    p.add_argument("--score", choices=("logit", "softmax"), default="logit",
                   help="class score: pre-softmax logit (default) or its softmax, the class probability "
                        "(what MATLAB scores)")
    p.add_argument("--resize", choices=("crop", "stretch", "none"), default="crop",
                   help="bring the photo to the input size: centre crop, stretch (MATLAB's imresize) or none")
    p.add_argument("--batch-size", type=bounded_int(1, 4096, "batch size"), default=None,
                   help="samples per jitted call (bounds memory; default: automatic)")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay weight of the map")
    p.add_argument("--style", choices=("overlay", "map", "rgb"), default="overlay",
                   help="overlay on the photo, the colour map alone, or per-colour attributions (saliency)")
    p.add_argument("--out", default=default_out, help="output PNG (written atomically)")


def register(sub) -> None:
    from ..attribution.gradients import METHODS
    p = sub.add_parser("saliency", help="gradient saliency map (gradient, SmoothGrad, IG, guided backprop, deconvnet)")
    _common(p, "saliency.png")
    p.add_argument("--method", choices=METHODS, default="gradient", help="saliency method")
    p.add_argument("--samples", type=bounded_int(1, 100000, "samples"), default=50, help="SmoothGrad noisy samples (default 50)")
    p.add_argument("--noise", type=float, default=0.15, help="SmoothGrad noise, fraction of the pixel range")
    p.add_argument("--steps", type=bounded_int(1, 100000, "steps"), default=50, help="integrated-gradients steps (default 50)")
    p.add_argument("--seed", type=seed, default=0, help="SmoothGrad noise seed")
    p.set_defaults(func=run_saliency)

    p = sub.add_parser("gradcam", help="Grad-CAM map of a class over an image")
    _common(p, "gradcam.png")
    p.add_argument("--feature-layer", default=None,
                   help="feature map A (MATLAB FeatureLayer; default: the last spatial layer before the "
                        "reduction layer that every path to it goes through)")
    p.add_argument("--reduction-layer", default=None,
                   help="layer whose channel is the score (MATLAB ReductionLayer; default: the class scores, "
                        "or the --unit layer)")
    p.add_argument("--upsampling", choices=("bilinear", "bicubic", "nearest", "none"), default="bilinear",
                   help="how the feature-resolution map is resized to the image (default bilinear)")
    p.set_defaults(func=run_gradcam)

    p = sub.add_parser("occlusion", help="MATLAB-style occlusion sensitivity map")
    _common(p, "occlusion.png")
    p.add_argument("--mask-size", type=_pair, default="auto", help="N or ROWSxCOLS (default auto: 20%% of the input)")
    p.add_argument("--stride", type=_pair, default="auto", help="N or ROWSxCOLS (default auto: 10%% of the input)")
    p.add_argument("--mask-value", default="mean", help="'mean' (per-channel image mean; default) or a number 0..255")
    p.add_argument("--placement", choices=("matlab", "captum"), default="matlab",
                   help="matlab: masks centred on 0, stride, … and the grid resized (bicubic); captum: windows "
                        "from 0, each pixel the mean change of the windows covering it")
    p.set_defaults(func=run_occlusion)


def _report(res, args) -> int:
    res.save(args.out, style=args.style, alpha=args.alpha)
    used = ", ".join(f"{k}={v}" for k, v in res.options.items() if k not in ("alpha", "feature_size"))
    print(f"{res.method}: {res.target}, score {res.score:.4f}; {used} → {args.out}")
    return 0


def run_saliency(args) -> int:
    from ..attribution import saliency
    check_outputs(args.out)  # before the network loads
    net = load(args)
    res = saliency(net, args.image, _target(args), args.method, noise_level=args.noise, num_samples=args.samples,
                   steps=args.steps, score=args.score, batch_size=args.batch_size, seed=args.seed,
                   resize=args.resize)
    return _report(res, args)


def run_gradcam(args) -> int:
    from ..attribution import grad_cam
    check_outputs(args.out)  # before the network loads
    net = load(args)
    res = grad_cam(net, args.image, _target(args), feature_layer=args.feature_layer,
                   reduction_layer=args.reduction_layer, score=args.score, upsampling=args.upsampling,
                   resize=args.resize)
    return _report(res, args)


def run_occlusion(args) -> int:
    from ..attribution import occlusion_sensitivity
    check_outputs(args.out)  # before the network loads
    net = load(args)
    mv = args.mask_value
    if mv not in ("mean", "auto"):
        try:
            mv = float(mv)
        except ValueError:
            raise AttributionError(f"--mask-value must be 'mean' or a number, not {mv!r}") from None
    res = occlusion_sensitivity(net, args.image, _target(args), mask_size=args.mask_size, stride=args.stride,
                                mask_value=mv, placement=args.placement, score=args.score,
                                batch_size=args.batch_size, resize=args.resize)
    return _report(res, args)
