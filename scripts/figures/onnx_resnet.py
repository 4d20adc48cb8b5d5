"""Walkthrough: bring your own network. An ONNX image classifier (e.g. torchvision's ResNet-18) through jaxvis's toolbox.

  python scripts/figures/onnx_resnet.py --onnx resnet18.onnx      # your file (torchvision preprocessing)
  python scripts/figures/onnx_resnet.py                           # no file: see below
  python scripts/figures/onnx_resnet.py --random-resnet18         # the ResNet-18 graph, RANDOM weights

A resnet18.onnx with real ImageNet weights, made where torchvision and the internet are available:

  import torch, torchvision
  m = torchvision.models.resnet18(weights="IMAGENET1K_V1").eval()
  torch.onnx.export(m, torch.zeros(1, 3, 224, 224), "resnet18.onnx", dynamo=False,
                    input_names=["image"], output_names=["logits"])

No real ResNet-18 weights can be installed here (no PyPI package ships them; torchvision and timm download
theirs at run time). So without --onnx the script builds a real-weight ONNX graph itself: jaxvis's shipped
SqueezeNet 1.1 (DeepScale's ImageNet weights) exported by torch.onnx.export, with the Caffe mean subtraction
inside the graph. --random-resnet18 exports torchvision's ResNet-18 architecture with seeded random weights
(tests/test_onnx_archs.py): it shows the pipeline runs on that graph, but its maps and class images are those of
an untrained network, and the figure's title says so.

Steps: `jaxvis.from_onnx` (layer table printed), classify the example photos from the logits layer, then per
photo and its top class: SmoothGrad saliency, Grad-CAM at the default feature layer (printed: the last layer
that every path to the logits goes through), occlusion sensitivity, and a class-model image
(`jaxvis.visualize`, lucid preset). One figure: --figure (default <out>/onnx_resnet.png).
Needs onnx (pip install 'jaxvis[onnx]'); building a graph (no --onnx) needs torch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a source checkout

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import jaxvis
from jaxvis.nets.classes import imagenet_classes
from jaxvis.imaging.display import to_uint8
from jaxvis.imaging.fileio import atomic_path
from jaxvis.imaging.images import read_image

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ROOT / "examples" / "images"


def export_shipped_squeezenet(path: Path) -> int:
    """jaxvis's shipped SqueezeNet (real weights) → ONNX via its torch port; returns the input size."""
    import torch
    sys.path.insert(0, str(ROOT / "tests"))
    from torch_reference import squeezenet_from_jaxvis
    sq = jaxvis.load_model("squeezenet")
    m = squeezenet_from_jaxvis(sq.params)  # takes 0..255 RGB pixels; subtracts the Caffe mean itself
    size = sq.input_size[0]
    torch.onnx.export(m, torch.zeros(1, 3, size, size), str(path), dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["logits"])
    return size


def export_random_resnet18(path: Path, size: int = 224) -> None:
    import torch
    sys.path.insert(0, str(ROOT / "tests"))
    from test_onnx_archs import seeded
    torch.onnx.export(seeded("resnet18"), torch.zeros(1, 3, size, size), str(path), dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["logits"])


def panel(image, title: str, thumb: int, font) -> Image.Image:
    pil = Image.fromarray(to_uint8(image)).resize((thumb, thumb), Image.BILINEAR)
    canvas = Image.new("RGB", (thumb, thumb + 16), "white")
    canvas.paste(pil, (0, 0))
    draw = ImageDraw.Draw(canvas)
    title = title if draw.textlength(title, font=font) <= thumb else title[:max(1, thumb // 6 - 1)] + "…"
    draw.text(((thumb - draw.textlength(title, font=font)) / 2, thumb + 2), title, fill="black", font=font)
    return canvas


def figure(rows: list[list[Image.Image]], heading: list[str], font) -> Image.Image:
    w, h = rows[0][0].size
    gap, top = 4, 6 + 14 * len(heading)
    fig = Image.new("RGB", (len(rows[0]) * (w + gap) + gap, top + len(rows) * (h + gap) + gap), "white")
    draw = ImageDraw.Draw(fig)
    for i, line in enumerate(heading):
        draw.text((gap + 2, 4 + 14 * i), line, fill="black", font=font)
    for r, row in enumerate(rows):
        for c, p in enumerate(row):
            fig.paste(p, (gap + c * (w + gap), top + r * (h + gap)))
    return fig


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--onnx", type=Path, default=None, help="your .onnx image classifier (e.g. torchvision resnet18)")
    src.add_argument("--random-resnet18", action="store_true",
                     help="export torchvision's ResNet-18 architecture with seeded RANDOM weights (pipeline check only)")
    p.add_argument("--preprocess", default="torchvision",
                   help="for --onnx: 'torchvision' (default), 'caffe', 'unit' or 'none' (see jaxvis.from_onnx)")
    p.add_argument("--size", type=int, default=None, help="input size for graphs with a dynamic spatial size")
    p.add_argument("--steps", type=int, default=128, help="class-model visualisation steps (lucid preset)")
    p.add_argument("--thumb", type=int, default=176, help="panel size in the figure")
    p.add_argument("--out", type=Path, default=Path("out/onnx_resnet"))
    p.add_argument("--figure", type=Path, default=None, help="figure path (default <out>/onnx_resnet.png)")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)

    if a.onnx is not None:
        path, preprocess = a.onnx, a.preprocess
        what = f"{a.onnx.name} (your file)"
    elif a.random_resnet18:
        path, preprocess = a.out / "resnet18_random.onnx", "torchvision"
        export_random_resnet18(path)
        what = "ResNet-18 (torchvision architecture) with RANDOM weights: maps and class images of an UNTRAINED net"
    else:
        path, preprocess = a.out / "squeezenet1_1_shipped.onnx", "none"
        export_shipped_squeezenet(path)
        what = "SqueezeNet 1.1 (jaxvis's shipped ImageNet weights) exported to ONNX by torch"
    print(f"graph: {path}")

    net = jaxvis.from_onnx(path, preprocess=preprocess, input_size=a.size)
    k = int(np.prod(net.plan.recs[net.plan.layers[net.logits_layer]].shape[1:])) if net.logits_layer else 0
    if k == 1000 and not a.random_resnet18:  # an untrained net's "classes" would only mislead: indices
        net = jaxvis.from_onnx(path, preprocess=preprocess, input_size=a.size, classes=imagenet_classes())
    print(net.table())
    print(f"logits layer: {net.logits_layer} ({k} classes)")
    if not net.logits_layer:
        print("this graph has no class-score output; the walkthrough needs a classifier")
        return 2

    if not a.onnx and not a.random_resnet18:  # the round trip changed nothing: same scores as the shipped model
        sq = jaxvis.load_model("squeezenet")
        img = read_image(PHOTOS / "coffee.png")
        ref = jaxvis.activations(sq, img, sq.logits_layer).reshape(-1)
        got = jaxvis.activations(net, img, net.logits_layer).reshape(-1)
        print(f"imported vs shipped model, logits on coffee.png: max |diff| {np.abs(got - ref).max():.2e} "
              f"of {np.abs(ref).max():.1f}")

    name = (lambda c: net.classes[c]) if net.classes else (lambda c: f"class {c}")
    photos = [PHOTOS / f for f in ("chelsea.png", "coffee.png", "grace_hopper.jpg")]
    font = ImageFont.load_default()
    rows, tops, feature_layer = [], [], None
    for f in photos:
        img = read_image(f)
        sal = jaxvis.saliency(net, img, None, method="smoothgrad", num_samples=16)  # None: the predicted class
        cls = sal.target.class_index
        logits = jaxvis.activations(net, sal.image, net.logits_layer).reshape(-1).astype(np.float64)
        prob = np.exp(logits - logits.max())
        prob /= prob.sum()
        cam = jaxvis.grad_cam(net, sal.image, cls, resize="none")
        occ = jaxvis.occlusion_sensitivity(net, sal.image, cls, resize="none")
        feature_layer = cam.options["feature_layer"]
        print(f"{f.name}: {name(cls)} p={prob[cls]:.2f}; Grad-CAM at {feature_layer!r} "
              f"({cam.raw.shape[0]}×{cam.raw.shape[1]}), occlusion grid {occ.raw.shape}")
        tops.append(cls)
        t = a.thumb
        rows.append([panel(sal.image.astype(np.uint8), f"{name(cls)} {prob[cls]:.2f}", t, font),
                     panel(sal.display_map(), "SmoothGrad |grad|", t, font),
                     panel(cam.overlay(), "Grad-CAM", t, font),
                     panel(occ.overlay(), "occlusion", t, font)])
    objs = [jaxvis.objectives.class_logit(c) for c in tops]
    vis = jaxvis.visualize(net, objs, preset="lucid", steps=a.steps, progress=False)
    for row, im, c in zip(rows, vis.images, tops):
        row.append(panel(im, f"class model: {name(c)}", a.thumb, font))

    heading = [what, f"jaxvis.from_onnx('{path.name}'): {len(net.layer_names)} layers; Grad-CAM feature layer "
               f"{feature_layer!r}; class models: visualize(lucid, {a.steps} steps)"]
    fig = figure(rows, heading, font)
    out = a.figure or a.out / "onnx_resnet.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:  # 256-colour palette: heat maps over photos stay well under 400 KB
        fig.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(tmp, format="PNG",
                                                                                          optimize=True)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
