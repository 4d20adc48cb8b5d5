"""A non-classifier through jaxvis: a dense class-map network, imported from ONNX with an NHWC input.

  python scripts/figures/onnx_dense.py [--out docs/images/onnx_dense.png]

The graph: jaxvis's shipped SqueezeNet 1.1 (DeepScale's ImageNet weights) without its global pooling, so its
output is a class-score *map* (conv10's 1000 channels at every position, bilinearly upsampled to the input
size: a segmentation-style N×1000×H×W output, as fully convolutional networks compute it), exported by
torch.onnx.export with an N×H×W×C input that the graph transposes to NCHW (as tf2onnx and Keras write
it). jaxvis imports it, recognises the channels-last input (the user feeds N×H×W×C) and, since the output
is not N×K class scores, gives it no class-score layer: `classify` says why and names `logits=`. The tools
that need no classes work on any tensor: for each photo and the class whose map is largest, the figure
shows the network's own class map for that class (activations of the output), Grad-CAM of that map's
mean at fire9, and the gradient saliency of the same scalar.
Needs onnx and torch (test extra).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # a source checkout; the torch port of the shipped SqueezeNet

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

import jaxvis  # noqa: E402
from jaxvis.errors import NetworkError  # noqa: E402
from jaxvis.imaging.display import to_uint8  # noqa: E402
from jaxvis.imaging.fileio import atomic_path  # noqa: E402
from jaxvis.imaging.images import read_image  # noqa: E402
from jaxvis.nets.classes import imagenet_classes  # noqa: E402

PHOTOS = ("chelsea.png", "coffee.png", "grace_hopper.jpg")
CELL = 227


def export_dense(path: Path) -> None:
    """The shipped SqueezeNet as a dense class-map network with an NHWC input, written to `path`."""
    import torch
    import torch.nn.functional as F
    from torch_reference import squeezenet_from_jaxvis

    sq = squeezenet_from_jaxvis(jaxvis.load_model("squeezenet").params)

    class Dense(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.sq = sq

        def forward(self, x):  # N×H×W×3 pixels 0..255
            x = x.permute(0, 3, 1, 2) - self.sq.mean
            net = self.sq.net
            maps = net.classifier[2](net.classifier[1](net.features(x)))  # relu(conv10): 1000 class maps
            return F.interpolate(maps, size=x.shape[2:], mode="bilinear", align_corners=False)

    torch.onnx.export(Dense().eval(), torch.zeros(1, CELL, CELL, 3), str(path), dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["class_maps"])


def heat(m: np.ndarray, top: float = 100.0) -> np.ndarray:
    """A non-negative map as an inferno-like RGB image (0 black … the `top` percentile yellow-white)."""
    m = np.asarray(m, np.float64)
    t = np.clip(m / (np.percentile(m, top) or 1.0), 0, 1)
    r, g, b = np.clip(1.5 * t, 0, 1), np.clip(1.5 * t - 0.5, 0, 1), np.clip(3 * t - 2, 0, 1) * 0.8
    return (np.stack([r, g, b], -1) * 255).round().astype(np.uint8)


def over(photo: np.ndarray, m: np.ndarray) -> np.ndarray:
    im = Image.fromarray(heat(m)).resize(photo.shape[1::-1], Image.BILINEAR)
    return (0.45 * photo + 0.55 * np.asarray(im, np.float64)).round().astype(np.uint8)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "onnx_dense.png")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "squeezenet_dense.onnx"
        export_dense(path)
        net = jaxvis.from_onnx(path, name="squeezenet_dense")
    out = net.layer_names[-1]
    print(net)
    print(f"input layout: channels last ({net.plan.recs[net.plan.input_name].shape}); output {out!r} "
          f"{net.graph()[out].shape}; class-score layer: {net.logits_layer}")
    try:
        jaxvis.classify(net, read_image(ROOT / "examples" / "images" / PHOTOS[0]))
    except NetworkError as e:
        print(f"classify: {e}")
    names = imagenet_classes()
    rows = []
    for fname in PHOTOS:
        photo = np.asarray(Image.fromarray(to_uint8(read_image(ROOT / "examples" / "images" / fname)))
                           .resize((CELL, CELL), Image.BILINEAR), np.float32)
        maps = np.asarray(jaxvis.activations(net, photo, layer=out))  # H×W×1000
        cls = int(maps.mean(axis=(0, 1)).argmax())
        cam = jaxvis.grad_cam(net, photo, (out, cls), feature_layer="/features/features.12/Concat")
        sal = jaxvis.saliency(net, photo, (out, cls), method="smoothgrad", num_samples=16)
        print(f"{fname}: class map {cls} {names[cls]!r}; Grad-CAM at {cam.options['feature_layer']!r}")
        rows.append((photo.astype(np.uint8), over(photo, maps[..., cls]), over(photo, np.asarray(cam.map)),
                     heat(np.asarray(sal.map), 99.5), names[cls].split(",")[0]))
    pad, top = 6, 22
    heads = ("photo (fed NxHxWxC)", "output: class map", "Grad-CAM of its mean", "SmoothGrad of its mean")
    canvas = Image.new("RGB", (4 * CELL + 5 * pad, top + len(rows) * (CELL + pad + 16) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for j, head in enumerate(heads):
        draw.text((pad + j * (CELL + pad), 5), head, fill="black", font=font)
    for i, (*cells, label) in enumerate(rows):
        y = top + i * (CELL + pad + 16)
        for j, c in enumerate(cells):
            canvas.paste(Image.fromarray(c), (pad + j * (CELL + pad), y))
        draw.text((pad + CELL + pad, y + CELL + 2), f"class map: {label}", fill="black", font=font)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(a.out) as tmp:
        canvas.save(tmp, format="PNG")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    jaxvis.configure_cpu()
    sys.exit(main())
